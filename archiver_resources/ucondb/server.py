"""Local UconDB-compatible server: a Starlette ASGI app reproducing the UconDB 3.9.7 HTTP API.

For development, the demo and tests (see docs/ucondb-local-server.md). ``create_app`` builds the
app over a SQLite or PostgreSQL database (storage.py); ``main`` serves it with uvicorn, bound to
loopback by default.
"""

from __future__ import annotations

import argparse
import html
import ipaddress
import json
import logging
import os
import socket
import sys
import time
import traceback
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Iterable, Iterator, Mapping, Optional
from urllib.parse import parse_qsl

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from archiver_resources.ucondb import digest
from archiver_resources.ucondb.storage import (
    BodyTooLarge, FolderTables, SpooledBody, Storage,
)

log = logging.getLogger(__name__)

VERSION = "3.9.7"
HTML = "text/html; charset=UTF-8"
JSON_TYPE = "text/json; charset=UTF-8"
OCTETS = "application/octet-stream"
DEFAULT_MAX_BODY_BYTES = 1 << 30  # 1 GiB, the real server's practical (bytea) limit

BAD_VALUE_CHARS = frozenset("<'>\\|")          # → 400 Invalid value for <name> (framework level)
BAD_SEGMENT_CHARS = frozenset("<'>\\|;\"")     # → 500 Invalid path element (path-parameter form)
BAD_ARGUMENT_CHARS = frozenset("';")           # → 500 Invalid argument value
UNCHECKED_ENDPOINTS = frozenset({"", "version", "probe", "hello"})
#: The real server's exception text for a get (key, tag, latest, data_key) of an object that has
#: no version yet: it looks the object up and calls ``getVersion`` on the ``None`` it finds.
NO_VERSIONS_ERROR = "'NoneType' object has no attribute 'getVersion'"
#: The 411 text for a put whose body is chunked. The real server stores such a body as an EMPTY
#: blob (silent data loss); this server refuses it, so a client that chunks fails at once.
CHUNKED_REFUSED = ("Length Required: the request body was sent chunked (Transfer-Encoding: "
                   "chunked, no Content-Length); UconDB 3.9.7 stores such a body as an empty "
                   "blob, so this server refuses it. Send Content-Length.")
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


class Reply(Exception):
    """A handled error reply with a short ``text/html`` body (status, text, extra headers)."""

    def __init__(self, status: int, text: str = "", headers: Optional[Mapping[str, str]] = None):
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = dict(headers or {})


class ApplicationError(Exception):
    """An error the real server raises as an unhandled exception (500 Application Error page)."""


# ---- responses ---------------------------------------------------------------------------

def own_headers() -> dict[str, str]:
    """Headers the real server's own response class adds (401 replies, ``/probe``, ``/hello``,
    ``/folders``, ``/create_folder``, data by id)."""
    return {
        "X-Actual-Server": socket.gethostname(),
        "X-Server-Application-Version": f"UConDB {VERSION}",
        "Access-Control-Allow-Origin": "*",
    }


def text_response(text: str, status: int = 200, *, own: bool = False,
                  headers: Optional[Mapping[str, str]] = None) -> Response:
    all_headers = own_headers() if own else {}
    all_headers.update(headers or {})
    return Response(text.encode("utf-8"), status, headers=all_headers, media_type=HTML)


def json_response(value: Any, *, own: bool = False) -> Response:
    return Response(json.dumps(value).encode("utf-8"), 200,
                    headers=own_headers() if own else None, media_type=JSON_TYPE)


def application_error(exc: BaseException) -> Response:
    """The real server's 500 page: the exception text inside ``<h3>`` (clients parse it)."""
    text = html.escape(str(exc))
    summary = html.escape("".join(traceback.format_exception_only(type(exc), exc)).strip())
    page = (f"<html><body><h2>Application error</h2><h3>{text}</h3><pre>{summary}</pre>"
            "</body></html>")
    return Response(page.encode("utf-8"), 500, media_type=HTML)


