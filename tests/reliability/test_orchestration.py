"""Round 2 of the reliability work: orchestration and store loss. Each test mixes good runs with
one hostile case and ends by reading the stores directly: the good runs are archived once in
artdaqDB and once in UconDB, and what UconDB serves has the MD5 of the blob packed from artdaqDB.

* isolation: an unexpected exception (``RecursionError`` from a run directory nested 1500 deep,
  or injected into each stage) fails its run only, with type and message, and is not retried;
* the migration gate: a run whose blocking import check failed is never migrated, by any mode;
* store loss: blobs deleted from UconDB's database are found, turned back to failed and redone;
* the incremental mark: a run numbered far above the others does not stop ``--incremental``;
* configuration: a password holding ``${…}`` reaches UconDB as written;
* abandoned Dagster runs (a killed command line, a full disk) are cleaned up at the next start.
"""

import os
from pathlib import Path

import dagster as dg
import pytest

from archiver_resources.archiving import build_blob
from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.blob import md5_hex
from archiver_resources.samples import generate_run_records
from tests.cli.conftest import (  # noqa: F401
    FOLDER, IMPORT, MIGRATE, cli_env, fast_root, ucondb_server,
)
from tests.reliability.conftest import delete_blobs, ucondb_versions
from tests.support import failure_lines

RUNS = [101, 102, 103, 104, 105]
BAD = 103
GOOD = [r for r in RUNS if r != BAD]


def messages(out: str) -> list:
    return [line.split(" - ", 3)[-1].strip() for line in out.splitlines()]


def assert_archived(env, runs) -> None:
    """Each run once in artdaqDB and once in UconDB, MD5 of the served blob = MD5 of the blob
    packed from artdaqDB now, both partitions materialized."""
    with open_artdaqdb(env.artdaqdb_uri) as store, env.client() as client:
        archived = store.archived_runs()
        for run in runs:
            assert run in archived, f"run {run} not in artdaqDB"
            assert store.versions(run, archived[run].split("/", 1)[1])[0] == archived[run]
            packed = build_blob(run, store)[3]
            served = client.get_blob(run).data
            assert md5_hex(served) == md5_hex(packed), f"run {run}: MD5 differs"
    versions = ucondb_versions(env.ucondb, FOLDER)
    assert all(versions.get(str(run)) == 1 for run in runs), versions
    assert set(runs) <= env.materialized(IMPORT) and set(runs) <= env.materialized(MIGRATE)


def run_batch(env, stage: str, runs: list) -> dict:
    """One batch of the command line's engine, in this process (so a fault can be injected):
    a Dagster run over the partition range of ``runs``, summarised per run."""
    from archiver_assets.definitions import build_definitions
    from archiver_assets.cli.workers import execute_request
    from archiver_assets.state.reconcile import ensure_partitions

    defs = build_definitions(str(env.config_path))
    with dg.DagsterInstance.get() as instance:
        ensure_partitions(instance, runs)
        return execute_request(defs, instance, {"stage": stage, "runs": runs, "tags": {}})


def step_retries(run_id: str) -> int:
    with dg.DagsterInstance.get() as instance:
        return len(instance.get_records_for_run(
            run_id, of_type={dg.DagsterEventType.STEP_UP_FOR_RETRY}).records)


# ---- isolation --------------------------------------------------------------------------------

def nest_directories(run_dir: Path, depth: int) -> None:
    """``run_dir/d/d/…/d``, ``depth`` levels (built with directory descriptors: a path that long
    is beyond PATH_MAX)."""
    top = os.open(run_dir, os.O_RDONLY)
    current = top
    for _ in range(depth):
        os.mkdir("d", dir_fd=current)
        deeper = os.open("d", os.O_RDONLY, dir_fd=current)
        if current != top:
            os.close(current)
        current = deeper
    os.close(current)
    os.close(top)


