"""The native filesystemdb backend: artdaq_database's on-disk format, written crash-safely.

Documents are written first (temp file, fsync, no-overwrite link), indexes next, and a per-write
journal file is removed last: that removal is the commit. A journal left behind by a killed writer
is rolled back (its documents and index entries removed) by the next writer. Writers hold an
``fcntl.flock`` on every collection they touch, so concurrent processes never lose index entries.

Group commit (:meth:`FilesystemArtdaqDB.batch`): inside a batch a write stops after its documents
(its journal marked ``deferred``) and adds its index entries in memory only; the indexes are
written once when the batch ends, then the batch's journals are removed. A deferred journal whose
documents all exist is rolled *forward* by the next writer (its entries indexed from the journal),
one whose documents are incomplete is rolled back, so every run is complete or absent.
"""

from __future__ import annotations

import bisect
import fcntl
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from archiver_resources.errors import ArchiverError, ArtdaqDBError
from archiver_resources.fhicl.jsonio import iter_json, load_record_file

from .base import (
    INDEX_KEYS, RUN_HISTORY, SYSTEM_LAYOUT, SYSTEM_METADATA, ArchiveResult, ArtdaqDB, Clock,
    PlannedDocument, build_record, format_timestamp, new_oid, parse_timestamp, record_entity,
    split_configuration_name, system_metadata_document, version_number,
)

log = logging.getLogger(__name__)

JOURNAL_DIR = ".archiver-pending"  # inside SystemLayout/; not a collection, not *.json documents
LOCK_FILE = ".lock"


class WriteInterrupted(BaseException):
    """SIGTERM arrived during a write: raised inside the write so it is rolled back, then the
    signal is delivered again with its own (default) disposition."""


class _SigtermGuard:
    """See :func:`sigterm_rolls_back`."""

    def __init__(self):
        self.installed = False
        self.depth = 0  # inside deferred(): a SIGTERM waits
        self.pending = False

    def handler(self, signum, frame):  # noqa: ARG002 (signal handler signature)
        if self.depth:
            self.pending = True
            return
        raise WriteInterrupted("SIGTERM during an artdaqDB write")

    @contextmanager
    def deferred(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if self.pending and not self.depth:
            self.pending = False
            raise WriteInterrupted("SIGTERM during an artdaqDB write")


@contextmanager
def sigterm_rolls_back() -> Iterator[_SigtermGuard]:
    """Make a SIGTERM during a write roll the write back before the process dies.

    With SIGTERM's default disposition, a process killed mid-write would leave its staged temp
    files and journal for the next writer to clean. While this is active (main thread, default
    disposition only: a process with its own SIGTERM handler, like the legacy CLI's graceful
    stop, keeps it) SIGTERM raises :class:`WriteInterrupted` inside the write; the write's
    failure path rolls back under ``guard.deferred()`` (a second SIGTERM waits for it), and the
    signal is then delivered again with the default disposition, so the process still ends by
    SIGTERM. A SIGTERM after the commit point is held until the commit is complete.
    """
    guard = _SigtermGuard()
    if threading.current_thread() is threading.main_thread() \
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, guard.handler)
        guard.installed = True
    interrupted = False
    try:
        yield guard
    except WriteInterrupted:
        interrupted = True
        raise
    finally:
        if guard.installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if interrupted or guard.pending:
                os.kill(os.getpid(), signal.SIGTERM)  # the default action: the process ends


def empty_index() -> dict:
    """An empty ``index.json``: ``ouid`` (every oid, sorted), value → sorted oids for each of
    :data:`INDEX_KEYS`, and ``configurations.assigned`` (name → sorted assigned times)."""
    return {"ouid": [], "version": {}, "configurations.name": {}, "entities.name": {},
            "aliases.active.name": {}, "runs.name": {}, "configurations.assigned": {}}


def _get(record: dict, dotted: str) -> list[str]:
    """Values of an index key on a record: ``version`` or the names in ``configurations`` …"""
    if dotted == "version":
        value = record.get("version")
        return [value] if isinstance(value, str) else []
    node: object = record
    for part in dotted.split(".")[:-1]:
        node = node.get(part, []) if isinstance(node, dict) else []
    return [e["name"] for e in node if isinstance(e, dict) and isinstance(e.get("name"), str)] \
        if isinstance(node, list) else []


def _index_fields(record: dict) -> dict:
    """The parts of a record :func:`index_add` reads (everything but the document and comments)."""
    return {k: v for k, v in record.items() if k not in ("document", "comments")}


def _insort(values: list, value) -> Optional[int]:
    """Insert ``value`` into the sorted ``values`` unless present; the position, or ``None``."""
    position = bisect.bisect_left(values, value)
    if position == len(values) or values[position] != value:
        values.insert(position, value)
        return position
    return None


def _add(index: dict, section: str, key: Optional[str], value: str) -> None:
    """Insert ``value`` into ``index[section]`` (the list, or the list under ``key``) and tell
    an :class:`IndexDict` what changed, so its encoder and views follow without a rescan."""
    if key is None:
        values, new_key = index[section], False
    else:
        values = index[section].get(key)
        new_key = values is None
        if new_key:
            values = index[section][key] = []
    position = _insort(values, value)
    if position is not None and isinstance(index, IndexDict):
        index.note_insert(section, key, position, value, new_key)


def index_add(index: dict, oid: str, record: dict) -> None:
    """Add a document's ``version``, configuration, entity, alias and run names (and each
    configuration's ``assigned``) to ``index``."""
    _add(index, "ouid", None, oid)
    for key in INDEX_KEYS:
        for value in _get(record, key):
            _add(index, key, value, oid)
    for entry in record.get("configurations", []):
        if entry.get("name") and entry.get("assigned"):
            _add(index, "configurations.assigned", entry["name"], entry["assigned"])


def planned_index_fields(entity: str, run: int, name: str, version: str, timestamp: str) -> dict:
    """What :func:`index_add` reads from a document :func:`record_envelope` builds for
    ``entity`` of one write: a deferred write is indexed from its journal with this."""
    assigned = lambda value: {"name": value, "assigned": timestamp}  # noqa: E731
    return {"version": version, "configurations": [assigned(name)],
            "entities": [assigned(entity)], "aliases": {"active": [], "history": []},
            "runs": [assigned(str(run))]}


