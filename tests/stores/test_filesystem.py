"""filesystemdb specifics: artdaq_database's on-disk layout, atomicity, recovery, locking, SIGKILL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.artdaqdb.filesystem import (
    JOURNAL_DIR, FilesystemArtdaqDB, empty_index, filesystem_root,
)
from archiver_resources.errors import AlreadyArchivedError, ArtdaqDBError
from tests.stores.samples import insert_files, update_files
from tests.support import sigkill_when_paused

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fsdb(tmp_path, clock) -> FilesystemArtdaqDB:
    return open_artdaqdb(f"filesystemdb://{tmp_path}/fsdb_archive", clock=clock)


def docs(root: Path, collection: str) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (root / collection).glob("*.json")
            if p.name != "index.json"}


def test_layout_matches_the_worked_example(fsdb, clock):
    files = {"schema.fcl": insert_files(1234)["schema.fcl"], "1234/EventBuilder1.fcl": "a: 1\n",
             "1234/boot.fcl": "b: 2\n", "1234/metadata.fcl": 'c: "x"\n'}
    result = fsdb.archive_run(1234, "standard", files)
    root = fsdb.root
    assert sorted(p.name for p in root.iterdir()) == ["RunHistory", "SystemLayout", "SystemMetadata"]
    (meta,) = docs(root, "SystemMetadata").values()
    assert meta["document"]["name"] == "artdaq" and meta["document"]["database_format"] == 3
    assert meta["document"]["locale"] == "en_US.UTF-8"
    layout, history = docs(root, "SystemLayout"), docs(root, "RunHistory")
    assert len(layout) == 1 and len(history) == 4
    ts = f"{clock.now:%Y-%m-%dT%H:%M:%S}.{clock.now.microsecond // 1000:03d}{clock.now:%z}"
    for oid, record in {**layout, **history}.items():
        assert len(oid) == 24 and oid[12] == "4" and int(oid, 16) >= 0
        assert record["_id"] == {"$oid": oid}
        assert record["version"] == "1234/standard"
        assert record["configurations"] == [{"name": "1234/standard", "assigned": ts}]
        assert record["runs"] == [{"name": "1234", "assigned": ts}]
        assert record["origin"]["format"] == "fhicl" and record["origin"]["source"] == "fhicl_to_json"
        assert record["aliases"] == {"active": [], "history": []} and record["attachments"] == []
        assert record["configtype"] == "notprovided"
        assert set(record["bookkeeping"]) >= {"isdeleted", "isreadonly", "created", "updates"}
    assert [r["collection"] for r in layout.values()] == ["SystemLayout"]
    assert {r["collection"] for r in history.values()} == {"RunHistory"}
    index = json.loads((root / "RunHistory" / "index.json").read_text())
    assert set(index) == set(empty_index())
    oids = sorted(history)
    assert index["ouid"] == oids
    assert index["version"] == {"1234/standard": oids}
    assert index["configurations.name"] == {"1234/standard": oids}
    assert index["runs.name"] == {"1234": oids}
    assert index["aliases.active.name"] == {}
    assert index["configurations.assigned"] == {"1234/standard": [ts]}
    by_entity = {r["entities"][0]["name"]: oid for oid, r in history.items()}
    assert index["entities.name"] == {e: [o] for e, o in by_entity.items()}
    assert set(by_entity) == {"EventBuilder1", "boot", "metadata", "hashes"}
    assert set(result.document_ids) == set(oids) | set(layout)
    assert not any(p.name.startswith(".") and "tmp" in p.name for p in root.rglob("*"))
    assert not list((root / "SystemLayout" / JOURNAL_DIR).glob("*"))


def test_uri_rules(tmp_path):
    assert filesystem_root("filesystemdb:///data/adb/fsdb/") == Path("/data/adb/fsdb")
    with pytest.raises(ArtdaqDBError, match="absolute"):
        filesystem_root("filesystemdb://relative/path")
    db = open_artdaqdb(f"filesystemdb://{tmp_path}/db", archive_suffix_mode="append")
    assert db.root == tmp_path / "db_archive"
    assert open_artdaqdb(f"filesystemdb://{tmp_path}/db_archive").root == tmp_path / "db_archive"


def test_listing_reads_only_the_index(fsdb):
    fsdb.archive_run(1, "standard", insert_files(1, n_processes=1))
    for path in (fsdb.root / "RunHistory").glob("*.json"):
        if path.name != "index.json":
            path.unlink()
    assert fsdb.archived_runs() == {1: "1/standard"}


def test_corrupt_index_is_rebuilt(fsdb, caplog):
    fsdb.archive_run(1, "standard", insert_files(1, n_processes=1))
    fsdb.archive_run(2, "standard", insert_files(2, n_processes=1))
    good = json.loads((fsdb.root / "SystemLayout" / "index.json").read_text())
    (fsdb.root / "SystemLayout" / "index.json").write_text('{"ouid": [')
    reopened = FilesystemArtdaqDB(fsdb.uri)
    assert reopened.archived_runs() == {1: "1/standard", 2: "2/standard"}
    assert "corrupt" in caplog.text
    assert json.loads((fsdb.root / "SystemLayout" / "index.json").read_text()) == good


def test_rebuild_index_from_documents(fsdb, clock):
    fsdb.archive_run(3, "standard", insert_files(3))
    fsdb.update_run(3, "standard", update_files())
    path = fsdb.root / "RunHistory" / "index.json"
    before = json.loads(path.read_text())
    path.unlink()
    assert fsdb.rebuild_index("RunHistory") == before
    assert json.loads(path.read_text()) == before


def test_document_deleted_behind_the_index(fsdb):
    files = insert_files(4)
    fsdb.archive_run(4, "standard", files)
    index = json.loads((fsdb.root / "RunHistory" / "index.json").read_text())
    (boot_oid,) = index["entities.name"]["boot"]
    (fsdb.root / "RunHistory" / f"{boot_oid}.json").unlink()
    # Exporting without the lost document would pack a blob silently lacking boot.fcl.
    with pytest.raises(ArtdaqDBError, match=f"run 4: document {boot_oid}.json .*entity boot"):
        fsdb.export_run(4, "standard")
    (schema_oid,) = json.loads((fsdb.root / "SystemLayout" / "index.json").read_text())[
        "configurations.name"]["4/standard"]
    (fsdb.root / "SystemLayout" / f"{schema_oid}.json").unlink()
    assert not fsdb.is_archived(4, "standard")
    fsdb.archive_run(4, "standard", files)  # re-archiving a damaged run is possible
    assert fsdb.is_archived(4, "standard") and "boot.fcl" in fsdb.export_run(4, "standard")


def test_interrupted_write_is_not_archived_and_is_rolled_back(fsdb):
    class Crash(Exception):
        pass

    def crash(stage):
        if stage == "index:RunHistory":
            raise Crash(stage)

    fsdb.hook = crash
    with pytest.raises(Crash):
        fsdb.archive_run(5, "standard", insert_files(5))
    fsdb.hook = None
    # an error (not a kill) is rolled back at once: nothing of the attempt is left
    assert not list((fsdb.root / "SystemLayout" / JOURNAL_DIR).glob("*.journal"))
    assert docs(fsdb.root, "RunHistory") == {} and docs(fsdb.root, "SystemLayout") == {}
    assert json.loads((fsdb.root / "RunHistory" / "index.json").read_text())["ouid"] == []
    assert not fsdb.is_archived(5, "standard") and fsdb.archived_runs() == {}
    result = fsdb.archive_run(5, "standard", insert_files(5))
    assert set(docs(fsdb.root, "RunHistory")) | set(docs(fsdb.root, "SystemLayout")) \
        == set(result.document_ids)


def test_visible_documents_are_always_complete(fsdb):
    checked = []

    def check(stage):
        for path in (fsdb.root / "RunHistory").glob("*.json"):  # what a reader could open
            json.loads(path.read_text())
            checked.append(path.name)

    fsdb.hook = check
    fsdb.archive_run(6, "standard", insert_files(6))
    assert checked
    assert not [p for p in fsdb.root.rglob("*") if ".tmp-" in p.name]


def _archiver_script(root: Path, run: int, pause_at: str = "", marker: str = "") -> str:
    return textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from archiver_resources.artdaqdb.filesystem import FilesystemArtdaqDB
        from archiver_resources.errors import AlreadyArchivedError
        from tests.stores.samples import insert_files
        db = FilesystemArtdaqDB("filesystemdb://{root}")
        def hook(stage):
            if stage == {pause_at!r}:
                open({marker!r}, "w").write(stage)
                time.sleep(60)
        db.hook = hook
        try:
            db.archive_run({run}, "standard", insert_files({run}, n_processes=8))
        except AlreadyArchivedError:
            print("ALREADY"); sys.exit(3)
        print("OK")
    """)