def remove_nested(run_dir: Path) -> None:
    """Undo :func:`nest_directories` one level at a time (``shutil.rmtree`` recurses too)."""
    while (run_dir / "d").exists():
        if (run_dir / "d" / "d").exists():
            os.rename(run_dir / "d" / "d", run_dir / "up")
            os.rmdir(run_dir / "d")
            os.rename(run_dir / "up", run_dir / "d")
        else:
            os.rmdir(run_dir / "d")


def _raise_for_bad(original, run_of_call):
    def hostile(*args, **kwargs):
        if run_of_call(*args) == BAD:
            raise RecursionError("maximum recursion depth exceeded (injected)")
        return original(*args, **kwargs)
    return hostile


def _latest_run(latest, *_):
    return int(latest.partition_key) if latest is not None else None


# stage → (module attribute to wrap, how to find the run in its arguments, the batch's stage)
INJECTIONS = {
    "import": ("archiver_assets.archive.assets.import_run", lambda run, *a: run, "import"),
    "hashes_match": ("archiver_assets.archive.checks.verify_archived", lambda run, *a: run,
                     "import"),
    "migrate": ("archiver_assets.archive.assets.migrate_run", lambda run, *a: run, "migrate"),
    "md5_round_trip": ("archiver_assets.archive.checks.md5_packed_by_run", _latest_run,
                       "migrate"),
}


@pytest.mark.parametrize("where", list(INJECTIONS))
def test_an_unexpected_exception_fails_its_run_only(where, cli_env):
    import importlib

    generate_run_records(cli_env.run_records, RUNS, profile="small")
    target, run_of_call, stage = INJECTIONS[where]
    module_name, name = target.rsplit(".", 1)
    module = importlib.import_module(module_name)
    if stage == "migrate":
        code, out = cli_env.main("--import-only")
        assert code == 0, out
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, name, _raise_for_bad(getattr(module, name), run_of_call))
        summary = run_batch(cli_env, stage, RUNS)

    assert set(summary["failed"]) == {str(BAD)}, summary
    failure = summary["failed"][str(BAD)]  # the worker's answer: a RunFailure record
    assert failure["run"] == BAD, failure
    assert failure["stage"] == {"import": "import", "migrate": "migration"}[stage], failure
    # The archive steps name the exception's type; a blocking check's failure has none (a check
    # fails, nothing is raised through it), its text says why.
    in_check = where in ("hashes_match", "md5_round_trip")
    assert failure["error_type"] == ("" if in_check else "RecursionError"), failure
    reason = failure["message"]
    assert f"run {BAD}" in reason and "RecursionError" in reason, reason
    assert "maximum recursion depth exceeded (injected)" in reason, reason
    assert sorted(summary["succeeded"]) == GOOD, summary
    assert step_retries(summary["run_id"]) == 0  # not retried: the same run would fail again

    code, out = cli_env.main("--migrate-only")  # the rest of the pipeline, by the command line
    assert_archived(cli_env, GOOD)
    if where == "hashes_match":  # imported, but its blocking check failed: held back
        assert any(line.startswith(f"Run {BAD} held back from migration: blocking check "
                                   "hashes_match") for line in messages(out)), out
    if where in ("import", "hashes_match"):  # not imported / held: never reaches UconDB
        assert BAD not in cli_env.ucondb_runs()
    if where == "migrate":  # its partition failed; the rerun (fault gone) archives it
        assert f"✓ Run {BAD} migrated and verified successfully" in messages(out)
        assert_archived(cli_env, RUNS)
    if where == "md5_round_trip":  # uploaded; its audit failed, the others' passed
        assert BAD in cli_env.ucondb_runs()


