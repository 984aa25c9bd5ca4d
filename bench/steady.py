"""Steady state through the real daemon: `dagster-daemon run` on a throw-away DAGSTER_HOME (the
project's dagster.yaml, optionally another max_concurrent_runs), the `new_run_records` sensor
every second; run directories dropped one at a time, then a burst. Figures come from the run
records' timestamps (create → start → end). ``batch_size`` sets the config's ``app.batch_size``,
the most runs the sensor puts in one partition-range run (1: one Dagster run per partition)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.benchlib import ROOT, Stores

BIN = Path(sys.executable).parent


def _home(path: Path, max_concurrent_runs: int, dagster_yaml: Path | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    text = (dagster_yaml or ROOT / "dagster.yaml").read_text()
    text = re.sub(r"max_concurrent_runs: *\d+", f"max_concurrent_runs: {max_concurrent_runs}",
                  text)
    (path / "dagster.yaml").write_text(text)
    return path


def _session_cpu_s(session: int) -> float:
    """CPU seconds of every process in ``session`` (the daemon, its code server, the run workers
    their parents reaped): what the machine spends on runs, whatever else shares it."""
    return sum(_session_cpu_parts(session).values())


def _session_cpu_parts(session: int) -> dict:
    """:func:`_session_cpu_s` by where it went: ``daemon`` (the daemon process itself),
    ``code server`` (every other live process of the session, e.g. the gRPC code server) and
    ``run workers`` (the processes they reaped: run workers, started by the daemon's launcher)."""
    parts = {"daemon": 0.0, "code server": 0.0, "run workers": 0.0}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[3]) != session:  # after "comm)": state, ppid, pgrp, session, ...
            continue
        own = (int(fields[11]) + int(fields[12])) / tick  # utime stime
        reaped = (int(fields[13]) + int(fields[14])) / tick  # cutime cstime
        pid = int(stat.parent.name)
        parts["daemon" if pid == session else "code server"] += own
        parts["run workers"] += reaped
    return parts


def _union_length(intervals) -> float:
    """Total length covered by ``(start, end)`` intervals (overlaps counted once)."""
    total, reach = 0.0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def _wait(predicate, timeout: float, what: str, proc, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster-daemon exited early ({proc.returncode}) while waiting "
                               f"for {what}")
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise RuntimeError(f"timed out waiting for {what}")


def _with_batch_size(config_path: Path, batch_size: int | None) -> None:
    """Set ``app.batch_size`` in the benchmark's config.yaml (None: leave the default)."""
    if batch_size is None:
        return
    text = re.sub(r"(?m)^  batch_size:.*\n", "", config_path.read_text())
    config_path.write_text(text.replace("\napp:\n", f"\napp:\n  batch_size: {batch_size}\n", 1))


