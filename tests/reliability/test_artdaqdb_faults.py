"""artdaqDB faults: writes failing at every step (a quota-like write hook, a real full tmpfs, a
read-only filesystem), a corrupt ``index.json``, a document deleted behind the index, and the
bulkloader exiting non-zero, hanging past its timeout or printing to stderr. Whatever fails, no
half-written configuration and no temp/journal file stays behind, and the run archives exactly
once when the fault is gone."""

import errno
import json
import os
import random
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from archiver_resources.archiving import build_blob, import_run
from archiver_resources.artdaqdb import filesystem, open_artdaqdb
from archiver_resources.errors import ArtdaqDBError
from archiver_resources.samples import generate_run_records
from tests.reliability.conftest import OLD, SEED, import_settings, leftover_files

RUN = 31


def versions_ok(db, run):
    name = db.find_configuration(run)
    assert name is not None, f"run {run} not archived"
    assert db.versions(run, name.split("/", 1)[1]) == [name, f"{name}v1"]


@pytest.fixture
def records(tmp_path):
    generate_run_records(tmp_path / "run_records", [RUN, RUN + 1, RUN + 2], profile="small",
                         mtime=OLD)
    return tmp_path / "run_records"


def failing_stage(fail_at: int):
    real, calls = filesystem.stage, [0]

    def stage(path, data):
        calls[0] += 1
        if calls[0] == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)
    return stage, calls


def test_write_failing_at_any_step_leaves_nothing_half_written(records, tmp_path, monkeypatch):
    # Count the staged writes of one clean import (documents, indexes, journal, update).
    probe, calls = failing_stage(0)
    monkeypatch.setattr(filesystem, "stage", probe)
    db = open_artdaqdb(f"filesystemdb://{tmp_path / 'probe'}")
    import_run(RUN, records / str(RUN), db, import_settings())
    total = calls[0]
    monkeypatch.undo()
    assert total > 10
    points = sorted(random.Random(SEED).sample(range(1, total + 1), 8)) + [1, total]
    for point in sorted(set(points)):
        root = tmp_path / f"db{point}"
        hook, _ = failing_stage(point)
        monkeypatch.setattr(filesystem, "stage", hook)
        db = open_artdaqdb(f"filesystemdb://{root}")
        with pytest.raises((OSError, ArtdaqDBError)):
            import_run(RUN, records / str(RUN), db, import_settings())
        monkeypatch.undo()
        db = open_artdaqdb(f"filesystemdb://{root}")
        # The initial insert is all or nothing; a failed update leaves the insert alone.
        name = db.find_configuration(RUN)
        if name is not None:
            assert db.versions(RUN, "standard") == [name], (point, SEED)
        assert leftover_files(root) == [], (point, SEED)
        outcome = import_run(RUN, records / str(RUN), db, import_settings())
        assert outcome.action in ("inserted", "verified", "updated"), (point, SEED)
        versions_ok(db, RUN)


def test_write_failure_is_a_typed_error_naming_the_run(records, tmp_path, monkeypatch):
    hook, _ = failing_stage(3)
    monkeypatch.setattr(filesystem, "stage", hook)
    db = open_artdaqdb(f"filesystemdb://{tmp_path / 'db'}")
    with pytest.raises(ArtdaqDBError, match=f"run {RUN}"):
        import_run(RUN, records / str(RUN), db, import_settings())


def test_batched_run_with_disk_full_archives_each_run_once_after_the_fault(
        archive_env, monkeypatch):
    runs = [41, 42, 43, 44, 45]
    generate_run_records(archive_env.run_records, runs, profile="small", mtime=OLD)
    defs = archive_env.definitions()
    job = defs.resolve_job_def("archive_runs")
    real, calls = filesystem.stage, [0]

    def stage(path, data):  # the disk fills up during the third run's import
        calls[0] += 1
        if calls[0] > 40:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    tags = {"dagster/asset_partition_range_start": "41",
            "dagster/asset_partition_range_end": "45"}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("runs", [str(r) for r in runs])
        monkeypatch.setattr(filesystem, "stage", stage)
        result = job.execute_in_process(instance=instance, raise_on_error=False, tags=tags)
        monkeypatch.undo()
        assert not result.success
        db = open_artdaqdb(archive_env.artdaqdb_uri)
        # The range ran as one group commit (store.batch()): its good runs were written, but
        # the disk was full for the flush of the indexes too, so they wait, complete, in their
        # journals; the next writer indexes them (here recover(), as the backfill below would).
        db.recover()
        done = sorted(db.archived_runs())
        assert done and done == runs[:len(done)] and len(done) < len(runs)
        assert leftover_files(archive_env.root / "artdaqdb") == []
        # The disk has room again: the failed range is backfilled.
        again = job.execute_in_process(instance=instance, raise_on_error=False, tags=tags)
        assert again.success
        for run in runs:
            versions_ok(db, run)
        from tests.reliability.conftest import ucondb_versions

        assert ucondb_versions(archive_env.ucondb) == {str(r): 1 for r in runs}


