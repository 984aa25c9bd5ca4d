"""Scale measurements: the sensor tick over many run directories, and partition-status reads
(instance calls and the UI's GraphQL partition query) at many partitions."""

from __future__ import annotations

import os
import time
from typing import Optional
from pathlib import Path

STOP_LINE = "DAQInterface stop time: Tue Oct 15 14:02:11 UTC 2024\n"
OLD = 1_600_000_000  # mtimes far in the past: the age rule would also call them finished


def make_run_dirs(parent: Path, count: int, first: int = 1) -> Path:
    """``count`` run directories with just a metadata.txt holding a stop time (fast)."""
    root = parent / f"runs-{count}"
    root.mkdir(parents=True, exist_ok=True)
    for run in range(first, first + count):
        d = root / str(run)
        os.mkdir(d)
        fd = os.open(d / "metadata.txt", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"Config name: standard\nDAQInterface start time: Tue Oct 15 13:02:11 UTC 2024\n"
                     + STOP_LINE.encode())
        os.close(fd)
    return root


class FinishedStateCounter:
    """Counts the sensor's finished_state calls (each one stats the run dir, reads metadata.txt)."""

    def __init__(self):
        import archiver_assets.archive.sensors as sensors

        self.module = sensors
        self.original = sensors.finished_state
        self.calls = 0

        def counted(*args, **kwargs):
            self.calls += 1
            return self.original(*args, **kwargs)

        sensors.finished_state = counted

    def take(self) -> int:
        calls, self.calls = self.calls, 0
        return calls

    def restore(self):
        self.module.finished_state = self.original


def caught_up_cursor(count: int):
    """The cursor the sensor holds once it requested runs 1..count (500 per tick), as the tick
    loop leaves it (checked against plan_tick in the smoke test's sizes)."""
    from archiver_assets.archive.sensors import SensorCursor

    return SensorCursor(highest=count, pending=[], awaiting_stop=[], directories=count)


def sensor_ticks(root: Path, count: int) -> dict:
    """plan_tick over ``count`` directories: first tick (empty instance), catch-up ticks until
    every run is requested, a steady tick (nothing changed), a tick after one new run, and a
    full-comparison tick (cursor lost, every run already a partition)."""
    from archiver_assets.archive.sensors import SensorCursor, plan_tick

    keys = {str(r) for r in range(1, count + 1)}
    counter = FinishedStateCounter()
    out = {}
    try:
        t0 = time.perf_counter()
        with os.scandir(root) as entries:
            names = sum(1 for _ in entries)
        out["scandir_s"] = time.perf_counter() - t0
        assert names == count

        known: set = set()
        t0 = time.perf_counter()
        plan = plan_tick(root, SensorCursor(), min_age_seconds=3600,
                         known_partitions=lambda: known)
        out["first_tick_s"] = time.perf_counter() - t0
        out["first_tick_reads"] = counter.take()
        out["first_tick_new"] = len(plan.new_runs)
        t0 = time.perf_counter()
        plan = plan_tick(root, plan.cursor, min_age_seconds=3600, known_partitions=lambda: known)
        out["second_tick_s"] = time.perf_counter() - t0
        out["second_tick_reads"] = counter.take()
        out["catchup_ticks"] = -(-count // 500)
        cursor = caught_up_cursor(count)
        steady = []
        for _ in range(3):
            t0 = time.perf_counter()
            plan = plan_tick(root, cursor, min_age_seconds=3600, known_partitions=lambda: keys)
            steady.append(time.perf_counter() - t0)
            assert not plan.new_runs and not plan.full_scan
        out["steady_tick_s"] = steady
        out["steady_tick_reads"] = counter.take() / 3
        (root / str(count + 1)).mkdir()
        (root / str(count + 1) / "metadata.txt").write_text(STOP_LINE)
        t0 = time.perf_counter()
        plan = plan_tick(root, cursor, min_age_seconds=3600, known_partitions=lambda: keys)
        out["new_run_tick_s"] = time.perf_counter() - t0
        out["new_run_tick_reads"] = counter.take()
        assert plan.new_runs == [count + 1]
        keys.add(str(count + 1))
        t0 = time.perf_counter()
        plan = plan_tick(root, SensorCursor(), min_age_seconds=3600,
                         known_partitions=lambda: keys)
        out["lost_cursor_tick_s"] = time.perf_counter() - t0
        out["lost_cursor_tick_reads"] = counter.take()
    finally:
        counter.restore()
    return out


def sensor_tick_through_dagster(root: Path, config_path: Path, count: int, home: Path) -> dict:
    """The real sensor evaluated as the daemon does (resources, cursor, instance partitions):
    a steady tick after every run became a partition."""
    import dagster as dg

    from archiver_assets.archive.sensors import SensorCursor, plan_tick
    from archiver_assets.definitions import build_definitions
    from bench.catchup import dagster_instance

    defs = build_definitions(str(config_path))
    sensor = defs.resolve_sensor_def("new_run_records")
    out = {}
    with dagster_instance(home) as instance:
        keys = [str(r) for r in sorted(int(p.name) for p in root.iterdir())]
        instance.add_dynamic_partitions("runs", keys)
        cursor = caught_up_cursor(len(keys)).dump()  # every directory already requested
        times = []
        for _ in range(3):
            with dg.build_sensor_context(instance_ref=instance.get_ref(), definitions=defs,
                                         resources=defs.resources, cursor=cursor) as context:
                t0 = time.perf_counter()
                data = sensor.evaluate_tick(context)
                times.append(time.perf_counter() - t0)
            assert not data.run_requests
        out["dagster_steady_tick_s"] = times
        lost_cursor = None
        for label in ("dagster_lost_cursor_tick_s", "dagster_after_lost_cursor_tick_s"):
            with dg.build_sensor_context(instance_ref=instance.get_ref(), definitions=defs,
                                         resources=defs.resources,
                                         cursor=lost_cursor) as context:
                t0 = time.perf_counter()
                data = sensor.evaluate_tick(context)
                out[label] = time.perf_counter() - t0
            lost_cursor = data.cursor or lost_cursor
        out["after_lost_cursor_full_scan"] = SensorCursor.parse(lost_cursor).highest < 0
    return out


PARTITIONS_QUERY = """
query PartitionsView($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    __typename
    ... on AssetNode {
      partitionKeysByDimension { name partitionKeys }
      assetPartitionStatuses {
        __typename
        ... on DefaultPartitionStatuses {
          materializedPartitions failedPartitions unmaterializedPartitions
          materializingPartitions
        }
      }
    }
  }
}"""


def partition_status(count: int, home: Path, materialized_every: int = 2,
                     materialize_cap: int = 2000, dagster_yaml: Optional[Path] = None) -> dict:
    """``count`` partitions added in one call; some materialized; then the reads the UI and the
    status report make: get_dynamic_partitions, get_status_by_partition,
    get_materialized_partitions and the GraphQL partitions-view query."""
    import dagster as dg

    from archiver_assets.partitions import runs_partitions
    from bench.catchup import dagster_instance

    key = dg.AssetKey("ucondb_blob")
    keys = [str(r) for r in range(1, count + 1)]
    out = {"partitions": count}
    with dagster_instance(home, dagster_yaml) as instance:
        t0 = time.perf_counter()
        instance.add_dynamic_partitions(runs_partitions.name, keys)
        out["add_s"] = time.perf_counter() - t0
        marked = keys[::materialized_every][:materialize_cap]
        t0 = time.perf_counter()
        for k in marked:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key,
                                                                        partition=k))
        out["materialized"] = len(marked)
        out["runless_each_s"] = (time.perf_counter() - t0) / max(1, len(marked))
        t0 = time.perf_counter()
        listed = instance.get_dynamic_partitions(runs_partitions.name)
        out["get_partitions_s"] = time.perf_counter() - t0
        assert len(listed) == count
        for label in ("first", "repeat"):
            t0 = time.perf_counter()
            status = instance.get_status_by_partition(key, listed, runs_partitions)
            out[f"status_{label}_s"] = time.perf_counter() - t0
        assert sum(1 for s in status.values() if s is not None and s.value == "MATERIALIZED") \
            == len(marked)
        t0 = time.perf_counter()
        got = instance.get_materialized_partitions(key)
        out["materialized_read_s"] = time.perf_counter() - t0
        assert len(got) == len(marked)
        out.update(graphql_partitions(instance, len(marked), count))
    return out


