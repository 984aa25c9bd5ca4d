"""Tests of run discovery, the finished-run rules and run-record reading (configuration name,
stop time, the UTF-8 and Latin-1 decode rule, the byte-order mark)."""

import hashlib
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from archiver_resources import runrecords
from archiver_resources.errors import RunRecordError
from archiver_resources.runrecords import (config_name_from_metadata, finished_state, list_runs,
                                           newest_mtime, read_run_record)

METADATA = (
    "Config name: demo/physics\n"
    "Component #0: tpc01\n"
    "\n"
    "DAQInterface start time: Tue Oct 15 14:02:11 UTC 2024\n"
)
STOP = "\nDAQInterface stop time: Tue Oct 15 16:02:48 UTC 2024\n"


def make_run(base: Path, name: str, files: dict[str, bytes | str]) -> Path:
    run_dir = base / name
    for rel, content in files.items():
        path = run_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode("utf-8")
        path.write_bytes(content)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


# --- discovery -------------------------------------------------------------------------------

def test_list_runs_digits_only(tmp_path):
    for name in ["1", "00123", "4567", "123 ", "1e3", "-1", "abc", ".record_directory_info",
                 "\u0661\u0662\u0663", "12.5"]:
        (tmp_path / name).mkdir()
    (tmp_path / "999").write_text("a file, not a run directory")
    listing = list_runs(tmp_path)
    assert listing.runs == {1: tmp_path / "1", 123: tmp_path / "00123", 4567: tmp_path / "4567"}
    assert listing.errors == {}


def test_zero_padded_run_works_end_to_end(tmp_path):
    make_run(tmp_path, "00042", {"metadata.txt": METADATA + STOP, "boot.txt": "x\n"})
    run_dir = list_runs(tmp_path).runs[42]
    assert finished_state(42, run_dir, min_age_seconds=3600).rule == "stop_time"
    record = read_run_record(42, run_dir)
    assert record.run == 42 and record.directory == tmp_path / "00042"
    assert record.relpaths == ["boot.txt", "metadata.txt"]


def test_duplicate_run_names_are_an_error_for_that_run_only(tmp_path):
    for name in ["123", "0123", "124"]:
        (tmp_path / name).mkdir()
    listing = list_runs(tmp_path)
    assert listing.runs == {124: tmp_path / "124"}
    err = listing.errors[123]
    assert isinstance(err, RunRecordError) and err.run == 123
    assert "0123" in str(err) and "123" in str(err)


def test_list_runs_missing_dir_names_the_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(RunRecordError, match="nope"):
        list_runs(missing)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunRecordError, match="not a directory"):
        list_runs(tmp_path / "file")


def test_list_runs_follows_symlinked_run_directory(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "runs").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "runs" / "7")
    assert list(list_runs(tmp_path / "runs").runs) == [7]


# --- config name -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("Config name: standard\n", "standard"),
    ("Config name: a/b/c  \n", "a_b_c"),
    ("Config name:\tphysics\n", "physics"),
    ("Config name:x\nConfig name: second\n", "second"),       # needs whitespace after colon
    ("Config name:   \nConfig name: later\n", "later"),        # empty value skipped
    (" Config name: indented\n", "standard"),                 # column 0 only
    ("Component #0: x\n", "standard"),
    ("", "standard"),
    ("Config name: first\nConfig name: second\n", "first"),
    ("\ufeffConfig name: physics\n", "physics"),              # a byte-order mark is removed
    ("\xef\xbb\xbfConfig name: physics\n", "physics"),        # the same mark, read as Latin-1
    ("Config name: a\ufeffb\n", "a\ufeffb"),                  # only a leading mark is one
])
def test_config_name_rule(text, expected):
    assert config_name_from_metadata(text) == expected


def test_byte_order_mark_on_metadata_hides_neither_stop_time_nor_configuration_name(tmp_path):
    bom = b"\xef\xbb\xbf"
    run_dir = make_run(tmp_path, "16", {"metadata.txt": bom + (STOP.lstrip() + METADATA).encode()})
    state = finished_state(16, run_dir, min_age_seconds=3600)
    assert state.rule == "stop_time" and state.stop_time == "Tue Oct 15 16:02:48 UTC 2024"
    record = read_run_record(16, run_dir)
    assert record.config_name == "demo_physics"
    assert record.read_bytes("metadata.txt").startswith(bom)  # the file itself is read as it is


