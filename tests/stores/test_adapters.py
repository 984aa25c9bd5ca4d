"""Backend specifics of MongoDB (mongomock), the conftoolp adapter and the bulk-tools adapter."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import mongomock
import pytest
from bson import ObjectId

from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.artdaqdb.bulktools import (
    BulkToolsArtdaqDB, ToolError, downloader_command, env_prefix, loader_command,
)
from archiver_resources.artdaqdb.mongo import INDEXES, MongoArtdaqDB
from archiver_resources.errors import ArtdaqDBError
from tests.stores import fake_conftoolp
from tests.stores.conftest import install_fake_tools
from tests.stores.samples import insert_files, update_files

URI = "mongodb://daq:s3cret@db1:28047,db2:28047/icarus_db_archive?replicaSet=rs0"


# ---- MongoDB ------------------------------------------------------------------------------------

@pytest.fixture
def mongo(clock):
    return open_artdaqdb(URI, clock=clock, mongo_client=mongomock.MongoClient())


def test_mongo_database_from_uri_and_documents(mongo):
    assert isinstance(mongo, MongoArtdaqDB) and mongo.database_name == "icarus_db_archive"
    result = mongo.archive_run(1234, "standard", insert_files(1234))
    stored = list(mongo.db["RunHistory"].find()) + list(mongo.db["SystemLayout"].find())
    assert {str(d["_id"]) for d in stored} == set(result.document_ids)
    for document in stored:
        assert isinstance(document["_id"], ObjectId) and str(document["_id"])[12] == "4"
        assert document["version"] == "1234/standard"
    assert mongo.db["SystemMetadata"].count_documents({}) == 1
    assert "s3cret" not in json.dumps(mongo.db["SystemMetadata"].find_one(), default=str)
    assert mongo.describe() == URI.replace("s3cret", "***")


def test_mongo_indexes_are_created_idempotently(mongo, clock):
    mongo.archive_run(1, "standard", insert_files(1))
    mongo.update_run(1, "standard", update_files())
    again = MongoArtdaqDB(URI, clock=clock, client=mongo._client)
    again.archive_run(2, "standard", insert_files(2))
    for collection in ("RunHistory", "SystemLayout"):
        info = mongo.db[collection].index_information()
        for name, keys in INDEXES:
            assert info[name]["key"] == keys


def test_mongo_append_mode_and_uncommitted_leftovers(clock):
    client = mongomock.MongoClient()
    db = open_artdaqdb("mongodb://h:1/icarus_db", archive_suffix_mode="append", clock=clock,
                       mongo_client=client)
    assert db.database_name == "icarus_db_archive"
    original = db.db["SystemLayout"].insert_one

    def crash(document):
        raise ConnectionError("killed before the commit")

    db.db["SystemLayout"].insert_one = crash
    with pytest.raises(ConnectionError):
        db.archive_run(3, "standard", insert_files(3))
    db.db["SystemLayout"].insert_one = original
    assert db.db["RunHistory"].count_documents({}) > 0  # orphans of the interrupted write
    assert not db.is_archived(3, "standard") and db.archived_runs() == {}
    result = db.archive_run(3, "standard", insert_files(3))
    assert {str(d["_id"]) for d in db.db["RunHistory"].find()} < set(result.document_ids)


# ---- conftoolp ----------------------------------------------------------------------------------

@pytest.fixture
def conftoolp_db(tmp_path, clock):
    fake_conftoolp.reset()
    return open_artdaqdb(f"filesystemdb://{tmp_path}/db_archive", backend="conftoolp",
                         conftoolp_module=fake_conftoolp, clock=clock)


def test_conftoolp_uses_the_legacy_queries(conftoolp_db, tmp_path, monkeypatch):
    monkeypatch.setenv("ARTDAQ_DATABASE_URI", "filesystemdb:///somewhere/else")
    conftoolp_db.archive_run(1234, "standard", insert_files(1234, n_processes=1))
    stores = [q for f, q, _ in fake_conftoolp.calls if f == "write_document"]
    assert stores[-1] == {"operation": "store", "dataformat": "fhicl", "collection": "SystemLayout",
                          "filter": {"configurations.name": "1234/standard",
                                     "version": "1234/standard", "entities.name": "schema",
                                     "runs.name": "1234"}}
    assert {q["filter"]["entities.name"]: q["collection"] for q in stores} == {
        "RunHistory": "RunHistory", "boot": "RunHistory", "metadata": "RunHistory",
        "component00": "RunHistory", "hashes": "RunHistory", "schema": "SystemLayout"}
    queries = [q for _, q, _ in fake_conftoolp.calls]
    assert {"operation": "findconfigs", "dataformat": "gui",
            "filter": {"configurations.name": "1234/*"}} in queries
    assert {"operation": "buildfilter", "dataformat": "gui",
            "filter": {"configurations.name": "1234/standard"}} in queries
    fake_conftoolp.reset()
    assert len(conftoolp_db.export_run(1234)) == 6
    reads = [q for f, q, _ in fake_conftoolp.calls if f == "read_document"]
    assert len(reads) == 6 and all(q["dataformat"] == "origin" and q["operation"] == "load" for q in reads)
    conftoolp_db.update_run(1234, "standard", update_files())
    assert {"operation": "findversions", "dataformat": "csv", "collection": "SystemLayout",
            "filter": {"entities.name": "*"}} in [q for _, q, _ in fake_conftoolp.calls]
    assert {uri for _, _, uri in fake_conftoolp.calls} == {f"filesystemdb://{tmp_path}/db_archive"}
    assert os.environ["ARTDAQ_DATABASE_URI"] == "filesystemdb:///somewhere/else"


def test_conftoolp_failure_raises_with_payload(conftoolp_db, monkeypatch):
    monkeypatch.setattr(fake_conftoolp, "find_configurations", lambda q: (False, "db is gone"))
    with pytest.raises(ArtdaqDBError, match="db is gone"):
        conftoolp_db.archived_runs()


def test_conftoolp_calls_are_serialised(conftoolp_db, tmp_path, monkeypatch):
    inside, overlaps = [0], []
    real = fake_conftoolp.find_configurations

    def slow(query):
        inside[0] += 1
        overlaps.append(inside[0])
        time.sleep(0.005)
        inside[0] -= 1
        return real(query)

    monkeypatch.setattr(fake_conftoolp, "find_configurations", slow)
    other = open_artdaqdb(f"filesystemdb://{tmp_path}/other_archive", backend="conftoolp",
                          conftoolp_module=fake_conftoolp)
    threads = [threading.Thread(target=db.archived_runs) for db in [conftoolp_db, other] * 5]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps and max(overlaps) == 1


def test_conftoolp_missing_module_is_a_clear_error(tmp_path):
    with pytest.raises(ArtdaqDBError, match="conftoolp"):
        open_artdaqdb(f"filesystemdb://{tmp_path}/db", backend="conftoolp")


# ---- bulk tools ---------------------------------------------------------------------------------

@pytest.fixture
def tools(tmp_path, monkeypatch):
    log = tmp_path / "tools.log"
    install_fake_tools(tmp_path / "bin", log, monkeypatch)
    monkeypatch.setenv("ARTDAQ_DATABASE_CONFDIR", "/opt/artdaq db/conf")
    monkeypatch.delenv("ARTDAQ_DATABASE_REMOTEHOST", raising=False)

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return calls


def bulk(tmp_path, clock, **kw) -> BulkToolsArtdaqDB:
    return open_artdaqdb(f"filesystemdb://{tmp_path}/db_archive", use_tools=True, clock=clock,
                         tool_timeout=kw.pop("tool_timeout", 60.0), **kw)


def test_bulkloader_local_command_env_and_input(tmp_path, clock, tools):
    db = bulk(tmp_path, clock)
    db.archive_run(1234, "standard", insert_files(1234, n_processes=2))
    (call,) = tools()
    assert call["tool"] == "bulkloader"
    args = call["argv"]
    assert args[:4] == ["-r", "1234", "-c", "standard"] and args[4] == "-p" and args[6] == "-t"
    assert int(args[7]) >= 1
    assert Path(call["cwd"]).resolve() == Path(args[5]).resolve()
    assert Path(args[5]).name.startswith("importer_1234_")
    assert call["listing"] == sorted(["schema.fcl", "RunHistory.fcl", "metadata.fcl", "boot.fcl",
                                      "1234/component00.fcl", "1234/component01.fcl"])
    assert call["env"]["ARTDAQ_DATABASE_URI"] == f"filesystemdb://{tmp_path}/db_archive"
    assert call["env"]["ARTDAQ_DATABASE_CONFDIR"] == "/opt/artdaq db/conf"
    assert not Path(args[5]).exists()  # temporary input removed
    assert db.read_hashes(1234, "standard") is None
    db.export_run(1234)
    assert tools()[-1]["tool"] == "bulkdownloader"
    assert tools()[-1]["argv"][:4] == ["-r", "1234", "-c", "standard"]


def test_bulkloader_remote_tar_pipe(tmp_path, clock, tools):
    db = bulk(tmp_path, clock, remote_host="daq-gw")
    db.archive_run(55, "standard", insert_files(55, n_processes=1))
    ssh, loader = tools()
    assert ssh["tool"] == "ssh" and ssh["host"] == "daq-gw"
    assert ssh["options"] == ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null",
                              "BatchMode=yes"]
    remote_dir = f"/tmp/bulkloader_55_{os.getpid()}"
    assert loader["argv"][5] == remote_dir and loader["cwd"] == remote_dir
    assert "schema.fcl" in loader["listing"]
    assert not Path(remote_dir).exists()
    assert db.export_run(55)["schema.fcl"]


def test_remote_bulkloader_failure_is_detected(tmp_path, clock, tools, monkeypatch):
    monkeypatch.setenv("FAKE_BULKLOADER_FAIL", "5")
    db = bulk(tmp_path, clock, remote_host="daq-gw")
    with pytest.raises(ToolError, match="Bulkloader failed with code 5: .*simulated failure") as info:
        db.archive_run(56, "standard", insert_files(56, n_processes=1))
    assert info.value.exit_code == 5 and "simulated failure" in info.value.stderr
    assert not Path(f"/tmp/bulkloader_56_{os.getpid()}").exists()


def test_bulkloader_already_archived_and_errors_redact_password(tmp_path, clock, tools, monkeypatch):
    db = bulk(tmp_path, clock)
    db.archive_run(57, "standard", insert_files(57, n_processes=1))
    with pytest.raises(ArtdaqDBError, match="already archived"):
        db.archive_run(57, "standard", insert_files(57, n_processes=1))
    monkeypatch.setenv("FAKE_BULKDOWNLOADER_FAIL", "2")
    with pytest.raises(ToolError, match="Bulkdownloader failed with code 2"):
        db.export_run(57)


def test_tool_timeout_kills_the_process_group(tmp_path, clock, tools, monkeypatch):
    monkeypatch.setenv("FAKE_BULKLOADER_SLEEP", "30")
    db = bulk(tmp_path, clock, tool_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(ToolError, match="timed out") as info:
        db.archive_run(58, "standard", insert_files(58, n_processes=1))
    assert time.monotonic() - started < 10 and info.value.exit_code is None


def test_command_lines_are_quoted():
    env = env_prefix("mongodb://u:p@h/db_archive", tool_path="/opt/x",
                     environ={"PATH": "/usr/bin", "PYTHONPATH": "/a b"})
    assert env == ("export PATH=/opt/x:/usr/bin; export PYTHONPATH='/a b'; "
                   "export ARTDAQ_DATABASE_URI=mongodb://u:p@h/db_archive")
    local = loader_command("ENV", 7, "my cfg", "/tmp/d", threads="4", remote_host=None,
                           remote_dir="/tmp/T")
    assert local == "ENV; cd /tmp/d; bulkloader -r 7 -c 'my cfg' -p /tmp/d -t 4"
    remote = loader_command("ENV", 7, "std", "/tmp/d", threads="4", remote_host="h",
                            remote_dir="/tmp/T")
    assert remote.startswith("set -o pipefail; tar czf - -C /tmp/d . | ssh ")
    assert "rc=$?; cd /; rm -rf /tmp/T; exit $rc" in remote
    down = downloader_command("ENV", 7, "std", "/tmp/d", threads="4", remote_host=None,
                              remote_dir="/tmp/T")
    assert down == "ENV; bulkdownloader -r 7 -c std -p /tmp/d -t 4"
