"""Round 2 of hostile run records (docs/reliability.md, "Round 2: hostile run directories"):
run directories that hung, crashed or fooled the archiver. Each class of hostile directory is mixed with good runs and archived twice, as
operators do it: a batch through the command line (``--incremental``, a real process with its
worker processes) and through the ``new_run_records`` sensor plus the ``archive_runs`` job. Both
must archive the good runs (read back from artdaqDB and UconDB, MD5 of the served blob equal to
the blob packed again from artdaqDB), refuse or fail the hostile ones by name, and never let a
control character of a run record reach the terminal, the log file or Dagster.

Classes: a FIFO named metadata.txt (and one named like a FHiCL file), 1500 nested directories,
run directories that are symlinks (outside, to the run records directory itself, inside),
control characters in file content, file names and metadata values, a record that changes while
it is read, and files dropped by design plus errors in generated entities.
"""

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import dagster as dg
import pytest

from archiver_assets.archive.sensors import SensorCursor, plan_tick
from archiver_assets.definitions import build_definitions
from archiver_assets.partitions import PARTITION_TAG, runs_partitions, targeted_runs
from archiver_resources.archiving import build_blob
from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.blob import md5_hex
from archiver_resources.samples import generate_run_record, mark_finished
from archiver_resources.ucondb.testing import start_local_ucondb
from tests.cli.conftest import FOLDER, REPO_ROOT, fast_root, make_env  # noqa: F401 (fixture)
from tests.reliability.conftest import OLD
from tests.support import failure_lines

GOOD = [1, 2, 99]  # around the hostile runs, so a batch goes on after them
CLI_TIMEOUT = 240  # seconds; a run directory that blocks a read must fail the test, not hang it
RAW_CONTROLS = ("\x1b", "\x00", "\r", "\x07", "\u202e")


@dataclass
class Scenario:
    """Hostile runs of one class and what must become of them."""

    build: Callable  # (env, nested_dirs) -> None: writes the hostile runs
    archived: dict = field(default_factory=dict)  # run -> warning fragments (accepted runs)
    failed: dict = field(default_factory=dict)  # run -> fragments of its failure
    refused: dict = field(default_factory=dict)  # run -> fragments; never becomes a partition
    versions: dict = field(default_factory=dict)  # run -> number of artdaqDB versions expected
    change_while_read: Optional[int] = None  # run whose stop time is appended during its read
    check: Optional[Callable] = None  # (env) -> extra assertions on the stores
    check_cli: Optional[Callable] = None  # (env) -> extra assertions after the command line


def run_dir(env, run: int, **kw) -> Path:
    return generate_run_record(env.run_records, run, profile="small", mtime=OLD, **kw)


# ---- the classes ------------------------------------------------------------------------------

def build_fifos(env, nested_dirs):
    fifo_metadata = run_dir(env, 10)
    (fifo_metadata / "metadata.txt").unlink()
    os.mkfifo(fifo_metadata / "metadata.txt")  # opening it blocked until a writer came
    os.mkfifo(run_dir(env, 11) / "pipe.fcl")


def build_deep(env, nested_dirs):
    nested_dirs(run_dir(env, 20), 1500, "a")


def build_symlinked_runs(env, nested_dirs):
    elsewhere = generate_run_record(env.root / "elsewhere", 30, profile="small", mtime=OLD)
    (elsewhere / "secret.fcl").write_text('secret: "TOP-SECRET-30"\n')
    os.symlink(elsewhere, env.run_records / "30")
    os.symlink(env.run_records, env.run_records / "32")  # the whole run records directory
    moved = generate_run_record(env.run_records / ".moved", 31, profile="small", mtime=OLD)
    os.symlink(moved, env.run_records / "31")  # inside run_records_dir: followed


def no_secret_anywhere(env):
    with env.client() as client:
        for run in client.existing_runs():
            assert b"TOP-SECRET" not in client.get_blob(run).data


def build_control_characters(env, nested_dirs):
    (run_dir(env, 40) / "esc.fcl").write_bytes(b"a: \x1b[2K\rRun 40 OK\x00\n")
    (run_dir(env, 41) / "x\x1b[2K\rRun 41 OK.fcl").write_text("a: 1\n")
    metadata = run_dir(env, 42) / "metadata.txt"
    metadata.write_text(metadata.read_text()
                        .replace("Config name: standard", "Config name: std\x1b[31mred")
                        .replace("DAQInterface stop time: ", "DAQInterface stop time: \x1b[2K"))