# ---- a real full / read-only filesystem (needs mount privileges) ------------------------------

def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


@pytest.fixture
def small_fs(tmp_path):
    mountpoint = tmp_path / "small_fs"
    # tmpfs counts whole 4 kB pages: one archived small run (insert + update) takes ~40 pages,
    # two take ~74, so the first run fits with room for its temp files and the second cannot.
    mount_tmpfs(mountpoint, "200k")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


def test_real_full_disk_then_space_freed(records, small_fs, tmp_path):
    more = [RUN + 10 + i for i in range(12)]
    generate_run_records(records, more, profile="small", mtime=OLD)
    uri = f"filesystemdb://{small_fs / 'db'}"
    db = open_artdaqdb(uri)
    archived, failure = [], None
    for run in [RUN] + more:
        try:
            import_run(run, records / str(run), db, import_settings())
            archived.append(run)
        except (OSError, ArtdaqDBError) as error:
            failure = (run, error)
            break
    assert failure is not None, "the 200 kB tmpfs never filled up"
    assert archived, "not even one run fitted"
    assert "No space left" in str(failure[1])
    assert leftover_files(small_fs / "db") == []
    assert sorted(open_artdaqdb(uri).archived_runs()) == archived
    remount(small_fs, "size=16m")
    db = open_artdaqdb(uri)
    for run in [RUN] + more:
        import_run(run, records / str(run), db, import_settings())
        versions_ok(db, run)


def test_read_only_store_then_writable_again(records, small_fs):
    uri = f"filesystemdb://{small_fs / 'db'}"
    remount(small_fs, "size=16m")
    db = open_artdaqdb(uri)
    import_run(RUN, records / str(RUN), db, import_settings())
    remount(small_fs, "ro")
    try:
        with pytest.raises((OSError, ArtdaqDBError), match="Read-only"):
            import_run(RUN + 1, records / str(RUN + 1), open_artdaqdb(uri), import_settings())
        # Reading (verification of an archived run) still works on a read-only store.
        assert import_run(RUN, records / str(RUN), open_artdaqdb(uri),
                          import_settings()).action == "verified"
    finally:
        remount(small_fs, "rw")
    db = open_artdaqdb(uri)
    assert sorted(db.archived_runs()) == [RUN]
    import_run(RUN + 1, records / str(RUN + 1), db, import_settings())
    versions_ok(db, RUN + 1)
    assert leftover_files(small_fs / "db") == []


# ---- index and documents ---------------------------------------------------------------------

def test_corrupt_index_is_rebuilt_from_documents(records, tmp_path, caplog):
    root = tmp_path / "db"
    db = open_artdaqdb(f"filesystemdb://{root}")
    for run in (RUN, RUN + 1):
        import_run(run, records / str(run), db, import_settings())
    before = db.archived_runs()
    for index in root.glob("*/index.json"):
        index.write_bytes(b"{\x00 not json")
    db = open_artdaqdb(f"filesystemdb://{root}")
    assert db.archived_runs() == before
    assert "corrupt" in caplog.text and "rebuilding" in caplog.text
    for run in (RUN, RUN + 1):
        assert import_run(run, records / str(run), db, import_settings()).action == "verified"
        versions_ok(db, run)
    for index in root.glob("*/index.json"):
        json.loads(index.read_text())  # rewritten as valid JSON


def delete_document(root: Path, run: int, entity: str) -> Path:
    for path in sorted(root.rglob("*.json")):
        if path.name == "index.json":
            continue
        record = json.loads(path.read_text())
        if any(c.get("name") == f"{run}/standard" for c in record.get("configurations", [])) \
                and any(e.get("name") == entity for e in record.get("entities", [])):
            path.unlink()
            return path
    raise AssertionError(f"no document of entity {entity} for run {run}")


