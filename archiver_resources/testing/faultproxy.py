"""A small fault-injecting HTTP proxy on loopback, put between the archiver and a (local) UconDB
server to prove that faults on the wire never lose a run or let a wrong blob pass as archived.

``FaultProxy(upstream_url, seed=…, rate=…, mix=…)`` forwards each request (one per connection,
``Connection: close``) and, with probability ``rate``, injects one fault chosen by a seeded RNG:

========================  ===================================================================
``5xx_burst``             answer 500/502/503 without forwarding, for the next 1–3 requests
``timeout``               hold the request longer than the client's timeout, then close
``slow``                  forward, but answer only after ``slow_seconds`` (under the timeout)
``reset_upload``          POST: read part of the body, then reset the connection (not forwarded)
``reset_after_upload``    POST: forward (the server stores it), then reset instead of answering
``reset_download``        GET: send the headers and half the body, then reset the connection
``truncate``              GET: send half the body with a Content-Length that matches the half
``flip_download``         GET: flip one byte of the body (same length)
========================  ===================================================================

It is bounded: at most ``max_requests`` requests and ``max_seconds`` of life, after which it only
passes requests through (and ``clear()`` stops the faults at any time: "the fault clears"). Every
decision is recorded in ``.log`` (index, method, path, fault) for figures and failure messages.
"""

from __future__ import annotations

import random
import socket
import socketserver
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.client import HTTPConnection
from typing import Optional
from urllib.parse import urlsplit

FAULTS = ("5xx_burst", "timeout", "slow", "reset_upload", "reset_after_upload",
          "reset_download", "truncate", "flip_download")
UPLOAD_FAULTS = frozenset({"reset_upload", "reset_after_upload"})
DOWNLOAD_FAULTS = frozenset({"reset_download", "truncate", "flip_download"})
MAX_HEADER_BYTES = 64 * 1024


@dataclass
class Decision:
    index: int
    method: str
    path: str
    fault: Optional[str]
    status: Optional[int] = None


@dataclass
class _State:
    rng: random.Random
    burst_left: int = 0
    burst_status: int = 500
    count: int = 0
    log: list = field(default_factory=list)