@pytest.mark.parametrize("pause_at", ["journal", "document:component03", "index:RunHistory",
                                      "index:SystemLayout"])
def test_sigkill_mid_archive_leaves_run_unarchived(tmp_path, pause_at):
    root = tmp_path / "db_archive"
    marker = tmp_path / "paused"
    sigkill_when_paused(_archiver_script(root, 77, pause_at, str(marker)), marker, timeout=30)
    db = FilesystemArtdaqDB(f"filesystemdb://{root}")
    assert not db.is_archived(77, "standard")
    assert db.archived_runs() == {}
    result = db.archive_run(77, "standard", insert_files(77, n_processes=8))
    assert db.is_archived(77, "standard")
    stored = set(docs(root, "RunHistory")) | set(docs(root, "SystemLayout"))
    assert stored == set(result.document_ids)  # the orphans were removed
    assert not [p for p in root.rglob("*") if ".tmp-" in p.name]  # and the killed temp files
    assert len(db.export_run(77)) == len(insert_files(77, n_processes=8)) + 1


def test_two_processes_archive_the_same_run(tmp_path):
    root = tmp_path / "db_archive"
    script = _archiver_script(root, 88)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outcomes == ["ALREADY", "ALREADY", "OK"]
    db = FilesystemArtdaqDB(f"filesystemdb://{root}")
    assert len(docs(root, "SystemLayout")) == 1
    assert len(docs(root, "RunHistory")) == 8 + 4  # processes + RunHistory, metadata, boot, hashes


