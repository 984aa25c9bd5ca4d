"""≥100 runs through the real pipeline (batched backfill runs of both archive assets) with a seeded
mix of faults on the wire to UconDB (FaultProxy), some runs whose key UconDB already holds with
different bytes, then the fault clears and the failed partitions are backfilled. At the end the
stores are read directly: every run archived exactly once in artdaqDB and once in UconDB with
matching MD5, or failed in Dagster with a clear reason and nothing overwritten; no partition ever
reported materialized while UconDB did not hold the right bytes."""

import random
import time

import dagster as dg
import pytest

from archiver_assets.partitions import runs_partitions
from archiver_resources.archiving import build_blob
from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.blob import md5_hex
from archiver_resources.samples import generate_run_records
from archiver_resources.testing.faultproxy import FAULTS, FaultProxy
from tests.support import write_config
from tests.reliability.conftest import (
    OLD, SEED, direct_client, leftover_files, ucondb_versions,
)

IMPORT = dg.AssetKey("artdaqdb_config")
MIGRATE = dg.AssetKey("ucondb_blob")
RUNS = list(range(5001, 5101))
BATCH = 20
STALE_COUNT = 3


class Upstream:
    """What write_config needs from a server: the proxy's URL, the real server's user."""

    def __init__(self, base_url, user):
        self.base_url, self.user = base_url, user


def batches(keys, size):
    """Consecutive keys in chunks of ``size`` → (first, last) range tags, as multi_run backfills."""
    groups, current = [], []
    for key in keys:
        if current and (int(key) != int(current[-1]) + 1 or len(current) == size):
            groups.append(current)
            current = []
        current.append(key)
    if current:
        groups.append(current)
    return [(g[0], g[-1]) for g in groups]


TIMINGS: list = []


