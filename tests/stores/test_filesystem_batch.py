"""filesystemdb group commit (``store.batch()``): the same bytes as one commit per write, what
readers see before the flush, and crash safety (every run complete or absent, repaired by the
next write)."""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import textwrap
import time
from pathlib import Path

import pytest

import archiver_resources.artdaqdb.filesystem as fs
from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.artdaqdb.filesystem import JOURNAL_DIR, FilesystemArtdaqDB
from tests.stores.samples import insert_files, update_files
from tests.support import sigkill_when_paused

REPO = Path(__file__).resolve().parents[2]
DOCS_PER_RUN = 3 + 4 + 1  # 3 components + RunHistory, metadata, boot, hashes; RunHistory2
FILES_PER_RUN = DOCS_PER_RUN + 1  # exported: and schema.fcl


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def journals(root: Path) -> list[Path]:
    return list((root / "SystemLayout" / JOURNAL_DIR).glob("*.journal"))


def archive_and_update(db, run: int, n_processes: int = 3) -> None:
    """What import_run does to the store for a finished run."""
    db.archive_run(run, "standard", insert_files(run, n_processes=n_processes))
    db.versions(run, "standard")
    db.update_run(run, "standard", update_files(), once=True)
    db.versions(run, "standard")


@pytest.fixture
def counted_oids(monkeypatch):
    """Deterministic oids (a counter), so two stores written alike are alike byte for byte."""
    counter = itertools.count(1)

    def reset():
        nonlocal counter
        counter = itertools.count(1)

    monkeypatch.setattr(fs, "new_oid", lambda: f"{next(counter):024x}")
    return reset


@pytest.fixture
def small_blocks(monkeypatch):
    """Index encoder blocks of a few items, so a few runs split blocks and promote members to
    blocks of their own, as 100,000 runs do."""
    monkeypatch.setattr(fs, "_LIST_BLOCK", 4)
    monkeypatch.setattr(fs, "_KEYS_BLOCK", 3)
    monkeypatch.setattr(fs, "_BIG_LIST", 6)


def test_batched_store_is_byte_identical(tmp_path, clock, counted_oids, small_blocks):
    root = tmp_path / "fsdb_archive"
    uri = f"filesystemdb://{root}"
    trees = []
    start = clock.now
    for batched in (False, True):
        counted_oids()
        clock.now = start
        db = open_artdaqdb(uri, clock=clock)
        for run in (1, 2, 3):  # a store that exists before, read back by a fresh object
            archive_and_update(db, run, processes(run))
        db = open_artdaqdb(uri, clock=clock)
        with (db.batch() if batched else _nothing()):
            for run in range(4, 12):
                clock.advance(1)
                archive_and_update(db, run, processes(run))
        trees.append(tree(root))
        shutil.rmtree(root)
    unbatched, batched = trees
    assert sorted(unbatched) == sorted(batched)
    assert [name for name in unbatched if unbatched[name] != batched[name]] == []
    index = json.loads(batched["RunHistory/index.json"])
    assert len(index["ouid"]) == sum(DOCS_PER_RUN - 3 + processes(run) for run in range(1, 12))


def processes(run: int) -> int:
    """component03/04 in run 1, then again from run 7: their entity keys are older than
    RunHistory2's but reach a block of their own later (the encoder's member order then
    depends on when it started to follow the index, which batching must not change)."""
    return 5 if run == 1 or run >= 7 else 3


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_batch_writes_each_index_once(fsdb_root, clock, monkeypatch):
    db = open_artdaqdb(f"filesystemdb://{fsdb_root}", clock=clock)
    writes = []
    original = fs.Collection.publish_index

    def counting(self, tmp, *, fsync):
        writes.append(self.name)
        return original(self, tmp, fsync=fsync)

    monkeypatch.setattr(fs.Collection, "publish_index", counting)
    with db.batch():
        for run in range(1, 6):
            archive_and_update(db, run)
    assert sorted(writes) == ["RunHistory", "SystemLayout"]
    assert sorted(db.archived_runs()) == [1, 2, 3, 4, 5] and not journals(fsdb_root)


@pytest.fixture
def fsdb_root(tmp_path) -> Path:
    return tmp_path / "fsdb_archive"