def header_text(value: str) -> str:
    """Header values travel as latin-1: pass UTF-8 bytes through unchanged."""
    return value.encode("utf-8").decode("latin-1")


def version_headers(meta: Mapping[str, Any]) -> dict[str, str]:
    """The ten ``X-UConDB-*`` headers of a blob reply by key, tag or latest."""
    key = meta["key"]
    return {
        "X-UConDB-product-version": VERSION,
        "X-UConDB-version-id": str(meta["id"]),
        "X-UConDB-data-key": str(meta["data_key"]),
        "X-UConDB-version-key": header_text("null" if key is None else str(key)),
        "X-UConDB-data-size": str(meta["data_size"]),
        "X-UConDB-adler32": str(meta["adler32"]),
        "X-UConDB-tv": repr(float(meta["tv"])),
        "X-UConDB-tr": repr(float(meta["tr"])),
        "X-UConDB-metadata": json.dumps(meta),
        "X-UConDB-metadata-format": "text/json",
    }


# ---- parameters and time texts --------------------------------------------------------------

class Params:
    """Request parameters: name → list of values (a repeated argument is a list, as in webpie)."""

    def __init__(self, values: Optional[dict[str, list[str]]] = None):
        self.values: dict[str, list[str]] = values or {}

    @classmethod
    def from_query(cls, query_string: bytes) -> "Params":
        values: dict[str, list[str]] = {}
        for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True,
                                     encoding="utf-8", errors="strict"):
            values.setdefault(name, []).append(value)
        return cls(values)

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def first(self, name: str, default: Optional[str] = None) -> Optional[str]:
        values = self.values.get(name)
        return values[0] if values else default

    def single(self, name: str) -> Optional[str]:
        values = self.values.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise ApplicationError(f"Value for {name} specified twice in the URL")
        return values[0]

    def all(self, name: str) -> list[str]:
        return list(self.values.get(name, []))


def merge_path_params(relpath: str, params: Params) -> Params:
    """Merge ``/F/O/k=v`` path segments with the query: the first two segments without ``=``
    are folder and object, ``k=v`` segments are parameters; a name given twice → 500."""
    merged = {name: list(values) for name, values in params.values.items()}
    positional: list[str] = []
    for segment in relpath.split("/"):
        if not segment:
            continue
        if BAD_SEGMENT_CHARS & set(segment):
            raise ApplicationError("Invalid path element")
        name, sep, value = segment.partition("=")
        if sep:
            if name in merged:
                raise ApplicationError(f"Value for {name} specified twice in the URL")
            merged[name] = [value]
        else:
            positional.append(segment)
    for name, segment in zip(("folder", "object"), positional):
        if name in merged:
            raise ApplicationError(f"Value for {name} specified twice in the URL")
        merged[name] = [segment]
    for values in merged.values():
        for value in values:
            if BAD_ARGUMENT_CHARS & set(value):
                raise ApplicationError("Invalid argument value")
    return Params(merged)


_RELATIVE_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_time(text: str, now: Optional[float] = None) -> float:
    """A UconDB time text → epoch seconds: ISO ``YYYY-mm-ddTHH:MM:SS[.ffffff]``,
    ``mm/dd/YYYY HH:MM:SS`` (UTC), ``YYYY-mm-dd HH:MM:SS[+H|-H]``, a number, or ``-N[d|h|m|s]``
    before now; raises ValueError on anything else."""
    text = text.strip()
    now = time.time() if now is None else now
    if text.startswith("-"):
        unit = text[-1].lower()
        if unit in _RELATIVE_UNITS:
            return now - float(text[1:-1]) * _RELATIVE_UNITS[unit]
        return now - float(text[1:])
    try:
        return float(text)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%m/%d/%Y %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    base, offset = text, 0
    for sign in ("+", "-"):
        head, sep, tail = text[11:].rpartition(sign) if len(text) > 19 else ("", "", "")
        if sep and tail.isdigit():
            base, offset = text[:11] + head, int(tail) * (1 if sign == "+" else -1)
            break
    stamp = datetime.strptime(base, "%Y-%m-%d %H:%M:%S")
    return stamp.replace(tzinfo=timezone(timedelta(hours=offset))).timestamp()