def log_file_is_text(env):
    log = env.work_dir / "archiver.log"
    data = log.read_bytes()
    assert b"\x00" not in data and b"\x1b" not in data and b"\r" not in data
    assert b"esc.fcl:1:4: FHiCL syntax error: unexpected character '\\x1b'" in data


def build_changing(env, nested_dirs):
    run_dir(env, 50, finished=False)  # finished by the age rule; the stop time comes late


def build_dropped_and_generated(env, nested_dirs):
    (run_dir(env, 60) / "schema.fcl").write_text("user_schema: 1\n")
    metadata = run_dir(env, 61) / "metadata.txt"
    metadata.write_text(metadata.read_text().replace("Config name: standard",
                                                     'Config name: my"config'))
    (run_dir(env, 62) / "my file.fcl").write_text("a: 1\n")


SCENARIOS = {
    "fifo": Scenario(
        build_fifos,
        archived={11: ["run 11, file pipe.fcl: skipped (FIFO, not a regular file)"]},
        refused={10: ["run 10, file metadata.txt: FIFO, not a regular file; refused"]}),
    "nested-1500-deep": Scenario(
        build_deep,
        failed={20: ["run 20, file a/a/a/", "directories nested more than 32 levels deep"]}),
    "symlinked-run-directories": Scenario(
        build_symlinked_runs, archived={31: []},
        refused={30: ["run 30: run directory", "is a symlink to", "elsewhere/30, outside the "
                      "run records directory"],
                 32: ["run 32: run directory", "outside the run records directory"]},
        check=no_secret_anywhere),
    "control-characters": Scenario(
        build_control_characters, archived={42: []}, versions={42: 2},
        failed={40: ["esc.fcl:1:4: FHiCL syntax error: unexpected character '\\x1b'",
                     "| a: \\x1b[2K"],
                41: ["line 12 is for x\\x1b[2K\\rRun 41 OK.fcl", "found '\\x1b[2K'"]},
        check_cli=log_file_is_text),
    "changes-while-read": Scenario(build_changing, archived={50: []}, versions={50: 2},
                                   change_while_read=50),
    "dropped-by-design-and-generated-entities": Scenario(
        build_dropped_and_generated,
        archived={60: ["run 60: schema.fcl from the run record replaced by the configured "
                       "schema.fcl"],
                  # the generated RunHistory.fcl escapes the quote (valid FHiCL for any input)
                  61: ["run 61, file metadata.txt, line 1: the configuration name: not a valid "
                       "FHiCL string as written", "(in RunHistory.fcl)"]},
        failed={62: ["hashes (generated from the names and contents of the run record's "
                     "files; line ", " is for my file.fcl)"]}),
}


# ---- fixtures and checks --------------------------------------------------------------------

@pytest.fixture
def env(fast_root, monkeypatch, capsys):  # noqa: F811 (fast_root is the imported fixture)
    server = start_local_ucondb(fast_root / "ucondb", folder=FOLDER)
    monkeypatch.setenv("TEST_UCONDB_PASSWORD", server.password)
    environment = make_env(fast_root, server, monkeypatch)
    # One batch holds every run of a scenario (the incremental cap is batch_size).
    environment.write_config(batch_size=10,
                             log_file=f'"{environment.work_dir / "archiver.log"}"')
    environment.capsys = capsys
    try:
        yield environment
    finally:
        server.stop()


def prepare(env, scenario: Scenario, nested_dirs) -> None:
    for run in GOOD:
        run_dir(env, run)
    scenario.build(env, nested_dirs)


def assert_stores(env, scenario: Scenario) -> None:
    """Read the stores directly: every good and accepted run is in artdaqDB with the expected
    versions and in UconDB once, the served blob's MD5 equal to the blob packed again from
    artdaqDB; no failed or refused run reached either store."""
    expected = sorted(GOOD + list(scenario.archived))
    with open_artdaqdb(env.artdaqdb_uri) as store, env.client() as client:
        archived = store.archived_runs()
        assert sorted(archived) == expected, archived
        assert client.existing_runs() == set(expected)
        for run in expected:
            config = archived[run].split("/", 1)[1]
            assert len(store.versions(run, config)) == scenario.versions.get(run, 2), run
            packed = build_blob(run, store)[3]
            assert md5_hex(client.get_blob(run).data) == md5_hex(packed), run


