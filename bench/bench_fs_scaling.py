"""Store-size scaling of the native filesystemdb backend (target "no O(n²) at 100k runs",
docs/performance.md, "Targets: met, missed, and why").

Measures the per-run cost of what import + migrate do to artdaqDB (archive, RunHistory2 update,
versions, find, export, archived_at) against a store already holding N runs, for several N:

    .venv/bin/python bench/bench_fs_scaling.py --sizes 0,20000,100000 [--runs 20] [--realistic]
    .venv/bin/python bench/bench_fs_scaling.py --sizes 0,100000 --loop   # bench/run.py's figure

``--loop`` runs bench/run.py's plain loop (import_run + migrate_run with a local UconDB server,
MD5 verification included); the default times the store operations alone (no server, quicker).

The big store is built by writing the indexes directly (what N archives would leave there), as
bench/run.py's ``scaling`` section does: by default only ``SystemLayout/index.json`` (its shortcut),
with ``--realistic`` also a ``RunHistory/index.json`` of 21 documents per run (what a real store at
N runs holds: ~12 MB per 10,000 runs). The documents the indexes point to are not written; no
operation measured here reads them (each measured run reads only its own documents).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archiver_resources.artdaqdb import open_artdaqdb  # noqa: E402
from archiver_resources.artdaqdb.base import format_timestamp, local_now, new_oid  # noqa: E402
from archiver_resources.artdaqdb.filesystem import empty_index  # noqa: E402
from bench.bench_artdaqdb import run_files  # noqa: E402

RUN_HISTORY_ENTITIES = ["RunHistory", "boot", "metadata", "hashes", "settings", "setup",
                        "environment", "ranks", "known_boardreaders_list"] + \
                       [f"tpc{i:02d}" for i in range(12)]


def build_store(root: Path, runs: int, *, realistic: bool) -> Path:
    """Indexes of ``runs`` archived runs (1 … runs), written directly."""
    (root / "SystemMetadata").mkdir(parents=True, exist_ok=True)
    ts = format_timestamp(local_now())
    collections = {"SystemLayout": ["schema"]}
    if realistic:
        collections["RunHistory"] = RUN_HISTORY_ENTITIES
    for collection, entities in collections.items():
        directory = root / collection
        directory.mkdir(parents=True, exist_ok=True)
        index = empty_index()
        by_entity: dict[str, list[str]] = {e: [] for e in entities}
        every = []
        for run in range(1, runs + 1):
            name = f"{run}/standard"
            oids = [new_oid() for _ in entities]
            for entity, oid in zip(entities, oids):
                by_entity[entity].append(oid)
            oids.sort()
            every.extend(oids)
            index["version"][name] = oids
            index["configurations.name"][name] = oids
            index["runs.name"][str(run)] = oids
            index["configurations.assigned"][name] = [ts]
        if runs:
            every.sort()
            index["ouid"] = every
            index["entities.name"] = {e: sorted(o) for e, o in by_entity.items()}
        (directory / "index.json").write_text(json.dumps(index, separators=(",", ":")))
    return root


def store_cycle(db, run: int) -> None:
    """The artdaqDB side of import_run + migrate_run for one finished run."""
    files = run_files(run)
    db.archive_run(run, "standard", files)
    db.versions(run, "standard")
    db.update_run(run, "standard", {"schema.fcl": files["schema.fcl"],
                                    "RunHistory2.fcl": 'DAQInterface_stop_time: "x"\n'}, once=True)
    db.versions(run, "standard")
    name = db.find_configuration(run)
    assert name == f"{run}/standard", name
    db.export_run(run, "standard")
    db.archived_at(run, "standard")


def measure_store(root: Path, size: int, runs: int, realistic: bool) -> list[float]:
    db_root = build_store(root / f"db_{size}_archive", size, realistic=realistic)
    db = open_artdaqdb(f"filesystemdb://{db_root}")
    timings = []
    for run in range(size + 10, size + 10 + runs):
        started = time.perf_counter()
        store_cycle(db, run)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def measure_loop(root: Path, size: int, runs: int, realistic: bool) -> list[float]:
    from archiver_resources.samples import generate_run_records
    from bench.benchlib import fresh_stores
    from bench.catchup import plain_loop

    numbers = list(range(size + 10, size + 10 + runs))
    records = root / f"records_{size}"
    generate_run_records(records, numbers)
    with fresh_stores(root, records, f"loop_{size}") as stores:
        build_store(Path(stores.artdaqdb_uri.split("://", 1)[1]), size, realistic=realistic)
        seconds = plain_loop(stores, numbers)
    return [seconds * 1000 / runs]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,20000,100000")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--realistic", action="store_true",
                        help="also a full RunHistory/index.json (21 documents per run)")
    parser.add_argument("--loop", action="store_true",
                        help="bench/run.py's plain loop (import + migrate, local UconDB)")
    parser.add_argument("--dir", default=None, help="directory on the disk to measure")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    baseline = None
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for size in sizes:
            measure = measure_loop if args.loop else measure_store
            timings = measure(Path(tmp), size, args.runs, args.realistic)
            median = statistics.median(timings)
            baseline = baseline or median
            print(f"{'loop' if args.loop else 'store'} {'realistic ' if args.realistic else ''}"
                  f"N={size:>7,}: median {median:7.1f} ms/run, max {max(timings):7.1f} ms "
                  f"({median / baseline:.2f}x the first size)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