@pytest.mark.slow
def test_a_run_directory_nested_1500_deep_fails_alone(cli_env):
    run_dirs = generate_run_records(cli_env.run_records, RUNS, profile="small")
    bad_dir = cli_env.run_records / str(BAD)
    nest_directories(bad_dir, 1500)
    try:
        code, out = cli_env.main()
        assert code == 1, out
        failed = [line for line in failure_lines(messages(out), BAD) if line.startswith("✗")]
        assert failed, out
        assert not any(line.startswith("✗ Run") and f"Run {BAD} " not in line
                       for line in messages(out)), out
        assert "Exceeded max_retries" not in out
        assert_archived(cli_env, GOOD)
        assert BAD not in cli_env.artdaqdb_runs() and BAD not in cli_env.ucondb_runs()
        code, out = cli_env.main()  # a rerun: the good runs stay archived, the bad one fails
        assert code == 1 and "Exceeded max_retries" not in out
        assert_archived(cli_env, GOOD)
    finally:
        remove_nested(bad_dir)
    assert run_dirs


# ---- the migration gate -----------------------------------------------------------------------

def audit_import(env, runs) -> None:
    """Run only artdaqdb_config's checks for ``runs`` (what the import run does right after the
    import), as the audit job would."""
    from archiver_assets.definitions import build_definitions
    from archiver_assets.cli.workers import _batch_kwargs

    defs = build_definitions(str(env.config_path))
    checks = defs.resolve_asset_graph().get_check_keys_for_assets({IMPORT})
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(), asset_check_selection=set(checks))
    kwargs, tags = _batch_kwargs(runs, {})
    with dg.DagsterInstance.get() as instance:
        job.execute_in_process(instance=instance, raise_on_error=False, tags=tags, **kwargs)