def no_raw_controls(text: str) -> None:
    found = [repr(c) for c in RAW_CONTROLS if c in text]
    assert not found, f"raw control characters {found} reached the operator"


# ---- through the command line -----------------------------------------------------------------

CHANGE_HOOK = '''
"""Test hook (tests/reliability/test_hostile_directories.py): append the stop time to one run's
metadata.txt right after the archiver read that run's boot.txt, once, in whichever process."""
import os
from pathlib import Path

_TARGET = os.environ.get("HOSTILE_CHANGE_RUN_DIR")
if _TARGET:
    from archiver_resources import runrecords

    _read_text = runrecords.RunRecord.read_text

    def _read_text_while_the_stop_time_is_appended(self, relpath):
        text = _read_text(self, relpath)
        marker = Path(os.environ["HOSTILE_CHANGE_MARKER"])
        if relpath == "boot.txt" and str(self.directory) == _TARGET and not marker.exists():
            from archiver_resources.samples import mark_finished

            mark_finished(_TARGET)
            marker.write_text(str(os.getpid()))
        return text

    runrecords.RunRecord.read_text = _read_text_while_the_stop_time_is_appended
'''


def install_change_hook(env, run: int, monkeypatch) -> Path:
    """The CLI's worker processes read the record; a ``sitecustomize`` on their PYTHONPATH
    changes it in the middle of their read (deterministically, once)."""
    hook_dir = env.root / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(textwrap.dedent(CHANGE_HOOK))
    marker = env.root / "changed-while-read"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(hook_dir)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    monkeypatch.setenv("HOSTILE_CHANGE_RUN_DIR", str(env.run_records / str(run)))
    monkeypatch.setenv("HOSTILE_CHANGE_MARKER", str(marker))
    return marker