def run_range(job, instance, first, last):
    started = time.monotonic()
    result = job.execute_in_process(instance=instance, raise_on_error=False, tags={
        "dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last})
    retries = sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")
    TIMINGS.append((first, last, round(time.monotonic() - started, 1), retries, result.success))
    return result


def status_of(instance, asset_key, keys):
    status = instance.get_status_by_partition(asset_key, keys, runs_partitions)
    return {k: (s.value if s is not None else None) for k, s in status.items()}


def failure_texts(result) -> str:
    return "\n".join(str(e.event_specific_data.error.message) for e in result.all_events
                     if e.event_type_value == "STEP_FAILURE")


def expected_md5s(uri, runs) -> dict:
    db = open_artdaqdb(uri)
    try:
        return {run: md5_hex(build_blob(run, db)[3]) for run in runs
                if db.find_configuration(run)}
    finally:
        db.close()


@pytest.mark.slow
def test_100_runs_under_seeded_ucondb_faults_then_backfill(tmp_path, ucondb_server):
    started = time.monotonic()
    rng = random.Random(SEED)
    context = f"(seed {SEED}; rerun with ARCHIVER_RELIABILITY_SEED={SEED})"
    run_records = tmp_path / "run_records"
    generate_run_records(run_records, RUNS, profile="small", mtime=OLD)
    stale = sorted(rng.sample(RUNS, STALE_COUNT))
    with direct_client(ucondb_server) as client:
        for run in stale:  # a duplicate key whose stored bytes differ
            client.put_blob(run, f"stale blob of run {run}\n".encode())
    uri = f"filesystemdb://{tmp_path / 'artdaqdb' / 'db'}"
    proxy = FaultProxy(ucondb_server.base_url, seed=SEED, rate=0.06, stall_seconds=1.2,
                       slow_seconds=0.2, max_seconds=240, max_requests=20_000,
                       mix={"5xx_burst": 3, "timeout": 1, "slow": 1, "reset_upload": 1,
                            "reset_after_upload": 2, "reset_download": 1, "truncate": 1,
                            "flip_download": 1})
    try:
        config = write_config(tmp_path, Upstream(proxy.base_url, ucondb_server.user),
                              run_records=run_records, artdaqdb_uri=uri)
        config.write_text(config.read_text().replace("timeout_seconds: 5", "timeout_seconds: 1"))
        from archiver_assets.definitions import build_definitions

        defs = build_definitions(str(config), backfill_batch_size=BATCH)
        job = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection={IMPORT, MIGRATE}, asset_check_selection=set())
        keys = [str(r) for r in RUNS]
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions(runs_partitions.name, keys)

            # Phase 1: everything under faults.
            reasons = {}
            for first, last in batches(keys, BATCH):
                result = run_range(job, instance, first, last)
                if not result.success:
                    reasons[(first, last)] = failure_texts(result)
            phase1 = status_of(instance, MIGRATE, keys)
            phase1_s = time.monotonic() - started
            # Never reported archived unless UconDB holds exactly the bytes artdaqDB packs to.
            want = expected_md5s(uri, RUNS)
            with direct_client(ucondb_server) as client:
                held = {r: md5_hex(client.get_blob(r).data) for r in client.existing_runs()}
            lying = [k for k, s in phase1.items() if s == "MATERIALIZED"
                     and held.get(int(k)) != want.get(int(k))]
            assert not lying, f"materialized but UconDB differs: {lying} {context}"
            # Every failed range says why, naming runs.
            for (first, last), text in reasons.items():
                assert "run " in text and "could not be" in text, (first, last, text, context)
            permanent = sorted(int(k) for k in keys if int(k) in stale)
            assert all(phase1[str(r)] == "FAILED" for r in stale), (phase1, context)

            # Phase 2: the fault clears; backfill the failed/missing partitions (not the stale
            # ones: those need an operator's decision).
            proxy.clear()
            todo = [k for k in keys if phase1[k] != "MATERIALIZED" and int(k) not in stale]
            for first, last in batches(todo, BATCH):
                result = run_range(job, instance, first, last)
                assert result.success, (first, last, failure_texts(result), proxy.describe(),
                                        context)
            # The stale runs, retried alone, still fail with a clear reason.
            for run in stale:
                result = run_range(job, instance, str(run), str(run))
                assert not result.success
                assert f"run {run}" in failure_texts(result)
                assert "already holds a different blob" in failure_texts(result), context
            final = status_of(instance, MIGRATE, keys)
            imported = status_of(instance, IMPORT, keys)

        # Read the stores directly.
        assert all(s == "MATERIALIZED" for s in imported.values()), (imported, context)
        assert {k for k, s in final.items() if s != "MATERIALIZED"} == {str(r) for r in stale}
        db = open_artdaqdb(uri)
        try:
            archived = db.archived_runs()
            assert sorted(archived) == RUNS, context
            for run, configuration in archived.items():
                config_name = configuration.split("/", 1)[1]
                versions = db.versions(run, config_name)
                assert versions == [configuration, f"{configuration}v1"], (run, versions, context)
        finally:
            db.close()
        assert leftover_files(tmp_path / "artdaqdb") == [], context
        assert ucondb_versions(ucondb_server) == {str(r): 1 for r in RUNS}, context
        want = expected_md5s(uri, RUNS)
        with direct_client(ucondb_server) as client:
            for run in RUNS:
                data = client.get_blob(run).data
                if run in stale:
                    assert data == f"stale blob of run {run}\n".encode(), (run, context)
                else:
                    assert md5_hex(data) == want[run], (run, context)
        counts = proxy.counts()
        missing_faults = [f for f in FAULTS if counts.get(f, 0) == 0]
        assert not missing_faults, f"faults never injected: {missing_faults} {proxy.describe()}"
        elapsed = time.monotonic() - started
        print(f"\n100-run fault scenario {context}: {proxy.describe()}; phase 1 {phase1_s:.1f} s, "
              f"failed ranges in phase 1: {len(reasons)}, backfilled partitions: {len(todo)}, "
              f"total {elapsed:.1f} s; permanent failures {permanent}; ranges "
              f"(first, last, seconds, step retries, success): {TIMINGS}")
    finally:
        proxy.stop()
