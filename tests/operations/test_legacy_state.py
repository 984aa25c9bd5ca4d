"""Legacy state files and failure logs (docs/migration-from-legacy.md §3.1): reading incl.
garbage and missing files, interpretation for the import into Dagster, state recovery, the
contiguous/attempted updates with the fresh-state
fix, atomic writers."""

import json
import logging
import os
import stat

import pytest

from archiver_resources import legacy_state as ls
from archiver_resources.legacy_state import (
    LegacyState, LegacyStateError, advance_attempted, advance_contiguous, append_failure_log,
    interpret, parse_failure_log, read_failure_log, read_legacy_work_dir, read_state,
    recover_state, update_state, write_failure_log, write_state,
)


# ------------------------------------------------------------------------------------ reading

def test_read_state_full_and_missing_keys(tmp_path):
    path = tmp_path / "importer_state.json"
    path.write_text('{"last_contiguous_run": 1005, "last_attempted_run": 1010}')
    assert read_state(path) == LegacyState(1005, 1010)
    path.write_text('{"last_attempted_run": 7}')
    assert read_state(path) == LegacyState(0, 7)
    path.write_text("{}")
    assert read_state(path) == LegacyState(0, 0)


@pytest.mark.parametrize("content", ["", "not json", "[1, 2]", '{"last_contiguous_run": ',
                                     b"\xff\xfe\x00garbage"])
def test_read_state_unparsable_is_empty_with_warning(tmp_path, caplog, content):
    path = tmp_path / "migrator_state.json"
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    with caplog.at_level(logging.WARNING, logger="archiver_resources.legacy_state"):
        assert read_state(path) == LegacyState(0, 0)
    assert len(caplog.records) == 1 and str(path) in caplog.records[0].getMessage()


def test_read_state_missing_file_warns(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="archiver_resources.legacy_state"):
        assert read_state(tmp_path / "nope.json") == LegacyState()
    assert "not found" in caplog.text


def test_read_state_bad_value_is_zero(tmp_path, caplog):
    path = tmp_path / "s.json"
    path.write_text('{"last_contiguous_run": "abc", "last_attempted_run": "12"}')
    with caplog.at_level(logging.WARNING, logger="archiver_resources.legacy_state"):
        assert read_state(path) == LegacyState(0, 12)
    assert "last_contiguous_run" in caplog.text


def test_failure_log_garbage_and_duplicates(tmp_path):
    path = tmp_path / "import_failures.log"
    path.write_bytes(b"1005\n  1003 \n1005\n\nrun 7\n12a\n-4\n1.5\n\xff\xfe\n\xd9\xa3\n0042\r\n1010")
    assert read_failure_log(path) == frozenset({1003, 1005, 42, 1010})


def test_failure_log_missing_is_empty(tmp_path):
    assert read_failure_log(tmp_path / "missing.log") == frozenset()
    assert parse_failure_log("") == frozenset()


def test_read_legacy_work_dir(tmp_path):
    (tmp_path / "importer_state.json").write_text('{"last_contiguous_run": 3, "last_attempted_run": 5}')
    (tmp_path / "import_failures.log").write_text("4\n4\n")
    (tmp_path / "migrate_failures.log").write_text("2\n")
    stages = read_legacy_work_dir(tmp_path)
    assert stages["import"].state == LegacyState(3, 5)
    assert stages["import"].failures == {4}
    assert stages["migration"].state == LegacyState(0, 0)
    assert stages["migration"].failures == {2}


# ----------------------------------------------------------------------------- interpretation

def test_interpret_import_stage():
    filesystem = set(range(1, 13)) | {20}
    artdaqdb = {1, 2, 3, 5, 6, 7, 30}
    failures = {4, 6, 8, 99}
    plan = interpret(LegacyState(3, 9), failures, artdaqdb, filesystem)
    assert plan.failed == (4, 8)
    assert plan.failed_without_source == (99,)
    assert plan.recovered == (6,)
    assert plan.done == (1, 2, 3, 5, 6, 7)
    assert plan.done_without_source == (30,)
    assert plan.skipped == (9,)  # <= high-water 9, not archived, never logged as failed
    assert plan.to_backfill == (4, 8, 9)
    assert plan.stage == "import"


def test_interpret_fresh_state_skips_nothing():
    plan = interpret(LegacyState(), frozenset(), {1}, {1, 2, 3}, stage="migration")
    assert plan.skipped == () and plan.failed == () and plan.done == (1,)
    assert plan.stage == "migration"


# ------------------------------------------------------------------------------ recover_state