def run_cli(env, *args) -> tuple:
    """The console entry point as a real process; its output as bytes decoded here, so a raw
    carriage return is seen (a text-mode pipe would turn it into a newline)."""
    process = subprocess.Popen([sys.executable, "-m", "archiver_assets.cli",
                                str(env.config_path), *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=dict(os.environ), cwd=str(REPO_ROOT))
    try:
        raw, _ = process.communicate(timeout=CLI_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        raw, _ = process.communicate()
        pytest.fail(f"the command line hung for {CLI_TIMEOUT} s (a blocking read?):\n"
                    + raw.decode("utf-8", "replace")[-3000:])
    return process.returncode, raw.decode("utf-8", "replace")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_cli_incremental_batch_archives_the_good_runs_beside_hostile_ones(name, env, monkeypatch,
                                                                          nested_dirs):
    scenario = SCENARIOS[name]
    prepare(env, scenario, nested_dirs)
    marker = None
    if scenario.change_while_read is not None:
        marker = install_change_hook(env, scenario.change_while_read, monkeypatch)
    code, output = run_cli(env, "--incremental", "-v")
    no_raw_controls(output)
    assert code == (1 if scenario.failed else 0), output[-4000:]
    lines = output.splitlines()
    for run in GOOD + list(scenario.archived):
        assert any(f"✓ Run {run} imported successfully" in line for line in lines), run
        assert any(f"✓ Run {run} migrated and verified successfully" in line for line in lines)
    for run, fragments in scenario.archived.items():
        if fragments:  # warned next to the ✓, not only in Dagster's metadata
            assert any(f"✓ Run {run} imported successfully, with" in line for line in lines)
            for fragment in fragments:
                assert any("⚠" in line and fragment in line for line in lines), fragment
    for run, fragments in scenario.failed.items():
        failure = failure_lines(lines, run)
        assert failure, f"no failure line for run {run}"
        for fragment in fragments:
            assert fragment in failure[0], (fragment, failure[0])
    for run, fragments in scenario.refused.items():
        skipped = [line for line in lines if f"Run {run} skipped: run directory problem" in line]
        assert skipped and " - WARNING - " in skipped[0], f"no warning for run {run}"
        for fragment in fragments:
            assert fragment in skipped[0], (fragment, skipped[0])
    assert_stores(env, scenario)
    assert sorted(int(k) for k in env.partitions()) == sorted(
        GOOD + list(scenario.archived) + list(scenario.failed))  # refused: no partition
    if marker is not None:
        assert marker.exists(), "the record was never changed while it was read"
        assert "changed while it was being read" in output  # the first attempt, in the log
    if scenario.check:
        scenario.check(env)
    if scenario.check_cli:
        scenario.check_cli(env)
    if name == "fifo":  # the FIFO hung the first call, holding the lock for every next one
        again, output = run_cli(env, "--incremental")
        assert again == 0 and "Found 0 run(s) to import" in output, output[-3000:]


# ---- through the sensor and the job -----------------------------------------------------------

def sensor_tick(defs, instance):
    sensor = defs.resolve_sensor_def("new_run_records")
    with dg.build_sensor_context(instance_ref=instance.get_ref(), definitions=defs,
                                 resources=defs.resources) as context:
        data = sensor.evaluate_tick(context)
    for request in data.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(runs_partitions.name, list(request.partition_keys))
    return data


def failure_text(result) -> str:
    return " ".join(str(event.event_specific_data.error.message) for event in result.all_events
                    if event.event_type_value == "STEP_FAILURE")


def change_while_read_in_process(env, run: int, monkeypatch) -> list:
    from archiver_resources import runrecords

    read_text = runrecords.RunRecord.read_text
    changed = []

    def read_text_while_the_stop_time_is_appended(self, relpath):
        text = read_text(self, relpath)
        if relpath == "boot.txt" and self.run == run and not changed:
            changed.append(mark_finished(env.run_records / str(run)))
        return text

    monkeypatch.setattr(runrecords.RunRecord, "read_text",
                        read_text_while_the_stop_time_is_appended)
    return changed


@pytest.mark.timeout(240)  # a blocking read in the sensor fails here instead of hanging CI
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_sensor_and_job_archive_the_good_runs_beside_hostile_ones(name, env, monkeypatch,
                                                                  nested_dirs):
    scenario = SCENARIOS[name]
    prepare(env, scenario, nested_dirs)
    changed = None
    if scenario.change_while_read is not None:
        changed = change_while_read_in_process(env, scenario.change_while_read, monkeypatch)
    defs = build_definitions(str(env.config_path))
    # What the tick logs for the runs it cannot take (its Dagster-free core, same listing).
    errors = plan_tick(env.run_records, SensorCursor(), min_age_seconds=3600).errors
    with dg.instance_for_test() as instance:
        data = sensor_tick(defs, instance)
        # The tick's runs, one range run per app.batch_size (10): every run of the scenario in
        # one; each run is executed alone below, so that its outcome is its own.
        order = lambda: instance.get_dynamic_partitions(runs_partitions.name)  # noqa: E731
        requested = [run for r in data.run_requests
                     for run in targeted_runs({**r.tags, **({PARTITION_TAG: r.partition_key}
                                                            if r.partition_key else {})}, order)]
        assert requested == sorted(GOOD + list(scenario.archived) + list(scenario.failed))
        for run, fragments in scenario.refused.items():
            assert run in errors and all(f in errors[run] for f in fragments), errors.get(run)
        job = defs.resolve_job_def("archive_runs")
        results = {run: job.execute_in_process(instance=instance, partition_key=str(run),
                                               raise_on_error=False) for run in requested}
        for run in GOOD + list(scenario.archived):
            assert results[run].success, (run, failure_text(results[run]))
        for run, fragments in scenario.archived.items():
            meta = results[run].asset_materializations_for_node("artdaqdb_config")[0].metadata
            warnings = meta["warnings"].value if "warnings" in meta else []
            for fragment in fragments:
                assert any(fragment in w for w in warnings), (fragment, warnings)
            no_raw_controls(" ".join(str(value.value) for value in meta.values()))
        for run, fragments in scenario.failed.items():
            assert not results[run].success
            text = failure_text(results[run])
            no_raw_controls(text)
            for fragment in fragments:
                assert fragment in text, (fragment, text)
            # Bad input is permanent: no automatic retries of the step.
            assert not [e for e in results[run].all_events
                        if e.event_type_value == "STEP_UP_FOR_RETRY"]
        if changed is not None:
            run = scenario.change_while_read
            assert changed, "the record was never changed while it was read"
            retries = [e for e in results[run].all_events
                       if e.event_type_value == "STEP_UP_FOR_RETRY"]
            assert retries, "a record that changed while it was read is tried again"
    assert_stores(env, scenario)
    if scenario.check:
        scenario.check(env)
