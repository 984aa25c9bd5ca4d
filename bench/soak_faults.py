"""A longer seeded fault soak for people (not CI): N generated runs through the real pipeline
(batched range runs of both archive assets) with UconDB behind the fault-injecting proxy, then
the fault clears and the failed ranges are backfilled; finally the stores are read directly.

    python bench/soak_faults.py --runs 500 --seed 7 --rate 0.08 --batch 25

Prints one line per range and a summary; exits 1 if any invariant is broken (a run lost, stored
twice, or reported archived while UconDB holds other bytes). Everything runs on loopback in a
temporary directory that is removed at the end (``--keep`` keeps it).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FOLDER = "soak_runs"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.08, help="fault probability per request")
    parser.add_argument("--batch", type=int, default=25, help="runs per range run")
    parser.add_argument("--timeout", type=float, default=1.0, help="ucon_db.timeout_seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)

    import dagster as dg

    from archiver_assets.definitions import build_definitions
    from archiver_assets.partitions import runs_partitions
    from archiver_resources.archiving import build_blob
    from archiver_resources.artdaqdb import open_artdaqdb
    from archiver_resources.blob import md5_hex
    from archiver_resources.samples import generate_run_records
    from archiver_resources.testing.faultproxy import FaultProxy
    from archiver_resources.ucondb.client import UconDBClient
    from archiver_resources.ucondb.testing import start_local_ucondb
    from archiver_resources.testing.legacy_config import write_legacy_config

    root = Path(tempfile.mkdtemp(prefix="soak-faults-"))
    server = start_local_ucondb(root / "ucondb", folder=FOLDER)
    proxy = FaultProxy(server.base_url, seed=args.seed, rate=args.rate,
                       stall_seconds=args.timeout + 0.5, max_seconds=24 * 3600)
    os.environ["SOAK_UCONDB_PASSWORD"] = server.password
    started = time.monotonic()
    broken = []
    try:
        runs = list(range(100_001, 100_001 + args.runs))
        generate_run_records(root / "run_records", runs, profile="small", mtime=1_600_000_000)
        uri = f"filesystemdb://{root / 'artdaqdb'}"

        class Upstream:
            base_url, user = proxy.base_url, server.user

        config = write_legacy_config(root, Upstream, run_records=root / "run_records",
                                     artdaqdb_uri=uri, folder=FOLDER,
                                     password_env="SOAK_UCONDB_PASSWORD",
                                     timeout_seconds=args.timeout, retries=1)
        defs = build_definitions(str(config), backfill_batch_size=args.batch)
        job = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection={dg.AssetKey("artdaqdb_config"), dg.AssetKey("ucondb_blob")},
            asset_check_selection=set())
        keys = [str(r) for r in runs]
        (root / "dagster_home").mkdir()
        with dg.instance_for_test(temp_dir=str(root / "dagster_home")) as instance:
            instance.add_dynamic_partitions(runs_partitions.name, keys)

            def ranges(todo):
                for i in range(0, len(todo), args.batch):
                    chunk = todo[i:i + args.batch]
                    yield chunk[0], chunk[-1]

            def run_all(todo, phase):
                for first, last in ranges(todo):
                    t0 = time.monotonic()
                    result = job.execute_in_process(instance=instance, raise_on_error=False, tags={
                        "dagster/asset_partition_range_start": first,
                        "dagster/asset_partition_range_end": last})
                    print(f"{phase} {first}-{last}: {'ok' if result.success else 'FAILED'} "
                          f"in {time.monotonic() - t0:.1f} s", flush=True)

            def status():
                found = instance.get_status_by_partition(dg.AssetKey("ucondb_blob"), keys,
                                                         runs_partitions)
                return {k: (s.value if s else None) for k, s in found.items()}

            run_all(keys, "faults")
            before = status()
            client = UconDBClient(server.base_url, FOLDER, "configuration", timeout=10)
            db = open_artdaqdb(uri)
            want = {r: md5_hex(build_blob(r, db)[3]) for r in runs if db.find_configuration(r)}
            held = {r: md5_hex(client.get_blob(r).data) for r in client.existing_runs()}
            broken += [f"run {k} materialized but UconDB differs" for k, s in before.items()
                       if s == "MATERIALIZED" and held.get(int(k)) != want.get(int(k))]
            proxy.clear()
            run_all([k for k, s in before.items() if s != "MATERIALIZED"], "backfill")
            after = status()
            broken += [f"run {k} still {s}" for k, s in after.items() if s != "MATERIALIZED"]
        archived = db.archived_runs()
        broken += [f"run {r} missing in artdaqDB" for r in runs if r not in archived]
        for run, name in archived.items():
            versions = db.versions(run, name.split("/", 1)[1])
            if versions != [name, f"{name}v1"]:
                broken.append(f"run {run}: versions {versions}")
        want = {r: md5_hex(build_blob(r, db)[3]) for r in runs if r in archived}
        for run in runs:
            data = client.get_blob(run).data
            if md5_hex(data) != want.get(run):
                broken.append(f"run {run}: UconDB MD5 differs")
        client.close()
        db.close()
        failed_before = sum(1 for s in before.values() if s != "MATERIALIZED")
        print(f"\n{args.runs} runs, seed {args.seed}, rate {args.rate}: {proxy.describe()}; "
              f"{failed_before} partitions failed under faults, all backfilled; "
              f"{time.monotonic() - started:.0f} s; invariants "
              f"{'OK' if not broken else 'BROKEN'}")
        for line in broken[:50]:
            print("  ", line)
        return 1 if broken else 0
    finally:
        proxy.stop()
        server.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