@pytest.mark.slow
def test_no_mode_migrates_a_run_whose_blocking_check_failed(cli_env):
    generate_run_records(cli_env.run_records, RUNS, profile="small")
    code, out = cli_env.main("--import-only")
    assert code == 0, out
    # A .fcl grows after the import read it: artdaqDB holds the shorter file, the check sees
    # the record on disk differ (what an append during --import-only produces).
    fcl = sorted((cli_env.run_records / str(BAD)).glob("*.fcl"))[0]
    fcl.write_text(fcl.read_text() + "appended_after_import: 1\n")
    audit_import(cli_env, [BAD])

    for args in (("--migrate-only",), ("--migrate-only", "--incremental"), ("--incremental",),
                 ()):
        code, out = cli_env.main(*args)
        lines = messages(out)
        if "--incremental" not in args:  # (incremental: below its mark, not a candidate)
            assert any(line.startswith(f"Run {BAD} held back from migration: blocking check "
                                       "hashes_match of its import failed") for line in lines), out
        assert f"✓ Run {BAD} migrated and verified successfully" not in lines
        assert BAD not in cli_env.ucondb_runs()
    code, out = cli_env.main("--dry-run", "--migrate-only")
    assert any(line.split()[:2] == ["hold", str(BAD)] for line in messages(out)), out
    assert_archived(cli_env, GOOD)

    # The asset refuses it too (a UI backfill or any other launch of ucondb_blob).
    from archiver_assets.definitions import build_definitions

    job = build_definitions(str(cli_env.config_path)).resolve_job_def("migrate_runs")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(instance=instance, partition_key=str(BAD),
                                        raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert f"run {BAD}: not migrated: blocking check hashes_match" in failure.description
    assert BAD not in cli_env.ucondb_runs()

    # The operator restores the record; --retry-failed-import re-checks it, then it migrates.
    fcl.write_text(fcl.read_text().replace("appended_after_import: 1\n", ""))
    code, out = cli_env.main("--retry-failed-import")
    assert code == 0, out
    assert f"✓ Run {BAD} imported successfully" in messages(out)
    code, out = cli_env.main("--migrate-only")
    assert code == 0, out
    assert_archived(cli_env, RUNS)


# ---- store loss -------------------------------------------------------------------------------

LOST = [102, 104, 105, 108]


@pytest.mark.slow
def test_blobs_lost_by_ucondb_are_found_by_reconcile_and_redone_by_incremental(cli_env):
    runs = list(range(101, 111))
    generate_run_records(cli_env.run_records, runs, profile="small")
    code, out = cli_env.main()
    assert code == 0, out
    code, out = cli_env.main("--incremental")  # the next cron tick: nothing new
    assert "Found 0 run(s) to migrate" in messages(out)
    assert_archived(cli_env, runs)
    with open_artdaqdb(cli_env.artdaqdb_uri) as store:
        versions_before = {run: store.versions(run, "standard") for run in runs}
    delete_blobs(cli_env.ucondb, FOLDER, LOST)
    assert cli_env.ucondb_runs() == set(runs) - set(LOST)

    code, out = cli_env.main("--report-status")
    assert code == 0
    lines = messages(out)
    assert f"Run MIGRATOR: {len(LOST)} run(s) in artdaqDB not in UconDB (range: 102-108)" in \
        " ".join(lines), out
    assert any(line.startswith(f"UconDB: {len(LOST)} run(s) Dagster records as archived are "
                               "missing") for line in lines), out

    code, out = cli_env.main("--reconcile")
    assert code == 0, out
    assert any(f"✗ UconDB no longer holds {len(LOST)} run(s) that Dagster recorded as archived "
               f"({', '.join(map(str, LOST))}); marked failed" in line
               for line in messages(out)), out
    assert " - WARNING - " in [line for line in out.splitlines() if "no longer holds" in line][0]
    status = cli_env.status(MIGRATE)
    assert status.failed == set(LOST) and status.lost == set(LOST)
    with dg.DagsterInstance.get() as instance:
        markers = [r for r in instance.get_runs() if r.job_name == "store_drift_repair"]
    assert len(markers) == 1 and markers[0].status == dg.DagsterRunStatus.FAILURE

    code, out = cli_env.main("--incremental")  # the next cron tick redoes exactly the lost runs
    assert code == 0, out
    lines = messages(out)
    assert f"Found {len(LOST)} run(s) to migrate" in lines, out
    assert "Found 0 run(s) to import" in lines
    for run in LOST:
        assert f"✓ Run {run} migrated and verified successfully" in lines
    assert_archived(cli_env, runs)
    with open_artdaqdb(cli_env.artdaqdb_uri) as store:  # artdaqDB untouched: no re-import
        assert {run: store.versions(run, "standard") for run in runs} == versions_before
    code, out = cli_env.main("--reconcile")  # nothing drifts any more
    assert code == 0 and "no longer holds" not in out


# ---- the incremental mark ---------------------------------------------------------------------

ABSURD = 9223372036854775807


@pytest.mark.slow
def test_a_run_numbered_far_above_the_rest_does_not_stop_incremental(cli_env):
    generate_run_records(cli_env.run_records, [101, 102, 103], profile="small")
    code, out = cli_env.main("--incremental")
    assert code == 0, out
    # (the sample generator derives times from the run number: copy a run record instead)
    source = generate_run_records(cli_env.root / "elsewhere", [999], profile="small")[0]
    os.rename(source, cli_env.run_records / str(ABSURD))
    code, out = cli_env.main("--incremental")
    assert code == 0, out
    warning = f"Run number far above the others: run {ABSURD} is far above the other runs"
    assert any(line.startswith(warning + " (next lower run 103, more than 100000 below it)")
               for line in messages(out)), out
    assert ABSURD in cli_env.artdaqdb_runs()  # archived all the same (and reported)

    generate_run_records(cli_env.run_records, [104, 105], profile="small")
    code, out = cli_env.main("--incremental")  # was: "Found 0 run(s)" from here on, exit 0
    assert code == 0, out
    lines = messages(out)
    assert "Found 2 run(s) to import" in lines and "Found 2 run(s) to migrate" in lines, out
    assert any(line.startswith(warning) for line in lines), out
    assert_archived(cli_env, [101, 102, 103, 104, 105])

    code, out = cli_env.main("--report-status")
    assert any(f"WARNING: run {ABSURD} is far above the other runs" in line
               for line in messages(out)), out
    code, out = cli_env.main("--dry-run", "--incremental")
    assert any(f"WARNING: run {ABSURD} is far above" in line for line in messages(out)), out

    cli_env.write_config(max_run_number_jump=10**19)  # configurable: then it is just a run
    generate_run_records(cli_env.run_records, [106], profile="small")
    code, out = cli_env.main("--incremental")
    assert "far above" not in out and "Found 0 run(s) to import" in messages(out)
    assert 106 not in cli_env.artdaqdb_runs()  # below the (now absurd) mark, as documented


# ---- configuration ----------------------------------------------------------------------------

def test_a_password_with_a_dollar_brace_reaches_ucondb_as_written(cli_env, monkeypatch):
    from archiver_resources.ucondb.testing import start_local_ucondb

    password = "ab${HOME}cd"
    server = start_local_ucondb(cli_env.root / "ucondb-dollar", folder=FOLDER, password=password)
    try:
        cli_env.ucondb = server
        cli_env.write_config()
        monkeypatch.setenv("TEST_UCONDB_PASSWORD", password)
        monkeypatch.setenv("HOME", "/root")
        generate_run_records(cli_env.run_records, RUNS, profile="small")
        code, out = cli_env.main()
        assert code == 0, out
        assert "401" not in out
        assert_archived(cli_env, RUNS)
        assert password not in out  # and it is never shown
    finally:
        server.stop()


# ---- abandoned Dagster runs -------------------------------------------------------------------

ABANDON = """
import sys
import dagster as dg
from archiver_assets.archive.guard import WORKER_TAG, worker_identity
from archiver_assets.definitions import build_definitions
from dagster._core.events import DagsterEvent, DagsterEventType

defs = build_definitions(sys.argv[1])
job = defs.resolve_job_def("import_runs")
with dg.DagsterInstance.get() as instance:
    for key, start in ((sys.argv[2], False), (sys.argv[3], True)):
        run = instance.create_run_for_job(job, tags={WORKER_TAG: worker_identity(),
                                                     "dagster/partition": key})
        if start:  # killed in the middle of the run instead of before it
            instance.report_dagster_event(
                DagsterEvent(DagsterEventType.RUN_START.value, job_name=job.name), run.run_id)
        print(run.run_id, flush=True)
"""


def test_runs_left_unfinished_by_a_dead_worker_are_failed_at_the_next_start(cli_env):
    """What a CLI SIGKILLed between creating a run and starting it, or stopped by a full disk
    before its run started, leaves behind: runs "Not started" (or "Started") forever, their
    partitions in progress, which every mode then skipped."""
    import subprocess
    import sys

    from tests.cli.conftest import REPO_ROOT

    generate_run_records(cli_env.run_records, RUNS, profile="small")
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("runs", [str(r) for r in RUNS])
    child = subprocess.run([sys.executable, "-c", ABANDON, str(cli_env.config_path), "102",
                            str(BAD)], capture_output=True, text=True, cwd=str(REPO_ROOT),
                           env=dict(os.environ), timeout=120)
    assert child.returncode == 0, child.stderr
    abandoned = child.stdout.split()
    assert cli_env.status(IMPORT).in_progress == {102, BAD}

    code, out = cli_env.main("--incremental")
    assert code == 0, out
    for run_id in abandoned:
        assert (f"Dagster run {run_id} was left unfinished by a worker that is gone (killed, or "
                f"a full disk): marked failed") in messages(out)
    with dg.DagsterInstance.get() as instance:
        for run_id in abandoned:
            run = instance.get_run_by_id(run_id)
            assert run.status == dg.DagsterRunStatus.FAILURE
            failure = instance.get_records_for_run(
                run_id, of_type={dg.DagsterEventType.RUN_FAILURE}).records[0]
            assert "Abandoned: the worker process of this run" in \
                failure.event_log_entry.dagster_event.message
    assert_archived(cli_env, RUNS)
