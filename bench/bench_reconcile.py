"""Benchmark: restore the partition status of a 10k-run archive after DAGSTER_HOME is lost.

Builds an archive of N runs (default 10,000) that artdaqDB and UconDB both hold, then, on a fresh
SQLite Dagster instance, times ``reconcile`` (both stages: list artdaqDB's index, list UconDB's
versions, add N partitions, record 2×N runless materializations in batches), checks the result
with Dagster's own ``get_status_by_partition``, times a second, idempotent reconcile, the same
through one command-line invocation (``run-record-archiver --reconcile``, start-up included), and
estimates the naive cost (``report_runless_asset_event`` per event, sampled).

Shortcut for building the stores (documented, not what reconcile reads differently): archiving
10k runs through the real pipeline would take hours, and reconcile only reads listings, so
* artdaqDB (filesystemdb): only ``SystemLayout/index.json`` is written, with one
  ``configurations.name`` entry ``<run>/standard`` per run (what ``archived_runs()`` reads; no
  documents, so ``--verify`` is not meaningful here);
* UconDB: the local server's SQLite tables get N version rows (key = tag-less run number) that
  all point at one stored blob, inserted in one transaction; reconcile lists them through the
  real HTTP ``/versions`` API.

Run: ``python bench/bench_reconcile.py [-n 10000] [--dir /tmp] [--check]``. The instance lives in
``--dir`` (default: the system temporary directory, i.e. a real disk, where SQLite commits cost
what they cost in production SQLite deployments).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dagster as dg  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from archiver_assets.partitions import runs_partitions  # noqa: E402
from archiver_assets.state.reconcile import reconcile  # noqa: E402
from archiver_resources.artdaqdb.filesystem import empty_index  # noqa: E402
from archiver_resources.testing.legacy_config import write_legacy_config  # noqa: E402
from archiver_resources.ucondb.testing import start_local_ucondb  # noqa: E402

FOLDER = "bench_runs"
FIRST_RUN = 10_000
# Half the naive cost: 2 stages × 10k runs × 5.6 ms per runless materialization event
# (report_runless_asset_event one at a time on SQLite, measured on a 2-core VM).
TARGET_SECONDS = 56.0
NAIVE_SAMPLE = 100


def build_artdaqdb(root: Path, runs) -> str:
    layout = root / "SystemLayout"
    layout.mkdir(parents=True)
    index = empty_index()
    for run in runs:
        oid = f"{run:024x}"
        index["ouid"].append(oid)
        index["configurations.name"][f"{run}/standard"] = [oid]
    (layout / "index.json").write_text(json.dumps(index, separators=(",", ":")))
    return f"filesystemdb://{root}"


def build_ucondb(server, runs) -> None:
    storage = server.storage
    tables = storage.folder(FOLDER)
    data = b"bench blob\n"
    with storage.lock, storage.engine.begin() as conn:
        key = conn.execute(insert(tables.data).values(
            hash=zlib.adler32(data), hash_type="adler32", size=len(data),
            data=data)).inserted_primary_key[0]
        now = time.time()
        conn.execute(insert(tables.versions), [
            {"key": str(run), "object": "configuration", "tv": 0.0, "tr": now + i * 1e-6,
             "deleted": False, "data_size": len(data), "data_key": str(key),
             "adler32": zlib.adler32(data)} for i, run in enumerate(runs)])


def write_config(root: Path, server, uri: str) -> Path:
    (root / "run_records").mkdir()
    return write_legacy_config(root, server, run_records=root / "run_records", artdaqdb_uri=uri,
                               folder=FOLDER, password_env="BENCH_UCONDB_PASSWORD",
                               timeout_seconds=120, retries=None, source={})


def fresh_home(base: Path, name: str) -> Path:
    home = base / name
    if home.exists():
        shutil.rmtree(home)
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def naive_ms_per_event(base: Path) -> float:
    fresh_home(base, "naive_home")
    with dg.DagsterInstance.get() as instance:
        keys = [str(FIRST_RUN + i) for i in range(NAIVE_SAMPLE)]
        instance.add_dynamic_partitions("runs", keys)
        started = time.perf_counter()
        for key in keys:
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key="artdaqdb_config", partition=key, metadata={"source": "reconcile"}))
        return (time.perf_counter() - started) / NAIVE_SAMPLE * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=10_000)
    parser.add_argument("--dir", default=None, help="where the stores and instance live")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 if reconcile takes more than {TARGET_SECONDS:.0f} s")
    args = parser.parse_args()
    runs = range(FIRST_RUN, FIRST_RUN + args.runs)
    keys = [str(r) for r in runs]
    base = Path(tempfile.mkdtemp(prefix="bench-reconcile-", dir=args.dir))
    figures = {}
    try:
        with start_local_ucondb(base / "ucondb", folder=FOLDER) as server:
            os.environ["BENCH_UCONDB_PASSWORD"] = server.password
            started = time.perf_counter()
            uri = build_artdaqdb(base / "artdaqdb" / "bench_db_archive", runs)
            build_ucondb(server, runs)
            figures["build stores (bulk shortcut)"] = time.perf_counter() - started
            config = write_config(base, server, uri)

            fresh_home(base, "dagster_home")
            with dg.DagsterInstance.get() as instance:
                started = time.perf_counter()
                result = reconcile(instance, config)
                figures["reconcile, both stages"] = time.perf_counter() - started
                assert result.recorded == 2 * args.runs, result.summary_lines()
                started = time.perf_counter()
                for asset in ("artdaqdb_config", "ucondb_blob"):
                    found = instance.get_status_by_partition(dg.AssetKey(asset), keys,
                                                             runs_partitions)
                    assert all(s is not None and s.value == "MATERIALIZED"
                               for s in found.values()), asset
                figures["get_status_by_partition ×2 (check)"] = time.perf_counter() - started
                started = time.perf_counter()
                again = reconcile(instance, config)
                figures["second reconcile (writes nothing)"] = time.perf_counter() - started
                assert again.recorded == 0 and not again.added_partitions

            fresh_home(base, "cli_home")
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "archiver_assets.cli", str(config),
                                   "--reconcile"], capture_output=True, text=True,
                                  env=dict(os.environ), cwd=str(Path(__file__).parents[1]))
            figures["run-record-archiver --reconcile (one command)"] = \
                time.perf_counter() - started
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

            naive = naive_ms_per_event(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"restore partition status of a {args.runs}-run archive (SQLite instance in "
          f"{args.dir or tempfile.gettempdir()})")
    for name, seconds in figures.items():
        print(f"  {name:48s} {seconds:8.2f} s")
    print(f"  {'naive report_runless_asset_event, estimated':48s} "
          f"{naive * 2 * args.runs / 1000:8.2f} s  ({naive:.1f} ms/event, "
          f"{NAIVE_SAMPLE} sampled)")
    print(f"  target: reconcile ≤ {TARGET_SECONDS:.0f} s")
    if args.check and figures["reconcile, both stages"] > TARGET_SECONDS:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
