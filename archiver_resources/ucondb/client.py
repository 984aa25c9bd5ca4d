"""HTTP client of the UconDB API (3.9.7) for run-record-archiver: one blob per run, key = tag = run.

Talks HTTP directly with ``requests`` (digest auth for writes, anonymous reads, real timeouts,
bounded retries with exponential backoff and jitter). Errors are ``UconDBError`` /
``DuplicateKeyError`` with one-line messages that never contain a password.

Quirks of the real server (3.9.7) it copes with: a get by key of an object that has no version
yet answers 500 ``'NoneType' object has no attribute 'getVersion'`` (read here as "not found",
never retried); a request body sent chunked is stored as an **empty** blob (so every upload
carries ``Content-Length``, files included); a put into a missing folder answers 404
``Folder not found`` (the error names the folder; ``create_missing_folder`` creates it).
"""

from __future__ import annotations

import codecs
import hashlib
import html
import io
import json
import logging
import re
import threading
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import HTTPDigestAuth
from urllib3.exceptions import MaxRetryError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util.retry import Retry

from archiver_resources.errors import DuplicateKeyError, UconDBError

log = logging.getLogger(__name__)

#: Statuses a front end (proxy, load balancer) answers while UconDB is unavailable; retried by
#: urllib3 inside the transport adapter, together with connection errors and timeouts.
GATEWAY_STATUSES = frozenset({502, 503, 504})
#: Longest error text kept from a reply body (the rest is a traceback or HTML noise).
MAX_REASON_CHARS = 300
#: The exception text of the 500 UconDB 3.9.7 answers to a get by key (or tag, or latest) of an
#: object that has no version yet: the same outcome as a 404 for that key.
MISSING_OBJECT_REASON = "'NoneType' object has no attribute 'getVersion'"
#: The 404 texts of a missing folder: ``Folder not found`` (put), ``Folder F not found`` (lists).
_FOLDER_NOT_FOUND = re.compile(r"Folder( \S+)? not found")
#: Block size in which a file body is handed to the connection.
UPLOAD_BLOCK_SIZE = 1 << 20
_H3 = re.compile(r"<h3>(.*?)</h3>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")
_SPACES = re.compile(r"\s+")
#: Servers already warned about (verify_tls off): the warning is logged once per process and URL.
_INSECURE_WARNED: set[str] = set()
_INSECURE_LOCK = threading.Lock()


@dataclass(frozen=True)
class VersionMeta:
    """Metadata of one stored version: the server's metadata JSON (``id``, ``key`` or null,
    ``data_key`` as a string, ``data_size``, unsigned ``adler32``, float ``tr``/``tv``, sorted
    ``tags``, qualified ``folder``, ``object``)."""

    id: int
    key: Optional[str]
    data_key: str
    data_size: int
    adler32: int
    tr: float
    tv: float
    tags: tuple[str, ...]
    folder: str
    object: str

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "VersionMeta":
        """Build from a metadata object; raises KeyError/TypeError/ValueError when malformed."""
        key = doc.get("key")
        return cls(
            id=int(doc["id"]), key=None if key is None else str(key),
            data_key=str(doc["data_key"]), data_size=int(doc["data_size"]),
            adler32=int(doc["adler32"]), tr=float(doc["tr"]), tv=float(doc.get("tv") or 0.0),
            tags=tuple(str(t) for t in doc.get("tags") or ()), folder=str(doc["folder"]),
            object=str(doc["object"]),
        )

    @property
    def run(self) -> Optional[int]:
        """The run number when the key is exactly a decimal run number, else None."""
        return run_of_key(self.key)


@dataclass(frozen=True)
class Blob:
    """A downloaded blob: the exact bytes received and the version metadata from the headers."""

    data: bytes
    meta: Optional[VersionMeta]

    @property
    def md5(self) -> str:
        return hashlib.md5(self.data).hexdigest()


@dataclass(frozen=True)
class BlobDigest:
    """What a streamed download of a blob proved, without holding its bytes: their MD5, size and
    Adler-32, and the version metadata from the headers."""

    md5: str
    size: int
    adler32: int
    meta: Optional[VersionMeta]