# --- finished state --------------------------------------------------------------------------

def test_finished_by_stop_time(tmp_path):
    run_dir = make_run(tmp_path, "10", {"metadata.txt": METADATA + STOP})
    state = finished_state(10, run_dir, min_age_seconds=3600)
    assert state.finished and state.rule == "stop_time"
    assert state.stop_time == "Tue Oct 15 16:02:48 UTC 2024"
    assert state.start_time == "Tue Oct 15 14:02:11 UTC 2024"
    assert "stop time" in state.reason


def test_running_then_age_then_forced(tmp_path):
    run_dir = make_run(tmp_path, "11", {"metadata.txt": METADATA, "a.fcl": "x"})
    now = time.time()
    running = finished_state(11, run_dir, min_age_seconds=3600, now=now)
    assert (running.finished, running.rule) == (False, "running")
    assert running.stop_time is None and running.start_time is not None
    forced = finished_state(11, run_dir, min_age_seconds=3600, now=now, force=True)
    assert (forced.finished, forced.rule) == (True, "forced")
    aged = finished_state(11, run_dir, min_age_seconds=3600, now=now + 3601)
    assert (aged.finished, aged.rule) == (True, "age")
    as_datetime = datetime.fromtimestamp(now + 7200, tz=timezone.utc)
    assert finished_state(11, run_dir, min_age_seconds=3600, now=as_datetime).rule == "age"


def test_age_uses_newer_of_directory_and_metadata(tmp_path):
    run_dir = make_run(tmp_path, "12", {"metadata.txt": METADATA})
    old = 1_000_000_000
    os.utime(run_dir, (old, old))
    os.utime(run_dir / "metadata.txt", (old + 5000, old + 5000))
    assert finished_state(12, run_dir, min_age_seconds=3600, now=old + 6000).rule == "running"
    assert finished_state(12, run_dir, min_age_seconds=3600, now=old + 8601).rule == "age"


def test_stop_time_regex_needs_column_zero_and_whitespace(tmp_path):
    run_dir = make_run(tmp_path, "13", {"metadata.txt": METADATA +
                                        " DAQInterface stop time: x\nDAQInterface stop time:y\n"})
    assert finished_state(13, run_dir, min_age_seconds=3600).rule == "running"


def test_crlf_metadata_stop_time_value_clean(tmp_path):
    run_dir = make_run(tmp_path, "14", {"metadata.txt": (METADATA + STOP).replace("\n", "\r\n")})
    assert finished_state(14, run_dir, min_age_seconds=3600).stop_time == \
        "Tue Oct 15 16:02:48 UTC 2024"


def test_no_metadata_uses_directory_age(tmp_path):
    run_dir = make_run(tmp_path, "15", {"boot.txt": "x"})
    state = finished_state(15, run_dir, min_age_seconds=10, now=time.time() + 100)
    assert state.rule == "age" and "no metadata.txt" in state.reason


def test_finished_state_missing_dir(tmp_path):
    with pytest.raises(RunRecordError, match="run 16"):
        finished_state(16, tmp_path / "16", min_age_seconds=1)


def test_newest_mtime_walks_everything(tmp_path):
    run_dir = make_run(tmp_path, "17", {"metadata.txt": "x", "sub/deep.fcl": "y"})
    for p in [run_dir, run_dir / "metadata.txt", run_dir / "sub"]:
        os.utime(p, (1000, 1000))
    os.utime(run_dir / "sub" / "deep.fcl", (5000, 5000))
    assert newest_mtime(run_dir) == 5000


# --- reading ---------------------------------------------------------------------------------