def test_recover_state_empty_target():
    assert recover_state({1, 2, 3}, set()) == (0, 0, ())


def test_recover_state_import_example():
    filesystem = set(range(1000, 1016))
    artdaqdb = {1000, 1001, 1002, 1005, 1006, 1010}
    assert recover_state(filesystem, artdaqdb) == (
        1002, 1010, (1003, 1004, 1007, 1008, 1009))


def test_recover_state_contiguous_to_the_end():
    assert recover_state({1, 2, 3, 4, 5}, {2, 3, 4}) == (4, 4, (1,))


def test_recover_state_migration_uses_artdaqdb_as_source():
    artdaqdb = {10, 11, 12, 13, 20}
    ucondb = {11, 12, 14}  # 14 not in artdaqDB any more: still counts for max(U)
    assert recover_state(artdaqdb, ucondb) == (12, 14, (10, 13))


def test_recover_state_large():
    target = set(range(0, 200_000, 2)) | {1, 3}
    last_contiguous, last_attempted, failed = recover_state(range(200_000), target)
    assert (last_contiguous, last_attempted) == (4, 199_998)
    assert len(failed) == 100_000 - 1 - 2 and failed[:3] == (5, 7, 9)


# ----------------------------------------------------------- contiguous/attempted updates

def test_advance_contiguous_legacy_walk():
    assert advance_contiguous(10, [11, 12, 14]) == 12
    assert advance_contiguous(10, [13, 11]) == 11
    assert advance_contiguous(10, []) == 10
    assert advance_contiguous(10, [5, 6]) == 10  # never goes back


def test_advance_contiguous_fresh_state_fix():
    # legacy defect: L stays 0 with real run numbers; fixed: start below the batch's lowest run
    assert advance_contiguous(0, [1000, 1001, 1003], [1002]) == 1001
    assert advance_contiguous(0, [1000], [999]) == 998
    assert advance_contiguous(0, [], [500]) == 499
    assert advance_contiguous(0, [1, 2]) == 2
    assert advance_contiguous(0, []) == 0


def test_advance_attempted_and_update_state():
    assert advance_attempted(5, [3, 4]) == 5
    assert advance_attempted(5, [9, 7]) == 9
    assert advance_attempted(5, []) == 5
    assert update_state(LegacyState(), [1000, 1001], [1002]) == LegacyState(1001, 1002)
    assert update_state(LegacyState(1001, 1002), [1003], [1004]) == LegacyState(1001, 1004)


# ------------------------------------------------------------------------------------ writers

def test_write_state_format_and_roundtrip(tmp_path):
    path = tmp_path / "sub" / "importer_state.json"
    write_state(path, 1005, 1010)
    assert path.read_text() == '{\n  "last_contiguous_run": 1005,\n  "last_attempted_run": 1010\n}'
    assert read_state(path) == LegacyState(1005, 1010)
    assert [p.name for p in path.parent.iterdir()] == ["importer_state.json"]  # no temp left


def test_write_failure_log_sorted_unique(tmp_path):
    path = tmp_path / "import_failures.log"
    write_failure_log(path, [12, 3, 12, 7])
    assert path.read_text() == "3\n7\n12\n"
    write_failure_log(path, [])
    assert path.read_text() == ""


def test_append_failure_log_keeps_existing(tmp_path):
    path = tmp_path / "migrate_failures.log"
    path.write_text("9\n5")
    append_failure_log(path, [4, 2])
    assert path.read_text() == "9\n5\n2\n4\n"
    append_failure_log(tmp_path / "new.log", [1])
    assert (tmp_path / "new.log").read_text() == "1\n"


def test_atomic_replace_keeps_mode_and_old_content_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "importer_state.json"
    write_state(path, 1, 2)
    os.chmod(path, 0o640)
    write_state(path, 3, 4)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    before = path.read_text()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ls.os, "replace", broken_replace)
    with pytest.raises(LegacyStateError) as excinfo:
        write_state(path, 5, 6)
    assert "No space left on device" in str(excinfo.value)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["importer_state.json"]


def test_atomic_write_never_shows_partial_file(tmp_path):
    path = tmp_path / "import_failures.log"
    write_failure_log(path, range(1000))
    inode = path.stat().st_ino
    write_failure_log(path, range(2000))
    assert path.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert parse_failure_log(path.read_text()) == frozenset(range(2000))


def test_state_file_written_by_us_reads_back_in_legacy_json(tmp_path):
    path = tmp_path / "s.json"
    write_state(path, 0, 0)
    assert json.loads(path.read_text()) == {"last_contiguous_run": 0, "last_attempted_run": 0}