def run_of_key(key: Optional[str]) -> Optional[int]:
    """``"1234"`` → 1234; ``None``, ``"abc"``, ``"0123"``, ``"+5"`` → None (exact decimal only)."""
    if key is None or not re.fullmatch(r"[0-9]+", key):
        return None
    run = int(key)
    return run if str(run) == key else None


def reason_from_body(body: bytes) -> str:
    """One line from an error reply: the ``<h3>`` exception text of the 500 page, else the text."""
    text = body[:65536].decode("utf-8", "replace")
    match = _H3.search(text)
    if match:
        text = match.group(1)
    text = _SPACES.sub(" ", html.unescape(_TAGS.sub(" ", text))).strip()
    if len(text) > MAX_REASON_CHARS:
        text = text[:MAX_REASON_CHARS] + "…"
    return text or "(empty body)"


def is_duplicate_key_reply(response: requests.Response) -> bool:
    """True for the 500 UconDB answers when the key is taken (``… already exists``)."""
    return response.status_code == 500 and b"already exists" in response.content.lower()


def is_missing_object_reply(response: requests.Response) -> bool:
    """True for exactly the 500 UconDB 3.9.7 answers to a get of an object without versions:
    its exception text (the ``<h3>`` of the error page, or the whole body) is
    :data:`MISSING_OBJECT_REASON` and nothing else."""
    return (response.status_code == 500
            and reason_from_body(response.content) == MISSING_OBJECT_REASON)


def is_missing_folder_reply(response: requests.Response) -> bool:
    """True for UconDB's 404 for a folder that does not exist (``Folder [F ]not found``)."""
    return (response.status_code == 404
            and _FOLDER_NOT_FOUND.fullmatch(reason_from_body(response.content)) is not None)


class SizedFileBody:
    """A seekable binary file from its current position to its end, with its length known up
    front, so that ``requests`` sends ``Content-Length`` instead of chunking the body.

    UconDB 3.9.7 stores a chunked body as an empty blob. ``requests`` measures a file itself
    but chunks one it measures as empty (a zero-length file, a file at its end); here the
    length is measured by seeking, and ``read`` never returns more than that many bytes, so
    the header and the body always agree. ``tell``/``seek`` are relative to the start
    position (the digest challenge and the retries send the body again from there).
    """

    def __init__(self, file: Any):
        self._file = file
        try:
            self._start = file.tell()
            file.seek(0, io.SEEK_END)
            self._length = file.tell() - self._start
            file.seek(self._start)
        except (OSError, ValueError) as exc:
            raise TypeError(f"put_blob needs a seekable binary file whose length can be "
                            f"measured ({type(exc).__name__}: {exc})") from None
        if self._length < 0:
            raise TypeError("put_blob: the file is positioned beyond its end")

    def __len__(self) -> int:
        return self._length

    def tell(self) -> int:
        return self._file.tell() - self._start

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._file.seek(self._start + offset)
        elif whence == io.SEEK_CUR:
            self._file.seek(offset, io.SEEK_CUR)
        else:
            self._file.seek(self._start + self._length + offset)
        return self.tell()

    def read(self, size: Optional[int] = -1) -> bytes:
        remaining = self._length - self.tell()
        if remaining <= 0:
            return b""
        if size is None or size < 0 or size > remaining:
            size = remaining
        return self._file.read(size)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            block = self.read(UPLOAD_BLOCK_SIZE)
            if not block:
                return
            yield block


def upload_body(data: Any) -> Any:
    """What ``put_blob`` hands to ``requests``: bytes as they are, a file as a
    :class:`SizedFileBody` (an empty one as ``b""``), so the request always carries
    ``Content-Length`` and is never chunked."""
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, bytes):
        return data
    if not (hasattr(data, "read") and hasattr(data, "seek") and hasattr(data, "tell")):
        raise TypeError("put_blob expects bytes or a seekable binary file "
                        "(encode the blob once, send those bytes)")
    body = SizedFileBody(data)
    return body if len(body) else b""


