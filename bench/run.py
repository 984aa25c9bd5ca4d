"""The benchmark harness of run-record-archiver: catch-up through Dagster vs a plain
loop, steady state through the daemon, sensor ticks, partition status at scale, peak RSS.

    python bench/run.py --quick        # < 1 minute; what CI may run
    python bench/run.py --only postgres --quick   # PostgreSQL instance beside SQLite
    python bench/run.py                # full mode, for people (~15-25 minutes)
    python bench/run.py --tiny --out /tmp/perf.md   # seconds; the smoke test's mode

Every figure comes with a baseline measured in the same invocation and their ratio; the table
goes to docs/performance.md (the table that was there is kept as "Previous measurement").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.benchlib import (ROOT, Row, fresh_stores, machine_description, render_table,  # noqa: E402
                            scratch_dir, spread, verdict, write_performance_md)

MODES = {
    # catch-up: runs, batch sizes, repeats; sensor dirs; partitions (+ how many materialized);
    # peak RSS profile; steady state (singles, burst, concurrency values); store-size scaling
    "tiny": dict(runs=4, batches=[2], repeats=1, sensor=[300], partitions=300, materialize=10,
                 rss="huge:2", rss_modes=["core"], steady=None, scaling=None,
                 postgres=dict(runs=4, batches=[2], repeats=1, partitions=300, materialize=10,
                               steady=None)),
    "quick": dict(runs=25, batches=[25], repeats=1, sensor=[10_000], partitions=10_000,
                  materialize=40, rss="huge:20", rss_modes=["core"], steady=None,
                  scaling=None,
                  postgres=dict(runs=25, batches=[25], repeats=1, partitions=10_000,
                                materialize=40, steady=None)),
    "full": dict(runs=100, batches=[5, 25, 100], repeats=2, dagster_repeats=1,
                 sensor=[10_000, 100_000], partitions=100_000, materialize=200,
                 rss="huge:100", rss_modes=["core"], steady=(4, 20, [2, 4]), scaling=100_000,
                 daemon_catchup=dict(runs=400, batch=100, concurrency=2, repeats=2,
                                     sensor_interval=30),
                 postgres=dict(runs=100, batches=[25, 100], repeats=2, partitions=100_000,
                               materialize=200, steady=(4, 20, 2))),
}

PREAMBLE = """# Performance