def graphql_partitions(instance, materialized: int, count: int) -> dict:
    """The UI's partitions-view query through dagster-graphql against an in-process workspace
    of the real code location (the same schema the webserver serves)."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster_graphql.test.utils import execute_dagster_graphql

    origin = InProcessCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(module_name="archiver_assets.definitions",
                                                    attribute="defs"),
        location_name="archiver_assets")
    out = {}
    with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as process:
        for label in ("first", "repeat"):
            context = process.create_request_context()
            t0 = time.perf_counter()
            result = execute_dagster_graphql(context, PARTITIONS_QUERY,
                                             {"path": ["ucondb_blob"]})
            out[f"graphql_{label}_s"] = time.perf_counter() - t0
            assert not result.errors, result.errors
            node = result.data["assetNodeOrError"]
            assert len(node["partitionKeysByDimension"][0]["partitionKeys"]) == count
            statuses = node["assetPartitionStatuses"]
            assert len(statuses["materializedPartitions"]) == materialized, statuses.keys()
    return out


def main(argv=None) -> int:
    """Sensor ticks alone (no Dagster instance), for profiling: ``python bench/scale.py
    --sensor 100000 [--dir DIR]``. bench/run.py ``--only sensor`` is the reported measurement."""
    import argparse
    import json
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--sensor", type=int, default=10_000, metavar="N",
                        help="number of run directories (default 10000)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to make them (kept; reused when runs-N already exists "
                             "there with N entries); default a temporary directory")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-sensor-") as scratch:
        parent = args.dir or Path(scratch)
        root = parent / f"runs-{args.sensor}"
        if root.exists():  # the tick after one new run adds run N+1: start from N again
            extra = root / str(args.sensor + 1)
            if extra.exists():
                (extra / "metadata.txt").unlink(missing_ok=True)
                extra.rmdir()
        if not root.exists() or sum(1 for _ in os.scandir(root)) != args.sensor:
            root = make_run_dirs(parent, args.sensor)
        print(json.dumps(sensor_ticks(root, args.sensor), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
