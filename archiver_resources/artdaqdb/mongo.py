"""The native MongoDB backend (pymongo): the artdaq_database document schema in the URI's database.

The SystemLayout (schema) document of a version is inserted last and is the commit marker: a crash
before it leaves RunHistory documents of an uncommitted version, which are not listed and are
removed by the next write of that version. The four SBN indexes are ensured idempotently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterable, Optional

from archiver_resources.errors import ArtdaqDBError
from archiver_resources.fhicl.tables import MultiTable

from .base import (
    RUN_HISTORY, SYSTEM_LAYOUT, SYSTEM_METADATA, ArchiveResult, ArtdaqDB, Clock, PlannedDocument,
    build_record, format_timestamp, new_oid, parse_timestamp, redact_uri,
    system_metadata_document,
)

#: the indexes SBN deployments create on every collection of their artdaqDB MongoDB
INDEXES = (
    ("idx_configurations_name", [("configurations.name", 1)]),
    ("idx_entities_name", [("entities.name", 1)]),
    ("idx_version", [("version", 1)]),
    ("idx_configuration_name_vs_entities_name", [("configurations.name", 1), ("entities.name", 1)]),
)


def mongo_database_name(uri: str) -> str:
    """The database of a ``mongodb://…/<db>?…`` URI (the path, used verbatim)."""
    from pymongo.uri_parser import parse_uri

    try:
        database = parse_uri(uri, validate=False, warn=True).get("database")
    except Exception as exc:  # pymongo raises several types for malformed URIs
        raise ArtdaqDBError(f"malformed MongoDB URI {redact_uri(uri)}: {type(exc).__name__}") from exc
    if not database:
        raise ArtdaqDBError(f"MongoDB URI {redact_uri(uri)} names no database (…/<db>)")
    return database


# --- records with a repeated top-level key ----------------------------------------------------
# artdaq_database keeps every definition of a top-level FHiCL key (a ``MultiTable`` here, only in
# document.data.prolog/main and document.metadata.prolog/main.children); its MongoDB documents then
# repeat the key, as BSON allows. pymongo's dict-based codec keeps one of them, so those four
# sections are written through a mapping whose keys are distinct objects with equal text, and
# read back element by element when their key count says a key repeats.

_SECTIONS = (("data", "prolog"), ("data", "main"), ("metadata", "prolog", "children"),
             ("metadata", "main", "children"))


class _Key(str):
    """A key equal only to itself, so one mapping can hold the same key text twice."""

    __slots__ = ()

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other


class _RepeatedKeys(Mapping):
    """A read-only mapping the BSON encoder writes with every pair, repeated keys included."""

    def __init__(self, pairs):
        self._keys = [_Key(key) for key, _ in pairs]
        self._values = {id(key): value for key, (_, value) in zip(self._keys, pairs)}

    def __iter__(self):
        return iter(self._keys)

    def __len__(self):
        return len(self._keys)

    def __getitem__(self, key):
        return self._values[id(key)]


def _section_parent(record: dict, path: tuple):
    node = record.get("document")
    for part in path[:-1]:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node if isinstance(node, dict) else None


def to_mongo(record: dict) -> dict:
    """A record with ``_id`` as a BSON ObjectId made from its 24-hex oid (and its repeated
    top-level keys kept)."""
    from bson import ObjectId

    document = dict(record)
    document["_id"] = ObjectId(record["_id"]["$oid"])
    if any(isinstance(_section_parent(record, path), dict)
           and isinstance(_section_parent(record, path).get(path[-1]), MultiTable)
           for path in _SECTIONS):
        document["document"] = _copy_with_repeats(record["document"])
    return document


def _copy_with_repeats(document: dict) -> dict:
    copy = dict(document)
    for part in ("data", "metadata"):
        if isinstance(copy.get(part), dict):
            copy[part] = dict(copy[part])
    for path in _SECTIONS:
        parent = copy
        for part in path[:-1]:
            if part == path[0]:
                parent = parent.get(part)
            else:
                child = parent.get(part) if isinstance(parent, dict) else None
                if not isinstance(child, dict):
                    parent = None
                    break
                parent[part] = child = dict(child)
                parent = child
        if isinstance(parent, dict) and isinstance(parent.get(path[-1]), MultiTable):
            parent[path[-1]] = _RepeatedKeys(parent[path[-1]].items())
    return copy


def _bson_elements(raw: bytes) -> Iterable[tuple[str, bytes]]:
    """The top-level elements of a BSON document as (key, one-element BSON document)."""
    import struct

    pos, end = 4, len(raw) - 1
    while pos < end:
        kind = raw[pos]
        key_end = raw.index(b"\x00", pos + 1)
        value = key_end + 1
        if kind in (0x03, 0x04):  # document, array: int32 total size
            size = struct.unpack_from("<i", raw, value)[0]
        elif kind == 0x02:  # string: int32 length + bytes (with NUL)
            size = 4 + struct.unpack_from("<i", raw, value)[0]
        elif kind in (0x01, 0x09, 0x11, 0x12):
            size = 8
        elif kind == 0x10:
            size = 4
        elif kind == 0x08:
            size = 1
        elif kind == 0x0A:
            size = 0
        elif kind == 0x07:
            size = 12
        else:
            raise ArtdaqDBError(f"unexpected BSON element type {kind:#x} in a FHiCL section")
        element = raw[pos:value + size]
        yield (raw[pos + 1:key_end].decode("utf-8"),
               struct.pack("<i", len(element) + 5) + element + b"\x00")
        pos = value + size


