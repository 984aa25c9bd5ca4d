"""Crashes: the run worker (a child process executing both archive assets in batched range runs on a
SQLite Dagster instance) is SIGKILLed at seeded points — inside artdaqDB writes (journal, documents,
indexes, after the commit), just before and just after a UconDB upload, and at random times —
then resumed by re-running the partitions that are not materialized. Every run must end archived
exactly once in both stores, with no duplicate versions and no orphaned temp/journal files."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from dagster._core.instance.ref import InstanceRef

from archiver_assets.partitions import runs_partitions
from archiver_resources.archiving import build_blob, import_run
from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.blob import md5_hex
from archiver_resources.samples import generate_run_records
from tests.reliability.conftest import (
    OLD, SEED, direct_client, import_settings, leftover_files, ucondb_versions,
)

REPO = Path(__file__).resolve().parents[2]
RUNS = list(range(7001, 7013))
BATCH = 4
MIGRATE = dg.AssetKey("ucondb_blob")
CHILD_TIMEOUT = 120


def start_child(env_home: Path, config: Path, kill_at: str = "-", count: int = 1,
                runs=RUNS, batch: int = BATCH) -> subprocess.Popen:
    env = dict(os.environ, DAGSTER_HOME=str(env_home), PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.crash_child", str(config), str(batch),
         kill_at, str(count), *map(str, runs)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)


def wait(child: subprocess.Popen, kill_after: float = None) -> tuple:
    """(return code, output); with ``kill_after`` the whole process group is SIGKILLed then."""
    try:
        out, _ = child.communicate(timeout=kill_after if kill_after else CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
    return child.returncode, out


def unfinished(home: Path) -> list:
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        keys = instance.get_dynamic_partitions(runs_partitions.name)
        done = instance.get_materialized_partitions(MIGRATE)
    return [int(k) for k in keys if k not in done] + [r for r in RUNS if str(r) not in keys]


def reference_exports(records: Path, tmp_path: Path) -> dict:
    db = open_artdaqdb(f"filesystemdb://{tmp_path / 'reference'}")
    files = {}
    for run in RUNS:
        import_run(run, records / str(run), db, import_settings())
        files[run] = sorted(db.export_run(run))
    return files


def assert_no_partial_configuration(uri: str, expected_files: dict, context: str) -> None:
    """What artdaqDB lists is complete: a killed write is invisible, never half there."""
    db = open_artdaqdb(uri)
    try:
        for run, name in db.archived_runs().items():
            versions = db.versions(run, name.split("/", 1)[1])
            assert versions in ([name], [name, f"{name}v1"]), (run, versions, context)
            exported = sorted(db.export_run(run))
            allowed = [expected_files[run]] + [[f for f in expected_files[run]
                                                if f != "RunHistory2.fcl"]]
            assert exported in allowed, (run, exported, context)
    finally:
        db.close()


@pytest.mark.slow
def test_sigkill_during_import_and_migration_then_resume(archive_env, tmp_path):
    rng = random.Random(SEED)
    generate_run_records(archive_env.run_records, RUNS, profile="small", mtime=OLD)
    expected = reference_exports(archive_env.run_records, tmp_path)
    home = tmp_path / "dagster_home"
    home.mkdir()
    kills = [("journal", rng.randint(1, 6)), ("document:", rng.randint(1, 60)),
             ("index:", rng.randint(1, 12)), ("committed", rng.randint(1, 8)),
             ("before-put", rng.randint(1, 4)), ("after-put", rng.randint(1, 4)),
             ("-", None)]
    history = []
    for kill_at, count in kills:
        todo = unfinished(home)
        if not todo:
            break
        child = start_child(home, archive_env.config_path, kill_at, count or 1, todo)
        if count is None:  # a kill at a random time, from outside
            code, out = wait(child, kill_after=rng.uniform(3.0, 9.0))
        else:
            code, out = wait(child)
        context = f"seed {SEED}, kill at {kill_at}#{count}, code {code}, output: {out[-1500:]}"
        history.append((kill_at, count, code, len(todo)))
        # Killed at the point, or (few runs left) finished before reaching it.
        assert code in (-signal.SIGKILL, 0), context
        assert_no_partial_configuration(archive_env.artdaqdb_uri, expected, context)
    # Resume until done (the last kill may have hit the final range).
    outputs = []
    for _ in range(2):
        todo = unfinished(home)
        if not todo:
            break
        code, out = wait(start_child(home, archive_env.config_path, runs=todo))
        assert code == 0, out[-3000:]
        outputs.append(out)
    context = f"seed {SEED}, kills {history}"
    assert unfinished(home) == [], (context, "\n".join(
        line for out in outputs for line in out.splitlines()
        if "range" in line or "ERROR" in line or "failed" in line)[-6000:])

    db = open_artdaqdb(archive_env.artdaqdb_uri)
    try:
        assert sorted(db.archived_runs()) == RUNS, context
        want = {}
        for run, name in db.archived_runs().items():
            assert db.versions(run, name.split("/", 1)[1]) == [name, f"{name}v1"], context
            assert sorted(db.export_run(run)) == expected[run], context
            want[run] = md5_hex(build_blob(run, db)[3])
    finally:
        db.close()
    assert leftover_files(archive_env.root / "artdaqdb") == [], context
    assert ucondb_versions(archive_env.ucondb) == {str(r): 1 for r in RUNS}, context
    with direct_client(archive_env.ucondb) as client:
        for run in RUNS:
            assert md5_hex(client.get_blob(run).data) == want[run], (run, context)
    print(f"\ncrash scenario ({context}) passed")


def test_batched_range_with_checks_can_run_twice(archive_env):
    generate_run_records(archive_env.run_records, [7101, 7102], profile="small", mtime=OLD)
    job = archive_env.definitions().resolve_job_def("archive_runs")
    tags = {"dagster/asset_partition_range_start": "7101",
            "dagster/asset_partition_range_end": "7102"}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("runs", ["7101", "7102"])
        assert job.execute_in_process(instance=instance, tags=tags, raise_on_error=False).success
        again = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
        assert again.success, [str(e.event_specific_data.error.message)[:300]
                               for e in again.all_events if e.event_type_value == "STEP_FAILURE"]


CLI_PASSWORD = "CliPW-s3cr3t-Qq77"


def run_cli(home: Path, config: Path, *args, kill_after: float = None) -> tuple:
    env = dict(os.environ, DAGSTER_HOME=str(home), PYTHONPATH=str(REPO),
               RELIABILITY_CLI_PW=CLI_PASSWORD)
    child = subprocess.Popen([sys.executable, "-m", "archiver_assets.cli", str(config), *args],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    return wait(child, kill_after=kill_after)


def cli_workers(config: Path) -> list:
    """Pids of run workers started by a CLI for ``config`` (they run in their own sessions)."""
    found = subprocess.run(["pgrep", "-f", f"archiver_assets.cli --worker {config}"],
                           capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


def wait_for_orphans(config: Path, limit: float = 120.0) -> float:
    """Seconds until the workers of a killed CLI are gone (killed by pid past ``limit``)."""
    started = time.monotonic()
    while cli_workers(config):
        if time.monotonic() - started > limit:
            for pid in cli_workers(config):
                os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"CLI workers still running {limit:g} s after the CLI died")
        time.sleep(0.2)
    return time.monotonic() - started


@pytest.mark.slow
def test_cli_sigkill_then_rerun_archives_every_run_once(tmp_path):
    """SIGKILL the whole CLI process group (CLI and its run workers) at seeded times, then run
    it again: every run archived once, no duplicate versions, no orphan files; and the
    ``--report-status`` output never shows the UconDB password."""
    if not (REPO / "archiver_assets" / "cli" / "main.py").exists():
        pytest.skip("archiver_assets/cli/main.py does not exist")
    from archiver_resources.ucondb.testing import start_local_ucondb
    from tests.support import FOLDER, write_config

    rng = random.Random(SEED)
    runs = list(range(7201, 7211))
    records = tmp_path / "run_records"
    generate_run_records(records, runs, profile="small", mtime=OLD)
    expected = {}
    ref = open_artdaqdb(f"filesystemdb://{tmp_path / 'reference'}")
    for run in runs:
        import_run(run, records / str(run), ref, import_settings())
        expected[run] = sorted(ref.export_run(run))
    server = start_local_ucondb(tmp_path / "ucondb", folder=FOLDER, password=CLI_PASSWORD)
    try:
        uri = f"filesystemdb://{tmp_path / 'artdaqdb' / 'db'}"
        config = write_config(tmp_path, server, run_records=records, artdaqdb_uri=uri,
                              password_env="RELIABILITY_CLI_PW")
        home = tmp_path / "dagster_home"
        home.mkdir()
        kills = []
        for _ in range(2):
            delay = rng.uniform(4.0, 14.0)
            code, out = run_cli(home, config, kill_after=delay)
            # The run workers live in their own sessions and outlive the CLI for a while (see
            # test_cli_workers_die_with_the_cli); wait for them, or the rerun would race them.
            orphans_s = wait_for_orphans(config)
            kills.append((round(delay, 1), code, round(orphans_s, 1)))
            context = f"seed {SEED}, CLI kills {kills}: {out[-1500:]}"
            assert code in (-signal.SIGKILL, 0), context
            assert_no_partial_configuration(uri, expected, context)
        code, out = run_cli(home, config)
        context = f"seed {SEED}, CLI kills {kills}"
        assert code == 0, (context, out[-3000:])
        db = open_artdaqdb(uri)
        try:
            assert sorted(db.archived_runs()) == runs, context
            want = {}
            for run, name in db.archived_runs().items():
                assert db.versions(run, name.split("/", 1)[1]) == [name, f"{name}v1"], context
                want[run] = md5_hex(build_blob(run, db)[3])
        finally:
            db.close()
        assert leftover_files(tmp_path / "artdaqdb") == [], context
        assert ucondb_versions(server) == {str(r): 1 for r in runs}, context
        with direct_client(server) as client:
            for run in runs:
                assert md5_hex(client.get_blob(run).data) == want[run], (run, context)
        code, report = run_cli(home, config, "--report-status")
        assert code == 0, report[-2000:]
        assert CLI_PASSWORD not in out + report
        assert "UCONDB" in report.upper()
    finally:
        server.stop()


@pytest.mark.slow
def test_cli_workers_die_with_the_cli(tmp_path):
    if not (REPO / "archiver_assets" / "cli" / "main.py").exists():
        pytest.skip("archiver_assets/cli/main.py does not exist")
    from archiver_resources.testing.faultproxy import FaultProxy
    from archiver_resources.ucondb.testing import start_local_ucondb
    from tests.support import FOLDER, write_config

    records = tmp_path / "run_records"
    generate_run_records(records, list(range(7301, 7305)), profile="small", mtime=OLD)
    server = start_local_ucondb(tmp_path / "ucondb", folder=FOLDER, password=CLI_PASSWORD)
    # Every UconDB answer takes 2 s: the workers are surely busy migrating when the CLI dies.
    proxy = FaultProxy(server.base_url, seed=SEED, rate=1.0, mix={"slow": 1}, slow_seconds=2.0)
    config = None
    try:
        class Upstream:
            base_url, user = proxy.base_url, server.user

        config = write_config(tmp_path, Upstream, run_records=records,
                              artdaqdb_uri=f"filesystemdb://{tmp_path / 'artdaqdb' / 'db'}",
                              password_env="RELIABILITY_CLI_PW")
        home = tmp_path / "dagster_home"
        home.mkdir()
        env = dict(os.environ, DAGSTER_HOME=str(home), PYTHONPATH=str(REPO),
                   RELIABILITY_CLI_PW=CLI_PASSWORD)
        cli = subprocess.Popen([sys.executable, "-m", "archiver_assets.cli", str(config)],
                               cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while not any(d.method == "POST" for d in proxy.log) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert any(d.method == "POST" for d in proxy.log), "migration never started"
        assert cli_workers(config), "no worker was running"
        os.kill(cli.pid, signal.SIGKILL)  # the CLI alone: its workers run in their own sessions
        cli.wait(timeout=30)
        # They stop like an interrupted batch (the slow proxy answer in flight is abandoned),
        # or exit hard 10 s after the CLI died (ORPHAN_GRACE_SECONDS); a loaded machine adds a bit.
        assert wait_for_orphans(config, limit=30) < 30
    finally:
        if config is not None:
            wait_for_orphans(config, limit=60)
        proxy.stop()
        server.stop()