def test_document_deleted_behind_the_index_is_an_error_not_a_smaller_blob(records, tmp_path):
    root = tmp_path / "db"
    db = open_artdaqdb(f"filesystemdb://{root}")
    import_run(RUN, records / str(RUN), db, import_settings())
    delete_document(root, RUN, "tpc01")
    db = open_artdaqdb(f"filesystemdb://{root}")
    with pytest.raises(ArtdaqDBError, match=f"run {RUN}.*tpc01"):
        build_blob(RUN, db)


def test_document_deleted_behind_the_index_never_archives_a_second_copy(records, tmp_path):
    root = tmp_path / "db"
    db = open_artdaqdb(f"filesystemdb://{root}")
    import_run(RUN, records / str(RUN), db, import_settings())
    delete_document(root, RUN, "tpc01")
    db = open_artdaqdb(f"filesystemdb://{root}")
    try:
        import_run(RUN, records / str(RUN), db, import_settings())
    except ArtdaqDBError:
        pass
    versions_ok(db, RUN)  # still one configuration, one update: no duplicate insert


# ---- bulkloader ------------------------------------------------------------------------------

@pytest.fixture
def tools(tmp_path, monkeypatch):
    from tests.stores.conftest import install_fake_tools

    install_fake_tools(tmp_path / "bin", tmp_path / "tools.log", monkeypatch)
    return tmp_path / "bin"


def tool_store(tmp_path, timeout=5.0):
    return open_artdaqdb(f"filesystemdb://{tmp_path / 'tooldb'}", use_tools=True,
                         tool_timeout=timeout)


def test_bulkloader_exit_code_is_a_typed_error_with_stderr(records, tmp_path, tools, monkeypatch):
    monkeypatch.setenv("FAKE_BULKLOADER_FAIL", "3")
    db = tool_store(tmp_path)
    with pytest.raises(ArtdaqDBError) as caught:
        import_run(RUN, records / str(RUN), db, import_settings())
    message = str(caught.value)
    assert f"run {RUN}" in message and "code 3" in message and "simulated failure" in message
    assert caught.value.retryable
    monkeypatch.delenv("FAKE_BULKLOADER_FAIL")
    assert not tool_store(tmp_path).archived_runs()
    import_run(RUN, records / str(RUN), tool_store(tmp_path), import_settings())
    versions_ok(tool_store(tmp_path), RUN)
    assert leftover_files(tmp_path / "tooldb") == []


def test_bulkloader_hanging_past_its_timeout_is_killed(records, tmp_path, tools, monkeypatch):
    monkeypatch.setenv("FAKE_BULKLOADER_SLEEP", "60")
    db = tool_store(tmp_path, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(ArtdaqDBError, match=f"run {RUN}.*timed out after 1 s"):
        import_run(RUN, records / str(RUN), db, import_settings())
    assert time.monotonic() - started < 15
    left = subprocess.run(["pgrep", "-f", str(tools / "bulkloader")], capture_output=True,
                          text=True).stdout.split()
    assert not left, f"bulkloader processes survived the timeout: {left}"
    assert not tool_store(tmp_path).archived_runs()


def test_bulkloader_printing_to_stderr_but_succeeding_is_fine(records, tmp_path, tools):
    real = tools / "bulkloader"
    os.rename(real, tools / "bulkloader.real")
    real.write_text("#!/bin/bash\necho 'WARNING: locale not set; continuing' >&2\n"
                    f"exec {tools / 'bulkloader.real'} \"$@\"\n")
    real.chmod(0o755)
    import_run(RUN, records / str(RUN), tool_store(tmp_path), import_settings())
    versions_ok(tool_store(tmp_path), RUN)


def test_bulkloader_reimport_verifies_instead_of_failing(records, tmp_path, tools):
    """Crash/backfill path with use_tools: the run is already in artdaqDB, import runs again."""
    import_run(RUN, records / str(RUN), tool_store(tmp_path), import_settings())
    again = import_run(RUN, records / str(RUN), tool_store(tmp_path), import_settings())
    assert again.action in ("verified", "updated")
    versions_ok(tool_store(tmp_path), RUN)
