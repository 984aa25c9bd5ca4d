"""Hostile and broken input: run directories, metadata.txt, FHiCL and config.yaml that are wrong in
every way we could think of. Each case must end in a typed error that names the run and the file
(or the config key), or be accepted by a documented rule with a warning naming run and file; the
sensor and the other runs carry on; nothing of a refused run reaches a store."""

import os
import time
from pathlib import Path

import dagster as dg
import pytest

from archiver_assets.archive.assets import locate_run_dir
from archiver_assets.archive.sensors import SensorCursor, plan_tick
from archiver_assets.partitions import run_of
from archiver_resources.archiving import import_run
from archiver_resources.config import load_config
from archiver_resources.errors import ConfigError, FhiclSyntaxError, RunRecordError
from archiver_resources.runrecords import list_runs
from archiver_resources.samples import generate_run_record
from tests.reliability.conftest import OLD, import_settings, leftover_files

GOOD_RUN = 7
BAD_RUN = 4242
MAX_FILE_BYTES = 200_000


def write(rel, data):
    def mutate(run_dir: Path):
        path = run_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    return mutate


def edit_metadata(fn):
    def mutate(run_dir: Path):
        path = run_dir / "metadata.txt"
        path.write_bytes(fn(path.read_bytes()))
    return mutate


def remove_all(run_dir: Path):
    for path in run_dir.iterdir():
        path.unlink()


def symlink(target, name):
    def mutate(run_dir: Path):
        os.symlink(target, run_dir / name)
    return mutate


def crlf(rel):
    def mutate(run_dir: Path):
        path = run_dir / rel
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    return mutate


# (case id, mutation, expected error type, fragments the message must contain).
# Every refusal names the run (the asset adds "run N:" for FHiCL errors, see the Dagster test) and
# the run-record file (FHiCL errors: the file, and the entity a .txt file was converted to).
REFUSED = [
    ("fhicl-unclosed-brace", write("tpc01.fcl", "a: {\n b: 1\n"), FhiclSyntaxError,
     ["tpc01.fcl:1:", "never closed"]),
    ("fhicl-garbage", write("tpc01.fcl", "@@@ !!!\n"), FhiclSyntaxError, ["tpc01.fcl:1:1"]),
    ("fhicl-binary", write("tpc01.fcl", bytes(range(256))), FhiclSyntaxError, ["tpc01.fcl:"]),
    ("fhicl-nul-byte", write("tpc01.fcl", b"a: 1\x00\nb: 2\n"), FhiclSyntaxError,
     ["tpc01.fcl:1:5", "\\x00"]),
    ("fhicl-bad-key", write("odd.fcl", "1abc: 2\n"), FhiclSyntaxError, ["odd.fcl:1:1", "1abc"]),
    ("fhicl-deep-nesting", write("deep.fcl", "a: " + "{b: " * 300 + "1" + "}" * 300 + "\n"),
     FhiclSyntaxError, ["deep.fcl:1:", "nesting deeper"]),
    ("file-over-size-limit", write("big.fcl", "a: 1\n" * 60_000), RunRecordError,
     [f"run {BAD_RUN}", "file big.fcl", "max_file_bytes"]),
    ("symlink-escapes", symlink("/etc/passwd", "evil.fcl"), RunRecordError,
     [f"run {BAD_RUN}", "file evil.fcl", "outside the run directory"]),
    ("symlink-escapes-dotdot", symlink("../../..", "up"), RunRecordError,
     [f"run {BAD_RUN}", "file up", "outside the run directory"]),
    ("symlink-loop-dir", symlink(".", "loop"), RunRecordError,
     [f"run {BAD_RUN}", "file loop", "symlink loop"]),
    ("symlink-loop-self", symlink("self", "self"), RunRecordError,
     [f"run {BAD_RUN}", "file self", "symlink loop"]),
    ("symlink-broken", symlink("missing.fcl", "gone.fcl"), RunRecordError,
     [f"run {BAD_RUN}", "file gone.fcl", "broken symlink"]),
    ("non-utf8-file-name", write(os.fsdecode(b"caf\xe9.fcl"), "a: 1\n"), RunRecordError,
     [f"run {BAD_RUN}", "caf", "not valid UTF-8"]),
]

