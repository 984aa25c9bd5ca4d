"""Store-size scaling of the native filesystemdb backend (target "no O(n²) at 100k runs",
docs/performance.md, "Targets: met, missed, and why").

Measures the per-run cost of what import + migrate do to artdaqDB (archive, RunHistory2 update,
versions, find, export, archived_at) against a store already holding N runs, for several N:

    .venv/bin/python bench/bench_fs_scaling.py --sizes 0,20000,100000 [--runs 20] [--realistic]
    .venv/bin/python bench/bench_fs_scaling.py --sizes 0,100000 --loop   # bench/run.py's figure
    .venv/bin/python bench/bench_fs_scaling.py --sizes 0,50000 --realistic --runs 50 --batch 0,25

``--batch 0,25`` measures each size twice, paired in one invocation on the same store: writes
committed one by one (0, as before group commit) and ranges of 25 runs inside ``store.batch()``
(what a Dagster range step does: the indexes are written once per range; the per-run figure is
the range's time, flush included, divided by its runs). ``--reopen`` opens the store afresh for
each range, as each Dagster step does (the first read of the indexes is then in the figure).

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


def measure_store(root: Path, size: int, runs: int, realistic: bool, *, batch: int = 0,
                  first_run: int = 0, reopen: bool = False) -> list[float]:
    """ms per run: one figure per run (``batch`` 0) or per range of ``batch`` runs (its time,
    flush included, over its runs); and the process CPU ms per run. The store is built on the
    first call for ``size``."""
    db_root = root / f"db_{size}_archive"
    if not db_root.exists():
        build_store(db_root, size, realistic=realistic)
    uri = f"filesystemdb://{db_root}"
    db = open_artdaqdb(uri)
    db.collection("RunHistory").load_index()  # not in the figures unless --reopen
    db.collection("SystemLayout").load_index()
    first = size + 10 + first_run
    numbers = list(range(first, first + runs))
    timings = []
    cpu = time.process_time()
    if not batch:
        for run in numbers:
            started = time.perf_counter()
            store_cycle(db, run)
            timings.append((time.perf_counter() - started) * 1000)
        return timings, (time.process_time() - cpu) * 1000 / runs
    for start in range(0, len(numbers), batch):
        chunk = numbers[start:start + batch]
        started = time.perf_counter()
        if reopen:
            db = open_artdaqdb(uri)
        with db.batch():
            for run in chunk:
                store_cycle(db, run)
        timings.append((time.perf_counter() - started) * 1000 / len(chunk))
    return timings, (time.process_time() - cpu) * 1000 / runs


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
    parser.add_argument("--batch", default="0",
                        help="comma-separated range sizes (0: no group commit), each measured")
    parser.add_argument("--reopen", action="store_true",
                        help="with --batch: open the store afresh for each range (as a step)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    batches = [int(b) for b in args.batch.split(",") if b]
    baselines: dict = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for size in sizes:
            for number, batch in enumerate(batches if not args.loop else [0]):
                if args.loop:
                    timings, cpu = measure_loop(Path(tmp), size, args.runs, args.realistic), None
                else:
                    timings, cpu = measure_store(Path(tmp), size, args.runs, args.realistic,
                                                 batch=batch, first_run=number * args.runs,
                                                 reopen=args.reopen)
                median = statistics.median(timings)
                baseline = baselines.setdefault(batch, median)
                what = "loop" if args.loop else \
                    f"store batch={batch}{' reopen' if args.reopen and batch else ''}"
                print(f"{what} {'realistic ' if args.realistic else ''}"
                      f"N={size:>7,}: median {median:7.1f} ms/run, max {max(timings):7.1f} ms"
                      + (f", process CPU {cpu:6.1f} ms/run" if cpu is not None else "")
                      + f" ({median / baseline:.2f}x the first size)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
