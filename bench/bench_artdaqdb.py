"""Benchmark of the native filesystemdb backend: archive a 20-file run, list 100k archived runs.

Run: ``python bench/bench_artdaqdb.py [--runs 100000] [--dir /path/on/target/disk]``.
Targets (issue "artdaqDB resource"): archive ≤ 20 ms, listing 100k runs ≤ 1 s.

Shortcut: the 100k-run store is built by writing ``SystemLayout/index.json`` directly (what 100k
archives would leave there), not by archiving 100k runs; listing reads only that index, so the
figure is the same. The documents it points to do not exist, which listing never checks.
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


def run_files(run: int, n_files: int = 20) -> dict[str, str]:
    """A prepared run of ``n_files`` files (schema, RunHistory, metadata, boot, processes), ~2–6 kB each."""
    files = {
        "schema.fcl": 'run_history: [ { collection: RunHistory pattern: \'(.*/)(.*)(\\.fcl$)\' } ]\n'
                      'system_layout: [ { collection: SystemLayout pattern: \'(.*/)(schema)(\\.fcl$)\' } ]\n',
        "RunHistory.fcl": f'run_number: {run}\n\nconfig_name: "standard"\n\ncomponents: ["tpc01"]\n',
        "metadata.fcl": 'config_name: "standard"\nDAQInterface_directory: "evb01:/daq"\n' * 20,
        "boot.fcl": 'DAQ_setup_script: "/home/daq/setup.sh"\n' * 20,
    }
    for i in range(n_files - len(files)):
        body = "".join(f"    param_{k}: {k * i}  # comment {k}\n" for k in range(60))
        files[f"{run}/tpc{i:02d}.fcl"] = (
            f"daq: {{\n  fragment_receiver: {{\n    generator: TPC\n    board_id: {i}\n{body}  }}\n}}\n")
    return files


def bench_archive(root: Path, repeats: int, fsync: bool) -> list[float]:
    db = open_artdaqdb(f"filesystemdb://{root}/archive_db_archive", fsync=fsync)
    timings = []
    for run in range(1, repeats + 1):
        files = run_files(run)
        started = time.perf_counter()
        db.archive_run(run, "standard", files)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def build_listing_store(root: Path, runs: int) -> Path:
    """``SystemLayout/index.json`` of ``runs`` archived runs, written directly (the shortcut)."""
    layout = root / "SystemLayout"
    layout.mkdir(parents=True)
    (root / "SystemMetadata").mkdir()
    index = empty_index()
    ts = format_timestamp(local_now())
    oids = sorted(new_oid() for _ in range(runs))
    index["ouid"] = oids
    for run, oid in enumerate(oids, start=1):
        name = f"{run}/standard"
        index["version"][name] = [oid]
        index["configurations.name"][name] = [oid]
        index["runs.name"][str(run)] = [oid]
        index["configurations.assigned"][name] = [ts]
    index["entities.name"]["schema"] = oids
    (layout / "index.json").write_text(json.dumps(index, separators=(",", ":")))
    return root


def bench_listing(root: Path, repeats: int) -> tuple[list[float], int]:
    timings, count = [], 0
    for _ in range(repeats):
        db = open_artdaqdb(f"filesystemdb://{root}")  # fresh object: no cached index
        started = time.perf_counter()
        count = len(db.archived_runs())
        timings.append((time.perf_counter() - started) * 1000)
    return timings, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--archives", type=int, default=30)
    parser.add_argument("--dir", default=None, help="directory on the disk to measure (default: tmp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        for fsync in (True, False):
            timings = bench_archive(root / f"fsync_{fsync}", args.archives, fsync)
            print(f"archive 20-file run (fsync={fsync}): median {statistics.median(timings):.1f} ms, "
                  f"max {max(timings):.1f} ms over {len(timings)} runs   [target ≤ 20 ms]")
        build_listing_store(root / "list_db_archive", args.runs)
        timings, count = bench_listing(root / "list_db_archive", 5)
        assert count == args.runs, count
        print(f"list {count} archived runs: median {statistics.median(timings):.0f} ms, "
              f"max {max(timings):.0f} ms   [target ≤ 1000 ms]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