# Accepted by a documented rule; the warning (if any) must name run and file.
ACCEPTED = [
    ("crlf-metadata", crlf("metadata.txt"), None),
    ("crlf-fhicl", crlf("tpc01.fcl"), None),
    ("binary-extra-file", write("core.bin", bytes(range(256)) * 4), "file core.bin"),
    ("nul-in-boot-txt", write("boot.txt", b"DAQ setup script: /x\x00y\n"),
     "file boot.txt, line 1: cannot be written as valid FHiCL; kept as a comment"),
    # Text files the converters turn into FHiCL: always valid FHiCL, repaired with a warning
    # rather than a run that fails at every attempt.
    ("latin1-settings", write("settings.txt", b"caf\xe9: 1\n"),
     "file settings.txt, line 1: key 'café' is not a FHiCL name; written as caf_"),
    ("settings-garbage", write("settings.txt", "=====\n:::\n"),
     "file settings.txt, line 2: cannot be written as valid FHiCL"),
    ("known-boardreaders-garbage", write("known_boardreaders_list.txt", '"""\n'),
     "file known_boardreaders_list.txt, line 1: key '\"\"' is not a FHiCL name"),
    ("metadata-garbage-keys", edit_metadata(lambda b: b + b"\n:::: \x01\x02 garbage\n{{{}}}\n"),
     "file metadata.txt, line"),
    ("metadata-byte-order-mark", edit_metadata(lambda b: b"\xef\xbb\xbf" + b),
     "file metadata.txt: UTF-8 byte-order mark removed"),
    ("fifo", lambda d: os.mkfifo(d / "pipe.fcl"), "file pipe.fcl: skipped (FIFO"),
    ("very-long-file-name", write("x" * 250 + ".fcl", "a: 1\n"), None),
    ("metadata-duplicated-config-name",
     edit_metadata(lambda b: b"Config name: other\n" + b), None),
    ("metadata-missing-config-name",
     edit_metadata(lambda b: b.replace(b"Config name: standard\n", b"")), None),
    ("metadata-config-name-traversal",
     edit_metadata(lambda b: b.replace(b"Config name: standard", b"Config name: ../../etc")),
     None),
    ("fhicl-include-outside", write("inc.fcl", '#include "/etc/passwd"\na: 1\n'), None),
    ("directory-named-like-fcl", lambda d: (d / "dir.fcl").mkdir(), None),
    ("same-entity-in-subdir", write("sub/tpc01.fcl", "a: 1\n"), "sub/tpc01.fcl"),
]


@pytest.fixture
def run_records(tmp_path):
    directory = tmp_path / "run_records"
    generate_run_record(directory, GOOD_RUN, profile="small", mtime=OLD)
    return directory


def bad_run(run_records, mutate) -> Path:
    run_dir = generate_run_record(run_records, BAD_RUN, profile="small", mtime=OLD)
    mutate(run_dir)
    return run_dir


def sensor_carries_on(run_records):
    plan = plan_tick(run_records, SensorCursor(), min_age_seconds=3600)
    assert GOOD_RUN in plan.new_runs, plan
    return plan


def assert_nothing_stored(store, tmp_path):
    assert BAD_RUN not in store.archived_runs()
    assert store.find_configuration(BAD_RUN) is None
    assert leftover_files(tmp_path / "artdaqdb") == []