def _expected_fingerprint(items):
    digest = hashlib.sha256()
    for rel, data in items:
        digest.update(rel.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return digest.hexdigest()


def test_read_run_record_lists_sorted_and_fingerprints(tmp_path):
    run_dir = make_run(tmp_path, "20", {"metadata.txt": METADATA, "b.fcl": "b: 1\n",
                                        "sub/a.fcl": "a: 2\n", "A.fcl": ""})
    record = read_run_record(20, run_dir)
    assert record.relpaths == ["A.fcl", "b.fcl", "metadata.txt", "sub/a.fcl"]
    assert [f.size for f in record.files] == [0, 5, len(METADATA), 5]
    assert record.total_bytes == 10 + len(METADATA)
    assert record.config_name == "demo_physics"
    assert record.fingerprint == _expected_fingerprint(
        [("A.fcl", b""), ("b.fcl", b"b: 1\n"), ("metadata.txt", METADATA.encode()),
         ("sub/a.fcl", b"a: 2\n")])
    assert record.warnings == [] and record.latin1_files == []


def test_fingerprint_changes_with_one_byte_and_with_a_rename(tmp_path):
    run_dir = make_run(tmp_path, "21", {"x.fcl": "value: 1\n", "y.fcl": "z"})
    first = read_run_record(21, run_dir).fingerprint
    assert read_run_record(21, run_dir).fingerprint == first
    (run_dir / "x.fcl").write_text("value: 2\n")
    second = read_run_record(21, run_dir).fingerprint
    assert second != first
    (run_dir / "x.fcl").rename(run_dir / "w.fcl")
    assert read_run_record(21, run_dir).fingerprint not in (first, second)


def test_fingerprint_separates_path_and_content(tmp_path):
    one = read_run_record(1, make_run(tmp_path, "1", {"ab": "c"})).fingerprint
    two = read_run_record(2, make_run(tmp_path, "2", {"a": "bc"})).fingerprint
    assert one != two


def test_read_text_utf8_universal_newlines(tmp_path):
    run_dir = make_run(tmp_path, "22", {"a.txt": b"l1\r\nl2\rl3\n\xc3\xbc"})
    record = read_run_record(22, run_dir)
    assert record.read_text("a.txt") == "l1\nl2\nl3\nü"
    assert record.read_bytes("a.txt") == b"l1\r\nl2\rl3\n\xc3\xbc"
    assert record.warnings == []


def test_read_text_latin1_fallback_keeps_every_byte_and_warns(tmp_path):
    raw = b"name: M\xfcller\r\nend\n"
    run_dir = make_run(tmp_path, "23", {"boot.txt": raw})
    record = read_run_record(23, run_dir)
    text = record.read_text("boot.txt")
    assert text == "name: Müller\r\nend\n"          # verbatim: no newline translation
    assert text.encode("latin-1") == raw
    assert record.latin1_files == ["boot.txt"]
    assert len(record.warnings) == 1 and "run 23" in record.warnings[0] \
        and "boot.txt" in record.warnings[0] and "Latin-1" in record.warnings[0]
    record.read_text("boot.txt")
    assert len(record.warnings) == 1


def test_read_text_unknown_file(tmp_path):
    record = read_run_record(24, make_run(tmp_path, "24", {"a": "x"}))
    with pytest.raises(RunRecordError, match="not part"):
        record.read_text("b")


def test_empty_run_directory_is_an_error(tmp_path):
    (tmp_path / "25" / "emptysub").mkdir(parents=True)
    with pytest.raises(RunRecordError) as err:
        read_run_record(25, tmp_path / "25")
    assert err.value.run == 25 and "no files" in str(err.value)


def test_size_cap(tmp_path):
    run_dir = make_run(tmp_path, "26", {"big.fcl": b"x" * 101, "ok.fcl": b"y" * 100})
    with pytest.raises(RunRecordError) as err:
        read_run_record(26, run_dir, max_file_bytes=100)
    assert err.value.file == "big.fcl" and "101 bytes" in str(err.value)
    assert read_run_record(26, run_dir, max_file_bytes=101).total_bytes == 201


def test_symlink_inside_is_followed(tmp_path):
    run_dir = make_run(tmp_path, "27", {"real.fcl": "r: 1\n", "sub/x.fcl": "x"})
    os.symlink("real.fcl", run_dir / "alias.fcl")
    os.symlink("sub", run_dir / "linkdir")
    record = read_run_record(27, run_dir)
    assert record.relpaths == ["alias.fcl", "linkdir/x.fcl", "real.fcl", "sub/x.fcl"]
    assert record.read_text("alias.fcl") == "r: 1\n"


def test_symlink_escaping_the_run_is_refused(tmp_path):
    (tmp_path / "secret").write_text("outside")
    run_dir = make_run(tmp_path, "28", {"a.fcl": "x"})
    os.symlink(tmp_path / "secret", run_dir / "evil.fcl")
    with pytest.raises(RunRecordError) as err:
        read_run_record(28, run_dir)
    assert err.value.run == 28 and err.value.file == "evil.fcl" and "outside" in str(err.value)


def test_relative_symlink_escaping_via_dotdot_is_refused(tmp_path):
    make_run(tmp_path, "30", {"a.fcl": "x"})
    run_dir = make_run(tmp_path, "29", {"a.fcl": "x"})
    os.symlink("../30/a.fcl", run_dir / "other.fcl")
    with pytest.raises(RunRecordError, match="outside"):
        read_run_record(29, run_dir)


def test_symlink_loops_are_refused(tmp_path):
    run_dir = make_run(tmp_path, "31", {"a.fcl": "x"})
    os.symlink("loop2", run_dir / "loop1")
    os.symlink("loop1", run_dir / "loop2")
    with pytest.raises(RunRecordError, match="loop"):
        read_run_record(31, run_dir)
    run_dir = make_run(tmp_path, "32", {"sub/a.fcl": "x"})
    os.symlink("..", run_dir / "sub" / "up")
    with pytest.raises(RunRecordError, match="loop") as err:
        read_run_record(32, run_dir)
    assert err.value.file == "sub/up"


def test_broken_symlink_is_an_error(tmp_path):
    run_dir = make_run(tmp_path, "33", {"a.fcl": "x"})
    os.symlink("missing.fcl", run_dir / "b.fcl")
    with pytest.raises(RunRecordError, match="broken symlink"):
        read_run_record(33, run_dir)


def test_fifo_is_skipped_with_a_warning(tmp_path):
    run_dir = make_run(tmp_path, "34", {"a.fcl": "x"})
    os.mkfifo(run_dir / "pipe")
    record = read_run_record(34, run_dir)
    assert record.relpaths == ["a.fcl"] and record.skipped == ["pipe"]
    assert any("pipe" in w and "FIFO" in w for w in record.warnings)


def test_unreadable_file_is_an_error(tmp_path, monkeypatch):
    run_dir = make_run(tmp_path, "35", {"a.fcl": "x", "locked.fcl": "y"})
    real_open = os.open

    def fake_open(path, *args, **kwargs):  # every run-record file is opened with os.open
        if str(path).endswith("locked.fcl"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    with pytest.raises(RunRecordError) as err:
        read_run_record(35, run_dir)
    assert err.value.run == 35 and err.value.file == "locked.fcl"
    assert "Permission denied" in str(err.value)


def test_unreadable_file_real_permissions(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root bypasses file permissions")
    run_dir = make_run(tmp_path, "36", {"locked.fcl": "y"})
    (run_dir / "locked.fcl").chmod(0)
    try:
        with pytest.raises(RunRecordError, match="locked.fcl"):
            read_run_record(36, run_dir)
    finally:
        (run_dir / "locked.fcl").chmod(0o644)


def test_read_missing_run_dir(tmp_path):
    with pytest.raises(RunRecordError, match="run 37"):
        read_run_record(37, tmp_path / "37")


def test_metadata_read_for_finished_state_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(runrecords, "_METADATA_READ_LIMIT", 10)
    run_dir = make_run(tmp_path, "38", {"metadata.txt": METADATA})
    with pytest.raises(RunRecordError, match="metadata.txt"):
        finished_state(38, run_dir, min_age_seconds=1)


def test_all_digit_names_beyond_64_bit_run_numbers_are_no_runs(tmp_path):
    from archiver_resources.runrecords import MAX_RUN_NUMBER

    for name in ("9" * 200, str(MAX_RUN_NUMBER + 1), "1" + "0" * 40):
        (tmp_path / name).mkdir()
    (tmp_path / str(MAX_RUN_NUMBER)).mkdir()
    (tmp_path / ("0" * 20 + "7")).mkdir()
    assert sorted(list_runs(tmp_path).runs) == [7, MAX_RUN_NUMBER]


# --- one reading rule: never block, regular files only, bounded depth, symlinked runs ------------

@pytest.mark.timeout(20)  # a regression blocks in open(); the timeout fails it fast
def test_fifo_named_metadata_never_blocks_and_is_refused_by_name(tmp_path):
    run_dir = make_run(tmp_path, "40", {"a.fcl": "x"})
    os.mkfifo(run_dir / "metadata.txt")
    with pytest.raises(RunRecordError) as caught:
        finished_state(40, run_dir, min_age_seconds=1)
    assert "run 40, file metadata.txt: FIFO, not a regular file" in str(caught.value)
    assert not caught.value.retryable
    record = read_run_record(40, run_dir)  # the listing skips it, as any FIFO
    assert record.relpaths == ["a.fcl"] and record.skipped == ["metadata.txt"]


def test_metadata_symlink_is_followed_inside_the_run_only(tmp_path):
    run_dir = make_run(tmp_path, "41", {"real/meta": METADATA + STOP})
    os.symlink("real/meta", run_dir / "metadata.txt")
    assert finished_state(41, run_dir, min_age_seconds=1).rule == "stop_time"
    (tmp_path / "outside.txt").write_text(METADATA + STOP)
    (run_dir / "metadata.txt").unlink()
    os.symlink(tmp_path / "outside.txt", run_dir / "metadata.txt")
    with pytest.raises(RunRecordError, match="run 41, file metadata.txt: symlink points outside"):
        finished_state(41, run_dir, min_age_seconds=1)


def test_opens_are_non_blocking_and_refuse_a_final_symlink(tmp_path, monkeypatch):
    run_dir = make_run(tmp_path, "42", {"a.fcl": "x", "metadata.txt": METADATA})
    flags = []
    real_open = os.open

    def spy(path, mode, *args, **kwargs):
        flags.append(mode)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    finished_state(42, run_dir, min_age_seconds=1)
    read_run_record(42, run_dir).read_text("a.fcl")
    assert flags and all(f & os.O_NONBLOCK and f & os.O_NOFOLLOW for f in flags)


def test_deep_directories_are_refused_by_name_without_recursion(tmp_path, nested_dirs):
    run_dir = make_run(tmp_path, "43", {"a.fcl": "x"})
    nested_dirs(run_dir, 1500, "a")
    with pytest.raises(RunRecordError) as caught:
        read_run_record(43, run_dir)
    message = str(caught.value)
    assert message.startswith("run 43, file a/a/a/") and "nested more than 32 levels" in message
    assert not caught.value.retryable
    with pytest.raises(RunRecordError, match="nested more than 32 levels"):
        newest_mtime(run_dir)


def test_directories_up_to_the_depth_limit_are_read(tmp_path, nested_dirs):
    run_dir = make_run(tmp_path, "44", {"a.fcl": "x"})
    nested_dirs(run_dir, runrecords.MAX_DIRECTORY_DEPTH)
    record = read_run_record(44, run_dir)
    assert record.relpaths[-1] == "d/" * runrecords.MAX_DIRECTORY_DEPTH + "deep.fcl"
    nested_dirs(run_dir / "d", runrecords.MAX_DIRECTORY_DEPTH, "e")  # d/e/…: one level too deep
    with pytest.raises(RunRecordError, match=r"run 44, file d/e/e/.*nested more than"):
        read_run_record(44, run_dir)


def test_a_long_path_in_a_message_is_shortened(tmp_path, nested_dirs):
    run_dir = make_run(tmp_path, "45", {"a.fcl": "x"})
    nested_dirs(run_dir, 40, "x" * 20)
    with pytest.raises(RunRecordError) as caught:
        read_run_record(45, run_dir)
    assert "…" in str(caught.value) and len(str(caught.value)) < 300


def test_symlinked_run_directory_inside_the_run_records_is_followed(tmp_path):
    runs = tmp_path / "runs"
    target = make_run(runs / "moved", "46", {"a.fcl": "x", "metadata.txt": METADATA + STOP})
    os.symlink(target, runs / "46")
    assert list(list_runs(runs).runs) == [46]
    assert finished_state(46, runs / "46", min_age_seconds=1).rule == "stop_time"
    assert read_run_record(46, runs / "46").relpaths == ["a.fcl", "metadata.txt"]


@pytest.mark.parametrize("where", ["outside", "the-run-records-directory", "broken"])
def test_symlinked_run_directory_leading_elsewhere_is_refused(tmp_path, where):
    runs = tmp_path / "runs"
    runs.mkdir()
    outside = make_run(tmp_path, "secrets", {"id_rsa": "KEY", "metadata.txt": METADATA + STOP})
    target = {"outside": outside, "the-run-records-directory": runs,
              "broken": tmp_path / "gone"}[where]
    os.symlink(target, runs / "47")
    reason = "broken or looping symlink" if where == "broken" else "outside the run records"
    for read in (lambda: finished_state(47, runs / "47", min_age_seconds=1),
                 lambda: read_run_record(47, runs / "47")):
        with pytest.raises(RunRecordError) as caught:
            read()
        assert str(caught.value).startswith("run 47: run directory ") and reason in str(caught.value)
        assert not caught.value.retryable


# --- a record that changes while it is read ---------------------------------------------------

def test_a_file_modified_after_listing_is_a_retryable_change(tmp_path):
    run_dir = make_run(tmp_path, "48", {"a.fcl": "a: 1\n", "b.fcl": "b: 2\n"})
    record = read_run_record(48, run_dir)
    (run_dir / "b.fcl").write_text("b: 3\n")  # same size, new content
    with pytest.raises(RunRecordError) as caught:
        record.read_text("b.fcl")
    assert "run 48, file b.fcl: the run record changed while it was being read" in str(caught.value)
    assert caught.value.retryable
    assert record.read_text("a.fcl") == "a: 1\n"


@pytest.mark.parametrize("change,what", [
    (lambda d: (d / "c.fcl").write_text("c: 1\n"), "file c.fcl: .*(added)"),
    (lambda d: (d / "b.fcl").unlink(), "file b.fcl: .*(removed)"),
    (lambda d: (d / "a.fcl").write_text("a: 11\n"), "file a.fcl: .*(modified)"),
], ids=["added", "removed", "modified"])
def test_confirm_unchanged_names_the_changed_file(tmp_path, change, what):
    run_dir = make_run(tmp_path, "49", {"a.fcl": "a: 1\n", "b.fcl": "b: 2\n"})
    record = read_run_record(49, run_dir)
    record.confirm_unchanged()  # nothing changed yet
    change(run_dir)
    with pytest.raises(RunRecordError, match=what) as caught:
        record.confirm_unchanged()
    assert caught.value.retryable


@pytest.mark.timeout(20)
def test_a_file_replaced_by_a_fifo_after_listing_never_blocks(tmp_path):
    run_dir = make_run(tmp_path, "50", {"a.fcl": "a: 1\n"})
    record = read_run_record(50, run_dir)
    (run_dir / "a.fcl").unlink()
    os.mkfifo(run_dir / "a.fcl")
    with pytest.raises(RunRecordError, match="changed while it was being read") as caught:
        record.read_bytes("a.fcl")
    assert caught.value.retryable


def test_a_file_replaced_by_a_symlink_after_listing_is_not_followed(tmp_path):
    run_dir = make_run(tmp_path, "51", {"a.fcl": "a: 1\n"})
    (tmp_path / "secret").write_text("a: 2\n")
    record = read_run_record(51, run_dir)
    (run_dir / "a.fcl").unlink()
    os.symlink(tmp_path / "secret", run_dir / "a.fcl")
    with pytest.raises(RunRecordError, match=r"changed while .*replaced by a symlink"):
        record.read_bytes("a.fcl")


def test_warnings_escape_control_characters_of_file_names(tmp_path):
    run_dir = make_run(tmp_path, "52", {"a.fcl": "x", "b\x1b[2K.txt": b"caf\xe9"})
    os.mkfifo(run_dir / "p\rq")
    record = read_run_record(52, run_dir)
    record.read_all_text()
    assert record.warnings and all("\x1b" not in w and "\r" not in w for w in record.warnings)
    assert any("file b\\x1b[2K.txt" in w for w in record.warnings)
    assert any("file p\\rq: skipped (FIFO" in w for w in record.warnings)