def index_remove(index: dict, oids: set[str], records: Iterable[dict] = ()) -> None:
    """Remove ``oids`` everywhere (and the ``assigned`` times of their configurations when the
    configuration keeps no document)."""
    if isinstance(index, IndexDict):
        index.note_reset()  # rare (rollback, lost documents): the encoder is rebuilt once
    index["ouid"] = [o for o in index["ouid"] if o not in oids]
    for key in INDEX_KEYS:
        for value in list(index[key]):
            kept = [o for o in index[key][value] if o not in oids]
            if kept:
                index[key][value] = kept
            else:
                del index[key][value]
    for name in list(index["configurations.assigned"]):
        if name not in index["configurations.name"]:
            del index["configurations.assigned"][name]


def _valid_index(data: object) -> bool:
    return isinstance(data, dict) and all(isinstance(data.get(k), dict) for k in INDEX_KEYS) \
        and isinstance(data.get("ouid"), list)


# ---- incremental index encoding -------------------------------------------------------------
#
# index.json must be rewritten whole at every commit (that is the format), but encoding it again
# from the parsed index cost ~270 ms at 100,000 runs. The encoder below keeps the JSON text of
# the index in blocks: a commit re-encodes only the blocks it changed and the file is written
# from the cached blocks (a memory copy). It follows the index through IndexDict.note_insert,
# called by index_add with the position of every insert, and is rebuilt after anything else.

_LIST_BLOCK = 2048  # list items per cached block (split at twice that)
_KEYS_BLOCK = 256  # object members per cached block
_BIG_LIST = 4096  # a member whose list is at least this long gets blocks of its own