def test_what_readers_see_before_the_flush(fsdb_root, clock):
    db = open_artdaqdb(f"filesystemdb://{fsdb_root}", clock=clock)
    archive_and_update(db, 1)
    with db.batch():
        archive_and_update(db, 2)
        # this object sees its own writes: import_run's update and the checks need that
        assert db.is_archived(2, "standard") and sorted(db.archived_runs()) == [1, 2]
        assert db.versions(2, "standard") == ["2/standard", "2/standardv1"]
        assert len(db.export_run(2)) == FILES_PER_RUN
        # any other reader: not yet there, and index.json (all the C++ reads) does not name it
        other = FilesystemArtdaqDB(f"filesystemdb://{fsdb_root}")
        assert not other.is_archived(2, "standard") and sorted(other.archived_runs()) == [1]
        on_disk = json.loads((fsdb_root / "SystemLayout" / "index.json").read_text())
        assert sorted(on_disk["configurations.name"]) == ["1/standard"]
        assert len(journals(fsdb_root)) == 2  # the insert and the update, deferred
    other = FilesystemArtdaqDB(f"filesystemdb://{fsdb_root}")
    assert sorted(other.archived_runs()) == [1, 2] and not journals(fsdb_root)
    assert len(other.export_run(2)) == FILES_PER_RUN


def test_an_exception_in_the_block_still_flushes(fsdb_root, clock):
    db = open_artdaqdb(f"filesystemdb://{fsdb_root}", clock=clock)
    with pytest.raises(RuntimeError):
        with db.batch():
            archive_and_update(db, 1)
            archive_and_update(db, 2)
            raise RuntimeError("the step failed")
    other = FilesystemArtdaqDB(f"filesystemdb://{fsdb_root}")
    assert sorted(other.archived_runs()) == [1, 2] and not journals(fsdb_root)


def test_a_failing_write_is_undone_and_the_batch_keeps_the_others(fsdb_root, clock,
                                                                  monkeypatch):
    db = open_artdaqdb(f"filesystemdb://{fsdb_root}", clock=clock)

    class Crash(Exception):
        pass

    def crash(stage):
        if stage == "document:component01":
            raise Crash(stage)

    follow = fs.IndexDict.follow
    failing = []

    def follow_or_fail(self):
        if failing:
            raise Crash("after the index entries were added in memory")
        return follow(self)

    monkeypatch.setattr(fs.IndexDict, "follow", follow_or_fail)
    with db.batch():
        archive_and_update(db, 1)
        db.hook = crash  # run 2: documents half written
        with pytest.raises(Crash):
            db.archive_run(2, "standard", insert_files(2))
        db.hook = None
        failing.append(True)  # run 3: every document written, its entries in memory
        with pytest.raises(Crash):
            db.archive_run(3, "standard", insert_files(3))
        failing.clear()
        assert not db.is_archived(3, "standard") and sorted(db.archived_runs()) == [1]
        archive_and_update(db, 4)
    other = FilesystemArtdaqDB(f"filesystemdb://{fsdb_root}")
    assert sorted(other.archived_runs()) == [1, 4] and not journals(fsdb_root)
    index = json.loads((fsdb_root / "RunHistory" / "index.json").read_text())
    on_disk = {p.stem for p in (fsdb_root / "RunHistory").glob("*.json")} - {"index"}
    assert set(index["ouid"]) == on_disk and len(on_disk) == 2 * DOCS_PER_RUN
    other.archive_run(2, "standard", insert_files(2))
    other.archive_run(3, "standard", insert_files(3))
    assert sorted(other.archived_runs()) == [1, 2, 3, 4]


def test_another_writer_during_the_batch_rolls_its_writes_forward(fsdb_root, clock):
    db = open_artdaqdb(f"filesystemdb://{fsdb_root}", clock=clock)
    other = FilesystemArtdaqDB(f"filesystemdb://{fsdb_root}", clock=clock)
    with db.batch():
        archive_and_update(db, 1)
        archive_and_update(other, 2)  # takes the lock between our writes: indexes ours too
        assert sorted(FilesystemArtdaqDB(f"filesystemdb://{fsdb_root}").archived_runs()) == [1, 2]
        archive_and_update(db, 3)  # notices the new files: hands its journals over
        assert sorted(db.archived_runs()) == [1, 2, 3]
    fresh = FilesystemArtdaqDB(f"filesystemdb://{fsdb_root}")
    assert sorted(fresh.archived_runs()) == [1, 2, 3] and not journals(fsdb_root)
    for collection in ("RunHistory", "SystemLayout"):
        written = json.loads((fsdb_root / collection / "index.json").read_text())
        assert written == json.loads(json.dumps(fresh.rebuild_index(collection)))