@pytest.mark.parametrize("case,mutate,error_type,fragments", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_run_record(case, mutate, error_type, fragments, run_records, store, tmp_path):
    run_dir = bad_run(run_records, mutate)
    sensor_carries_on(run_records)
    settings = import_settings(MAX_FILE_BYTES)
    with pytest.raises(error_type) as caught:
        import_run(BAD_RUN, run_dir, store, settings)
    message = str(caught.value)
    assert "\n" not in message, f"{case}: one-line message expected, got {message!r}"
    for fragment in fragments:
        assert fragment in message, f"{case}: {fragment!r} missing from {message!r}"
    assert not caught.value.retryable, f"{case}: bad input must not be retried"
    assert_nothing_stored(store, tmp_path)
    # The good run next to it is archived as usual.
    assert import_run(GOOD_RUN, run_records / str(GOOD_RUN), store, settings).action == "inserted"


@pytest.mark.parametrize("case,mutate,warning", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_accepted_run_record_keeps_every_byte_or_warns(case, mutate, warning, run_records, store):
    run_dir = bad_run(run_records, mutate)
    assert BAD_RUN in sensor_carries_on(run_records).new_runs
    outcome = import_run(BAD_RUN, run_dir, store, import_settings(MAX_FILE_BYTES))
    assert outcome.action == "inserted"
    if warning:
        assert any(warning in w and str(BAD_RUN) in w for w in outcome.warnings), outcome.warnings
    config = store.find_configuration(BAD_RUN)
    assert config is not None and "/" not in config.split("/", 1)[1], config  # no path games
    assert config.startswith(f"{BAD_RUN}/")
    # Re-importing the same record verifies it and never stores a second copy.
    again = import_run(BAD_RUN, run_dir, store, import_settings(MAX_FILE_BYTES))
    assert again.action in ("verified", "updated")
    assert store.versions(BAD_RUN, config.split("/", 1)[1]) == outcome.versions


def test_empty_run_directory_waits_then_is_refused_by_name(run_records, store, tmp_path):
    run_dir = bad_run(run_records, remove_all)
    os.utime(run_dir, (OLD, OLD))
    plan = sensor_carries_on(run_records)
    assert BAD_RUN in plan.new_runs  # finished by the age rule: an empty directory is old
    with pytest.raises(RunRecordError) as caught:
        import_run(BAD_RUN, run_dir, store, import_settings())
    assert f"run {BAD_RUN}" in str(caught.value) and "holds no files" in str(caught.value)
    assert_nothing_stored(store, tmp_path)


def test_binary_metadata_is_not_taken_for_a_stop_time(run_records, store, tmp_path):
    run_dir = bad_run(run_records, write("metadata.txt", bytes(range(256)) * 2))
    os.utime(run_dir / "metadata.txt", None)  # fresh: only a stop time would finish it
    os.utime(run_dir, None)
    plan = sensor_carries_on(run_records)
    assert BAD_RUN not in plan.new_runs and BAD_RUN in plan.cursor.pending
    with pytest.raises(RunRecordError, match=f"run {BAD_RUN}: run is not finished"):
        import_run(BAD_RUN, run_dir, store, import_settings())
    assert_nothing_stored(store, tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads mode-000 files; the broken-symlink "
                    "case covers an unreadable file")
def test_unreadable_file_is_refused_by_name(run_records, store, tmp_path):
    run_dir = bad_run(run_records, lambda d: (d / "tpc01.fcl").chmod(0))
    with pytest.raises(RunRecordError, match=f"run {BAD_RUN}, file tpc01.fcl"):
        import_run(BAD_RUN, run_dir, store, import_settings())
    assert_nothing_stored(store, tmp_path)


# ---- run directory names ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["123 ", "1e3", "-1", "+5", "١٢٣", "12_3", ".123"],
                         ids=["trailing-space", "exponent", "negative", "plus", "arabic-digits",
                              "underscore", "hidden"])
def test_names_that_are_no_run_are_ignored(name, run_records):
    (run_records / name).mkdir()
    listing = list_runs(run_records)
    assert list(listing.runs) == [GOOD_RUN] and not listing.errors
    assert sensor_carries_on(run_records).new_runs == [GOOD_RUN]


def test_zero_padded_name_is_the_run_and_a_clash_is_an_error_naming_both(run_records):
    generate_run_record(run_records, 123, profile="small", mtime=OLD)
    os.rename(run_records / "123", run_records / "00123")
    assert list_runs(run_records).runs[123].name == "00123"
    assert locate_run_dir(run_records, 123).name == "00123"
    generate_run_record(run_records, 123, profile="small", mtime=OLD)
    listing = list_runs(run_records)
    assert 123 not in listing.runs
    assert "00123, 123" in str(listing.errors[123]) and "run 123" in str(listing.errors[123])
    plan = sensor_carries_on(run_records)
    assert 123 in plan.errors and 123 not in plan.new_runs


def test_partition_run_refuses_a_run_named_by_two_directories(run_records):
    generate_run_record(run_records, 123, profile="small", mtime=OLD)
    os.rename(run_records / "123", run_records / "00123")
    generate_run_record(run_records, 123, profile="small", mtime=OLD)
    with pytest.raises(RunRecordError, match="run 123: several directories"):
        locate_run_dir(run_records, 123)


@pytest.mark.parametrize("key", ["../x", "00123", "123 ", "1e3", "-1", ""])
def test_partition_keys_that_are_no_canonical_run_are_refused(key):
    with pytest.raises(ValueError, match="not a canonical run number"):
        run_of(key)


def test_very_long_digit_name_is_not_a_run(run_records):
    long_name = "9" * 200
    generate_run_record(run_records, GOOD_RUN + 1, profile="small", mtime=OLD)
    os.rename(run_records / str(GOOD_RUN + 1), run_records / long_name)
    plan = sensor_carries_on(run_records)
    assert int(long_name) not in plan.new_runs and int(long_name) not in list_runs(run_records).runs


def test_unfinished_and_broken_runs_do_not_stop_the_tick(run_records):
    generate_run_record(run_records, 8, profile="small", finished=False, mtime=time.time())
    bad_run(run_records, symlink(".", "loop"))
    (run_records / "00009").mkdir()
    (run_records / "9").mkdir()
    plan = plan_tick(run_records, SensorCursor(), min_age_seconds=3600)
    assert GOOD_RUN in plan.new_runs and 8 in plan.skipped and 9 in plan.errors


# ---- the whole pipeline: refused runs fail their partition by name, others succeed ------------

PIPELINE_CASES = {4301: write("tpc01.fcl", "a: {\n"),
                  4302: symlink("/etc/passwd", "evil.fcl"),
                  4303: write("odd.fcl", "1abc: 2\n"),
                  4304: symlink(".", "loop")}


def test_pipeline_fails_each_refused_run_by_name_and_archives_the_rest(archive_env):
    good = [11, 12, 13]
    for run in good:
        generate_run_record(archive_env.run_records, run, profile="small", mtime=OLD)
    # A text file the converters repair is archived, not refused.
    write("settings.txt", b"caf\xe9: 1\n")(archive_env.run_records / "13")
    for run, mutate in PIPELINE_CASES.items():
        mutate(generate_run_record(archive_env.run_records, run, profile="small", mtime=OLD))
    defs = archive_env.definitions()
    job = defs.resolve_job_def("archive_runs")
    with dg.instance_for_test() as instance:
        keys = [str(r) for r in good + sorted(PIPELINE_CASES)]
        instance.add_dynamic_partitions("runs", keys)
        results = {k: job.execute_in_process(instance=instance, partition_key=k,
                                             raise_on_error=False) for k in keys}
        for run in good:
            assert results[str(run)].success
        for run in PIPELINE_CASES:
            result = results[str(run)]
            assert not result.success
            failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
            text = " ".join(str(e.event_specific_data.error.message) for e in failures)
            assert f"run {run}:" in text, text
            # Bad input is permanent: no automatic retries of the step.
            assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        from archiver_resources.artdaqdb import open_artdaqdb

        db = open_artdaqdb(archive_env.artdaqdb_uri)
        try:
            assert sorted(db.archived_runs()) == good
        finally:
            db.close()
        from tests.reliability.conftest import ucondb_versions

        assert ucondb_versions(archive_env.ucondb) == {str(r): 1 for r in good}


# ---- config.yaml ------------------------------------------------------------------------------

BASE = """
source_files:
  run_records_dir: /tmp/rr
artdaq_db:
  fcl_conf_dir: /tmp/fcl
  database_uri: filesystemdb:///tmp/db
ucon_db:
  server_url: https://ucondb.example:9443/app
  folder_name: runs
  object_name: configuration
  writer_user: writer
  writer_password: ${UCONDB_PASSWORD_FOR_TEST:-pw}
"""

CONFIG_CASES = [
    ("missing-section", BASE.replace("source_files:\n  run_records_dir: /tmp/rr\n", ""),
     "source_files", "missing"),
    ("missing-key", BASE.replace("  folder_name: runs\n", ""), "ucon_db.folder_name", "missing"),
    ("wrong-type-int", BASE + "app:\n  batch_size: abc\n", "app.batch_size", "integer"),
    ("wrong-type-bool-as-int", BASE + "app:\n  batch_size: true\n", "app.batch_size", "integer"),
    ("wrong-type-number", BASE.replace("  writer_user: writer",
                                       "  writer_user: writer\n  timeout_seconds: soon"),
     "ucon_db.timeout_seconds", "number"),
    ("wrong-type-flag", BASE.replace("  writer_user: writer",
                                     "  writer_user: writer\n  verify_tls: [1]"),
     "ucon_db.verify_tls", "true or false"),
    ("section-is-list", BASE + "app: [1, 2]\n", "app", "mapping"),
    ("value-is-mapping", BASE.replace("folder_name: runs", "folder_name: {a: 1}"),
     "ucon_db.folder_name", "single value"),
    ("circular-reference", BASE + "app:\n  work_dir: ${app.log_file}\n  log_file: ${app.work_dir}\n",
     "app.", "Circular reference"),
    ("unset-variable-required", BASE.replace("${UCONDB_PASSWORD_FOR_TEST:-pw}",
                                             "${UCONDB_PASSWORD_UNSET_FOR_TEST}"),
     "ucon_db.writer_password", "missing or empty"),
    ("bad-server-url", BASE.replace("9443/app", "9443/"), "ucon_db.server_url", "/app"),
    ("bad-on-existing", BASE + "app:\n  on_existing: overwrite\n", "app.on_existing", "one of"),
    ("unknown-converter", BASE + "fhiclize_generate: [boot, nonsense]\n", "fhiclize_generate",
     "nonsense"),
    ("negative-minimum", BASE.replace("run_records_dir: /tmp/rr",
                                      "run_records_dir: /tmp/rr\n  finished_after_seconds: -5"),
     "source_files.finished_after_seconds", "at least"),
]


@pytest.mark.parametrize("case,text,key,reason", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_config_errors_name_file_and_key(case, text, key, reason, tmp_path, monkeypatch):
    monkeypatch.delenv("UCONDB_PASSWORD_UNSET_FOR_TEST", raising=False)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message and key in message and reason in message, message
    assert "\n" not in message


@pytest.mark.parametrize("text,reason", [("ucon_db: [\n", "YAML error"),
                                         ("- just\n- a list\n", "mapping of sections"),
                                         ("", "invalid or empty"),
                                         (b"\xff\xfe bad bytes", "cannot read")],
                         ids=["yaml-syntax", "not-a-mapping", "empty", "not-utf8"])
def test_unparsable_config_is_a_config_error_naming_the_file(text, reason, tmp_path):
    path = tmp_path / "config.yaml"
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    with pytest.raises(ConfigError, match=reason) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