def test_concurrent_processes_lose_no_index_entries(tmp_path):
    root = tmp_path / "db_archive"
    procs = [subprocess.Popen([sys.executable, "-c", _archiver_script(root, run)])
             for run in range(200, 206)]
    assert [p.wait(60) for p in procs] == [0] * 6
    db = FilesystemArtdaqDB(f"filesystemdb://{root}")
    assert sorted(db.archived_runs()) == list(range(200, 206))
    index = json.loads((root / "RunHistory" / "index.json").read_text())
    assert len(index["ouid"]) == 6 * 12


def test_update_after_interrupted_update(fsdb, clock):
    fsdb.archive_run(9, "standard", insert_files(9))

    def crash(stage):
        if stage.startswith("index:SystemLayout"):
            raise RuntimeError("killed")

    fsdb.hook = crash
    with pytest.raises(RuntimeError):
        fsdb.update_run(9, "standard", update_files())
    fsdb.hook = None
    assert fsdb.versions(9, "standard") == ["9/standard"]
    assert "RunHistory2.fcl" not in fsdb.export_run(9)
    assert fsdb.update_run(9, "standard", update_files()) == "9/standardv1"
    assert "RunHistory2.fcl" in fsdb.export_run(9)
    with pytest.raises(AlreadyArchivedError):
        fsdb.archive_run(9, "standard", insert_files(9))