# ---- crashes -------------------------------------------------------------------------------

def _batch_script(root: Path, runs: list[int], pause_at: str, pause_run: int, marker: str) -> str:
    return textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from archiver_resources.artdaqdb.filesystem import FilesystemArtdaqDB
        from tests.stores.samples import insert_files, update_files
        db = FilesystemArtdaqDB("filesystemdb://{root}")
        current = [None]
        def hook(stage):
            if stage == {pause_at!r} and current[0] == {pause_run!r}:
                open({marker!r}, "w").write(stage)
                time.sleep(60)
        db.hook = hook
        with db.batch():
            for run in {runs!r}:
                current[0] = run
                db.archive_run(run, "standard", insert_files(run))
                db.update_run(run, "standard", update_files(), once=True)
            current[0] = "flush"
        print("OK")
    """)


def _kill_at(root: Path, tmp_path: Path, runs, pause_at: str, pause_run) -> None:
    marker = tmp_path / "paused"
    sigkill_when_paused(_batch_script(root, runs, pause_at, pause_run, str(marker)), marker)


def assert_indexes_name_only_complete_runs(root: Path) -> list[str]:
    """What the C++ (index.json only, no journals) sees: each configuration named in an index
    has every document of its run, on disk and valid."""
    layout = json.loads((root / "SystemLayout" / "index.json").read_text()) \
        if (root / "SystemLayout" / "index.json").exists() else {"configurations.name": {}}
    history = json.loads((root / "RunHistory" / "index.json").read_text()) \
        if (root / "RunHistory" / "index.json").exists() else {"configurations.name": {}}
    for name in layout["configurations.name"]:
        # every document of the insert (and of the update, when it is indexed)
        assert len(history["configurations.name"].get(name, [])) in (DOCS_PER_RUN - 1,
                                                                      DOCS_PER_RUN), name
    for collection, index in (("SystemLayout", layout), ("RunHistory", history)):
        for oids in index["configurations.name"].values():
            for oid in oids:
                json.loads((root / collection / f"{oid}.json").read_text())
    return sorted(layout["configurations.name"])


@pytest.mark.parametrize("pause_at,pause_run,complete", [
    ("deferred", 3, [1, 2, 3]),  # run 3 inserted, not indexed; its update not started
    ("document:component01", 3, [1, 2]),  # run 3's documents half written
    ("index:RunHistory", "flush", [1, 2, 3]),  # the flush: RunHistory written, SystemLayout not
])
def test_sigkill_mid_batch_leaves_complete_or_absent_runs(tmp_path, pause_at, pause_run,
                                                          complete):
    root = tmp_path / "db_archive"
    _kill_at(root, tmp_path, [1, 2, 3], pause_at, pause_run)
    assert journals(root)
    # before any repair: no reader sees an incomplete run
    assert not assert_indexes_name_only_complete_runs(root)
    reader = FilesystemArtdaqDB(f"filesystemdb://{root}")
    assert reader.archived_runs() == {}
    # the next write repairs: complete runs indexed (rolled forward), the rest removed
    db = FilesystemArtdaqDB(f"filesystemdb://{root}")
    db.archive_run(9, "standard", insert_files(9))
    assert not journals(root)
    assert sorted(db.archived_runs()) == complete + [9]
    for run in complete:
        assert len(db.export_run(run)) == FILES_PER_RUN - (0 if pause_at != "deferred" or run < 3
                                                           else 1)  # run 3: no update yet
    assert_indexes_name_only_complete_runs(root)
    for collection in ("RunHistory", "SystemLayout"):
        written = json.loads((root / collection / "index.json").read_text())
        assert written == json.loads(json.dumps(db.rebuild_index(collection)))  # no orphans
    assert not [p for p in root.rglob("*") if ".tmp-" in p.name]
    for run in {1, 2, 3} - set(complete):  # an absent run archives again
        archive_and_update(db, run)
    if pause_at == "deferred":
        db.update_run(3, "standard", update_files(), once=True)
    assert sorted(db.archived_runs()) == [1, 2, 3, 9]
