"""The native MongoDB backend (pymongo): the artdaq_database document schema in the URI's database.

The SystemLayout (schema) document of a version is inserted last and is the commit marker: a crash
before it leaves RunHistory documents of an uncommitted version, which are not listed and are
removed by the next write of that version. The four SBN indexes are ensured idempotently.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from archiver_resources.errors import ArtdaqDBError

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


def to_mongo(record: dict) -> dict:
    """A record with ``_id`` as a BSON ObjectId made from its 24-hex oid."""
    from bson import ObjectId

    document = dict(record)
    document["_id"] = ObjectId(record["_id"]["$oid"])
    return document


def from_mongo(document: dict) -> dict:
    """Relaxed extended JSON view: ``_id`` back to ``{"$oid": …}``."""
    record = dict(document)
    record["_id"] = {"$oid": str(document["_id"])}
    return record


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
                for d in self.db[collection].find({"configurations.name": name})
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
