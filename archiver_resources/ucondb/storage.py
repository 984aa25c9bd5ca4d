"""Storage of the local UconDB-compatible server: folders, versions, tags and deduplicated blobs.

Built on SQLAlchemy Core over a SQLite file or PostgreSQL. Every folder gets its own three tables
(versions, tags, data) as in UconDB 3.9.7, so version ids are one serial per folder and blob ids
(data_key) a separate, content-deduplicated serial. All operations are serialised by one lock.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from typing import IO, Iterable, Iterator, Optional, Sequence

from sqlalchemy import (
    BigInteger, Boolean, Column, Float, ForeignKey, Index, Integer, LargeBinary, MetaData,
    PrimaryKeyConstraint, Table, Text, UniqueConstraint, create_engine, event, func, insert,
    select, update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError

#: Blob chunk size used for storage I/O and for streamed responses (as the real server).
CHUNK_SIZE = 1_000_000
#: Bodies up to this size stay in memory while spooled; larger ones go to a temporary file.
SPOOL_IN_MEMORY = 16 * 1024 * 1024

FOLDER_NAME_RE = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)?$")


class DuplicateVersionKey(Exception):
    """A put used a key that a version of the same object already has (and override was off)."""

    def __init__(self, object_name: str, key: str):
        super().__init__(f"Version of object {object_name} with key {key} already exists")


class InvalidFolderName(Exception):
    """A folder name outside ``[A-Za-z0-9._]`` or with more than one dot."""

    def __init__(self, name: str):
        super().__init__(f"Invalid folder name: {name!r}")


class BodyTooLarge(Exception):
    """The request body exceeds the server's configured maximum."""

    def __init__(self, limit: int):
        self.limit = limit
        super().__init__(f"Request body larger than {limit} bytes")


class SpooledBody:
    """A request body spooled to memory (up to 16 MiB) or a temporary file, with size and adler32.

    Only one copy of the bytes exists (in the spool); storage reads it back in chunks, or as a
    zero-copy ``memoryview`` while it is still in memory.
    """

    def __init__(self, max_bytes: Optional[int] = None):
        self._memory: Optional[bytearray] = bytearray()
        self._file: Optional[IO[bytes]] = None
        self.size = 0
        self.adler32 = zlib.adler32(b"")
        self.max_bytes = max_bytes

    def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.max_bytes is not None and self.size + len(chunk) > self.max_bytes:
            raise BodyTooLarge(self.max_bytes)
        if self._memory is not None and self.size + len(chunk) > SPOOL_IN_MEMORY:
            self._file = tempfile.TemporaryFile()
            self._file.write(self._memory)
            self._memory = None
        if self._memory is not None:
            self._memory += chunk
        else:
            self._file.write(chunk)
        self.size += len(chunk)
        self.adler32 = zlib.adler32(chunk, self.adler32)

    @classmethod
    def from_bytes(cls, data: bytes) -> "SpooledBody":
        body = cls()
        body.write(data)
        return body

    def in_memory(self) -> Optional[memoryview]:
        """The bytes without a copy while the body is held in memory, else None."""
        return memoryview(self._memory) if self._memory is not None else None

    def chunks(self, size: int = CHUNK_SIZE) -> Iterator[bytes]:
        if self._memory is not None:
            view = memoryview(self._memory)
            for start in range(0, self.size, size):
                yield view[start:start + size]
            return
        self._file.seek(0)
        while True:
            chunk = self._file.read(size)
            if not chunk:
                return
            yield chunk

    def read_all(self) -> bytes:
        if self._memory is not None:
            return bytes(self._memory)
        self._file.seek(0)
        return self._file.read()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._memory = None


@dataclass
class FolderTables:
    """The three tables of one folder and its qualified name ``<namespace>.<folder>``."""

    qualified: str
    versions: Table
    tags: Table
    data: Table


