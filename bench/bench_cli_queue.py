"""Benchmark: the command line's worker pool against the instance's run queue, same work, paired.

Question: could ``run-record-archiver`` submit its Dagster runs to the instance's run queue
(QueuedRunCoordinator, launched by ``dagster-daemon``) instead of executing them in its own
worker processes (a second orchestrator beside the daemon)?

Per scenario, on fresh stores and a fresh SQLite DAGSTER_HOME each (the project's dagster.yaml:
``max_concurrent_runs: 2``, dequeue every 1 s), over the same sample runs:

* **pool**: ``python -m archiver_assets.cli config.yaml [flags]`` as a process; wall time, CPU of
  the CLI and its workers (children's rusage), the progress lines it prints, the exit code.
* **queue**: ``dagster-daemon run`` started first (its start-up timed apart; the run-records
  directory is empty until the sensor's first tick, whose interval is then a day, so the sensor
  never archives the runs itself); then the same Dagster runs, the same partition batches as the
  pool's (``group_batches``), the import stage then the migration stage, are created and
  submitted to the queue (``instance.submit_run`` through a workspace, as ``dagster job launch``
  does) and waited for. Wall time from the first submission to the last run finished (plus the
  workspace load), CPU of the daemon's session (code server, run workers) and of this process.
* **no daemon**: one run submitted to the queue of an instance that no daemon serves: its status
  after ``--no-daemon-wait`` seconds, and what a submitter can see (daemon heartbeats).

Run: ``python bench/bench_cli_queue.py [-n 50] [--keep] [--out result.json]``; writes one JSON
object (``--out``, else stdout, where the code server started for the submissions also logs).
The machine may be loaded by other work: the figures are paired (same invocation, same stores
shape), and the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.benchlib import fresh_stores, machine_description, scratch_dir  # noqa: E402
from bench.steady import _sensor_origin_id, _sensor_selector_id, _session_cpu_s  # noqa: E402

BIN = Path(sys.executable).parent
FIRST_RUN = 20_001
LOCATION = "run_record_archiver"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _set_app(config: Path, **values) -> None:
    """Add ``app:`` keys (batch_size, parallel_workers) to the bench config."""
    text = config.read_text()
    lines = "".join(f"  {key}: {value}\n" for key, value in values.items())
    config.write_text(text.replace("app:\n", "app:\n" + lines, 1))


def _home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", path / "dagster.yaml")
    return path


def _env(home: Path, config: Path) -> dict:
    return dict(os.environ, DAGSTER_HOME=str(home), ARCHIVER_CONFIG=str(config),
                ARCHIVER_SENSOR_INTERVAL_SECONDS="86400", PYTHONUNBUFFERED="1")


# ---------------------------------------------------------------------------------------------
# pool: the command line as it is
# ---------------------------------------------------------------------------------------------

def run_pool(stores, home: Path, flags: list) -> dict:
    env = _env(home, stores.config_path)
    cpu0, t0 = _children_cpu(), time.monotonic()
    done = subprocess.run([sys.executable, "-m", "archiver_assets.cli", str(stores.config_path),
                           *flags], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1800)
    wall, cpu = time.monotonic() - t0, _children_cpu() - cpu0
    lines = [line.split(" - ", 3)[-1] for line in done.stdout.splitlines()]
    runs = [line for line in lines if line.startswith("Dagster run ")]
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "exit_code": done.returncode,
            "dagster_runs": len(runs),
            "archived": sum(1 for line in lines if line.startswith("✓ Run ")
                            and " migrated " in line),
            "progress_lines_sample": [line for line in lines
                                      if line.startswith(("→ Processing", "Dagster run",
                                                          "Progress:"))][:6]}


# ---------------------------------------------------------------------------------------------
# queue: the same Dagster runs through QueuedRunCoordinator + dagster-daemon
# ---------------------------------------------------------------------------------------------

def _start_daemon(env: dict, log: Path) -> subprocess.Popen:
    subprocess.run([str(BIN / "dagster"), "instance", "migrate"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    return subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w",
                             str(ROOT / "workspace.yaml")], cwd=ROOT, env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _wait(predicate, timeout: float, what: str, proc=None, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"dagster-daemon exited ({proc.returncode}) waiting for {what}")
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise RuntimeError(f"timed out waiting for {what}")


class Submitter:
    """Creates and submits runs of the code location's jobs to the instance's run coordinator,
    the way ``dagster job launch`` does (Dagster's own helper; private, bench only)."""

    def __init__(self, instance):
        from dagster._cli.job import _create_run
        from dagster._core.workspace.context import WorkspaceProcessContext
        from dagster._core.workspace.load_target import WorkspaceFileTarget

        self.instance = instance
        self._create_run = _create_run
        self.context = WorkspaceProcessContext(
            instance, WorkspaceFileTarget(paths=[str(ROOT / "workspace.yaml")]))
        self.workspace = self.context.create_request_context()
        self.location = self.workspace.get_code_location(LOCATION)
        [self.repo] = self.location.get_repositories().values()

    def submit(self, job: str, tags: dict) -> str:
        remote_job = self.repo.get_full_job(job)
        run = self._create_run(instance=self.instance, code_location=self.location,
                               remote_repo=self.repo, remote_job=remote_job, run_config={},
                               tags=tags, op_selection=None, run_id=None)
        self.instance.submit_run(run.run_id, self.workspace)
        return run.run_id

    def close(self) -> None:
        self.context.__exit__(None, None, None)


def _stage_through_queue(instance, submitter, stage: str, runs: list, batch_size: int,
                         print_lines: list, total_runs: int) -> tuple:
    """Submit the stage's batches, wait for them, print CLI-like progress lines:
    ``(succeeded runs, failed runs)``."""
    import dagster as dg

    from archiver_assets.cli.workers import STAGE_JOBS, describe_runs, group_batches
    from archiver_assets.operations.alerts import stage_outcomes
    from archiver_assets.partitions import range_tags, run_key
    from archiver_assets.state.partition_status import partition_keys
    from archiver_assets.state.reconcile import ensure_partitions

    ensure_partitions(instance, runs)
    batches = group_batches(runs, partition_keys(instance), batch_size)
    pending = {}
    for batch in batches:
        tags = ({"dagster/partition": run_key(batch[0])} if len(batch) == 1
                else range_tags(batch))
        run_id = submitter.submit(STAGE_JOBS[stage], {**tags, "archiver/stage": stage,
                                                      "dagster/max_retries": "0"})
        pending[run_id] = batch
        print_lines.append(f"→ Submitted {describe_runs(batch)} (Dagster run {run_id[:8]})")
    succeeded, failed = [], []
    while pending:
        for record in instance.get_run_records(dg.RunsFilter(run_ids=list(pending))):
            run = record.dagster_run
            if not run.is_finished:
                continue
            batch = pending.pop(run.run_id)
            outcomes = stage_outcomes(instance, run, batch)
            bad = set().union(*(set(o.failed) for o in outcomes)) if outcomes else set(batch)
            if run.status != dg.DagsterRunStatus.SUCCESS and not bad:
                bad = set(batch)
            failed += sorted(bad)
            succeeded += [r for r in batch if r not in bad]
            queued = record.start_time - record.create_timestamp.timestamp()
            print_lines.append(f"Dagster run {run.run_id[:8]} ({describe_runs(batch)}): "
                               f"{len(batch) - len(bad)} archived, {len(bad)} failed "
                               f"[queued {queued:.1f} s, "
                               f"ran {record.end_time - record.start_time:.1f} s]")
            print_lines.append(f"Progress: {len(succeeded) + len(failed)}/{total_runs} runs "
                               f"processed ({len(succeeded)} successful, {len(failed)} failed)")
        time.sleep(0.3)
    return succeeded, failed


def run_queue(stores, home: Path, runs: list, batch_size: int, staging: Path) -> dict:
    import dagster as dg

    env = _env(home, stores.config_path)
    os.environ.update(DAGSTER_HOME=str(home), ARCHIVER_CONFIG=str(stores.config_path),
                      ARCHIVER_SENSOR_INTERVAL_SECONDS="86400")
    t_start = time.monotonic()
    proc = _start_daemon(env, home / "daemon.log")
    out: dict = {}
    try:
        instance = dg.DagsterInstance.from_config(str(home))

        def sensor_ticked():
            origin = _sensor_origin_id(instance)
            return bool(origin and instance.get_ticks(origin, _sensor_selector_id(instance),
                                                      limit=1))

        _wait(sensor_ticked, 300, "the daemon's first sensor tick", proc)
        out["daemon_ready_s"] = round(time.monotonic() - t_start, 1)
        for run in runs:  # now the run directories appear (the sensor ticks again in a day)
            os.rename(staging / str(run), stores.run_records / str(run))
        cpu_session0, cpu_self0, cpu_children0 = (_session_cpu_s(proc.pid), _self_cpu(),
                                                  _children_cpu())
        t0 = time.monotonic()
        submitter = Submitter(instance)
        out["workspace_load_s"] = round(time.monotonic() - t0, 1)
        lines: list = []
        try:
            imported, import_failed = _stage_through_queue(instance, submitter, "import", runs,
                                                           batch_size, lines, len(runs))
            migrated, migrate_failed = _stage_through_queue(instance, submitter, "migrate",
                                                            imported, batch_size, lines,
                                                            len(imported))
        finally:
            submitter.close()
        out["wall_s"] = round(time.monotonic() - t0, 1)
        out["cpu_s_daemon_session"] = round(_session_cpu_s(proc.pid) - cpu_session0, 1)
        out["cpu_s_submitter"] = round(_self_cpu() - cpu_self0 + _children_cpu() - cpu_children0,
                                       1)
        out["cpu_s"] = round(out["cpu_s_daemon_session"] + out["cpu_s_submitter"], 1)
        records = instance.get_run_records(dg.RunsFilter(tags={"archiver/stage": "import"})) + \
            instance.get_run_records(dg.RunsFilter(tags={"archiver/stage": "migrate"}))
        out["dagster_runs"] = len(records)
        out["queued_to_start_s_median"] = round(sorted(
            r.start_time - r.create_timestamp.timestamp() for r in records)[len(records) // 2], 2)
        out["execute_s_median"] = round(sorted(
            r.end_time - r.start_time for r in records)[len(records) // 2], 2)
        out["archived"] = len(migrated)
        out["failed"] = len(import_failed) + len(migrate_failed)
        out["progress_lines_sample"] = lines[:6]
    finally:
        _stop(proc)
    out["wall_s_with_daemon_start"] = round(out.get("wall_s", 0) + out.get("daemon_ready_s", 0), 1)
    return out


def no_daemon(stores, home: Path, wait: float) -> dict:
    """One run submitted with no daemon: what happens, and what the submitter can tell."""
    import dagster as dg

    env = _env(home, stores.config_path)
    subprocess.run([str(BIN / "dagster"), "instance", "migrate"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    os.environ.update(DAGSTER_HOME=str(home), ARCHIVER_CONFIG=str(stores.config_path))
    instance = dg.DagsterInstance.from_config(str(home))
    submitter = Submitter(instance)
    try:
        from archiver_assets.state.reconcile import ensure_partitions

        ensure_partitions(instance, [FIRST_RUN])
        run_id = submitter.submit("import_runs", {"dagster/partition": str(FIRST_RUN)})
        time.sleep(wait)
        status = instance.get_run_by_id(run_id).status.value
        heartbeats = instance.get_daemon_heartbeats()
    finally:
        submitter.close()
    return {"waited_s": wait, "status_after_wait": status,
            "daemon_heartbeats": sorted(heartbeats),
            "note": "the run stays QUEUED until a daemon dequeues it; nothing fails it"}


def main(argv=None) -> int:
    from archiver_resources.samples import generate_run_records

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="sample runs (default 50)")
    parser.add_argument("--no-daemon-wait", type=float, default=20.0)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--out", help="write the JSON result here (default: stdout)")
    args = parser.parse_args(argv)
    runs = list(range(FIRST_RUN, FIRST_RUN + args.n))
    scenarios = [  # (name, CLI flags, app settings): batches as the CLI forms them
        ("incremental", ["--incremental"], {"batch_size": args.n, "parallel_workers": 2}),
        ("full, batch_size 5", [], {"batch_size": 5, "parallel_workers": 2}),
    ]
    result = {"machine": machine_description(), "runs": args.n, "scenarios": {}}
    with scratch_dir(keep=args.keep) as scratch:
        for index, (name, flags, app) in enumerate(scenarios):
            figures = {"flags": flags, "app": app}
            for path in ("pool", "queue"):
                tag = f"s{index}-{path}"
                records = scratch / tag / "run_records"
                staging = scratch / tag / "staging"
                generate_run_records(staging, runs, profile="small")
                records.mkdir(parents=True)
                with fresh_stores(scratch / tag, records, "stores") as stores:
                    _set_app(stores.config_path, **app)
                    home = _home(scratch / tag / "dagster_home")
                    if path == "pool":
                        for run in runs:
                            os.rename(staging / str(run), records / str(run))
                        figures[path] = run_pool(stores, home, flags)
                    else:
                        figures[path] = run_queue(stores, home, runs, app["batch_size"], staging)
                figures[path]["load_after"] = os.getloadavg()[0]
                print(json.dumps({name: {path: figures[path]}}), file=sys.stderr, flush=True)
            result["scenarios"][name] = figures
        with fresh_stores(scratch / "nodaemon", scratch / "nodaemon" / "rr", "stores") as stores:
            (scratch / "nodaemon" / "rr").mkdir(parents=True, exist_ok=True)
            result["no_daemon"] = no_daemon(stores, _home(scratch / "nodaemon" / "home"),
                                            args.no_daemon_wait)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
