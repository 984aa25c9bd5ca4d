"""The stored record envelope and the SystemMetadata document of the native backends (filesystemdb
and MongoDB through mongomock): what artdaq_database's C++ ``write_document`` writes, field for
field (tests/stores/test_cpp_provider.py compares with the real C++ when it is built)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import mongomock
import pytest

from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.artdaqdb.base import format_timestamp, parse_timestamp
from tests.stores.samples import insert_files, update_files

ENVELOPE_KEYS = ["document", "comments", "origin", "version", "entities", "configurations",
                 "changelog", "bookkeeping", "_id", "collection", "aliases", "runs",
                 "attachments", "configtype"]


@pytest.fixture(params=["filesystem", "mongomock"])
def store(request, tmp_path, clock):
    """(store, raw records of a collection, SystemMetadata documents) for one native backend."""
    clock.now = clock.now.replace(microsecond=987654)  # milliseconds 987, truncated not rounded
    if request.param == "filesystem":
        db = open_artdaqdb(f"filesystemdb://{tmp_path}/db_archive/", clock=clock)

        def raw(collection):
            return [json.loads(p.read_text()) for p in (db.root / collection).glob("*.json")
                    if p.name != "index.json"]
    else:
        db = open_artdaqdb("mongodb://daq:s3cret@localhost:27017/test_db_archive", clock=clock,
                           mongo_client=mongomock.MongoClient())

        def raw(collection):
            return [{**d, "_id": {"$oid": str(d["_id"])}} for d in db.db[collection].find()]
    yield db, raw
    db.close()


def expected_timestamp(moment: datetime) -> str:
    local = moment.astimezone()
    return f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond // 1000:03d}{local:%z}"


def test_timestamps_carry_real_milliseconds_truncated():
    moment = datetime(2024, 10, 15, 14, 2, 11, 999999, tzinfo=timezone(timedelta(hours=-5)))
    text = format_timestamp(moment)
    assert text.endswith(".999" + moment.astimezone().strftime("%z"))
    assert text == expected_timestamp(moment)
    assert parse_timestamp(text) == moment.replace(microsecond=999000)
    # stores written with ".000" (older archiver versions) still read
    assert parse_timestamp("2024-10-15T09:02:11.000-0500").microsecond == 0


def test_every_document_has_the_cpp_envelope(store, clock):
    db, raw = store
    db.archive_run(1234, "standard", insert_files(1234, n_processes=1))
    clock.advance(60)
    db.update_run(1234, "standard", update_files())
    ts_insert = expected_timestamp(clock.now - timedelta(seconds=60))
    ts_update = expected_timestamp(clock.now)
    assert ts_insert.split(".")[1].startswith("987")
    records = raw("RunHistory") + raw("SystemLayout")
    assert len(records) == 4 + 1 + 1 + 2  # 4 files, hashes, schema; then RunHistory2, schema
    seen = set()
    for record in records:
        entity = record["entities"][0]["name"]
        collection = "SystemLayout" if entity == "schema" else "RunHistory"
        update = entity == "RunHistory2" or (entity == "schema" and record["version"].endswith("v1"))
        version = "1234/standardv1" if update else "1234/standard"
        ts = ts_update if update else ts_insert
        seen.add((entity, version))
        assert list(record) == ENVELOPE_KEYS

        def assigned(name):
            return {"name": name, "assigned": ts}
        assert record["document"]["search"] == []
        assert list(record["document"]) == ["data", "metadata", "search"]
        assert record["origin"] == {"format": "fhicl", "name": entity, "source": "fhicl_to_json",
                                    "timestamp": ts, "created": ts, "rawdata": []}
        assert record["version"] == version
        assert record["entities"] == [assigned(entity)]
        assert record["configurations"] == [assigned("1234/standard")]
        assert record["runs"] == [assigned("1234")]
        assert record["collection"] == collection
        assert record["bookkeeping"] == {
            "isdeleted": False, "isreadonly": False,
            "updates": [
                {"event": "addConfiguration", "timestamp": ts, "value": assigned("1234/standard")},
                {"event": "setVersion", "timestamp": ts, "value": assigned(version)},
                {"event": "setCollection", "timestamp": ts, "value": assigned(collection)},
                {"event": "addEntity", "timestamp": ts, "value": assigned(entity)},
                {"event": "addRun", "timestamp": ts, "value": assigned("1234")},
            ],
            "created": ts}
        assert record["changelog"] == "notprovided" and record["configtype"] == "notprovided"
        assert record["aliases"] == {"active": [], "history": []} and record["attachments"] == []
        oid = record["_id"]["$oid"]
        assert len(oid) == 24 and int(oid, 16) >= 0
    assert ("RunHistory2", "1234/standardv1") in seen and ("hashes", "1234/standard") in seen
    assert db.archived_at(1234, "standard") == parse_timestamp(ts_update)


def test_system_metadata_is_the_cpp_database_info(store, clock, monkeypatch):
    monkeypatch.setenv("USER", "daqops")
    db, raw = store
    db.archive_run(7, "standard", insert_files(7, n_processes=1))
    clock.advance(5)
    db.archive_run(8, "standard", insert_files(8, n_processes=1))
    (meta,) = raw("SystemMetadata")  # written once per database
    system = os.uname()
    document = meta["document"]
    assert list(document) == ["name", "uri", "locale", "create_time", "create_user", "uname",
                              "database_format"]
    assert document["name"] == "artdaq" and document["locale"] == "en_US.UTF-8"
    assert document["database_format"] == 3
    assert document["create_time"] == expected_timestamp(clock.now - timedelta(seconds=5))
    assert document["create_user"] == "daqops"
    assert document["uname"] == {"sysname": system.sysname, "nodename": system.nodename,
                                 "release": system.release, "version": system.version,
                                 "machine": system.machine}
    if db.uri.startswith("mongodb"):
        assert document["uri"] == "mongodb://daq:***@localhost:27017/test_db_archive"
        assert "s3cret" not in json.dumps(meta)
    else:
        assert document["uri"] == db.uri[:-1]  # the trailing "/" removed, as the C++ does


def test_system_metadata_create_user_is_empty_without_user(store, monkeypatch):
    monkeypatch.delenv("USER", raising=False)
    db, raw = store
    db.archive_run(7, "standard", insert_files(7, n_processes=1))
    (meta,) = raw("SystemMetadata")
    assert meta["document"]["create_user"] == ""
