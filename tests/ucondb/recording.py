"""A small HTTP server that records every request exactly as it arrived (request line, headers,
framing, body) and answers from a script: the tool for seeing what the UconDB client sends.

Bodies framed with ``Transfer-Encoding: chunked`` are decoded and marked ``chunked=True``;
others are read by ``Content-Length`` (absent → empty). Every reply closes the connection, as
UconDB does.
"""

from __future__ import annotations

import http.server
import json
import threading
import zlib
from dataclasses import dataclass
from typing import Callable, Optional
from urllib.parse import parse_qs, urlsplit

CHALLENGE = 'Digest realm="public.sbnd_runs", nonce="b\'MTczMDAwMDAwMA==\'", ' \
            'algorithm=MD5, qop="auth"'


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    chunked: bool

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    @property
    def content_length(self) -> Optional[int]:
        value = self.headers.get("content-length")
        return None if value is None else int(value)


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=UTF-8"
    headers: Optional[dict[str, str]] = None


def metadata_reply(request: Recorded) -> Reply:
    """The ``full_meta=yes`` answer of a successful put, built from the request."""
    key = (request.query.get("key") or [None])[0]
    meta = {"object": "configuration", "folder": "public.sbnd_runs", "tv": 0.0,
            "tr": 1730000000.5, "tags": sorted(request.query.get("tag", [])),
            "adler32": zlib.adler32(request.body), "uadler32": zlib.adler32(request.body),
            "data_size": len(request.body), "data_key": "1", "id": 1, "key": key}
    return Reply(200, json.dumps(meta).encode(), "text/json; charset=UTF-8")


def digest_then_store(request: Recorded) -> Reply:
    """UconDB's put: 401 with a challenge without credentials, else the metadata JSON."""
    if not request.headers.get("authorization", "").lower().startswith("digest "):
        return Reply(401, b"Authorization required", headers={"WWW-Authenticate": CHALLENGE})
    if request.path.endswith("/create_folder"):
        return Reply(200, b"OK")
    return metadata_reply(request)


Script = Callable[[Recorded], Reply]


class RecordingServer:
    """``RecordingServer(script)``: ``.base_url`` (ending in ``/app``), ``.requests``,
    ``.push(reply, …)`` to answer the next requests with fixed replies before the script;
    a context manager."""

    def __init__(self, script: Script = digest_then_store):
        self.script = script
        self.requests: list[Recorded] = []
        self._queued: list[Reply] = []
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
                body = self._read_chunked() if chunked else self.rfile.read(
                    int(self.headers.get("Content-Length") or 0))
                recorded = Recorded(self.command, self.path,
                                    {k.lower(): v for k, v in self.headers.items()}, body,
                                    chunked)
                reply = server._record(recorded)
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.send_header("Connection", "close")
                for name, value in (reply.headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(reply.body)
                self.close_connection = True

            def _read_chunked(self) -> bytes:
                data = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, *args) -> None:  # quiet
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        host, port = self._httpd.server_address[:2]
        self.base_url = f"http://{host}:{port}/app"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name="recording-http")
        self._thread.start()

    def _record(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            queued = self._queued.pop(0) if self._queued else None
        return queued if queued is not None else self.script(request)

    def push(self, *replies: Reply) -> None:
        with self._lock:
            self._queued.extend(replies)

    def uploads(self) -> list[Recorded]:
        return [r for r in self.requests if r.method in ("POST", "PUT")]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "RecordingServer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