def steady_state(stores: Stores, first_run: int, singles: int, burst: int, home: Path,
                 max_concurrent_runs: int = 2, sensor_interval: int = 1,
                 dagster_yaml: Path | None = None, batch_size: int | None = None) -> dict:
    """Drop ``singles`` runs one at a time (each after the previous finished: the submit→done
    latency of an idle system), then ``burst`` runs at once (throughput). ``batch_size``: the
    sensor's range size (1: one Dagster run per partition; None: the config's default).
    ``dagster_yaml``: another instance file than the repository's (to compare settings).
    """
    import dagster as dg

    from archiver_assets.partitions import targeted_keys
    from archiver_resources.samples import generate_run_record

    _with_batch_size(stores.config_path, batch_size)
    home = _home(home, max_concurrent_runs, dagster_yaml)
    env = dict(os.environ, DAGSTER_HOME=str(home), ARCHIVER_CONFIG=str(stores.config_path),
               ARCHIVER_SENSOR_INTERVAL_SECONDS=str(sensor_interval), PYTHONUNBUFFERED="1")
    staging = stores.root / "staging"
    runs_single = list(range(first_run, first_run + singles))
    runs_burst = list(range(first_run + singles, first_run + singles + burst))
    for run in runs_single + runs_burst:  # generated beforehand, moved in atomically
        generate_run_record(staging, run)
    log = open(home / "daemon.log", "wb")
    proc = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w",
                             str(ROOT / "workspace.yaml")], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    out: dict = {"max_concurrent_runs": max_concurrent_runs, "batch_size": batch_size}
    try:
        instance = dg.DagsterInstance.from_config(str(home))
        t0 = time.monotonic()

        def sensor_ticked():
            ticks = instance.get_ticks(_sensor_origin_id(instance), _sensor_selector_id(instance),
                                       limit=1) if _sensor_origin_id(instance) else []
            return bool(ticks)

        _wait(sensor_ticked, 120, "the first sensor tick", proc, poll=0.5)
        out["daemon_ready_s"] = time.monotonic() - t0

        def covered(record):
            return targeted_keys(record.dagster_run.tags,
                                 lambda: instance.get_dynamic_partitions("runs"))

        def done(keys):
            """The finished Dagster runs targeting ``keys``, once they cover every one."""
            records = [r for r in instance.get_run_records() if covered(r) & keys]
            finished = [r for r in records if r.dagster_run.is_finished]
            seen = set().union(*(covered(r) for r in finished)) if finished else set()
            return finished if keys <= seen and len(finished) == len(records) else None

        latencies, drop_to_done = [], []
        for run in runs_single:
            dropped = time.time()
            os.rename(staging / str(run), stores.run_records / str(run))
            records = _wait(lambda: done({str(run)}), 180, f"run {run}", proc)
            r = records[0]
            latencies.append(r.end_time - r.create_timestamp.timestamp())
            drop_to_done.append(r.end_time - dropped)
            out.setdefault("queue_launch_s", []).append(
                r.start_time - r.create_timestamp.timestamp())
            out.setdefault("execute_s", []).append(r.end_time - r.start_time)
        out["submit_to_done_s"] = latencies
        out["drop_to_done_s"] = drop_to_done

        parts_before = _session_cpu_parts(proc.pid)
        cpu_before = sum(parts_before.values())
        dropped = time.time()
        for run in runs_burst:
            os.rename(staging / str(run), stores.run_records / str(run))
        keys = {str(r) for r in runs_burst}
        records = _wait(lambda: done(keys), 60 + 20 * burst, "the burst", proc, poll=0.5)
        parts = _session_cpu_parts(proc.pid)
        cpu = sum(parts.values()) - cpu_before
        out["burst_cpu_s_per_run"] = cpu / len(keys)  # per archived run, not per Dagster run
        out["burst_cpu_s_per_run_by_process"] = {
            name: (parts[name] - parts_before[name]) / len(keys) for name in parts}
        # The most a machine with this many cores could do if runs were CPU-bound only.
        out["cpu_bound_runs_per_min"] = 60 * (os.cpu_count() or 1) / (cpu / len(keys))
        failed = [r for r in records if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS]
        last_end = max(r.end_time for r in records)
        first_create = min(r.create_timestamp.timestamp() for r in records)
        out["burst_runs"] = len(keys)
        out["burst_dagster_runs"] = len(records)
        out["burst_failed"] = len(failed)
        out["burst_not_archived"] = len(keys - instance.get_materialized_partitions(
            dg.AssetKey("ucondb_blob")))
        out["burst_runs_per_min"] = len(keys) / (last_end - first_create) * 60
        # the time at least one of the burst's Dagster runs existed unfinished: without the
        # gaps in which the sensor had not yet requested runs it had not seen (a tick that
        # falls while the burst's directories are being moved in leaves the rest to the next)
        busy = _union_length([(r.create_timestamp.timestamp(), r.end_time) for r in records])
        out["burst_busy_s"] = busy
        out["burst_runs_per_busy_min"] = len(keys) / busy * 60
        out["burst_drop_to_all_done_s"] = last_end - dropped
        out["burst_submit_to_done_s"] = statistics.median(
            r.end_time - r.create_timestamp.timestamp() for r in records)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _sensor_origin_id(instance):
    states = [s for s in instance.all_instigator_state()
              if s.instigator_name == "new_run_records"]
    return states[0].instigator_origin_id if states else None


def _sensor_selector_id(instance):
    states = [s for s in instance.all_instigator_state()
              if s.instigator_name == "new_run_records"]
    return states[0].selector_id if states else None