def _json(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class _ListBlocks:
    """The items of a JSON array in blocks, each with its cached encoding; mirrors a list by
    position (inserts only)."""

    def __init__(self, values: list):
        self.blocks = [values[i:i + _LIST_BLOCK] for i in range(0, len(values), _LIST_BLOCK)]
        self.encoded: list[Optional[bytes]] = [None] * len(self.blocks)
        self.length = len(values)

    def insert(self, position: int, value) -> None:
        self.length += 1
        for number, block in enumerate(self.blocks):
            if position <= len(block):
                block.insert(position, value)
                self.encoded[number] = None
                if len(block) > 2 * _LIST_BLOCK:
                    self.blocks[number:number + 1] = [block[:_LIST_BLOCK], block[_LIST_BLOCK:]]
                    self.encoded[number:number + 1] = [None, None]
                return
            position -= len(block)
        self.blocks.append([value])  # empty list, or past the end
        self.encoded.append(None)

    def body(self) -> bytes:
        for number, encoded in enumerate(self.encoded):
            if encoded is None:
                self.encoded[number] = _json(self.blocks[number])[1:-1]
        return b",".join(e for e in self.encoded if e)


class _ObjectBlocks:
    """A JSON object of name → list: small members grouped in blocks of names (a block is
    re-encoded from the live mapping when one of its members changed), long lists as
    :class:`_ListBlocks`. Member order in the file is not the mapping's (JSON objects are
    unordered)."""

    def __init__(self, mapping: dict):
        self.mapping = mapping
        self.blocks: list[list[str]] = []
        self.encoded: list[Optional[bytes]] = []
        self.block_of: dict[str, int] = {}
        self.big: dict[str, _ListBlocks] = {}
        for name, values in mapping.items():
            self._place(name, values)

    def _place(self, name: str, values: list) -> None:
        if len(values) >= _BIG_LIST:
            self.big[name] = _ListBlocks(values)
            return
        if not self.blocks or len(self.blocks[-1]) >= _KEYS_BLOCK:
            self.blocks.append([])
            self.encoded.append(None)
        self.blocks[-1].append(name)
        self.block_of[name] = len(self.blocks) - 1
        self.encoded[-1] = None

    def inserted(self, name: str, position: int, value) -> None:
        if name in self.big:
            self.big[name].insert(position, value)
            return
        number = self.block_of.get(name)
        if number is None:
            self._place(name, self.mapping[name])
            return
        self.encoded[number] = None
        if len(self.mapping[name]) >= _BIG_LIST:  # grew long: blocks of its own from now on
            self.blocks[number].remove(name)
            del self.block_of[name]
            self.big[name] = _ListBlocks(self.mapping[name])

    def consistent(self) -> bool:
        """Cheap check that the encoder still mirrors the mapping (sizes only)."""
        return len(self.block_of) + len(self.big) == len(self.mapping) and all(
            len(self.mapping.get(name, ())) == blocks.length for name, blocks in self.big.items())

    def body(self) -> list[bytes]:
        parts = []
        for number, names in enumerate(self.blocks):
            if self.encoded[number] is None:
                self.encoded[number] = _json({n: self.mapping[n] for n in names})[1:-1]
            if self.encoded[number]:
                parts.append(self.encoded[number])
        for name, blocks in self.big.items():
            parts.append(_json(name) + b":[" + blocks.body() + b"]")
        return parts


class IndexEncoder:
    """The JSON text of one index, kept up to date block by block (see above)."""

    def __init__(self, index: dict):
        self.index = index
        self.ouid = _ListBlocks(index["ouid"])
        self.objects = {key: _ObjectBlocks(index[key])
                        for key in (*INDEX_KEYS, "configurations.assigned")}

    def inserted(self, section: str, key: Optional[str], position: int, value) -> None:
        if key is None:
            self.ouid.insert(position, value)
        else:
            self.objects[section].inserted(key, position, value)

    def consistent(self) -> bool:
        return self.ouid.length == len(self.index["ouid"]) and all(
            blocks.mapping is self.index[key] and blocks.consistent()
            for key, blocks in self.objects.items())

    def pieces(self) -> list[bytes]:
        """The file as byte strings to write one after the other."""
        parts = [b'{"ouid":[', self.ouid.body(), b"]"]
        for key, blocks in self.objects.items():
            parts += [b"," + _json(key) + b":{", b",".join(blocks.body()), b"}"]
        for key, value in self.index.items():  # members other tools may have added
            if key != "ouid" and key not in self.objects:
                parts.append(b"," + _json(key) + b":" + _json(value))
        parts.append(b"}")
        return parts


class IndexDict(dict):
    """A parsed ``index.json`` that keeps its encoder and derived lookups in step with the
    inserts :func:`index_add` makes (anything else must call :meth:`note_reset`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.encoder: Optional[IndexEncoder] = None
        self._version_keys: Optional[list[str]] = None
        self._runs: Optional[dict[int, list[str]]] = None
        self._entity_oids: dict[str, set[str]] = {}

    def note_insert(self, section: str, key: Optional[str], position: int, value,
                    new_key: bool) -> None:
        if self.encoder is not None:
            self.encoder.inserted(section, key, position, value)
        if new_key and section == "version" and self._version_keys is not None:
            bisect.insort(self._version_keys, key)
        if new_key and section == "configurations.name" and self._runs is not None:
            run = _run_of_name(key)
            if run is not None:
                self._runs.setdefault(run, []).append(key)
        if section == "entities.name" and key in self._entity_oids:
            self._entity_oids[key].add(value)

    def note_reset(self) -> None:
        self.encoder = None
        self._version_keys = None
        self._runs = None
        self._entity_oids = {}

    def follow(self) -> None:
        """Have an encoder follow the inserts from now on (built from the mapping if there is
        none or it lost track). A batched write calls this where an unbatched one encodes, so
        the encoder sees the same inserts in both cases and the file bytes are the same."""
        if self.encoder is None or not self.encoder.consistent():
            self.encoder = IndexEncoder(self)

    def encode(self) -> list[bytes]:
        self.follow()
        return self.encoder.pieces()

    def versions_starting_with(self, prefix: str) -> list[str]:
        """Keys of ``version`` that start with ``prefix`` (a sorted key list, built once)."""
        if self._version_keys is None:
            self._version_keys = sorted(self["version"])
        keys = self._version_keys
        found = []
        for position in range(bisect.bisect_left(keys, prefix), len(keys)):
            if not keys[position].startswith(prefix):
                break
            found.append(keys[position])
        return found

    def oids_of_entity(self, entity: str) -> set[str]:
        """The oids listed under ``entities.name`` ``entity`` (a set built once per entity)."""
        found = self._entity_oids.get(entity)
        if found is None:
            found = self._entity_oids[entity] = set(self["entities.name"].get(entity, ()))
        return found

    def names_of_run(self, run: int) -> list[str]:
        """Configuration names whose run part is ``run`` (``00123/x`` too; built once)."""
        if self._runs is None:
            self._runs = {}
            for name in self["configurations.name"]:
                number = _run_of_name(name)
                if number is not None:
                    self._runs.setdefault(number, []).append(name)
        return list(self._runs.get(run, ()))


def _run_of_name(name: str) -> Optional[int]:
    """The run of a run-history configuration name (the rule of ``ArtdaqDB._runs_of``)."""
    head, slash, config = name.partition("/")
    head = head.strip()
    if not slash or not config.strip() or not (head.isascii() and head.isdigit()):
        return None
    return int(head)


def temp_suffix() -> str:
    """What makes this thread's temp names unique (recorded in journals, so recovery removes
    a dead writer's temp files by name instead of listing a directory of millions of files)."""
    return f"tmp-{os.getpid()}-{threading.get_ident()}"


def temp_path(path: Path, suffix: Optional[str] = None) -> Path:
    """The hidden temp name beside ``path`` (never ``*.json``, so never taken for a document)."""
    return path.with_name(f".{path.name}.{suffix or temp_suffix()}")


def stage(path: Path, data) -> Path:
    """Write ``data`` (bytes, or byte strings to write one after the other) to a new temp file
    beside ``path``; returns the temp path (removed again if the write fails)."""
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as handle:
            if isinstance(data, (bytes, bytearray, memoryview)):
                handle.write(data)
            else:
                handle.writelines(data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def publish(tmp: Path, path: Path, *, overwrite: bool) -> None:
    """Move a staged temp file into place; without ``overwrite`` an existing ``path`` is an error
    (hard link, which refuses to replace). The temp file is gone afterwards in every case."""
    try:
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError as exc:
        raise ArtdaqDBError(f"refusing to overwrite existing document {path}") from exc
    finally:
        tmp.unlink(missing_ok=True)


_FSYNC_POOL: Optional[ThreadPoolExecutor] = None


def _fsync_one(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_paths(paths: Iterable[Path]) -> None:
    """fsync files and directories concurrently: the kernel commits them together (one journal
    commit instead of one per file; 22 files: ~12 ms instead of ~120 ms on ext4)."""
    global _FSYNC_POOL
    paths = list(dict.fromkeys(paths))
    if len(paths) <= 1:
        for path in paths:
            _fsync_one(path)
        return
    if _FSYNC_POOL is None:
        _FSYNC_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="artdaqdb-fsync")
    for _ in _FSYNC_POOL.map(_fsync_one, paths):
        pass


def atomic_write(path: Path, data: bytes, *, fsync: bool, overwrite: bool) -> None:
    """Temp file beside ``path``, fsync'd when asked, then moved into place (see :func:`publish`)."""
    tmp = stage(path, data)
    try:
        if fsync:
            _fsync_one(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    publish(tmp, path, overwrite=overwrite)


#: FHiCL texts shorter than this are stored as one JSON string (its JSON is ~5-25x the text)
WHOLE_JSON_BELOW_CHARS = 128 * 1024


def encode_document(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


class Collection:
    """One filesystemdb collection directory: documents, ``index.json`` and a lock file."""

    def __init__(self, root: Path, name: str, *, fsync: bool = True):
        self.name = name
        self.path = root / name
        self.index_path = self.path / "index.json"
        self.fsync = fsync
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: Optional[int] = None
        self._cache: Optional[tuple[tuple, dict]] = None
        self._staged_index: Optional[tuple[Path, dict]] = None

    # ---- locking ------------------------------------------------------------------------------

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive ``flock`` on ``<collection>/.lock`` (re-entrant within this object)."""
        with self._thread_lock:
            if self._depth == 0:
                self.path.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o664)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
                    os.close(self._fd)
                    self._fd = None

    @property
    def locked(self) -> bool:
        return self._depth > 0

    # ---- documents ----------------------------------------------------------------------------

    def doc_path(self, oid: str) -> Path:
        return self.path / f"{oid}.json"

    def write_document(self, oid: str, record: dict) -> None:
        """One document, atomically (stage, fsync, publish without overwriting)."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(self.doc_path(oid), encode_document(record), fsync=self.fsync,
                     overwrite=False)

    def stage_document(self, oid: str, record: dict, *, source_chars: Optional[int] = None) -> Path:
        """The document as a temp file, not yet visible (publish with :func:`publish`).

        ``source_chars``: the length of the FHiCL text the record was made from; below
        :data:`WHOLE_JSON_BELOW_CHARS` the JSON text is encoded in one piece (a few MB at most),
        without the walk that sizes the pieces (it cost more than the encoding itself)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if source_chars is not None and source_chars < WHOLE_JSON_BELOW_CHARS:
            return stage(self.doc_path(oid), encode_document(record))
        # Written in ~250 kB pieces (the same bytes as encode_document): a 135 MB document's
        # JSON text is never held whole.
        return stage(self.doc_path(oid), (piece.encode("utf-8") for piece in iter_json(record)))

    def read_document(self, oid: str) -> Optional[dict]:
        try:
            # Read in 1 MB pieces (a big document's ~135 MB of text is never whole beside its
            # tree); equal leaf metadata shared (about half the tree for a big document):
            # read-only records.
            return load_record_file(self.doc_path(oid))
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise ArtdaqDBError(f"document {self.doc_path(oid)} is not valid JSON: {exc}") from exc

    def has_document(self, oid: str) -> bool:
        return self.doc_path(oid).exists()

    def delete_document(self, oid: str) -> None:
        self.doc_path(oid).unlink(missing_ok=True)

    def document_oids(self) -> list[str]:
        """Oids of every ``<oid>.json`` document file (a directory scan)."""
        if not self.path.is_dir():
            return []
        return sorted(p.name[:-5] for p in os.scandir(self.path)
                      if p.name.endswith(".json") and p.name != "index.json"
                      and not p.name.startswith("."))

    # ---- index --------------------------------------------------------------------------------

    def load_index(self) -> "IndexDict":
        """The parsed ``index.json`` (empty template when missing); a corrupt index is rebuilt
        from the documents with a warning, and saved when this process holds the lock."""
        key = self._disk_key()
        if self._cache and self._cache[0] == key:
            return self._cache[1]
        self._cache = None
        if key is None:
            # Cached too (key None): a batched write adds to it in memory before it exists.
            data = IndexDict(empty_index())
            self._cache = (None, data)
            return data
        try:
            data = json.loads(self.index_path.read_bytes())
            if not _valid_index(data):
                raise ValueError("not an artdaq_database index")
            data.setdefault("configurations.assigned", {})
            data = IndexDict(data)
        except ValueError as exc:
            log.warning("artdaqDB index %s is corrupt (%s); rebuilding it from the documents",
                        self.index_path, exc)
            data = self.rebuild_index()
            return data
        self._cache = (key, data)
        return data

    def _disk_key(self) -> Optional[tuple]:
        try:
            stat = self.index_path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def cache_fresh(self) -> bool:
        """Whether the parsed index in memory was read from (or written as) the file that is on
        disk now, i.e. no other writer replaced ``index.json`` since."""
        return self._cache is not None and self._cache[0] == self._disk_key()

    def forget_index(self) -> None:
        """Drop the parsed index (after a failed write changed it in memory only)."""
        self._cache = None
        self._staged_index = None

    def save_index(self, index: dict) -> None:
        self.publish_index(self.stage_index(index), fsync=self.fsync)

    def stage_index(self, index: dict) -> Path:
        """The index as a temp file beside ``index.json``: an :class:`IndexDict` re-encodes only
        the blocks changed since its last write, any other dict is encoded whole."""
        if not self.locked:
            raise ArtdaqDBError(f"internal: index {self.index_path} written without its lock")
        if not isinstance(index, IndexDict):
            index = IndexDict(index)
        tmp = stage(self.index_path, index.encode())
        self._staged_index = (tmp, index)
        return tmp

    def publish_index(self, tmp: Path, *, fsync: bool) -> None:
        """Replace ``index.json`` by a staged temp file (fsync'd first when ``fsync``)."""
        try:
            if fsync:
                _fsync_one(tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        publish(tmp, self.index_path, overwrite=True)
        self._cache = None
        staged, self._staged_index = self._staged_index, None
        if staged is not None and staged[0] == tmp:
            # The index just written is the one in memory: cache it instead of parsing it again
            # (at 100k runs a parse of index.json costs ~0.5 s, and each run wrote it twice).
            stat = self.index_path.stat()
            self._cache = ((stat.st_ino, stat.st_mtime_ns, stat.st_size), staged[1])

    def rebuild_index(self) -> dict:
        """Rebuild ``index.json`` from every document of the collection (takes the lock)."""
        with self.lock():
            index = IndexDict(empty_index())
            for oid in self.document_oids():
                record = self.read_document(oid)
                if record is not None:
                    index_add(index, oid, record)
            self.save_index(index)
            return index


class FilesystemArtdaqDB(ArtdaqDB):
    """artdaq_database filesystemdb at ``filesystemdb:///abs/path`` (the root directory)."""

    def __init__(self, uri: str, *, clock: Optional[Clock] = None, fsync: bool = True):
        super().__init__(uri, clock=clock)
        self.root = filesystem_root(uri)
        self._collections = {name: Collection(self.root, name, fsync=fsync)
                             for name in (RUN_HISTORY, SYSTEM_LAYOUT)}
        self.fsync = fsync
        #: test hook called with a stage name during writes (crash-injection tests)
        self.hook: Optional[Callable[[str], None]] = None
        self._batch: Optional[_Batch] = None

    # ---- group commit -------------------------------------------------------------------------

    @contextmanager
    def batch(self, *, flush_seconds: Optional[float] = None) -> Iterator["FilesystemArtdaqDB"]:
        """Group commit: the writes inside the block write their documents at once and their
        index entries in memory; both ``index.json`` files are written once when the block ends
        (also when it raises), then the block's journals are removed (the commit).

        No lock is held between writes. Until the flush, readers in other processes (and the
        C++) do not see the block's runs (not in ``index.json``; our readers also skip runs with
        a journal); this object sees them. A writer that takes the lock meanwhile (another
        process, or a crash and the next write) indexes the block's complete writes from their
        journals and removes them (roll forward); this object notices that the files changed
        and leaves them to it. ``flush_seconds``: also flush after a write when that long has
        passed since the last flush. Nested blocks join the outer one."""
        if self._batch is not None:
            yield self
            return
        self._batch = _Batch(flush_seconds)
        try:
            yield self
        finally:
            try:
                self._flush()
            finally:
                self._batch = None

    def _flush(self) -> None:
        batch = self._batch
        if batch is None or not batch.journals:
            return
        with sigterm_rolls_back() as guard, self._write_lock(), guard.deferred():
            if not self._batch_fresh(batch):
                self._hand_back(batch)
                self._recover(reason=None)  # rolls our complete writes forward
                return
            try:
                self._publish_indexes(sorted(batch.dirty))
            except BaseException:
                self._hand_back(batch)  # the journals stay: the next writer rolls them forward
                raise
            for journal in batch.journals:
                journal.unlink(missing_ok=True)  # the commit of each write of the batch
            if self.fsync:
                fsync_paths([self._journal_dir])
            batch.journals.clear()
            batch.dirty.clear()
            batch.last_flush = time.monotonic()
            self._stage("flushed")

    def _batch_fresh(self, batch: "_Batch") -> bool:
        return all(self.collection(name).cache_fresh() for name in batch.dirty)

    def _hand_back(self, batch: "_Batch") -> None:
        """Another writer replaced an index (it rolled our deferred writes forward) or a flush
        failed: forget the in-memory indexes and treat our journals like anyone else's."""
        for store in self._collections.values():
            store.forget_index()
        batch.journals.clear()
        batch.dirty.clear()

    # ---- primitives ---------------------------------------------------------------------------

    def collection(self, name: str) -> Collection:
        if name not in self._collections:
            self._collections[name] = Collection(self.root, name, fsync=self.fsync)
        return self._collections[name]

    def _configuration_names(self) -> Iterable[str]:
        names = self.collection(SYSTEM_LAYOUT).load_index()["configurations.name"]
        pending = {j["name"] for j in self._journals() if j.get("initial")}
        return [n for n in names if n not in pending] if pending else names.keys()

    def _committed_oids(self, collection: str, name: str) -> list[str]:
        oids = self.collection(collection).load_index()["configurations.name"].get(name, [])
        if not oids:
            return []
        pending = self._pending_oids()
        return [o for o in oids if o not in pending]

    def _has_configuration(self, name: str) -> bool:
        layout = self.collection(SYSTEM_LAYOUT)
        return any(layout.has_document(o) for o in self._committed_oids(SYSTEM_LAYOUT, name))

    def _versions(self, name: str) -> list[str]:
        oids = set(self._committed_oids(SYSTEM_LAYOUT, name))
        if not oids:
            return []
        index = self.collection(SYSTEM_LAYOUT).load_index()
        owners = index["version"]
        # Every version of ``name`` starts with ``name``: a range of the sorted version keys,
        # not a scan of every version in the store.
        return [v for v in index.versions_starting_with(name)
                if version_number(name, v) is not None and oids.intersection(owners[v])]

    def find_configuration(self, run: int) -> Optional[str]:
        """As :meth:`ArtdaqDB.find_configuration`, from a run → names map of the index (built
        once per parsed index) instead of a scan of every name."""
        names = self.collection(SYSTEM_LAYOUT).load_index().names_of_run(int(run))
        if not names:
            return None
        pending = {j["name"] for j in self._journals() if j.get("initial")}
        return self._runs_of(n for n in names if n not in pending).get(run)

    def _records(self, name: str) -> list[dict]:
        return list(self._iter_records(name))

    def _iter_records(self, name: str) -> Iterator[dict]:
        for collection in (RUN_HISTORY, SYSTEM_LAYOUT):
            store = self.collection(collection)
            for oid in self._committed_oids(collection, name):
                record = self._read_committed(store, oid, name)
                yield record
                record = None  # not alive while the next document is read

    def _read_committed(self, store: "Collection", oid: str, name: str) -> dict:
        record = store.read_document(oid)
        if record is None:
            # A committed document deleted behind the index: exporting without it would pack
            # (and MD5-verify) a blob that silently lacks a file.
            entity = self._indexed_entity(store, oid)
            raise ArtdaqDBError(
                f"document {oid}.json of configuration {name} (entity {entity}) is listed "
                f"in {store.name}/index.json but missing on disk; restore it from backup",
                run=(split_configuration_name(name) or (None,))[0])
        return record

    def _iter_entity_records(self, name: str, entity: str) -> Iterator[dict]:
        """The records of entity ``entity`` of configuration ``name``, reading only the documents
        the collection indexes list under that entity (or under ``notprovided``, which
        :func:`record_entity` looks past): one document of a run's ~25 for ``hashes``. A record
        listed under no entity name at all (artdaq_database always writes one) is found by the
        full scan this falls back to when the indexes name no such record."""
        found = False
        for collection in (RUN_HISTORY, SYSTEM_LAYOUT):
            store = self.collection(collection)
            index = store.load_index()  # always an IndexDict
            listed, unnamed = index.oids_of_entity(entity), index.oids_of_entity("notprovided")
            for oid in self._committed_oids(collection, name):
                if oid not in listed and oid not in unnamed:
                    continue
                record = self._read_committed(store, oid, name)
                if record_entity(record) == entity:
                    found = True
                    yield record
        if not found:
            yield from super()._iter_entity_records(name, entity)

    @staticmethod
    def _indexed_entity(store: "Collection", oid: str) -> str:
        entities = store.load_index()["entities.name"]
        return next((entity for entity, oids in entities.items() if oid in oids), "unknown")

    def _store(self, run: int, name: str, docs: list[PlannedDocument], timestamp: str, *,
               initial: bool, once: bool = False) -> ArchiveResult:
        try:
            return self._store_locked(run, name, docs, timestamp, initial=initial, once=once)
        except OSError as error:  # disk full, read-only, permissions: typed, naming the run
            raise ArtdaqDBError(
                f"cannot write configuration {name} to {self.root}: "
                f"{error.strerror or error} ({getattr(error, 'filename', None) or 'store'})",
                run=run, retryable=True) from error

    def _forget_lost_documents(self, name: str) -> None:
        """Before re-archiving a damaged configuration, drop index entries whose documents are
        gone (else every later export would stop at them). Called with the write lock held."""
        for collection in (RUN_HISTORY, SYSTEM_LAYOUT):
            store = self.collection(collection)
            lost = {oid for oid in self._committed_oids(collection, name)
                    if not store.has_document(oid)}
            if lost:
                log.warning("artdaqDB: %d document(s) of %s listed in %s/index.json are missing; "
                            "dropping them from the index before re-archiving", len(lost), name,
                            collection)
                index = store.load_index()
                index_remove(index, lost)
                store.save_index(index)

    def _store_locked(self, run: int, name: str, docs: list[PlannedDocument], timestamp: str, *,
                      initial: bool, once: bool = False) -> ArchiveResult:
        batch = self._batch
        with sigterm_rolls_back() as guard, self._write_lock():
            if batch is not None and batch.journals and not self._batch_fresh(batch):
                self._hand_back(batch)  # another writer rolled them forward: see _recover
            self._recover()
            if initial:
                self._forget_lost_documents(name)
            version = self._version_for(run, name, initial=initial, once=once)
            planned = [(doc, new_oid()) for doc in docs]
            journal = self._write_journal(name, version, initial, planned, run=run,
                                          timestamp=timestamp, deferred=batch is not None)
            try:
                self._stage("journal")
                self._write_planned(run, name, version, planned, timestamp,
                                    deferred=batch is not None)
            except BaseException:
                with guard.deferred():  # a second SIGTERM waits for the rollback
                    if batch is None:
                        for store in self._collections.values():
                            store.forget_index()  # may hold entries that never reached the disk
                    # (in a batch the indexes in memory hold the batch's deferred entries: the
                    # rollback removes this write's entries from them instead)
                    self._rollback_quietly(sys.exc_info()[1])
                raise
            with guard.deferred():  # from here on the write is committed: never interrupted
                if batch is None:
                    journal.unlink()  # the commit
                    if self.fsync:
                        fsync_paths([journal.parent] + [self.collection(c).path
                                                        for c in {d.collection for d in docs}])
                    self._stage("committed")
                else:  # committed by the batch's flush (or rolled forward after a crash)
                    batch.journals.append(journal)
                    batch.dirty.update(doc.collection for doc in docs)
                    self._stage("deferred")
        if batch is not None and batch.flush_seconds is not None \
                and time.monotonic() - batch.last_flush >= batch.flush_seconds:
            self._flush()
        return ArchiveResult(
            run=run, configuration=name, version=version,
            entities=tuple(doc.entity for doc, _ in planned),
            document_ids=tuple(oid for _, oid in planned),
            assigned=parse_timestamp(timestamp))

    def _write_planned(self, run: int, name: str, version: str,
                       planned: list[tuple[PlannedDocument, str]], timestamp: str, *,
                       deferred: bool = False) -> None:
        """Documents first (all staged, fsync'd together, then linked into place), then one index
        per collection (staged, fsync'd together with the collection directories, replaced);
        ``deferred``: the index entries are added in memory only (written by the batch's flush)."""
        staged: list[tuple[PlannedDocument, str, dict, Path]] = []
        try:
            for doc, oid in planned:
                record = build_record(doc, run=run, name=name, version=version,
                                      timestamp=timestamp, oid=oid)
                tmp = self.collection(doc.collection).stage_document(
                    oid, record, source_chars=len(doc.text))
                # Only the index fields are kept: a document tree is ~25× its FHiCL text, and
                # holding every tree of a 100 MB run until the index update cost GBs.
                staged.append((doc, oid, _index_fields(record), tmp))
                del record
            if self.fsync:
                fsync_paths(tmp for *_, tmp in staged)
            for doc, oid, _, tmp in staged:
                publish(tmp, self.collection(doc.collection).doc_path(oid), overwrite=False)
                self._stage(f"document:{doc.entity}")
        finally:
            for *_, tmp in staged:
                tmp.unlink(missing_ok=True)
        touched: dict[str, list[tuple[str, dict]]] = {}
        for doc, oid, record, _ in staged:
            touched.setdefault(doc.collection, []).append((oid, record))
        for collection_name, written in sorted(touched.items()):
            index = self.collection(collection_name).load_index()
            for oid, record in written:
                index_add(index, oid, record)
            if deferred and isinstance(index, IndexDict):
                index.follow()  # where an unbatched write encodes (same file bytes at the flush)
        if not deferred:
            self._publish_indexes(sorted(touched))

    def _publish_indexes(self, names: list[str]) -> None:
        """Write the in-memory indexes of ``names``: staged, fsync'd together with the collection
        directories (the documents' directory entries), then each moved into place."""
        indexes = []
        try:
            for collection_name in names:
                store = self.collection(collection_name)
                indexes.append((store, store.stage_index(store.load_index())))
        except BaseException:
            for _, tmp in indexes:
                tmp.unlink(missing_ok=True)
            raise
        try:
            if self.fsync:  # documents' directory entries and the new indexes, together
                fsync_paths([store.path for store, _ in indexes] + [tmp for _, tmp in indexes])
        except BaseException:
            for _, tmp in indexes:
                tmp.unlink(missing_ok=True)
            raise
        for store, tmp in indexes:
            store.publish_index(tmp, fsync=False)
            self._stage(f"index:{store.name}")

    # ---- crash safety -------------------------------------------------------------------------

    def _rollback_quietly(self, cause: Optional[BaseException] = None) -> None:
        """Undo a write that raised (we still hold the locks); if that fails too, the journal
        stays and the next writer rolls it back. A refusal of the input (an ``ArchiverError``
        such as a FHiCL syntax error) is not an interruption: its undo is logged at DEBUG, so
        the log does not read like a crash."""
        try:
            self._recover(reason=None if isinstance(cause, ArchiverError)
                          else "failed" if isinstance(cause, Exception) else "interrupted",
                          roll_forward=False)
        except Exception:  # noqa: BLE001 - the original error is the one to report
            log.exception("could not roll back an interrupted artdaqDB write of %s", self.root)

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        """Locks of RunHistory and SystemLayout, always in this (sorted) order."""
        with ExitStack() as stack:
            for name in sorted((RUN_HISTORY, SYSTEM_LAYOUT)):
                stack.enter_context(self.collection(name).lock())
            self._ensure_system_metadata()
            yield

    def _stage(self, stage: str) -> None:
        if self.hook is not None:
            self.hook(stage)

    @property
    def _journal_dir(self) -> Path:
        return self.collection(SYSTEM_LAYOUT).path / JOURNAL_DIR

    def _journal_paths(self) -> list[Path]:
        """Journals of writes not committed, except this object's deferred writes of the
        current batch (committed for this object; another process sees them pending)."""
        directory = self._journal_dir
        try:
            names = [n for n in os.listdir(directory) if n.endswith(".journal")]
        except FileNotFoundError:
            return []
        if names and self._batch is not None and self._batch.journals:
            # by name (one directory): hashing Path objects here cost ~1 s per 200 runs,
            # as a range's own journals accumulate and this runs ~17 times per run
            own = {p.name for p in self._batch.journals}
            names = [n for n in names if n not in own]
        return [directory / n for n in sorted(names)]

    def _journals(self) -> list[dict]:
        journals = []
        for path in self._journal_paths():
            try:
                journals.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue  # being written or unreadable: recovery under the lock handles it
        return journals

    def _pending_oids(self) -> set[str]:
        return {entry[1] for j in self._journals() for entry in j.get("documents", [])}

    def _write_journal(self, name: str, version: str, initial: bool,
                       planned: list[tuple[PlannedDocument, str]], *,
                       run: Optional[int] = None, timestamp: Optional[str] = None,
                       deferred: bool = False) -> Path:
        """The journal of one write: what to undo, and for a ``deferred`` (batched) write what
        to index when its documents are complete (run, time, entity of each document)."""
        self._journal_dir.mkdir(parents=True, exist_ok=True)
        path = self._journal_dir / (hashlib.md5(version.encode()).hexdigest() + ".journal")
        body = {"name": name, "version": version, "initial": initial, "pid": os.getpid(),
                "tmp": temp_suffix(), "run": run, "timestamp": timestamp, "deferred": deferred,
                "documents": [[doc.collection, oid, doc.entity] for doc, oid in planned]}
        atomic_write(path, json.dumps(body).encode(), fsync=self.fsync, overwrite=True)
        return path

    def _recover(self, *, sweep: bool = False, reason: Optional[str] = "interrupted",
                 roll_forward: bool = True) -> None:
        """Roll back writes whose journal survived its writer (we hold every lock); a deferred
        (batched) write whose documents are all on disk is rolled forward instead: its index
        entries are added from the journal (``roll_forward`` False: the failing write of this
        process is undone, whatever its state).

        Temp files are removed by the names the journal records, so a commit never lists a
        collection directory (millions of files at 100,000 runs); ``sweep`` also removes every
        temp file of the collection directories (explicit :meth:`recover`, old journals)."""
        journals: list = []  # (path, parsed journal or None when unreadable), read once
        forward: list = []  # complete deferred writes: (path, journal)
        for path in self._journal_paths():
            try:
                journals.append((path, json.loads(path.read_text(encoding="utf-8"))))
            except ValueError:
                journals.append((path, None))
        if self._journal_dir.is_dir():
            for leftover in self._journal_dir.glob(".*.tmp-*"):  # a small directory
                leftover.unlink(missing_ok=True)  # every writer holds these locks: all stale
        # Journals older than the recorded temp suffix name no temp files: sweep for them.
        if sweep or any(isinstance(j, dict) and not isinstance(j.get("tmp"), str)
                        for _, j in journals):
            for collection in self._collections.values():
                if collection.path.is_dir():
                    for leftover in collection.path.glob(".*.tmp-*"):
                        leftover.unlink(missing_ok=True)
        for path, journal in journals:
            if not isinstance(journal, dict):
                log.warning("discarding unreadable artdaqDB journal %s", path)
                path.unlink(missing_ok=True)
                continue
            if roll_forward and self._complete_deferred(journal):
                forward.append((path, journal))  # after the roll-backs, every index once
                continue
            if reason:
                log.warning("rolling back %s artdaqDB write of %s (version %s, pid %s)", reason,
                            journal.get("name"), journal.get("version"), journal.get("pid"))
            else:
                log.debug("undoing the refused artdaqDB write of %s (version %s)",
                          journal.get("name"), journal.get("version"))
            by_collection: dict[str, set[str]] = {}
            for collection, oid, *_ in journal.get("documents", []):
                by_collection.setdefault(collection, set()).add(oid)
            suffix = journal.get("tmp")
            if not (isinstance(suffix, str) and suffix.startswith("tmp-")):
                suffix = None  # an old journal: its temp files went with the sweep above
            for collection, oids in sorted(by_collection.items()):
                store = self.collection(collection)
                for oid in oids:
                    store.delete_document(oid)
                    if suffix:
                        temp_path(store.doc_path(oid), suffix).unlink(missing_ok=True)
                if suffix:
                    temp_path(store.index_path, suffix).unlink(missing_ok=True)
                index = store.load_index()
                if oids.intersection(index["ouid"]):
                    index_remove(index, oids)
                    self._reassign(store, index, journal.get("name"))
                    store.save_index(index)
            path.unlink(missing_ok=True)
        if forward:
            self._roll_forward([journal for _, journal in forward])
            for path, _ in forward:
                path.unlink(missing_ok=True)
            if self.fsync:
                fsync_paths([self._journal_dir])

    def _complete_deferred(self, journal: dict) -> bool:
        """A batched write whose documents are all on disk (each was fsync'd before its link)."""
        documents = journal.get("documents")
        return journal.get("deferred") is True and isinstance(journal.get("run"), int) \
            and all(isinstance(journal.get(k), str) for k in ("name", "version", "timestamp")) \
            and isinstance(documents, list) and bool(documents) \
            and all(isinstance(d, list) and len(d) == 3 and all(isinstance(x, str) for x in d)
                    for d in documents) \
            and all(self.collection(c).has_document(oid) for c, oid, _ in documents)

    def _roll_forward(self, journals: list[dict]) -> None:
        """Index complete deferred writes from their journals, each index written once (then
        the caller removes the journals)."""
        by_collection: dict[str, list[tuple[str, dict]]] = {}
        for journal in journals:
            (log.debug if journal.get("pid") == os.getpid() else log.warning)(
                "indexing the batched artdaqDB write of %s (version %s, pid %s): its documents "
                "are complete but its index entries were not written", journal["name"],
                journal["version"], journal.get("pid"))
            suffix = journal.get("tmp")
            for collection, oid, entity in journal["documents"]:
                store = self.collection(collection)
                if isinstance(suffix, str) and suffix.startswith("tmp-"):
                    temp_path(store.index_path, suffix).unlink(missing_ok=True)
                    temp_path(store.doc_path(oid), suffix).unlink(missing_ok=True)  # 2nd link
                by_collection.setdefault(collection, []).append((oid, planned_index_fields(
                    entity, journal["run"], journal["name"], journal["version"],
                    journal["timestamp"])))
        for collection, written in sorted(by_collection.items()):
            store = self.collection(collection)
            index = store.load_index()
            for oid, fields in written:
                index_add(index, oid, fields)
            store.save_index(index)

    @staticmethod
    def _reassign(store: "Collection", index: dict, name) -> None:
        """After a rollback, the ``assigned`` times of ``name`` from the documents it keeps: the
        rolled-back write's time must not linger in the index (``archived_at`` reads it there)."""
        if not isinstance(name, str) or name not in index["configurations.name"]:
            return
        times = set()
        for oid in index["configurations.name"][name]:
            record = store.read_document(oid)
            for entry in (record or {}).get("configurations", []):
                if entry.get("name") == name and entry.get("assigned"):
                    times.add(entry["assigned"])
        if times:
            index["configurations.assigned"][name] = sorted(times)
        else:
            index["configurations.assigned"].pop(name, None)

    def _assigned_of(self, name: str):
        """Newest assigned time of ``name`` from the indexes' ``configurations.assigned`` (no
        document read: packing a 100 MB run re-read every document, ~900 MB and 12 s, for this
        one time). From the documents when a write of ``name`` is in progress or an index lacks
        the times (a store written by another tool)."""
        if any(j.get("name") == name for j in self._journals()):
            return super()._assigned_of(name)
        values: list = []
        for collection in (RUN_HISTORY, SYSTEM_LAYOUT):
            index = self.collection(collection).load_index()
            if name not in index["configurations.name"]:
                continue
            times = index["configurations.assigned"].get(name)
            if not times:
                return super()._assigned_of(name)
            values.extend(times)
        try:
            moments = [parse_timestamp(value) for value in values]
        except (AttributeError, ArtdaqDBError):
            return super()._assigned_of(name)
        return max(moments) if moments else None

    def recover(self) -> None:
        """Roll back interrupted writes now (otherwise done by the next write), and remove
        every temp file left in the collection directories."""
        with self._write_lock():
            self._recover(sweep=True)

    def rebuild_index(self, collection: str) -> dict:
        """Rebuild ``<collection>/index.json`` from its documents (the ``rebuild_database_index``
        utility); interrupted writes are rolled back first."""
        with self._write_lock():
            index = self.collection(collection).rebuild_index()
            self._recover(sweep=True)
        return index

    def _ensure_system_metadata(self) -> None:
        directory = self.root / SYSTEM_METADATA
        if directory.is_dir():
            return
        directory.mkdir(parents=True, exist_ok=True)
        oid = new_oid()
        # The C++ stores the URI with shell variables expanded and one trailing "/" removed.
        uri = os.path.expandvars(self.uri)
        uri = uri[:-1] if uri.endswith("/") and not uri.endswith("://") else uri
        record = {"document": system_metadata_document(uri, format_timestamp(self._clock())),
                  "_id": {"$oid": oid}}
        atomic_write(directory / f"{oid}.json", json.dumps(record).encode(), fsync=self.fsync,
                     overwrite=False)


class _Batch:
    """The state of one :meth:`FilesystemArtdaqDB.batch`: journals of the writes made in it and
    not yet flushed, and the collections whose index in memory is ahead of the file."""

    def __init__(self, flush_seconds: Optional[float]):
        self.flush_seconds = flush_seconds
        self.journals: list[Path] = []
        self.dirty: set[str] = set()
        self.last_flush = time.monotonic()


def filesystem_root(uri: str) -> Path:
    """The root directory of a ``filesystemdb:///abs/path`` URI (one trailing ``/`` removed,
    shell variables expanded)."""
    prefix = "filesystemdb://"
    if not uri.startswith(prefix):
        raise ArtdaqDBError(f"not a filesystemdb URI: {uri}")
    path = os.path.expandvars(uri[len(prefix):])
    if path.endswith("/") and len(path) > 1:
        path = path[:-1]
    if not path.startswith("/"):
        raise ArtdaqDBError(f"filesystemdb URI needs an absolute path (three slashes): {uri}")
    return Path(path)