How fast run-record-archiver archives, measured by `bench/run.py` (rerun it: see "How to rerun" below).
Each figure has a baseline measured in the same invocation and the ratio between them, so a
slower or busier machine shifts both. The targets (2-core machine) and whether they are met are under
"Targets: met, missed, and why" below.
"""


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------------------
# Measurements: each returns Rows and fills `raw` with the numbers behind them.
# ---------------------------------------------------------------------------------------------

def measure_catchup(cfg, scratch: Path, raw: dict) -> list[Row]:
    """Each Dagster catch-up is paired with the plain loop (with and without the checks' work)
    measured right before it, on fresh stores: the ratio compares like with like even when the
    machine's load changes during the invocation."""
    from archiver_resources.samples import generate_run_records
    from bench.catchup import dagster_catchup, plain_loop

    n = cfg["runs"]
    runs = list(range(10_000, 10_000 + n))
    records = scratch / "run_records"
    generate_run_records(records, runs)
    per_min = lambda seconds: n / seconds * 60  # noqa: E731
    plain, plain_cpu, checks, pairs = [], [], [], {}
    for batch in cfg["batches"]:
        for i in range(cfg.get("dagster_repeats", cfg["repeats"])):
            with fresh_stores(scratch, records, f"plain-{batch}-{i}") as stores:
                c0 = cpu_seconds()
                loop = plain_loop(stores, runs)
                plain_cpu.append(cpu_seconds() - c0)
            with fresh_stores(scratch, records, f"checks-{batch}-{i}") as stores:
                loop_checks = plain_loop(stores, runs, with_checks=True)
            with fresh_stores(scratch, records, f"dagster-{batch}-{i}") as stores:
                result = dagster_catchup(stores, runs, batch, scratch / f"home-{batch}-{i}")
            plain.append(loop)
            checks.append(loop_checks)
            result.update(plain_s=loop, plain_checks_s=loop_checks)
            pairs.setdefault(batch, []).append(result)
    raw["plain_s"], raw["plain_cpu_s"], raw["plain_checks_s"] = plain, plain_cpu, checks
    raw["dagster"] = {str(b): v for b, v in pairs.items()}
    best = min(pairs, key=lambda b: min(r["seconds"] / r["plain_checks_s"] for r in pairs[b]))
    rows = []
    for batch, results in pairs.items():
        secs = [r["seconds"] for r in results]
        vs_checks = [r["seconds"] / r["plain_checks_s"] for r in results]
        vs_plain = [r["seconds"] / r["plain_s"] for r in results]
        runless = [r["runless_s"] / r["seconds"] * 100 for r in results]
        rate = max(per_min(s) for s in secs)
        rows.append(Row(
            key=f"1{'*' if batch == best else ''}",
            what=f"catch-up through Dagster, {n} typical runs (60 kB, 20 files), range runs of "
                 f"{batch} (both assets + 3 checks), filesystemdb + local UconDB",
            figure=f"{spread([per_min(s) for s in secs])} runs/min",
            baseline="paired plain loop doing the checks' work too: "
                     f"{spread([per_min(r['plain_checks_s']) for r in results])} runs/min",
            ratio=f"{spread(vs_checks)}× the paired loop's time ({spread(vs_plain)}× the loop "
                  "without checks)",
            target="≥ 600 runs/min; ≤ 1.5× the plain loop",
            verdict=verdict(rate >= 600 and min(vs_plain) <= 1.5) if batch == best else "",
            note=(f"batch {batch}: {results[0]['runless_reports']} check-evaluation events "
                  f"(one per partition and check) took {spread(runless)} % of the wall time; "
                  "process CPU "
                  f"{spread([r['cpu_s'] for r in results])} s for {spread(secs)} s wall")))
    rows.append(Row(
        key="2", what=f"plain Python loop over import_run + migrate_run (MD5 verify), {n} runs",
        figure=f"{spread([per_min(s) for s in plain])} runs/min",
        baseline=f"same loop + the checks' work: {spread([per_min(s) for s in checks])} runs/min",
        ratio=f"{spread([c / p for c, p in zip(checks, plain)])}× (the checks' cost)",
        target="", verdict="",
        note=f"process CPU {spread(plain_cpu)} s for {spread(plain)} s wall: the rest is "
             "waiting (fsync, loopback HTTP, other processes on the machine)"))
    return rows


def measure_sensor(cfg, scratch: Path, raw: dict) -> list[Row]:
    from bench.benchlib import fresh_stores as _fresh
    from bench.scale import make_run_dirs, sensor_tick_through_dagster, sensor_ticks

    rows = []
    for count in cfg["sensor"]:
        t0 = time.perf_counter()
        root = make_run_dirs(scratch / "sensor", count)
        made = time.perf_counter() - t0
        result = sensor_ticks(root, count)
        with _fresh(scratch, root, f"sensor-stores-{count}") as stores:
            result.update(sensor_tick_through_dagster(root, stores.config_path, count,
                                                      scratch / f"sensor-home-{count}"))
        result["make_dirs_s"] = made
        raw[f"sensor_{count}"] = result
        steady = sorted(result["dagster_steady_tick_s"])[1]
        rows.append(Row(
            key="4", what=f"sensor tick, {count:,} run directories: steady tick (no change) "
                          "through the real sensor",
            figure=f"{spread(result['dagster_steady_tick_s'])} s; plan_tick alone "
                   f"{spread(result['steady_tick_s'])} s; {result['steady_tick_reads']:.0f} "
                   "runs read",
            baseline=f"bare os.scandir of the directory: {result['scandir_s']:.3f} s",
            ratio=f"{steady / result['scandir_s']:.1f}×",
            target="≤ 1 s at 100k; no re-read of unchanged runs",
            verdict=verdict(steady <= 1 and result["steady_tick_reads"] == 0)
            if count >= 100_000 else verdict(result["steady_tick_reads"] == 0),
            note=(f"{count:,} dirs: first tick (empty instance) {result['first_tick_s']:.2f} s, "
                  f"{result['first_tick_reads']} runs read ({result['first_tick_new']} requested;"
                  f" 500 per tick cap, {result['catchup_ticks']} ticks to request all; second "
                  f"tick {result['second_tick_s']:.2f} s, {result['second_tick_reads']} read); tick "
                  f"after one new run {result['new_run_tick_s']:.3f} s "
                  f"({result['new_run_tick_reads']} read); lost cursor, all known: "
                  f"plan_tick {result['lost_cursor_tick_s']:.2f} s "
                  f"({result['lost_cursor_tick_reads']} read), through Dagster "
                  f"{result['dagster_lost_cursor_tick_s']:.2f} s, next tick "
                  f"{result['dagster_after_lost_cursor_tick_s']:.2f} s"
                  + (" (still a full comparison: the cursor's highest run stays unset)"
                     if result["after_lost_cursor_full_scan"] else ""))))
    return rows


def measure_partitions(cfg, scratch: Path, raw: dict) -> list[Row]:
    from bench.scale import partition_status

    count = cfg["partitions"]
    result = partition_status(count, scratch / "partitions-home",
                              materialize_cap=cfg["materialize"])
    raw["partitions"] = result
    worst = max(result["status_first_s"], result["graphql_first_s"])
    return [Row(
        key="5", what=f"partition status at {count:,} partitions ({result['materialized']} "
                      "materialized): get_status_by_partition first/repeat; UI GraphQL "
                      "partitions query (partitionKeysByDimension + assetPartitionStatuses) "
                      "first/repeat",
        figure=f"{result['status_first_s']:.2f}/{result['status_repeat_s']:.2f} s; GraphQL "
               f"{result['graphql_first_s']:.2f}/{result['graphql_repeat_s']:.2f} s",
        baseline=f"get_dynamic_partitions (keys only): {result['get_partitions_s']:.3f} s",
        ratio=f"{worst / max(result['get_partitions_s'], 1e-6):.1f}× (slowest read)",
        target="no O(n²); UI-usable", verdict="",
        note=(f"add_dynamic_partitions of {count:,} keys in one call {result['add_s']:.2f} s; "
              f"get_materialized_partitions {result['materialized_read_s']:.3f} s; one runless "
              f"materialization report {result['runless_each_s'] * 1000:.0f} ms"))]


def measure_rss(cfg, scratch: Path, raw: dict) -> list[Row]:
    from archiver_resources.samples import generate_run_record
    from bench.rss import peak_rss

    profile = cfg["rss"]
    records = scratch / "rss_records"
    t0 = time.perf_counter()
    run_dir = generate_run_record(records, 777, profile=profile)
    generated = time.perf_counter() - t0
    size_mb = sum(p.stat().st_size for p in run_dir.iterdir()) / 1e6
    rows = []
    with fresh_stores(scratch, records, "rss-idle") as stores:
        idle = peak_rss(stores, 777, "idle")
    for mode in cfg["rss_modes"]:
        with fresh_stores(scratch, records, f"rss-{mode}") as stores:
            result = peak_rss(stores, 777, mode)
        raw[f"rss_{mode}"] = dict(result, run_mb=size_mb, generate_s=generated)
        what = "plain core" if mode == "core" else "Dagster job in-process (archive_runs + checks)"
        rows.append(Row(
            key="6", what=f"peak RSS archiving one {size_mb:.0f} MB run record ({what})",
            figure=f"{result['peak_mb']:.0f} MB ({result['seconds']:.1f} s)",
            baseline=f"same child, imports only: {idle['peak_mb']:.0f} MB",
            ratio=f"+{result['peak_mb'] - idle['peak_mb']:.0f} MB = "
                  f"{(result['peak_mb'] - idle['peak_mb']) / size_mb:.1f}× the run's size",
            target="≤ 300 MB for 100 MB" if size_mb >= 90 else "≤ 300 MB for 100 MB (scaled)",
            verdict=verdict(result["peak_mb"] <= 300) if size_mb >= 90 else ""))
    return rows


STEADY_RANGE_SIZE = 5  # app.batch_size's default: the sensor's range runs


def measure_steady(cfg, scratch: Path, raw: dict) -> list[Row]:
    """Per concurrency, the sensor's per-partition mode (app.batch_size 1) and its range runs
    (app.batch_size 5, the default) one right after the other, each on fresh stores and a fresh
    daemon: the pair compares like with like on a machine whose load changes."""
    from bench.steady import steady_state

    singles, burst, concurrencies = cfg["steady"]
    rows, first = [], 50_000
    for concurrency in concurrencies:
        pair = {}
        for batch in (1, STEADY_RANGE_SIZE):
            label = f"{concurrency}-b{batch}"
            records = scratch / f"steady_records-{label}"  # a fresh daemon sees only its runs
            records.mkdir()
            try:
                with fresh_stores(scratch, records, f"steady-{label}") as stores:
                    pair[batch] = steady_state(
                        stores, first, singles if concurrency == concurrencies[0] else 2, burst,
                        scratch / f"steady-home-{label}", max_concurrent_runs=concurrency,
                        batch_size=batch)
            except Exception as error:  # keep the other figures
                rows.append(Row(key="!", what=f"steady state, max_concurrent_runs {concurrency}, "
                                             f"app.batch_size {batch}",
                                figure=type(error).__name__, note=str(error)[:300]))
            finally:
                first += 1000
            if batch in pair:
                suffix = "" if batch == 1 else f"_batch{batch}"
                raw[f"steady_{concurrency}{suffix}"] = pair[batch]
        for batch, result in pair.items():
            latency = result["submit_to_done_s"]
            ranged = batch > 1
            base = pair.get(1) if ranged else None
            rows.append(Row(
                key="3", what=(f"steady state through dagster-daemon, "
                               + (f"range runs of ≤ {batch} runs per tick (app.batch_size "
                                  f"{batch})" if ranged
                                  else "one run per partition (app.batch_size 1)")
                               + f", max_concurrent_runs {concurrency}: burst of {burst} runs; "
                                 "single runs submit→done"),
                figure=f"{result['burst_runs_per_min']:.1f} runs/min "
                       f"({result['burst_dagster_runs']} Dagster runs); submit→done "
                       f"{spread(latency)} s (queue+launch {spread(result['queue_launch_s'])} s, "
                       f"execute {spread(result['execute_s'])} s)",
                baseline=(f"one run per partition, measured right before: "
                          f"{base['burst_runs_per_min']:.1f} runs/min" if base else
                          "catch-up through Dagster above (same work per run, no launch)"),
                ratio=(f"{result['burst_runs_per_min'] / base['burst_runs_per_min']:.2f}× the "
                       "throughput" if base else
                       f"{raw['catchup_best_per_min'] / result['burst_runs_per_min']:.1f}× slower"
                       if raw.get("catchup_best_per_min") else ""),
                target="≥ 60 runs/min; submit→done ≤ 5 s",
                verdict=verdict(result["burst_runs_per_min"] >= 60
                                and sorted(latency)[len(latency) // 2] <= 5
                                and not result["burst_failed"]
                                and not result["burst_not_archived"]),
                note=(f"max_concurrent_runs {concurrency}, app.batch_size {batch}: drop→done "
                      f"{spread(result['drop_to_done_s'])} s (sensor every 1 s); burst "
                      f"{result['burst_dagster_runs']} Dagster runs, {result['burst_failed']} "
                      f"failed, {result['burst_not_archived']} runs not archived, drop→all done "
                      f"{result['burst_drop_to_all_done_s']:.0f} s, CPU "
                      f"{result['burst_cpu_s_per_run']:.2f} s per archived run; daemon ready after "
                      f"{result['daemon_ready_s']:.0f} s")))
    return rows


def measure_daemon_catchup(cfg, scratch: Path, raw: dict) -> list[Row]:
    """A backlog through the production path: the runs appear at once, the sensor requests
    them as range runs of ``batch`` (app.batch_size), the daemon's run queue runs
    ``concurrency`` of them at a time in run workers (both assets and all checks). Paired with
    the plain loop doing the checks' work (one process) on the same runs right before."""
    from archiver_resources.samples import generate_run_records
    from bench.catchup import plain_loop
    from bench.steady import steady_state

    spec = cfg["daemon_catchup"]
    n, batch, concurrency = spec["runs"], spec["batch"], spec["concurrency"]
    # the production sensor interval: each tick of the sensors (the automation sensor evaluates
    # every partition) costs the daemon and the code server CPU the run workers then lack
    interval = spec["sensor_interval"]
    pairs, first = [], 60_000
    for i in range(spec["repeats"]):
        records = scratch / f"daemon-catchup-records-{i}"
        runs = list(range(first, first + n))
        generate_run_records(records, runs)
        with fresh_stores(scratch, records, f"daemon-catchup-loop-{i}") as stores:
            loop = plain_loop(stores, runs, with_checks=True)
        empty = scratch / f"daemon-catchup-empty-{i}"  # the daemon's run records start empty
        empty.mkdir()
        with fresh_stores(scratch, empty, f"daemon-catchup-{i}") as stores:
            result = steady_state(stores, first, 0, n, scratch / f"daemon-catchup-home-{i}",
                                  max_concurrent_runs=concurrency, batch_size=batch,
                                  sensor_interval=interval)
        result["loop_per_min"] = n / loop * 60
        pairs.append(result)
        first += 10_000
    raw["daemon_catchup"] = pairs
    rates = [r["burst_runs_per_busy_min"] for r in pairs]
    spans = [r["burst_runs_per_min"] for r in pairs]
    loops = [r["loop_per_min"] for r in pairs]
    ended = [r["burst_runs"] / r["burst_drop_to_all_done_s"] * 60 for r in pairs]
    ok = all(not r["burst_failed"] and not r["burst_not_archived"] for r in pairs)
    return [Row(
        key="1",
        what=(f"catch-up through dagster-daemon: {n} typical runs appear at once, the sensor "
              f"requests range runs of ≤ {batch} (app.batch_size {batch}), max_concurrent_runs "
              f"{concurrency} (both assets + 3 checks in run workers), filesystemdb + local UconDB"),
        figure=(f"{spread(rates)} runs/min while its Dagster runs existed "
                f"({spread([r['burst_dagster_runs'] for r in pairs])} Dagster runs); first created → "
                f"last finished {spread(spans)} runs/min; {spread(ended)} runs/min from the runs' "
                f"appearance (sensors every {interval} s)"),
        baseline=f"plain loop doing the checks' work, one process, same runs: {spread(loops)} runs/min",
        ratio=f"{spread([r / l for r, l in zip(rates, loops)])}× the loop's throughput",
        target="≥ 1000 runs/min",
        verdict=verdict(ok and min(rates) >= 1000),
        note=(f"CPU {spread([r['burst_cpu_s_per_run'] for r in pairs])} s per archived run ("
              + ", ".join(f"{name} {spread([r['burst_cpu_s_per_run_by_process'][name] for r in pairs])}"
                          for name in pairs[0]["burst_cpu_s_per_run_by_process"])
              + "; the local UconDB server, in the harness's process, not counted): at most "
              f"{spread([r['cpu_bound_runs_per_min'] for r in pairs])} runs/min if CPU-bound on "
              f"{os.cpu_count()} cores; failed {sum(r['burst_failed'] for r in pairs)}, not archived "
              f"{sum(r['burst_not_archived'] for r in pairs)}"))]


def measure_scaling(cfg, scratch: Path, raw: dict) -> list[Row]:
    """Per-run import + migrate cost against an artdaqDB already holding N runs (O(n²) hunt)."""
    from archiver_resources.samples import generate_run_records
    from bench.bench_artdaqdb import build_listing_store
    from bench.catchup import plain_loop

    size = cfg["scaling"]
    runs = list(range(size + 10, size + 30))
    records = scratch / "scaling_records"
    generate_run_records(records, runs)
    with fresh_stores(scratch, records, "scaling-empty") as stores:
        empty = plain_loop(stores, runs) / len(runs)
    with fresh_stores(scratch, records, "scaling-full") as stores:
        db_root = Path(stores.artdaqdb_uri.split("://", 1)[1])
        build_listing_store(db_root, size)
        full = plain_loop(stores, runs) / len(runs)
    raw["scaling"] = {"empty_s_per_run": empty, "full_s_per_run": full, "size": size}
    return [Row(
        key="7", what=f"per-run import + migrate into an artdaqDB (filesystemdb) already holding "
                      f"{size:,} runs",
        figure=f"{full * 1000:.0f} ms/run", baseline=f"empty store: {empty * 1000:.0f} ms/run",
        ratio=f"{full / empty:.1f}×", target="no O(n²) (ratio near 1)",
        verdict=verdict(full / empty < 2))]


def measure_postgres(cfg, scratch: Path, raw: dict) -> list[Row]:
    """The production instance (PostgreSQL, deploy/dagster.postgres.yaml) beside SQLite (the
    development dagster.yaml) in the same invocation: catch-up, partition reads and (full mode)
    steady state, each PostgreSQL figure paired with the SQLite one measured right before it on
    fresh stores and a fresh instance."""
    from contextlib import ExitStack

    from archiver_resources.samples import generate_run_records
    from bench.catchup import dagster_catchup
    from bench.postgres import (NoPostgres, postgres_server, postgres_yaml, prepared_home,
                                server_settings)
    from bench.scale import partition_status

    pg = cfg["postgres"]
    rows: list[Row] = []
    with ExitStack() as stack:
        t0 = time.perf_counter()
        try:
            server = stack.enter_context(postgres_server())
        except NoPostgres as error:
            return [Row(key="–", what="PostgreSQL instance: not measured",
                        figure="no PostgreSQL server", note=str(error)[:300])]
        settings = server_settings(server)
        raw["postgres_server"] = dict(settings, start_s=time.perf_counter() - t0,
                                      origin=server.origin)
        server_note = (f"PostgreSQL {settings.get('server_version', '?')} on loopback "
                       f"({server.origin}), fsync {settings.get('fsync')}, synchronous_commit "
                       f"{settings.get('synchronous_commit')}, shared_buffers "
                       f"{settings.get('shared_buffers')} × 8 kB; started in "
                       f"{raw['postgres_server']['start_s']:.1f} s")

        # Catch-up: SQLite, then PostgreSQL, same runs, fresh stores each.
        n = pg["runs"]
        runs = list(range(20_000, 20_000 + n))
        records = scratch / "pg_run_records"
        generate_run_records(records, runs)
        per_min = lambda seconds: n / seconds * 60  # noqa: E731
        pairs: dict = {}
        for batch in pg["batches"]:
            for i in range(pg["repeats"]):
                with fresh_stores(scratch, records, f"pg-sqlite-{batch}-{i}") as stores:
                    lite = dagster_catchup(stores, runs, batch, scratch / f"pg-lite-{batch}-{i}")
                name = f"catchup-{batch}-{i}"
                yaml_path = postgres_yaml(server, scratch / "pg-yaml", name)
                home = prepared_home(scratch / f"pg-home-{batch}-{i}", yaml_path)
                with fresh_stores(scratch, records, f"pg-postgres-{batch}-{i}") as stores:
                    result = dagster_catchup(stores, runs, batch, home, dagster_yaml=yaml_path)
                pairs.setdefault(batch, []).append({"sqlite": lite, "postgres": result})
        raw["postgres_catchup"] = {str(b): v for b, v in pairs.items()}
        for batch, results in pairs.items():
            pg_s = [r["postgres"]["seconds"] for r in results]
            lite_s = [r["sqlite"]["seconds"] for r in results]
            ratios = [p / q for p, q in zip(pg_s, lite_s)]
            rate = max(per_min(s) for s in pg_s)
            rows.append(Row(
                key="8", what=f"PostgreSQL instance: catch-up through Dagster, {n} typical runs, "
                              f"range runs of {batch} (both assets + checks), production "
                              "dagster.postgres.yaml, pool limits 2",
                figure=f"{spread([per_min(s) for s in pg_s])} runs/min",
                baseline=f"SQLite instance (dagster.yaml), same runs, measured right before: "
                         f"{spread([per_min(s) for s in lite_s])} runs/min",
                ratio=f"{spread(ratios)}× SQLite's time",
                target="≤ 1.3× SQLite; ≥ 600 runs/min",
                verdict=verdict(min(ratios) <= 1.3 and rate >= 600),
                note=(f"batch {batch}: process CPU PostgreSQL "
                      f"{spread([r['postgres']['cpu_s'] for r in results])} s / SQLite "
                      f"{spread([r['sqlite']['cpu_s'] for r in results])} s for "
                      f"{spread(pg_s)} / {spread(lite_s)} s wall; check-evaluation events "
                      f"{spread([r['postgres']['runless_s'] / r['postgres']['seconds'] * 100 for r in results])}"  # noqa: E501
                      f" % / {spread([r['sqlite']['runless_s'] / r['sqlite']['seconds'] * 100 for r in results])}"  # noqa: E501
                      f" % of the wall time; add_dynamic_partitions "
                      f"{spread([r['postgres']['add_partitions_s'] for r in results])} / "
                      f"{spread([r['sqlite']['add_partitions_s'] for r in results])} s; "
                      + server_note)))

        # Partition reads at scale: SQLite, then PostgreSQL.
        count = pg["partitions"]
        lite = partition_status(count, scratch / "pg-partitions-lite",
                                materialize_cap=pg["materialize"])
        yaml_path = postgres_yaml(server, scratch / "pg-yaml", "partitions")
        result = partition_status(count, scratch / "pg-partitions-home",
                                  materialize_cap=pg["materialize"], dagster_yaml=yaml_path)
        raw["postgres_partitions"] = {"sqlite": lite, "postgres": result}
        slowest = lambda r: max(r["status_first_s"], r["graphql_first_s"])  # noqa: E731
        rows.append(Row(
            key="8", what=f"PostgreSQL instance: partition status at {count:,} partitions "
                          f"({result['materialized']} materialized): get_status_by_partition "
                          "first/repeat; UI GraphQL partitions query first/repeat",
            figure=f"{result['status_first_s']:.2f}/{result['status_repeat_s']:.2f} s; GraphQL "
                   f"{result['graphql_first_s']:.2f}/{result['graphql_repeat_s']:.2f} s",
            baseline=f"SQLite: {lite['status_first_s']:.2f}/{lite['status_repeat_s']:.2f} s; "
                     f"GraphQL {lite['graphql_first_s']:.2f}/{lite['graphql_repeat_s']:.2f} s",
            ratio=f"{slowest(result) / max(slowest(lite), 1e-6):.1f}× SQLite's (slowest read)",
            target="no O(n²); UI-usable", verdict="",
            note=(f"PostgreSQL / SQLite: add_dynamic_partitions of {count:,} keys "
                  f"{result['add_s']:.2f} / {lite['add_s']:.2f} s; get_dynamic_partitions "
                  f"{result['get_partitions_s']:.3f} / {lite['get_partitions_s']:.3f} s; "
                  f"get_materialized_partitions {result['materialized_read_s']:.3f} / "
                  f"{lite['materialized_read_s']:.3f} s; one runless materialization report "
                  f"{result['runless_each_s'] * 1000:.0f} / {lite['runless_each_s'] * 1000:.0f}"
                  " ms")))

        if pg.get("steady"):
            rows += _postgres_steady(pg["steady"], server, scratch, raw)
        else:
            rows.append(Row(key="–", what="PostgreSQL instance: steady state not measured in "
                                          "this mode", figure="full mode only"))
    return rows


def _postgres_steady(steady, server, scratch: Path, raw: dict) -> list[Row]:
    """The daemon's steady state on SQLite, then on PostgreSQL, same concurrency."""
    from bench.postgres import postgres_yaml, prepared_home
    from bench.steady import steady_state

    singles, burst, concurrency = steady
    results = {}
    for label in ("sqlite", "postgres"):
        records = scratch / f"pg-steady-records-{label}"
        records.mkdir()
        home = scratch / f"pg-steady-home-{label}"
        yaml_path = None
        if label == "postgres":
            yaml_path = postgres_yaml(server, scratch / "pg-yaml", "steady")
            prepared_home(home, yaml_path)
        with fresh_stores(scratch, records, f"pg-steady-{label}") as stores:
            results[label] = steady_state(stores, 60_000 if label == "sqlite" else 61_000,
                                          singles, burst, home,
                                          max_concurrent_runs=concurrency,
                                          dagster_yaml=yaml_path,
                                          batch_size=1)  # one run per partition, as before
    raw["postgres_steady"] = results
    pg, lite = results["postgres"], results["sqlite"]
    median = lambda values: sorted(values)[len(values) // 2]  # noqa: E731
    return [Row(
        key="8", what=f"PostgreSQL instance: steady state through dagster-daemon, one run per "
                      f"partition, max_concurrent_runs {concurrency}: burst of {burst} runs; "
                      "single runs submit→done",
        figure=f"{pg['burst_runs_per_min']:.1f} runs/min; submit→done "
               f"{spread(pg['submit_to_done_s'])} s (queue+launch "
               f"{spread(pg['queue_launch_s'])} s, execute {spread(pg['execute_s'])} s)",
        baseline=f"SQLite, measured right before: {lite['burst_runs_per_min']:.1f} runs/min; "
                 f"submit→done {spread(lite['submit_to_done_s'])} s",
        ratio=f"{lite['burst_runs_per_min'] / pg['burst_runs_per_min']:.2f}× SQLite's time "
              f"per run (burst); submit→done {median(pg['submit_to_done_s']) / median(lite['submit_to_done_s']):.2f}×",  # noqa: E501
        target="≥ 60 runs/min; submit→done ≤ 5 s",
        verdict=verdict(pg["burst_runs_per_min"] >= 60 and median(pg["submit_to_done_s"]) <= 5),
        note=(f"PostgreSQL: burst {pg['burst_failed']} failed, drop→all done "
              f"{pg['burst_drop_to_all_done_s']:.0f} s (SQLite "
              f"{lite['burst_drop_to_all_done_s']:.0f} s); daemon ready after {pg['daemon_ready_s']:.0f} s"))]


MEASUREMENTS = {
    "catchup": measure_catchup,
    "daemon_catchup": measure_daemon_catchup,
    "sensor": measure_sensor,
    "partitions": measure_partitions,
    "scaling": measure_scaling,
    "rss": measure_rss,
    "steady": measure_steady,
    "postgres": measure_postgres,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="< 2 minutes (CI)")
    group.add_argument("--tiny", action="store_true", help="seconds; for the smoke test")
    parser.add_argument("--only", default="", help=f"comma list of {','.join(MEASUREMENTS)}")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md",
                        help="Markdown file to update (default docs/performance.md)")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    cfg = MODES[mode]
    chosen = [m for m in (args.only.split(",") if args.only else MEASUREMENTS) if m]
    unknown = set(chosen) - set(MEASUREMENTS)
    if unknown:
        parser.error(f"unknown measurement(s): {', '.join(sorted(unknown))}")
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    _quiet()
    started = time.perf_counter()
    rows: list[Row] = []
    raw: dict = {"mode": mode}
    failures = 0
    with scratch_dir(keep=args.keep) as scratch:
        for name in chosen:
            if cfg.get(name if name != "catchup" else "runs") is None:
                rows.append(Row(key="–", what=f"{name}: not measured in {mode} mode",
                                figure="full mode only"))
                continue
            print(f"[bench] {name} …", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            try:
                new = MEASUREMENTS[name](cfg, scratch, raw)
                if name == "catchup":
                    best = max(60 * cfg["runs"] / r["seconds"]
                               for v in raw["dagster"].values() for r in v)
                    raw["catchup_best_per_min"] = best
                rows.extend(new)
            except Exception as error:  # one failing measurement must not lose the others
                failures += 1
                traceback.print_exc()
                rows.append(Row(key="!", what=f"{name} failed", figure=type(error).__name__,
                                note=str(error)[:300]))
            print(f"[bench] {name} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                  flush=True)
            print(render_table(rows, machine_description(), mode + " (so far)",
                               time.perf_counter() - started), file=sys.stderr, flush=True)
            if args.json:
                args.json.write_text(json.dumps(raw, indent=1, default=str))
    elapsed = time.perf_counter() - started
    table = render_table(rows, machine_description(), mode, elapsed)
    write_performance_md(args.out, table, PREAMBLE)
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1, default=str))
    print(table)
    return 1 if failures else 0


def _quiet() -> None:
    """Dagster logs every event of every in-process run to the console: keep the harness quiet."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("dagster").setLevel(logging.WARNING)
    for name in ("dagster", "alembic", "urllib3"):
        logging.getLogger(name).propagate = False


if __name__ == "__main__":
    sys.exit(main())