def parse_float(text: Optional[str], default: float) -> float:
    if text is None or text == "":
        return default
    return float(text)


# ---- testing faults -----------------------------------------------------------------------

@dataclass
class _Fault:
    remaining: int
    path_contains: str
    method: Optional[str]
    status: int = 500
    body: str = "Simulated failure"
    stall_seconds: float = 0.0


@dataclass
class TestingFaults:
    """Fault injection for tests only (enabled by ``create_app(testing_faults=...)``).

    ``fail_next`` answers the next matching requests with an error status; ``stall_next`` delays
    them before they are handled. ``requests`` records ``(method, path)`` of every request.
    """

    requests: list[tuple[str, str]] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)

    __test__ = False  # not a pytest test class

    def fail_next(self, count: int, *, status: int = 500, body: str = "Simulated failure",
                  path_contains: str = "", method: Optional[str] = None) -> None:
        self._faults.append(_Fault(count, path_contains, method, status=status, body=body))

    def stall_next(self, count: int, seconds: float, *, path_contains: str = "",
                   method: Optional[str] = None) -> None:
        self._faults.append(_Fault(count, path_contains, method, stall_seconds=seconds))

    def count(self, *, method: Optional[str] = None, path_contains: str = "") -> int:
        return sum(1 for m, p in self.requests
                   if (method is None or m == method) and path_contains in p)

    def reset(self) -> None:
        self.requests.clear()
        self._faults.clear()

    def take(self, method: str, path: str) -> Optional[_Fault]:
        self.requests.append((method, path))
        for fault in self._faults:
            if fault.remaining > 0 and fault.path_contains in path and (
                    fault.method is None or fault.method == method):
                fault.remaining -= 1
                return fault
        return None


class ProtocolHeaders:
    """ASGI middleware: ``Connection: close`` and ``X-WebPie-Request-Id`` on every response,
    plus the test-only fault injection."""

    def __init__(self, app: Callable, faults: Optional[TestingFaults] = None):
        self.app = app
        self.faults = faults

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16].encode()

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"connection"]
                headers += [(b"connection", b"close"), (b"x-webpie-request-id", request_id)]
                message = {**message, "headers": headers}
            await send(message)

        if self.faults is not None:
            fault = self.faults.take(scope["method"], scope["path"])
            if fault is not None and fault.stall_seconds:
                await anyio.sleep(fault.stall_seconds)
            elif fault is not None:
                await _drain(receive)
                response = application_error(ApplicationError(fault.body))
                response.status_code = fault.status
                await response(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)


async def _drain(receive: Callable) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


# ---- the application ------------------------------------------------------------------------

Handler = Callable[[Request, str, Params], Awaitable[Response]]


