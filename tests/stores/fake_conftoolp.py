"""A fake ``conftoolp`` SWIG module over a filesystemdb (ARTDAQ_DATABASE_URI read on every call, as
the C++ does); it records every call and answers the legacy run-history queries."""

from __future__ import annotations

import json
import os
from datetime import datetime

from archiver_resources.artdaqdb.base import (
    RUN_HISTORY, SYSTEM_LAYOUT, PlannedDocument, build_record, format_timestamp, local_now,
    new_oid, parse_timestamp, version_number,
)
from archiver_resources.artdaqdb.filesystem import Collection, filesystem_root, index_add
from archiver_resources.fhicl import record_to_fhicl

calls: list[tuple[str, dict, str]] = []
COLLECTIONS = (RUN_HISTORY, SYSTEM_LAYOUT)


def reset() -> None:
    calls.clear()


def _now() -> datetime:
    value = os.environ.get("FAKE_ARTDAQ_NOW")
    return datetime.fromisoformat(value) if value else local_now()


def _collection(name: str) -> Collection:
    return Collection(filesystem_root(os.environ["ARTDAQ_DATABASE_URI"]), name, fsync=False)


def _record(function: str, query: str) -> dict:
    parsed = json.loads(query)
    calls.append((function, parsed, os.environ.get("ARTDAQ_DATABASE_URI", "")))
    return parsed


def _matches(value: str, pattern: str) -> bool:
    return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern


def set_default_locale() -> None:
    calls.append(("set_default_locale", {}, os.environ.get("ARTDAQ_DATABASE_URI", "")))


def enable_trace() -> None:
    pass


def write_document(query: str, text: str):
    q = _record("write_document", query)
    f = q["filter"]
    doc = PlannedDocument(f["entities.name"], q["collection"], text, f"{f['entities.name']}.fcl")
    oid = new_oid()
    record = build_record(doc, run=int(f["runs.name"]), name=f["configurations.name"],
                          version=f["version"], timestamp=format_timestamp(_now()), oid=oid)
    store = _collection(q["collection"])
    with store.lock():
        store.write_document(oid, record)
        index = store.load_index()
        index_add(index, oid, record)
        store.save_index(index)
    return True, f"stored {oid}"


def find_configurations(query: str):
    q = _record("find_configurations", query)
    pattern = q["filter"]["configurations.name"]
    newest: dict[str, datetime] = {}
    for name in COLLECTIONS:
        assigned = _collection(name).load_index()["configurations.assigned"]
        for config, times in assigned.items():
            if _matches(config, pattern):
                moment = max(parse_timestamp(t) for t in times)
                newest[config] = max(moment, newest.get(config, moment))
    ordered = sorted(newest, key=lambda c: newest[c], reverse=True)
    return True, json.dumps({"search": [{"name": c, "query": {"filter": {"configurations.name": c}}}
                                        for c in ordered]})


def find_versions(query: str):
    q = _record("find_versions", query)
    versions = _collection(q["collection"]).load_index()["version"]
    return True, ",".join(sorted(versions))


def configuration_composition(query: str):
    q = _record("configuration_composition", query)
    name = q["filter"]["configurations.name"]
    search = []
    for collection in COLLECTIONS:
        index = _collection(collection).load_index()
        oids = set(index["configurations.name"].get(name, []))
        for entity, owners in sorted(index["entities.name"].items()):
            if oids.intersection(owners):
                search.append({"query": {
                    "collection": collection, "dbprovider": "filesystem", "dataformat": "gui",
                    "operation": "load",
                    "filter": {"configurations.name": name, "entities.name": entity}}})
    return True, json.dumps({"search": search})


def read_document(query: str):
    q = _record("read_document", query)
    store = _collection(q["collection"])
    index = store.load_index()
    oids = None
    for key, value in q["filter"].items():
        owners = set(index.get(key, {}).get(value, []))
        oids = owners if oids is None else oids & owners
    records = [r for r in (store.read_document(o) for o in sorted(oids or ())) if r]
    if not records:
        return False, f"no document matches {q['filter']}"
    name = q["filter"].get("configurations.name", "")
    best = max(records, key=lambda r: version_number(name, r["version"]) or 0)
    if q["dataformat"] in ("origin", "fhicl"):
        return True, record_to_fhicl(best)
    return True, json.dumps(best)