class FaultProxy:
    """A running loopback proxy (``.base_url`` mirrors the upstream's path prefix, e.g. ``/app``)."""

    def __init__(self, upstream_url: str, *, seed: int, rate: float = 0.2,
                 mix: Optional[dict] = None, max_requests: int = 20_000,
                 max_seconds: float = 600.0, stall_seconds: float = 2.0,
                 slow_seconds: float = 0.3, upstream_timeout: float = 30.0):
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.prefix = parts.path.rstrip("/")
        self.seed = seed
        self.rate = rate
        self.mix = dict(mix or {name: 1.0 for name in FAULTS})
        unknown = set(self.mix) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {FAULTS}")
        self.max_requests = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.stall_seconds = stall_seconds
        self.slow_seconds = slow_seconds
        self.upstream_timeout = upstream_timeout
        self._state = _State(rng=random.Random(seed))
        self._lock = threading.Lock()
        self._active = True
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy._handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}{self.prefix}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"faultproxy-{port}", daemon=True)
        self._thread.start()

    # ---- control ----

    def clear(self) -> None:
        """Stop injecting faults: from now on every request passes through unchanged."""
        with self._lock:
            self._active = False
            self._state.burst_left = 0

    def resume(self) -> None:
        with self._lock:
            self._active = True

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def log(self) -> list:
        with self._lock:
            return list(self._state.log)

    def counts(self) -> Counter:
        return Counter(d.fault or "none" for d in self.log)

    def describe(self) -> str:
        return (f"FaultProxy(seed={self.seed}, rate={self.rate}, requests={len(self.log)}, "
                f"faults={dict(self.counts())})")

    # ---- decisions ----

    def _decide(self, method: str, path: str) -> Decision:
        with self._lock:
            state = self._state
            state.count += 1
            decision = Decision(state.count, method, path, None)
            live = (self._active and state.count <= self.max_requests
                    and time.monotonic() < self.deadline)
            if live and state.burst_left > 0:
                state.burst_left -= 1
                decision.fault, decision.status = "5xx_burst", state.burst_status
            elif live and state.rng.random() < self.rate:
                choices = [(name, weight) for name, weight in self.mix.items() if weight > 0
                           and not (name in UPLOAD_FAULTS and method != "POST")
                           and not (name in DOWNLOAD_FAULTS and (method != "GET"
                                                                 or "/data" not in path))]
                if choices:
                    names, weights = zip(*choices)
                    fault = state.rng.choices(names, weights)[0]
                    decision.fault = fault
                    if fault == "5xx_burst":
                        decision.status = state.rng.choice((500, 502, 503))
                        state.burst_status = decision.status
                        state.burst_left = state.rng.randint(0, 2)
                    if fault == "flip_download":
                        decision.status = state.rng.randrange(1 << 30)  # byte position seed
            state.log.append(decision)
            return decision

    # ---- one connection ----

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(self.upstream_timeout)
        try:
            head, body_start = _read_head(conn)
            if head is None:
                return
            request_line, headers = _parse_head(head)
            method, target, _ = request_line.split(" ", 2)
            length = int(headers.get("content-length", "0") or 0)
            decision = self._decide(method, target.split("?", 1)[0])
            fault = decision.fault
            if fault == "reset_upload":
                _recv_exactly(conn, body_start, max(0, length // 2 - len(body_start)))
                _reset(conn)
                return
            body = _recv_exactly(conn, body_start, length - len(body_start))
            if fault == "5xx_burst":
                _send_response(conn, decision.status, {"Content-Type": "text/html"},
                               b"<html><body><h3>Simulated fault</h3></body></html>")
                return
            if fault == "timeout":
                time.sleep(self.stall_seconds)
                _reset(conn)
                return
            status, reason, out_headers, data = self._forward(method, target, headers, body)
            if fault == "reset_after_upload":
                _reset(conn)
                return
            if fault == "slow":
                time.sleep(self.slow_seconds)
            if fault in DOWNLOAD_FAULTS and status == 200 and len(data) > 1:
                if fault == "reset_download":
                    _send_response(conn, status, out_headers, data, reason=reason,
                                   send_bytes=len(data) // 2)
                    _reset(conn)
                    return
                if fault == "truncate":
                    data = data[: len(data) // 2]
                else:
                    position = decision.status % len(data)
                    data = data[:position] + bytes([data[position] ^ 0x20]) + data[position + 1:]
            _send_response(conn, status, out_headers, data, reason=reason)
        except (OSError, ValueError):
            _reset(conn)

    def _forward(self, method: str, target: str, headers: dict, body: bytes):
        upstream = HTTPConnection(*self.upstream, timeout=self.upstream_timeout)
        try:
            forwarded = {k: v for k, v in headers.items()
                         if k not in ("connection", "keep-alive", "proxy-connection",
                                      "transfer-encoding", "content-length")}
            upstream.request(method, target, body=body if body or method == "POST" else None,
                             headers=forwarded)
            response = upstream.getresponse()
            data = response.read()
            out = [(k, v) for k, v in response.getheaders()
                   if k.lower() not in ("connection", "keep-alive", "transfer-encoding",
                                        "content-length")]
            return response.status, response.reason, out, data
        finally:
            upstream.close()


def _read_head(conn: socket.socket):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
        if len(data) > MAX_HEADER_BYTES:
            raise ValueError("request head too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _parse_head(head: bytes):
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _recv_exactly(conn: socket.socket, start: bytes, missing: int) -> bytes:
    parts = [start]
    while missing > 0:
        chunk = conn.recv(min(missing, 65536))
        if not chunk:
            break
        parts.append(chunk)
        missing -= len(chunk)
    return b"".join(parts)


def _send_response(conn: socket.socket, status: int, headers, data: bytes, *,
                   reason: str = "", send_bytes: Optional[int] = None) -> None:
    items = headers.items() if isinstance(headers, dict) else headers
    lines = [f"HTTP/1.1 {status} {reason or 'Status'}"]
    lines += [f"{k}: {v}" for k, v in items]
    lines += [f"Content-Length: {len(data)}", "Connection: close", "", ""]
    payload = "\r\n".join(lines).encode("latin-1") + data
    if send_bytes is not None:
        payload = payload[: len(payload) - len(data) + send_bytes]
    conn.sendall(payload)


def _reset(conn: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the peer sees 'connection reset', not a clean end."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    except OSError:
        pass