def _make_engine(db_url: str) -> Engine:
    if db_url.startswith("sqlite"):
        engine = create_engine(db_url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001 - DBAPI hook
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            # checkpoint every ~64 MiB of WAL instead of 4 MiB: a 5 MB put no longer pays a
            # checkpoint (copy + fsync) each time
            cur.execute("PRAGMA wal_autocheckpoint=16384")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(db_url, pool_pre_ping=True)


def _folder_tables(fid: int, qualified: str) -> FolderTables:
    md = MetaData()
    prefix = f"ucondb_f{fid}"
    data_key_type = BigInteger().with_variant(Integer, "sqlite")
    versions = Table(
        f"{prefix}_versions", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("key", Text, nullable=True),
        Column("object", Text, nullable=False),
        Column("tv", Float(precision=53), nullable=False, default=0.0),
        Column("tv_end", Float(precision=53), nullable=True),
        Column("tr", Float(precision=53), nullable=False),
        Column("deleted", Boolean, nullable=False, default=False),
        Column("data_size", BigInteger, nullable=False),
        Column("data_key", Text, nullable=False),
        Column("adler32", BigInteger, nullable=False),
        UniqueConstraint("object", "key", name=f"{prefix}_object_key"),
        Index(f"{prefix}_object_tv_tr", "object", "tv", "tr"),
    )
    tags = Table(
        f"{prefix}_tags", md,
        Column("version_id", Integer, ForeignKey(versions.c.id, ondelete="CASCADE"),
               nullable=False),
        Column("tag_name", Text, nullable=False),
        PrimaryKeyConstraint("version_id", "tag_name"),
    )
    data = Table(
        f"{prefix}_data", md,
        Column("key", data_key_type, primary_key=True, autoincrement=True),
        Column("hash", BigInteger, nullable=False),
        Column("hash_type", Text, nullable=False, default="adler32"),
        Column("size", BigInteger, nullable=False),
        Column("data", LargeBinary, nullable=False),
        Index(f"{prefix}_hash_size", "hash", "size", "key"),
    )
    return FolderTables(qualified, versions, tags, data)


class Storage:
    """Folders, versions, tags and blobs of one local UconDB instance (thread-safe, serialised)."""

    def __init__(self, db_url: str, *, namespace: str = "public"):
        self.namespace = namespace
        self.engine = _make_engine(db_url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.lock = threading.RLock()
        self._md = MetaData()
        self._registry = Table(
            "ucondb_folders", self._md,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("namespace", Text, nullable=False),
            Column("name", Text, nullable=False),
            UniqueConstraint("namespace", "name", name="ucondb_folders_ns_name"),
        )
        self._md.create_all(self.engine)
        self._cache: dict[str, FolderTables] = {}
        self._last_tr = 0.0

    def __repr__(self) -> str:
        return f"Storage(url={self.engine.url!r}, namespace={self.namespace!r})"

    def close(self) -> None:
        self.engine.dispose()

    # ---- folders -------------------------------------------------------------------------

    def split_name(self, name: str) -> tuple[str, str]:
        """``ns.folder`` → (ns, folder); ``folder`` → (default namespace, folder)."""
        if "." in name:
            ns, _, folder = name.partition(".")
            return ns, folder
        return self.namespace, name

    def qualify(self, name: str) -> str:
        ns, folder = self.split_name(name)
        return f"{ns}.{folder}"

    def create_folder(self, name: str, *, drop: bool = False) -> str:
        """Create a folder (idempotent; ``drop`` recreates it empty); returns the qualified name."""
        if not FOLDER_NAME_RE.match(name):
            raise InvalidFolderName(name)
        ns, folder = self.split_name(name)
        with self.lock, self.engine.begin() as conn:
            row = conn.execute(select(self._registry.c.id).where(
                self._registry.c.namespace == ns, self._registry.c.name == folder)).first()
            if row is None:
                fid = conn.execute(insert(self._registry).values(namespace=ns, name=folder)
                                   ).inserted_primary_key[0]
            else:
                fid = row[0]
            ft = _folder_tables(fid, f"{ns}.{folder}")
            if drop and row is not None:
                ft.versions.metadata.drop_all(conn)
            ft.versions.metadata.create_all(conn)
        self._cache[ft.qualified] = ft
        return ft.qualified

    def folder(self, name: str) -> Optional[FolderTables]:
        """The tables of a folder named as a client gives it, or None when it does not exist."""
        if not name or not FOLDER_NAME_RE.match(name):
            return None
        qualified = self.qualify(name)
        cached = self._cache.get(qualified)
        if cached is not None:
            return cached
        ns, folder = self.split_name(name)
        with self.lock, self.engine.connect() as conn:
            row = conn.execute(select(self._registry.c.id).where(
                self._registry.c.namespace == ns, self._registry.c.name == folder)).first()
        if row is None:
            return None
        ft = _folder_tables(row[0], qualified)
        self._cache[qualified] = ft
        return ft

    def folders(self, namespace: Optional[str] = None) -> list[str]:
        """Folder names of a namespace, unqualified for the default namespace (sorted)."""
        ns = namespace or self.namespace
        with self.lock, self.engine.connect() as conn:
            names = conn.execute(select(self._registry.c.name).where(
                self._registry.c.namespace == ns).order_by(self._registry.c.name)).scalars().all()
        if ns == self.namespace:
            return list(names)
        return [f"{ns}.{n}" for n in names]

    def probe(self) -> None:
        with self.lock, self.engine.connect() as conn:
            conn.execute(select(1))

    # ---- writes --------------------------------------------------------------------------

    def put_version(self, ft: FolderTables, object_name: str, body: SpooledBody, *,
                    key: Optional[str], tags: Sequence[str] = (), tv: float = 0.0,
                    override: bool = False) -> dict:
        """Store a blob as a new version; raises DuplicateVersionKey unless ``override``."""
        v = ft.versions
        with self.lock:
            try:
                with self.engine.begin() as conn:
                    if key is not None:
                        existing = conn.execute(select(v.c.id).where(
                            v.c.object == object_name, v.c.key == key)).first()
                        if existing is not None:
                            if not override:
                                raise DuplicateVersionKey(object_name, key)
                            conn.execute(update(v).where(v.c.id == existing[0]).values(key=None))
                    data_key = self._store_blob(conn, ft, body)
                    vid = conn.execute(insert(v).values(
                        key=key, object=object_name, tv=tv, tr=self._next_tr(), deleted=False,
                        data_size=body.size, data_key=str(data_key), adler32=body.adler32,
                    )).inserted_primary_key[0]
                    for tag in sorted(set(tags)):
                        conn.execute(insert(ft.tags).values(version_id=vid, tag_name=tag))
                    return self._metas(conn, ft, [self._row_by_id(conn, ft, vid)])[0]
            except SAIntegrityError as exc:  # a concurrent writer in another process won the key
                raise DuplicateVersionKey(object_name, str(key)) from exc

    def add_tag(self, ft: FolderTables, version_id: int, tag: str) -> bool:
        """Tag a version (re-adding is harmless). False when the version does not exist."""
        with self.lock, self.engine.begin() as conn:
            if self._row_by_id(conn, ft, version_id) is None:
                return False
            exists = conn.execute(select(ft.tags.c.version_id).where(
                ft.tags.c.version_id == version_id, ft.tags.c.tag_name == tag)).first()
            if exists is None:
                conn.execute(insert(ft.tags).values(version_id=version_id, tag_name=tag))
            return True

    def _next_tr(self) -> float:
        tr = round(time.time(), 6)
        if tr <= self._last_tr:  # keep record times strictly increasing inside this process
            tr = round(self._last_tr + 1e-6, 6)
        self._last_tr = tr
        return tr

    def _store_blob(self, conn: Connection, ft: FolderTables, body: SpooledBody) -> int:
        d = ft.data
        candidates = conn.execute(select(d.c.key).where(
            d.c.hash == body.adler32, d.c.size == body.size).order_by(d.c.key)).scalars().all()
        for key in candidates:
            if self._equal(conn, ft, key, body):
                return int(key)
        in_memory = body.in_memory()
        if in_memory is not None:  # one statement, no copy of the spooled bytes
            return int(conn.execute(insert(d).values(
                hash=body.adler32, hash_type="adler32", size=body.size,
                data=in_memory)).inserted_primary_key[0])
        if self.is_sqlite:  # large body: stream the temp file into an incremental BLOB
            key = conn.execute(insert(d).values(
                hash=body.adler32, hash_type="adler32", size=body.size,
                data=func.zeroblob(body.size))).inserted_primary_key[0]
            if body.size:
                raw = conn.connection.driver_connection
                with raw.blobopen(d.name, "data", key) as blob:
                    for chunk in body.chunks():
                        blob.write(chunk)
            return int(key)
        return int(conn.execute(insert(d).values(
            hash=body.adler32, hash_type="adler32", size=body.size,
            data=body.read_all())).inserted_primary_key[0])

    def _equal(self, conn: Connection, ft: FolderTables, key: int, body: SpooledBody) -> bool:
        offset = 0
        for chunk in body.chunks():
            if self._read_chunk(conn, ft, key, offset, len(chunk)) != bytes(chunk):
                return False
            offset += len(chunk)
        return True

    def _read_chunk(self, conn: Connection, ft: FolderTables, key: int, offset: int,
                    length: int) -> bytes:
        if self.is_sqlite:
            raw = conn.connection.driver_connection
            with raw.blobopen(ft.data.name, "data", int(key), readonly=True) as blob:
                blob.seek(offset)
                return blob.read(length)
        value = conn.execute(select(func.substring(ft.data.c.data, offset + 1, length)).where(
            ft.data.c.key == int(key))).scalar_one()
        return bytes(value)

    # ---- reads ---------------------------------------------------------------------------

    def blob_size(self, ft: FolderTables, data_key: str) -> Optional[int]:
        """Size of the blob with this storage id, or None when there is none."""
        try:
            key = int(data_key)
        except (TypeError, ValueError):
            return None
        with self.lock, self.engine.connect() as conn:
            return conn.execute(select(ft.data.c.size).where(ft.data.c.key == key)).scalar()

    def iter_blob(self, ft: FolderTables, data_key: str, size: int,
                  chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Yield a blob's bytes in chunks; the lock is held per chunk, not for the whole stream."""
        key = int(data_key)
        for offset in range(0, size, chunk_size):
            with self.lock, self.engine.connect() as conn:
                chunk = self._read_chunk(conn, ft, key, offset, min(chunk_size, size - offset))
            yield chunk

    def object_exists(self, ft: FolderTables, object_name: str) -> bool:
        v = ft.versions
        with self.lock, self.engine.connect() as conn:
            return conn.execute(select(v.c.id).where(v.c.object == object_name).limit(1)
                                ).first() is not None

    def version_by_id(self, ft: FolderTables, version_id: int) -> Optional[dict]:
        with self.lock, self.engine.connect() as conn:
            row = self._row_by_id(conn, ft, version_id)
            return None if row is None else self._metas(conn, ft, [row])[0]

    def version_by_key(self, ft: FolderTables, object_name: str, key: str) -> Optional[dict]:
        v = ft.versions
        return self._first(ft, select(v).where(v.c.object == object_name, v.c.key == key,
                                               v.c.deleted.is_(False)))

    def version_by_tag(self, ft: FolderTables, object_name: str, tag: str,
                       now: float) -> Optional[dict]:
        v, t = ft.versions, ft.tags
        query = (select(v).join(t, t.c.version_id == v.c.id)
                 .where(v.c.object == object_name, t.c.tag_name == tag, v.c.tv <= now,
                        v.c.deleted.is_(False))
                 .order_by(v.c.tr.desc(), v.c.tv.desc(), v.c.id.desc()))
        return self._first(ft, query)

    def latest(self, ft: FolderTables, object_name: str, tv: float,
               tr: Optional[float] = None) -> Optional[dict]:
        v = ft.versions
        query = select(v).where(v.c.object == object_name, v.c.tv <= tv, v.c.deleted.is_(False))
        if tr is not None:
            query = query.where(v.c.tr < tr)
        return self._first(ft, query.order_by(v.c.tr.desc(), v.c.tv.desc(), v.c.id.desc()))

    def list_versions(self, ft: FolderTables, object_name: str, *, tv: float,
                      tr: Optional[float] = None, tr_since: Optional[float] = None) -> list[dict]:
        """Versions visible at ``tv``, ordered tr desc, tv asc (the /versions order)."""
        v = ft.versions
        query = select(v).where(v.c.object == object_name, v.c.tv <= tv, v.c.deleted.is_(False))
        if tr is not None:
            query = query.where(v.c.tr <= tr)
        if tr_since is not None:
            query = query.where(v.c.tr > tr_since)
        query = query.order_by(v.c.tr.desc(), v.c.tv.asc(), v.c.id.desc())
        with self.lock, self.engine.connect() as conn:
            return self._metas(conn, ft, conn.execute(query).all())

    def lookup_ids(self, ft: FolderTables, ids: Iterable[int]) -> list[dict]:
        v = ft.versions
        wanted = [int(i) for i in ids]
        with self.lock, self.engine.connect() as conn:
            rows = []
            for part in _parts(wanted):
                rows += conn.execute(select(v).where(v.c.id.in_(part))).all()
            return self._metas(conn, ft, rows)

    def lookup_keys(self, ft: FolderTables, object_name: str, keys: Iterable[str]) -> list[dict]:
        v = ft.versions
        wanted = [str(k) for k in keys]
        with self.lock, self.engine.connect() as conn:
            rows = []
            for part in _parts(wanted):
                rows += conn.execute(select(v).where(v.c.object == object_name,
                                                     v.c.key.in_(part))).all()
            return self._metas(conn, ft, rows)

    def lookup_key_range(self, ft: FolderTables, object_name: str, key_min: str,
                         key_max: str) -> list[dict]:
        v = ft.versions
        query = select(v).where(v.c.object == object_name, v.c.key >= key_min, v.c.key < key_max)
        with self.lock, self.engine.connect() as conn:
            return self._metas(conn, ft, conn.execute(query).all())

    def objects(self, ft: FolderTables) -> list[str]:
        v = ft.versions
        with self.lock, self.engine.connect() as conn:
            return list(conn.execute(select(v.c.object).distinct().order_by(v.c.object)).scalars())

    def tags(self, ft: FolderTables) -> list[str]:
        """All tag names of the folder, sorted, one entry per tagged version (no de-duplication)."""
        with self.lock, self.engine.connect() as conn:
            return list(conn.execute(select(ft.tags.c.tag_name).order_by(ft.tags.c.tag_name)
                                     ).scalars())

    # ---- helpers -------------------------------------------------------------------------

    def _first(self, ft: FolderTables, query) -> Optional[dict]:  # noqa: ANN001 - SQL select
        with self.lock, self.engine.connect() as conn:
            row = conn.execute(query.limit(1)).first()
            return None if row is None else self._metas(conn, ft, [row])[0]

    @staticmethod
    def _row_by_id(conn: Connection, ft: FolderTables, version_id: int):  # noqa: ANN205
        return conn.execute(select(ft.versions).where(ft.versions.c.id == int(version_id))).first()

    def _metas(self, conn: Connection, ft: FolderTables, rows: Sequence) -> list[dict]:
        ids = [row.id for row in rows]
        tags: dict[int, list[str]] = {i: [] for i in ids}
        for part in _parts(ids):
            for vid, name in conn.execute(select(ft.tags.c.version_id, ft.tags.c.tag_name).where(
                    ft.tags.c.version_id.in_(part))):
                tags[vid].append(name)
        return [metadata_of(ft.qualified, row, sorted(tags[row.id])) for row in rows]


def metadata_of(qualified_folder: str, row, tags: list[str]) -> dict:  # noqa: ANN001 - SQL row
    """The version metadata object of the UconDB API (put with ``full_meta``, ``meta_only``,
    the version listings), key order as the real server."""
    return {
        "object": row.object,
        "folder": qualified_folder,
        "tv": float(row.tv),
        "tr": float(row.tr),
        "tags": tags,
        "adler32": int(row.adler32),
        "uadler32": int(row.adler32),
        "data_size": int(row.data_size),
        "data_key": str(row.data_key),
        "id": int(row.id),
        "key": row.key,
    }


def _parts(items: Sequence, size: int = 500) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