def from_mongo(document) -> dict:
    """Relaxed extended JSON view: ``_id`` back to ``{"$oid": …}``. A raw BSON document (read
    from a real server) is decoded here, a repeated top-level FHiCL key kept as a MultiTable."""
    raw = getattr(document, "raw", None)
    if raw is not None:
        import bson

        record = bson.decode(raw)
        sub = document.get("document")
        for path in _SECTIONS:
            node = sub
            for part in path:
                node = node.get(part) if node is not None and hasattr(node, "get") else None
            if node is None or not hasattr(node, "raw"):
                continue
            pairs = [(key, next(iter(bson.decode(element).values())))
                     for key, element in _bson_elements(node.raw)]
            parent = _section_parent(record, path)
            if parent is not None and len(pairs) != len(parent.get(path[-1]) or ()):
                parent[path[-1]] = MultiTable(pairs)
        document = record
    else:
        document = dict(document)
    document["_id"] = {"$oid": str(document["_id"])}
    return document


class MongoArtdaqDB(ArtdaqDB):
    """artdaq_database in MongoDB at ``mongodb://…/<db>``."""

    def __init__(self, uri: str, *, clock: Optional[Clock] = None, client: Any = None,
                 timeout_seconds: float = 30.0):
        super().__init__(uri, clock=clock)
        self.database_name = mongo_database_name(uri)
        if client is None:
            import pymongo

            timeout_ms = int(timeout_seconds * 1000)
            client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=timeout_ms,
                                         connectTimeoutMS=timeout_ms, socketTimeoutMS=timeout_ms)
            self._owns_client = True
        else:
            self._owns_client = False
        self._client = client
        self.db = client[self.database_name]
        self._indexed: set[str] = set()

    # ---- primitives ---------------------------------------------------------------------------

    def _configuration_names(self) -> Iterable[str]:
        return [n for n in self.db[SYSTEM_LAYOUT].distinct("configurations.name")
                if isinstance(n, str)]

    def _has_configuration(self, name: str) -> bool:
        found = self.db[SYSTEM_LAYOUT].find_one({"configurations.name": name}, {"_id": 1})
        return found is not None

    def _versions(self, name: str) -> list[str]:
        return list(self.db[SYSTEM_LAYOUT].distinct("version", {"configurations.name": name}))

    def _records(self, name: str) -> list[dict]:
        committed = set(self._versions(name))
        return [from_mongo(d) for collection in (RUN_HISTORY, SYSTEM_LAYOUT)
                for d in self._reader(collection).find({"configurations.name": name})
                if d.get("version") in committed]

    def _store(self, run: int, name: str, docs: list[PlannedDocument], timestamp: str, *,
               initial: bool, once: bool = False) -> ArchiveResult:
        self._ensure_system_metadata()
        version = self._version_for(run, name, initial=initial, once=once)
        planned = [(doc, new_oid()) for doc in docs]
        for collection in {doc.collection for doc in docs}:
            self.ensure_indexes(collection)
            # leftovers of an interrupted write of this same, uncommitted version
            self.db[collection].delete_many({"configurations.name": name, "version": version})
        records = [(doc.collection, build_record(doc, run=run, name=name, version=version,
                                                 timestamp=timestamp, oid=oid))
                   for doc, oid in planned]
        for collection, record in records:  # plan order: SystemLayout (the commit) last
            self.db[collection].insert_one(to_mongo(record))
        return ArchiveResult(
            run=run, configuration=name, version=version,
            entities=tuple(doc.entity for doc, _ in planned),
            document_ids=tuple(oid for _, oid in planned), assigned=parse_timestamp(timestamp))

    # ---- helpers ------------------------------------------------------------------------------

    def _reader(self, collection: str):
        """The collection for reading records: raw BSON from a real server (so a repeated
        top-level FHiCL key survives), plain documents from a test double."""
        if type(self.db).__module__.startswith("mongomock"):
            return self.db[collection]
        from bson.codec_options import CodecOptions
        from bson.raw_bson import RawBSONDocument

        return self.db.get_collection(collection,
                                      codec_options=CodecOptions(document_class=RawBSONDocument))

    def ensure_indexes(self, collection: str) -> None:
        """Create the four recommended indexes (idempotent; once per collection per process)."""
        if collection in self._indexed:
            return
        for name, keys in INDEXES:
            self.db[collection].create_index(keys, name=name)
        self._indexed.add(collection)

    def _ensure_system_metadata(self) -> None:
        metadata = self.db[SYSTEM_METADATA]
        if metadata.find_one({}, {"_id": 1}) is not None:
            return
        # As the C++: no _id given (MongoDB assigns an ObjectId); unlike the C++, the URI is
        # stored without its password.
        metadata.insert_one({"document": system_metadata_document(
            self.describe(), format_timestamp(self._clock()))})

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