def test_failed_document_write_leaves_no_partial_file(fsdb, monkeypatch):
    import archiver_resources.artdaqdb.filesystem as fs

    real_link, count = os.link, [0]

    def failing_link(src, dst):
        count[0] += 1
        if count[0] == 4:
            raise OSError(28, "No space left on device")
        return real_link(src, dst)

    monkeypatch.setattr(fs.os, "link", failing_link)
    with pytest.raises(ArtdaqDBError, match="run 10: cannot write .*No space left") as raised:
        fsdb.archive_run(10, "standard", insert_files(10))
    assert raised.value.retryable and isinstance(raised.value.__cause__, OSError)
    monkeypatch.setattr(fs.os, "link", real_link)
    assert not [p for p in fsdb.root.rglob(".*tmp*")]
    assert docs(fsdb.root, "RunHistory") == {}  # the two complete documents were rolled back
    assert not fsdb.is_archived(10, "standard")
    fsdb.archive_run(10, "standard", insert_files(10))
    assert len(docs(fsdb.root, "RunHistory")) == 7


def test_recovery_removes_temp_files_of_killed_writers(fsdb):
    from archiver_resources.artdaqdb.base import plan_documents

    planned = [(doc, f"{i:024x}") for i, doc in enumerate(plan_documents(
        11, insert_files(11), with_hashes=True))]
    with fsdb._write_lock():  # what a writer SIGKILLed right after its journal leaves behind
        journal = fsdb._write_journal("11/standard", "11/standard", True, planned)
    collection, oid = planned[0][0].collection, planned[0][1]
    leftover = fsdb.root / collection / f".{oid}.json.tmp-999-1"
    leftover.write_text('{"half": ')
    fsdb.recover()
    assert not leftover.exists() and not journal.exists()


def test_same_entity_twice_keeps_the_later_file(fsdb):
    files = insert_files(12)
    files["12/boot.fcl"] = "replaced: true\n"
    fsdb.archive_run(12, "standard", files)
    assert "replaced" in fsdb.export_run(12)["boot.fcl"]


def test_a_refused_document_is_undone_quietly_and_a_crash_still_warns(fsdb, caplog):
    import logging

    from archiver_resources.errors import FhiclSyntaxError

    files = {**insert_files(4321), "4321/broken.fcl": "a: {\n b: 1\n"}
    with caplog.at_level(logging.DEBUG, logger="archiver_resources.artdaqdb.filesystem"):
        with pytest.raises(FhiclSyntaxError):
            fsdb.archive_run(4321, "standard", files)
    # The input was refused, nothing crashed: no "rolling back interrupted" warning.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert "undoing the refused artdaqDB write of 4321/standard" in caplog.text
    assert fsdb.archived_runs() == {}
    leftovers = [p for p in fsdb.root.rglob(".*") if p.is_file() and ".tmp-" in p.name]
    assert leftovers == [] and not list((fsdb.root / "SystemLayout" / JOURNAL_DIR).glob("*"))

    caplog.clear()
    fsdb.hook = lambda stage: (_ for _ in ()).throw(OSError(28, "No space left on device")) \
        if stage.startswith("document:") else None
    with caplog.at_level(logging.WARNING, logger="archiver_resources.artdaqdb.filesystem"):
        with pytest.raises(ArtdaqDBError):
            fsdb.archive_run(4321, "standard", insert_files(4321))
    assert "rolling back failed artdaqDB write of 4321/standard" in caplog.text