def iter_json_array(chunks: Iterable[bytes]) -> Iterator[Any]:
    """Yield the items of a JSON array arriving in byte chunks, without holding the whole text."""
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    buffer, started, finished = "", False, False
    for chunk in _with_final(chunks):
        final = chunk is None
        buffer += utf8.decode(b"" if final else chunk, final=final)
        pos = 0
        while not finished:
            while pos < len(buffer) and buffer[pos] in " \t\r\n,":
                pos += 1
            if pos >= len(buffer):
                break
            if not started:
                if buffer[pos] != "[":
                    raise ValueError("reply is not a JSON array")
                started, pos = True, pos + 1
                continue
            if buffer[pos] == "]":
                finished, pos = True, pos + 1
                break
            try:
                item, pos = decoder.raw_decode(buffer, pos)
            except json.JSONDecodeError:
                if final:
                    raise
                break  # incomplete item: wait for more bytes
            yield item
        buffer = buffer[pos:]
    if not finished:
        raise ValueError("JSON array truncated")


def _with_final(chunks: Iterable[bytes]) -> Iterator[Optional[bytes]]:
    yield from chunks
    yield None


def _display_url(url: str) -> str:
    """The URL without user info (never show credentials embedded in a URL)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and the exceptions it wraps (requests → urllib3 → socket)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [a for a in current.args if isinstance(a, BaseException)]
        for inner in (getattr(current, "reason", None), current.__cause__, current.__context__):
            if isinstance(inner, BaseException):
                todo.append(inner)


def _is_timeout(exc: BaseException) -> bool:
    """A timeout (connect or read), not a refused connection (urllib3 files those alike)."""
    causes = list(_causes(exc))
    if any(isinstance(c, NewConnectionError) for c in causes):
        return False
    return any(isinstance(c, (requests.Timeout, Urllib3Timeout, TimeoutError)) for c in causes)


def _short_cause(exc: BaseException) -> str:
    """A one-line cause of a requests/urllib3 exception (not the giant nested repr)."""
    cause: BaseException = exc
    for _ in range(5):
        inner = cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else None
        if isinstance(cause, MaxRetryError) and cause.reason is not None:
            inner = cause.reason
        if inner is None:
            break
        cause = inner
    text = str(cause)
    text = re.sub(r"<[^>]*>: ", "", text)  # drop "<urllib3.connection.HTTPConnection object …>: "
    return f"{type(cause).__name__}: {_SPACES.sub(' ', text)[:200]}"


def _warn_insecure(server_url: str) -> None:
    """Log, once per process and server, that TLS certificates are not verified."""
    shown = _display_url(server_url)
    with _INSECURE_LOCK:
        if shown in _INSECURE_WARNED:
            return
        _INSECURE_WARNED.add(shown)
    log.warning("UconDB %s: TLS certificate verification is OFF (ucon_db.verify_tls: false); "
                "anyone on the network path can read or alter blobs. Set ucon_db.ca_bundle "
                "instead where the server uses a private CA.", shown)


class UconDBClient:
    """Client of one UconDB folder/object: put, get, list runs; see docs/architecture.md.

    Retries: connection errors, timeouts and 502/503/504 are retried by urllib3's ``Retry`` in
    the transport adapter (all methods, POST included). A 500 is retried here, with a second
    urllib3 ``Retry`` giving the same backoff and jitter, because only the body tells a
    transient 500 from the two 500s that are answers and never retried: the duplicate key
    (``… already exists``) and the get of an object without versions (``'NoneType' object has
    no attribute 'getVersion'``, read as not found). Each budget is
    ``retries`` extra attempts.
    """

    def __init__(self, server_url: str, folder: str, object_name: str, *,
                 user: Optional[str] = None, password: Optional[str] = None,
                 timeout: float = 10.0, retries: int = 3, backoff_factor: float = 0.5,
                 verify_tls: bool = True, ca_bundle: Optional[str] = None,
                 create_missing_folder: bool = False):
        self.server_url = server_url.rstrip("/")
        #: A put that meets "Folder not found" creates the folder and is sent once more.
        self.create_missing_folder = bool(create_missing_folder)
        self.folder = folder
        self.object_name = object_name
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff_factor = float(backoff_factor)
        self._user = user
        # One digest state per realm: create_folder uses the folder as given, puts '<ns>.<folder>'.
        self._put_auth = HTTPDigestAuth(user, password or "") if user else None
        self._folder_auth = HTTPDigestAuth(user, password or "") if user else None
        self._session = requests.Session()
        self._session.verify = ca_bundle if ca_bundle else bool(verify_tls)
        if not ca_bundle and not verify_tls:
            _warn_insecure(self.server_url)
        adapter = HTTPAdapter(max_retries=self._transport_retry())
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def __repr__(self) -> str:
        return (f"UconDBClient(server_url={_display_url(self.server_url)!r}, "
                f"folder={self.folder!r}, object={self.object_name!r}, "
                f"auth={'digest' if self._put_auth else 'none'}, timeout={self.timeout})")

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "UconDBClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- retry policies ----

    def _transport_retry(self) -> Retry:
        return Retry(
            total=self.retries, connect=self.retries, read=self.retries, status=self.retries,
            other=0, redirect=0, allowed_methods=None, status_forcelist=GATEWAY_STATUSES,
            backoff_factor=self.backoff_factor, backoff_jitter=self.backoff_factor,
            raise_on_status=False, raise_on_redirect=False, respect_retry_after_header=True,
        )

    def _application_retry(self) -> Retry:
        return Retry(
            total=self.retries, status=self.retries, allowed_methods=None,
            status_forcelist={500}, backoff_factor=self.backoff_factor,
            backoff_jitter=self.backoff_factor, raise_on_status=True,
            respect_retry_after_header=True,
        )

    # ---- URLs ----

    def _names_fit_path(self) -> bool:
        """Folder and object can travel as path segments (no '/' and no '=' inside)."""
        return not any(c in name for name in (self.folder, self.object_name) for c in "/=")

    def _object_url(self, params: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """``/data/<F>/<O>`` plus query parameters, or the equivalent all-query form."""
        if self._names_fit_path():
            path = f"/data/{quote(self.folder, safe='')}/{quote(self.object_name, safe='')}"
            return path, dict(params)
        return "/data", {"folder": self.folder, "object": self.object_name, **params}

    def _key_url(self, run: int, params: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """``/data/<F>/<O>/key=<run>`` (the documented fetch by version key)."""
        path, query = self._object_url({})
        if path == "/data":
            return path, {**query, "key": str(int(run)), **params}
        return f"{path}/key={int(run)}", dict(params)

    # ---- the one request path ----

    def _request(self, method: str, path: str, *, what: str, run: Optional[int] = None,
                 params: Optional[Mapping[str, str]] = None, data: Any = None,
                 auth: Optional[HTTPDigestAuth] = None, stream: bool = False) -> requests.Response:
        """Send one logical request with timeouts and retries; return any non-5xx reply."""
        url = self.server_url + path
        retry = self._application_retry()
        while True:
            if isinstance(data, SizedFileBody):
                data.seek(0)  # a file body is sent again from its start on a retry
            try:
                response = self._session.request(method, url, params=params, data=data,
                                                 auth=auth, timeout=self.timeout, stream=stream,
                                                 allow_redirects=False)
            except requests.RequestException as exc:
                raise self._transport_error(exc, what, run) from None
            if response.status_code < 500 or response.status_code in GATEWAY_STATUSES:
                return response
            if is_duplicate_key_reply(response) or is_missing_object_reply(response):
                return response  # answers, not failures: the same again on every attempt
            try:
                retry = retry.increment(method, url, response=response.raw)
            except MaxRetryError:
                return response
            response.close()
            retry.sleep(response.raw)

    def _transport_error(self, exc: requests.RequestException, what: str,
                         run: Optional[int]) -> UconDBError:
        """A one-line, retryable error for a timeout or connection failure after the retries."""
        if _is_timeout(exc):
            reason = f"no answer within {self.timeout:g} s"
        else:
            reason = f"cannot reach {_display_url(self.server_url)}"
        return UconDBError(f"{what}: {reason} after {self.retries} retries "
                           f"({_short_cause(exc)})", run=run, retryable=True)

    def _check(self, response: requests.Response, what: str, run: Optional[int]) -> None:
        """Raise the typed error of a non-2xx reply (DuplicateKeyError for a taken key)."""
        status = response.status_code
        if status < 300:
            return
        if is_duplicate_key_reply(response):
            raise DuplicateKeyError(f"{what}: {reason_from_body(response.content)}",
                                    run=run, status=status, retryable=False)
        if is_missing_object_reply(response):
            raise UconDBError(f"{what}: not found: object {self.object_name!r} has no version "
                              f"yet (the server answers HTTP 500 \"{MISSING_OBJECT_REASON}\" "
                              "for that)", run=run, status=404, retryable=False)
        if is_missing_folder_reply(response):
            raise self._missing_folder_error(what, run)
        if status == 401:
            raise UconDBError(f"{what}: authentication failed (HTTP 401); check the UconDB "
                              "writer user name and password", run=run, status=status)
        raise UconDBError(f"{what}: HTTP {status}: {reason_from_body(response.content)}",
                          run=run, status=status, retryable=status >= 500)

    def _missing_folder_error(self, what: str, run: Optional[int]) -> UconDBError:
        return UconDBError(
            f"{what}: UconDB folder {self.folder!r} does not exist on "
            f"{_display_url(self.server_url)} (HTTP 404 Folder not found); create it: set "
            "ucon_db.create_folder: true in config.yaml (or pass --create-ucondb-folder) and "
            "the next upload creates it, or ask the UconDB server's administrator to create "
            "the folder", run=run, status=404, retryable=False)

    def _where(self) -> str:
        return f"{self.folder}/{self.object_name}"

    # ---- API ----

    def server_version(self) -> str:
        """The server's version text (``GET /version``), e.g. ``3.9.7``."""
        what = f"version of {_display_url(self.server_url)}"
        response = self._request("GET", "/version", what=what)
        self._check(response, what, None)
        return response.text.strip()

    def create_folder(self) -> None:
        """Create the folder (idempotent on the server; needs writer credentials)."""
        what = f"create folder {self.folder}"
        response = self._request("GET", "/create_folder", what=what,
                                 params={"folder": self.folder}, auth=self._folder_auth)
        self._check(response, what, None)

    def put_blob(self, run: int, data: Any, *, override: bool = False) -> VersionMeta:
        """Upload ``data`` as the version with key = tag = run; returns its metadata.

        ``data`` is bytes or a seekable binary file opened at the blob's start (streamed from
        there, never read whole; sent again from that position on a retry). The request always
        carries ``Content-Length`` (a chunked body would be stored empty by UconDB 3.9.7).
        A missing folder raises an error naming it, or, with ``create_missing_folder``, is
        created and the upload sent once more.
        Raises DuplicateKeyError when the key exists (the caller verifies by MD5).
        ``override=True`` moves the key to the new version: only for an operator's explicit
        ``new_version`` decision, never automatically.
        """
        body = upload_body(data)
        what = f"put run {run} into {self._where()}"
        params = {"key": str(int(run)), "tag": str(int(run)),
                  "override": "yes" if override else "no", "full_meta": "yes"}
        path, query = self._object_url(params)
        response = self._request("POST", path, what=what, run=run, params=query,
                                 data=body, auth=self._put_auth)
        if is_missing_folder_reply(response) and self.create_missing_folder:
            self._create_missing_folder(what, run)
            response = self._request("POST", path, what=what, run=run, params=query,
                                     data=body, auth=self._put_auth)
        self._check(response, what, run)
        return self._meta_from_body(response, what, run)

    def _create_missing_folder(self, what: str, run: Optional[int]) -> None:
        """The opt-in answer to "Folder not found": create the folder (logged) or say why not."""
        log.warning("UconDB folder %r does not exist on %s: creating it "
                    "(ucon_db.create_folder), then sending run %s again", self.folder,
                    _display_url(self.server_url), run)
        try:
            self.create_folder()
        except UconDBError as error:
            raise UconDBError(f"{what}: UconDB folder {self.folder!r} does not exist and "
                              f"creating it failed ({error.reason}); ask the UconDB server's "
                              "administrator to create the folder", run=run,
                              status=error.status, retryable=error.retryable) from None
        log.info("UconDB folder %r created on %s", self.folder, _display_url(self.server_url))

    def get_blob(self, run: int) -> Blob:
        """Download the version with key = run (exact bytes); UconDBError(status=404) if none."""
        what = f"get run {run} from {self._where()}"
        path, query = self._key_url(run, {})
        response = self._request("GET", path, what=what, run=run, params=query)
        self._check(response, what, run)
        data = response.content
        meta = self._meta_from_header(response, what, run)
        if meta is not None:
            self._check_download(data, meta, what, run)
        return Blob(data=data, meta=meta)

    def blob_digest(self, run: int, *, chunk_size: int = 1 << 20,
                    on_chunk: Optional[Callable[[bytes], None]] = None) -> BlobDigest:
        """Download the version with key = run as a stream and return the MD5, size and Adler-32
        of the exact bytes received (never more than one chunk held); checked against the
        size and Adler-32 the server reports, like :meth:`get_blob`. ``on_chunk`` also gets
        every chunk, in order (e.g. to compare the blob with a file while it arrives)."""
        what = f"get run {run} from {self._where()}"
        path, query = self._key_url(run, {})
        response = self._request("GET", path, what=what, run=run, params=query, stream=True)
        with response:
            self._check(response, what, run)
            meta = self._meta_from_header(response, what, run)
            digest, adler, size = hashlib.md5(), 1, 0
            try:
                for chunk in response.iter_content(chunk_size=chunk_size):
                    digest.update(chunk)
                    adler = zlib.adler32(chunk, adler)
                    size += len(chunk)
                    if on_chunk is not None:
                        on_chunk(chunk)
            except requests.RequestException as exc:
                raise UconDBError(f"{what}: download broken off after {size} bytes "
                                  f"({_short_cause(exc)})", run=run, retryable=True) from None
        adler &= 0xFFFFFFFF
        if meta is not None:
            self._check_received(size, adler, meta, what, run)
        return BlobDigest(md5=digest.hexdigest(), size=size, adler32=adler, meta=meta)

    def version_meta(self, run: int) -> Optional[VersionMeta]:
        """Metadata of the version with key = run, or None when there is none."""
        what = f"metadata of run {run} in {self._where()}"
        path, query = self._key_url(run, {"meta_only": "yes"})
        response = self._request("GET", path, what=what, run=run, params=query)
        if response.status_code == 404 or is_missing_object_reply(response):
            return None
        self._check(response, what, run)
        return self._meta_from_body(response, what, run)

    def existing_runs(self) -> set[int]:
        """Runs with a version in the object (keys that are exact decimal run numbers)."""
        what = f"list versions of {self._where()}"
        response = self._request("GET", "/versions", what=what, stream=True,
                                 params={"folder": self.folder, "object": self.object_name})
        with response:
            if response.status_code == 404 and b"Object" in response.content[:200]:
                return set()  # the object has no version yet
            self._check(response, what, None)
            runs: set[int] = set()
            try:
                for item in iter_json_array(response.iter_content(chunk_size=65536)):
                    run = run_of_key(item.get("key") if isinstance(item, dict) else None)
                    if run is not None:
                        runs.add(run)
            except (ValueError, requests.RequestException) as exc:
                raise UconDBError(f"{what}: malformed or truncated reply ({_short_cause(exc)})",
                                  retryable=True) from None
            return runs

    # ---- reply parsing ----

    @staticmethod
    def _meta_from_body(response: requests.Response, what: str,
                        run: Optional[int]) -> VersionMeta:
        try:
            return VersionMeta.from_json(json.loads(response.content))
        except (ValueError, KeyError, TypeError) as exc:
            raise UconDBError(f"{what}: unexpected metadata reply ({type(exc).__name__}: "
                              f"{reason_from_body(response.content)[:100]})", run=run) from None

    @staticmethod
    def _meta_from_header(response: requests.Response, what: str,
                          run: Optional[int]) -> Optional[VersionMeta]:
        header = response.headers.get("X-UConDB-metadata")
        if not header:
            return None
        try:
            return VersionMeta.from_json(json.loads(header))
        except (ValueError, KeyError, TypeError) as exc:
            raise UconDBError(f"{what}: malformed X-UConDB-metadata header "
                              f"({type(exc).__name__})", run=run) from None

    @staticmethod
    def _check_download(data: bytes, meta: VersionMeta, what: str, run: Optional[int]) -> None:
        UconDBClient._check_received(len(data), zlib.adler32(data), meta, what, run)

    @staticmethod
    def _check_received(size: int, adler: int, meta: VersionMeta, what: str,
                        run: Optional[int]) -> None:
        if size != meta.data_size:
            raise UconDBError(f"{what}: received {size} bytes, server reports "
                              f"{meta.data_size}", run=run, retryable=True)
        if adler != meta.adler32:
            raise UconDBError(f"{what}: adler32 of received bytes differs from the server's",
                              run=run, retryable=True)