class UconDBApp:
    """The endpoint handlers of the local server over one Storage."""

    def __init__(self, storage: Storage, *, authentication: str = "RFC2617",
                 users: Optional[digest.Authorization] = None, read_only: bool = False,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
        if authentication not in ("RFC2617", "none"):
            raise ValueError(f"authentication must be 'RFC2617' or 'none', not {authentication!r}")
        self.storage = storage
        self.authentication = authentication
        self.users: digest.Authorization = users or {}
        self.read_only = read_only
        self.max_body_bytes = max_body_bytes
        self.handlers: dict[str, Handler] = {
            "": self.root, "version": self.version, "probe": self.probe, "hello": self.hello,
            "folders": self.folders, "create_folder": self.create_folder,
            "objects": self.objects, "tags": self.tags, "versions": self.versions,
            "data": self.data, "put": self.put, "get": self.get,
            "lookup_versions": self.lookup_versions, "get_blob": self.get_blob, "tag": self.tag,
        }

    def __repr__(self) -> str:  # never shows the password table
        return (f"UconDBApp(storage={self.storage!r}, authentication={self.authentication!r}, "
                f"read_only={self.read_only})")

    # ---- dispatch ----

    async def dispatch(self, request: Request) -> Response:
        rest = request.path_params.get("rest", "")
        endpoint, _, relpath = rest.partition("/")
        try:
            params = Params.from_query(request.scope.get("query_string", b""))
        except (UnicodeDecodeError, ValueError):
            return text_response("Invalid query string", 400)
        if endpoint not in UNCHECKED_ENDPOINTS:
            rejected = self._rejected_value(params, relpath)
            if rejected:
                return text_response(f"Invalid value for {rejected}", 400)
        handler = self.handlers.get(endpoint)
        if handler is None:
            return text_response("Not found", 404)
        try:
            return await handler(request, relpath, params)
        except Reply as reply:
            return text_response(reply.text, reply.status, headers=reply.headers,
                                 own=reply.status == 401)
        except BodyTooLarge as exc:
            return text_response(str(exc), 413)
        except Exception as exc:  # the real server's unhandled-exception page
            log.debug("UconDB local server: %s %s failed: %s", request.method, endpoint,
                      type(exc).__name__)
            return application_error(exc)

    @staticmethod
    def _rejected_value(params: Params, relpath: str) -> Optional[str]:
        for name, values in params.values.items():
            if any(BAD_VALUE_CHARS & set(value) for value in values):
                return name
        if BAD_VALUE_CHARS & set(relpath):
            return "relpath"
        return None

    # ---- shared steps ----

    async def _spool(self, request: Request) -> SpooledBody:
        """Read the whole request body into a spool (memory, then a temp file), bounded."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            raise BodyTooLarge(self.max_body_bytes)
        body = SpooledBody(max_bytes=self.max_body_bytes)
        try:
            async for chunk in request.stream():
                body.write(chunk)
        except BaseException:
            body.close()
            raise
        return body

    async def _discard_body(self, request: Request) -> None:
        (await self._spool(request)).close()

    def _authenticate(self, request: Request, realm: str) -> None:
        """Digest check: 401 with a challenge when the header is missing or not ``Digest``,
        401 without one for a wrong user or response (raised as Reply)."""
        if self.authentication == "none":
            return
        header = request.headers.get("authorization")
        if not digest.is_digest(header):
            raise Reply(401, "Authorization required",
                        {"WWW-Authenticate": digest.challenge(realm)})
        if not digest.verify(header, request.method, realm, self.users):
            raise Reply(401, "Authorization required")

    def _check_writable(self) -> None:
        if self.read_only:
            raise Reply(405, "Read-only instance")

    async def _folder(self, name: Optional[str]) -> Optional[FolderTables]:
        if not name:
            return None
        return await run_in_threadpool(self.storage.folder, name)

    # ---- service endpoints ----

    async def root(self, request: Request, relpath: str, params: Params) -> Response:
        return await self.redirect_to_ui(request)

    async def redirect_to_ui(self, request: Request) -> Response:
        """``GET /`` → 302 to the (not reproduced) HTML browser, as the real server."""
        return Response(b"", 302, headers={"Location": "./UI/index"}, media_type=HTML)

    async def version(self, request: Request, relpath: str, params: Params) -> Response:
        return text_response(VERSION)

    async def probe(self, request: Request, relpath: str, params: Params) -> Response:
        try:
            await run_in_threadpool(self.storage.probe)
        except Exception as exc:  # reported with status 200, as the real server does
            return text_response(f"Error: {type(exc).__name__} {exc}", own=True)
        return text_response("OK", own=True)

    async def hello(self, request: Request, relpath: str, params: Params) -> Response:
        args = " ".join(f"{name}={value}" for name, values in params.values.items()
                        for value in values)
        return text_response(f"hello: {args}", own=True)

    # ---- folders, objects, tags, versions ----

    async def folders(self, request: Request, relpath: str, params: Params) -> Response:
        names = await run_in_threadpool(self.storage.folders, params.first("namespace"))
        if params.first("format", "json") == "csv":
            return Response(("Name\n" + "".join(f"{n}\n" for n in names)).encode(), 200,
                            headers=own_headers(), media_type="text/csv")
        return json_response(names, own=True)

    async def create_folder(self, request: Request, relpath: str, params: Params) -> Response:
        await self._discard_body(request)
        self._check_writable()
        name = params.first("folder", "")
        if not name:
            raise Reply(400, "Empty folder name")
        self._authenticate(request, name)
        await run_in_threadpool(self.storage.create_folder, name,
                                drop=params.first("drop") == "yes")
        return text_response("OK", own=True)

    async def _listing_folder(self, params: Params) -> FolderTables:
        name = params.first("folder")
        ft = await self._folder(name)
        if ft is None:
            raise ApplicationError(f"Folder {name} not found")
        return ft

    async def objects(self, request: Request, relpath: str, params: Params) -> Response:
        ft = await self._listing_folder(params)
        return self._listing(await run_in_threadpool(self.storage.objects, ft), params, "Name")

    async def tags(self, request: Request, relpath: str, params: Params) -> Response:
        ft = await self._listing_folder(params)
        return self._listing(await run_in_threadpool(self.storage.tags, ft), params, "Tag")

    @staticmethod
    def _listing(names: list[str], params: Params, header: str) -> Response:
        if params.first("format", "json") == "csv":
            text = header + "\n" + "".join(f"{n}\n" for n in names)
            return Response(text.encode("utf-8"), 200, media_type="text/csv")
        return json_response(names)

    async def versions(self, request: Request, relpath: str, params: Params) -> Response:
        folder_name, object_name = params.first("folder"), params.first("object")
        ft = await self._folder(folder_name)
        if ft is None:
            raise Reply(404, f"Folder {folder_name} not found")
        now = time.time()
        tv = parse_float(params.first("tv"), now)
        tr = params.first("tr")
        tr_since = params.first("tr_since")
        metas = await run_in_threadpool(
            lambda: self.storage.list_versions(
                ft, object_name or "", tv=tv,
                tr=parse_time(tr, now) if tr else None,
                tr_since=parse_time(tr_since, now) if tr_since else None))
        if not metas and not await run_in_threadpool(self.storage.object_exists, ft,
                                                     object_name or ""):
            raise Reply(404, f"Object {object_name} not found")
        return StreamingResponse(_json_array(metas), 200, media_type=JSON_TYPE)

    # ---- data: put and get ----

    async def data(self, request: Request, relpath: str, params: Params) -> Response:
        if request.method in ("POST", "PUT"):
            return await self.put(request, relpath, params)
        return await self.get(request, relpath, params)

    async def put(self, request: Request, relpath: str, params: Params) -> Response:
        params = merge_path_params(relpath, params)
        folder_name, object_name = params.single("folder"), params.single("object")
        if self.read_only:
            await self._discard_body(request)
            raise Reply(405, "Read-only instance")
        ft = await self._folder(folder_name)
        if ft is None:
            await self._discard_body(request)
            raise Reply(404, "Folder not found")
        if not object_name:
            await self._discard_body(request)
            raise Reply(400, "")
        if is_chunked(request):
            await self._discard_body(request)
            raise Reply(411, CHUNKED_REFUSED)
        body = await self._spool(request)  # read before any 401, as the real server does
        try:
            self._authenticate(request, ft.qualified)
            meta = await run_in_threadpool(
                lambda: self.storage.put_version(
                    ft, object_name, body, key=params.single("key") or None,
                    tags=params.all("tag"), tv=parse_float(params.single("tv"), 0.0),
                    override=params.single("override") == "yes"))
        finally:
            body.close()
        if params.single("full_meta") == "yes":
            return json_response(meta)
        return text_response(str(meta["id"]))

    async def get(self, request: Request, relpath: str, params: Params) -> Response:
        params = merge_path_params(relpath, params)
        folder_name, object_name = params.single("folder"), params.single("object")
        if not folder_name or not object_name:
            return Response(b"", 400, media_type=HTML)
        ft = await self._folder(folder_name)
        meta_only = params.single("meta_only") == "yes"
        if "id" in params:
            return await self._get_by_id(ft, folder_name, int(params.single("id") or ""), meta_only)
        if ft is None:
            raise ApplicationError(f"Folder {folder_name} not found")
        if not await run_in_threadpool(self.storage.object_exists, ft, object_name):
            raise AttributeError(NO_VERSIONS_ERROR)  # the real server's own exception
        if "data_key" in params:
            return await self._get_by_data_key(ft, params.single("data_key") or "")
        meta = await run_in_threadpool(self._select_version, ft, object_name, params)
        if meta is None:
            raise Reply(404, "Version not found")
        if meta_only:
            return json_response(meta)
        return StreamingResponse(
            self.storage.iter_blob(ft, meta["data_key"], meta["data_size"]), 200,
            headers=version_headers(meta), media_type=OCTETS)

    def _select_version(self, ft: FolderTables, object_name: str,
                        params: Params) -> Optional[dict]:
        now = time.time()
        if "key" in params:
            return self.storage.version_by_key(ft, object_name, params.single("key") or "")
        if "tag" in params:
            return self.storage.version_by_tag(ft, object_name, params.single("tag") or "", now)
        tr = params.single("tr")
        return self.storage.latest(ft, object_name, parse_float(params.single("tv"), now),
                                   parse_time(tr, now) if tr else None)

    async def _get_by_id(self, ft: Optional[FolderTables], folder_name: str, version_id: int,
                         meta_only: bool) -> Response:
        if ft is None:
            raise ApplicationError(f"Folder {folder_name} not found")
        meta = await run_in_threadpool(self.storage.version_by_id, ft, version_id)
        if meta_only:
            return json_response(meta or {})
        if meta is None:
            raise ApplicationError(f"Version {version_id} not found")
        headers = own_headers()
        headers["Content-Length"] = str(meta["data_size"])
        return StreamingResponse(self.storage.iter_blob(ft, meta["data_key"], meta["data_size"]),
                                 200, headers=headers, media_type=HTML)

    async def _get_by_data_key(self, ft: FolderTables, data_key: str) -> Response:
        size = await run_in_threadpool(self.storage.blob_size, ft, data_key)
        if size is None:
            raise Reply(404, "Data not found")
        headers = {"X-UConDB-product-version": VERSION, "X-UConDB-data-key": data_key}
        return StreamingResponse(self.storage.iter_blob(ft, data_key, size), 200,
                                 headers=headers, media_type=OCTETS)

    # ---- lookup_versions, get_blob, tag ----

    async def lookup_versions(self, request: Request, relpath: str, params: Params) -> Response:
        if request.method != "POST":
            raise ApplicationError("lookup_versions requires POST")
        segments = [s for s in relpath.split("/") if s]
        folder_name = segments[0] if segments else params.first("folder")
        object_name = segments[1] if len(segments) > 1 else params.first("object")
        body = await self._spool(request)
        try:
            query = json.loads(body.read_all() or b"null")
        finally:
            body.close()
        ft = await self._folder(folder_name)
        if ft is None:
            raise Reply(404, f"Folder {folder_name} not found")
        if object_name and not await run_in_threadpool(self.storage.object_exists, ft,
                                                       object_name):
            raise Reply(404, f"Object {object_name} not found")
        records = await run_in_threadpool(self._lookup, ft, object_name, query)
        return StreamingResponse(_json_seq(records), 200,
                                 headers={"Content-Type": "text/json-seq"})

    def _lookup(self, ft: FolderTables, object_name: Optional[str], query: Any) -> list:
        if not isinstance(query, dict):
            raise ApplicationError("No lookup selector given")
        if "ids" in query:
            return self.storage.lookup_ids(ft, query["ids"])
        if not any(s in query for s in ("keys", "key_min", "tvs")):
            raise ApplicationError("No lookup selector given")
        if not object_name:
            raise ApplicationError("Object must be specified")
        if "keys" in query:
            return self.storage.lookup_keys(ft, object_name, query["keys"])
        if "key_min" in query:
            return self.storage.lookup_key_range(ft, object_name, str(query["key_min"]),
                                                 str(query["key_max"]))
        return [None for _ in query["tvs"]]  # broken in 3.9.7: yields null records

    async def get_blob(self, request: Request, relpath: str, params: Params) -> Response:
        segments = [s for s in relpath.split("/") if s]
        folder_name = segments[0] if segments else params.first("folder")
        version_id, data_key = params.first("version_id"), params.first("data_key")
        if (version_id is None) == (data_key is None):
            raise Reply(400, "One and only one of data_key, version_id must be specified")
        ft = await self._folder(folder_name)
        if ft is None:
            raise Reply(404, f"Folder {folder_name} not found")
        if version_id is not None:
            meta = await run_in_threadpool(self.storage.version_by_id, ft, int(version_id))
            if meta is None:
                raise Reply(404, "Version not found")
            data_key, size = meta["data_key"], meta["data_size"]
        else:
            size = await run_in_threadpool(self.storage.blob_size, ft, data_key)
            if size is None:
                raise Reply(404, "Data not found")
        chunks = self.storage.iter_blob(ft, str(data_key), size)
        level = {"default": -1, "fast": 1, "best": 9}.get(params.first("compress", "no") or "no")
        if level is not None and size >= 10 * 1024:
            chunks = _deflate(chunks, level)
        return StreamingResponse(chunks, 200, media_type=OCTETS)

    async def tag(self, request: Request, relpath: str, params: Params) -> Response:
        await self._discard_body(request)
        self._check_writable()
        folder_name, tag = params.first("folder"), params.first("tag")
        ft = await self._folder(folder_name)
        if ft is None:
            raise ApplicationError(f"Folder {folder_name} not found")
        if not tag:
            raise ApplicationError("Tag must be specified")
        self._authenticate(request, ft.qualified)  # the real server forgets this (a bug)
        version_id = params.first("version_id")
        if version_id is None:
            object_name, key = params.first("object"), params.first("key")
            if not object_name or key is None:
                raise ApplicationError("version_id or object and key must be specified")
            meta = await run_in_threadpool(self.storage.version_by_key, ft, object_name, key)
            if meta is None:
                raise ApplicationError("Version not found")
            version_id = str(meta["id"])
        if not await run_in_threadpool(self.storage.add_tag, ft, int(version_id), tag):
            raise ApplicationError("Version not found")
        return text_response("OK")


def is_chunked(request: Request) -> bool:
    """The request body is framed with ``Transfer-Encoding: chunked`` (no Content-Length)."""
    return "chunked" in request.headers.get("transfer-encoding", "").lower()


def _json_array(metas: list[dict]) -> Iterator[bytes]:
    yield b"["
    for index, meta in enumerate(metas):
        yield (", " if index else "").encode() + json.dumps(meta).encode("utf-8")
    yield b"]"


def _json_seq(records: Iterable[Optional[dict]]) -> Iterator[bytes]:
    for record in records:
        yield b"\x1e" + json.dumps(record).encode("utf-8") + b"\n"


def _deflate(chunks: Iterable[bytes], level: int) -> Iterator[bytes]:
    compressor = zlib.compressobj(level)
    for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()


def create_app(db_url: str, *, prefix: str = "/app", authentication: str = "RFC2617",
               users: Optional[digest.Authorization] = None, namespace: str = "public",
               read_only: bool = False, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               create_folders: Iterable[str] = (),
               testing_faults: Optional[TestingFaults] = None) -> Starlette:
    """Build the ASGI app of a local UconDB server over ``db_url`` (SQLite or PostgreSQL URL).

    ``users`` is the real server's ``Authorization`` mapping: realm or ``'*'`` → user or
    ``'*'`` → password. ``testing_faults`` enables the fault-injection hooks (tests only).
    """
    prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
    storage = Storage(db_url, namespace=namespace)
    for name in create_folders:
        storage.create_folder(name)
    ucon = UconDBApp(storage, authentication=authentication, users=users, read_only=read_only,
                     max_body_bytes=max_body_bytes)
    routes = [
        Route(prefix or "/", ucon.redirect_to_ui, methods=ALL_METHODS),
        Route(f"{prefix}/{{rest:path}}", ucon.dispatch, methods=ALL_METHODS),
    ]
    app = Starlette(routes=routes)
    app.state.ucondb = ucon
    app.state.storage = storage
    app.state.testing_faults = testing_faults
    app.add_middleware(ProtocolHeaders, faults=testing_faults)
    return app


# ---- command line ---------------------------------------------------------------------------

def _load_auth_file(path: str) -> tuple[dict, dict]:
    """A YAML file holding an ``Authorization`` mapping (and optionally a ``Server`` section)."""
    import yaml

    with open(path, encoding="utf-8") as stream:
        doc = yaml.safe_load(stream) or {}
    if not isinstance(doc, dict):
        raise SystemExit(f"{path}: expected a mapping")
    authorization = doc.get("Authorization", doc if "Server" not in doc else {})
    return ({str(realm): {str(u): str(p) for u, p in (users or {}).items()}
             for realm, users in authorization.items()}, doc.get("Server") or {})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ucondb-local-server",
        description="Local UconDB-compatible server (UconDB 3.9.7 HTTP API) for development, "
                    "the demo and tests.")
    parser.add_argument("--db", default="sqlite:///ucondb-local.db",
                        help="SQLAlchemy URL: sqlite:///path.db or postgresql+psycopg2://…")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--prefix", default="/app", help="mount point; clients use <url>/app")
    parser.add_argument("--user", help="writer user name (password from --password-env)")
    parser.add_argument("--password-env", default="UCONDB_PASSWORD",
                        help="environment variable holding the writer password")
    parser.add_argument("--auth-file", help="YAML with an Authorization mapping (realm → user → "
                                            "password, '*' wildcards) and optional Server section")
    parser.add_argument("--no-auth", action="store_true",
                        help="authentication: none (anyone may write; loopback use only)")
    parser.add_argument("--create-folder", action="append", default=[], metavar="NAME")
    parser.add_argument("--namespace", default="public")
    parser.add_argument("--read-only", action="store_true")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--log-level", default="info")
    return parser


#: How uvicorn parses HTTP for this server. h11, not httptools: httptools puts no limit on the
#: size of request headers (an 8 MB header line was read whole and answered 200; 64 MB stalled
#: the connection), h11 answers 400 past ``h11_max_incomplete_event_size`` bytes of headers.
#: Bodies are not concerned (streamed, and capped by ``max_body_bytes``).
HTTP_OPTIONS = {"http": "h11", "h11_max_incomplete_event_size": 64 * 1024}


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of ``ucondb-local-server`` / ``python -m archiver_resources.ucondb.server``."""
    import uvicorn

    args = build_parser().parse_args(argv)
    users: dict[str, dict[str, str]] = {}
    server_section: dict = {}
    if args.auth_file:
        users, server_section = _load_auth_file(args.auth_file)
    if args.user:
        password = os.environ.get(args.password_env)
        if not password:
            print(f"ucondb-local-server: environment variable {args.password_env} is not set",
                  file=sys.stderr)
            return 2
        users.setdefault("*", {})[args.user] = password
    authentication = "none" if args.no_auth else str(
        server_section.get("authentication", "RFC2617"))
    if authentication != "none" and not users:
        print("ucondb-local-server: no writer credentials (--user or --auth-file); "
              "every write will be refused", file=sys.stderr)
    if not _is_loopback(args.host):
        print(f"ucondb-local-server: WARNING: listening on {args.host}, not loopback",
              file=sys.stderr)
    app = create_app(args.db, prefix=args.prefix, authentication=authentication, users=users,
                     namespace=args.namespace,
                     read_only=args.read_only or bool(server_section.get("read_only", False)),
                     max_body_bytes=args.max_body_bytes, create_folders=args.create_folder)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                proxy_headers=False, server_header=False, **HTTP_OPTIONS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