def test_archived_at_from_the_index_equals_the_documents_answer_also_after_a_rollback(fsdb, clock):
    from datetime import timedelta

    from archiver_resources.artdaqdb.base import ArtdaqDB

    start, ticks = clock(), iter(range(1, 1000))
    fsdb._clock = lambda: start + timedelta(minutes=next(ticks))  # every write a later time
    fsdb.archive_run(5001, "standard", insert_files(5001))
    fsdb.update_run(5001, "standard", update_files(5001))
    name = "5001/standard"
    assert fsdb._assigned_of(name) == ArtdaqDB._assigned_of(fsdb, name) is not None

    # An update that fails after its index entries were staged: its assigned time must not
    # survive the rollback in the index (archived_at reads the index).
    def fail(stage):
        if stage.startswith("index:"):
            raise OSError(28, "No space left on device")

    fsdb.hook = fail
    with pytest.raises(ArtdaqDBError):
        fsdb.update_run(5001, "standard", update_files(5001))
    fsdb.hook = None
    fresh = open_artdaqdb(f"filesystemdb://{fsdb.root}")
    assert fresh._assigned_of(name) == ArtdaqDB._assigned_of(fresh, name)
    assert fresh.archived_at(5001, "standard") == ArtdaqDB._assigned_of(fresh, name)

    # An index without assigned times (written by another tool): read from the documents.
    index_path = fsdb.root / "SystemLayout" / "index.json"
    data = json.loads(index_path.read_text())
    data.pop("configurations.assigned")
    index_path.write_text(json.dumps(data))
    other = open_artdaqdb(f"filesystemdb://{fsdb.root}")
    assert other.archived_at(5001, "standard") == ArtdaqDB._assigned_of(other, name)


def test_read_hashes_reads_only_the_hashes_document(fsdb, monkeypatch):
    """The hashes check reads the one document the indexes list under entity ``hashes``, not
    the run's every document; the per-entity lookup follows later inserts of the same store."""
    from archiver_resources.artdaqdb.filesystem import Collection

    fsdb.archive_run(21, "standard", insert_files(21))
    expected = fsdb.read_hashes(21, "standard")
    assert expected is not None
    read = []
    original = Collection.read_document
    monkeypatch.setattr(Collection, "read_document",
                        lambda self, oid: read.append(oid) or original(self, oid))
    assert fsdb.read_hashes(21, "standard") == expected
    assert len(read) == 1
    fsdb.archive_run(22, "standard", insert_files(22))  # inserted after the lookup was built
    read.clear()
    assert fsdb.read_hashes(22, "standard") not in (None, expected)
    assert len(read) == 1


def test_read_hashes_finds_a_hashes_record_the_index_lists_under_no_entity(fsdb):
    """A hashes record missing from ``entities.name`` (an index written by another tool) is
    still found: when the indexes name none, every document of the configuration is read."""
    fsdb.archive_run(23, "standard", insert_files(23))
    expected = fsdb.read_hashes(23, "standard")
    index_path = fsdb.root / "RunHistory" / "index.json"
    index = json.loads(index_path.read_text())
    assert index["entities.name"].pop("hashes")
    index_path.write_text(json.dumps(index))
    reopened = open_artdaqdb(f"filesystemdb://{fsdb.root}")
    assert reopened.read_hashes(23, "standard") == expected


def test_a_document_is_the_same_bytes_encoded_whole_or_in_pieces(tmp_path):
    """Small FHiCL texts are encoded as one JSON string, big ones in pieces: the same file."""
    from archiver_resources.artdaqdb.filesystem import WHOLE_JSON_BELOW_CHARS, Collection
    from archiver_resources.fhicl import fhicl_to_record

    text = "".join(f"p{i}: {{ a: [1, 2.5, \"x y\"] b: 'é' }}  # c{i}\n" for i in range(3000))
    assert len(text) > WHOLE_JSON_BELOW_CHARS  # several pieces when not encoded whole
    record = fhicl_to_record(text, "big")
    collection = Collection(tmp_path, "RunHistory", fsync=False)
    whole = collection.stage_document("a" * 24, record, source_chars=1)
    pieces = collection.stage_document("b" * 24, record, source_chars=len(text))
    assert whole.read_bytes() == pieces.read_bytes()
    assert json.loads(whole.read_bytes()) == json.loads(json.dumps(record))
