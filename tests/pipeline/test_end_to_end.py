"""The real Dagster machinery end to end: sensor tick on generated run records, the requested runs
executed, both assets materialized per partition, checks passed; then faults (a corrupted UconDB
copy, a UconDB outage) fail partitions, and re-running the failed partitions after the fault is
removed succeeds."""

import time

import dagster as dg
import pytest

from archiver_assets.partitions import runs_partitions
from archiver_resources.blob import md5_hex
from archiver_resources.samples import generate_run_record, generate_run_records
from archiver_resources.ucondb.client import UconDBClient
from tests.support import FOLDER

IMPORT = dg.AssetKey("artdaqdb_config")
MIGRATE = dg.AssetKey("ucondb_blob")
MD5_CHECK = dg.AssetCheckKey(MIGRATE, "md5_round_trip")
HASHES_CHECK = dg.AssetCheckKey(IMPORT, "hashes_match")
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def client_for(env) -> UconDBClient:
    return UconDBClient(env.ucondb.base_url, FOLDER, "configuration", user=env.ucondb.user,
                        password=env.ucondb.password, timeout=5, retries=0)


def tick(defs, instance, sensor_name="new_run_records"):
    sensor = defs.resolve_sensor_def(sensor_name)
    with dg.build_sensor_context(instance_ref=instance.get_ref(), definitions=defs,
                                 resources=defs.resources,
                                 cursor=getattr(tick, "cursor", None)) as context:
        data = sensor.evaluate_tick(context)
    tick.cursor = data.cursor
    for request in data.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(runs_partitions.name, list(request.partition_keys))
    return data


def run_partitions(defs, instance, keys, job_name="archive_runs"):
    job = defs.resolve_job_def(job_name)
    return {key: job.execute_in_process(instance=instance, partition_key=key,
                                        raise_on_error=False) for key in keys}


def failed_partitions(defs, instance, asset_key):
    keys = instance.get_dynamic_partitions(runs_partitions.name)
    status = instance.get_status_by_partition(asset_key, keys, runs_partitions)
    return sorted(k for k, s in status.items() if s is not None and s.value == "FAILED")


def check_results(result):
    return {(e.asset_key.to_user_string(), e.check_name): e.passed
            for e in result.get_asset_check_evaluations()}


@pytest.fixture(autouse=True)
def _reset_tick_cursor():
    tick.cursor = None
    yield
    tick.cursor = None


def test_sensor_archives_finished_runs_through_both_assets_and_checks(archive_env):
    generate_run_records(archive_env.run_records, [1003, 1001, 1002])
    generate_run_record(archive_env.run_records, 1004, finished=False, mtime=time.time())
    defs = archive_env.definitions()
    with dg.instance_for_test() as instance:
        data = tick(defs, instance)
        # One range run for the three (ascending, the unfinished 1004 left out).
        [request] = data.run_requests
        assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("1001", "1003")
        keys = ["1001", "1002", "1003"]
        assert instance.get_dynamic_partitions("runs") == keys

        result = defs.resolve_job_def("archive_runs").execute_in_process(
            instance=instance, tags=dict(request.tags), raise_on_error=False)
        assert result.success
        evaluations = {}  # per partition (range steps write them to the instance directly)
        for check in (MD5_CHECK, HASHES_CHECK):
            for record in instance.event_log_storage.get_asset_check_execution_history(
                    check, limit=50):
                if record.run_id == result.run_id and record.partition:
                    evaluations[(check.asset_key.to_user_string(), check.name,
                                 record.partition)] = record.status.value == "SUCCEEDED"
        metas = {m.partition: m.metadata
                 for m in result.asset_materializations_for_node("ucondb_blob")}
        for key in keys:
            assert evaluations[("ucondb_blob", "md5_round_trip", key)] is True
            assert evaluations[("artdaqdb_config", "hashes_match", key)] is True
            meta = metas[key]
            assert meta["run"].value == int(key)
            # The blob UconDB serves now is the one the asset recorded.
            with client_for(archive_env) as client:
                assert md5_hex(client.get_blob(int(key)).data) == meta["md5"].value
        assert instance.get_materialized_partitions(IMPORT) == {"1001", "1002", "1003"}
        assert instance.get_materialized_partitions(MIGRATE) == {"1001", "1002", "1003"}

        # A second tick requests nothing new; the run that finishes late is picked up.
        assert not tick(defs, instance).run_requests
        from archiver_resources.samples import mark_finished

        mark_finished(archive_env.run_records / "1004")
        late = tick(defs, instance)
        assert [r.partition_key for r in late.run_requests] == ["1004"]


def test_corrupted_ucondb_copy_fails_md5_audit_and_repair_by_rerun(archive_env):
    generate_run_records(archive_env.run_records, [2001, 2002])
    defs = archive_env.definitions()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("runs", ["2001", "2002"])
        assert all(r.success for r in run_partitions(defs, instance, ["2001", "2002"]).values())
        with client_for(archive_env) as client:
            good = client.get_blob(2002).data
            client.put_blob(2002, b"corrupted by a test", override=True)

        # The MD5 audit, executed alone (as from the UI), now fails for 2002 only.
        audit = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection=set(), asset_check_selection={MD5_CHECK})
        bad = audit.execute_in_process(instance=instance, partition_key="2002", raise_on_error=False)
        assert check_results(bad)[("ucondb_blob", "md5_round_trip")] is False
        # Run alone, the audit packs the blob from artdaqDB again (it did not upload it).
        evaluation = bad.get_asset_check_evaluations()[0]
        assert evaluation.metadata["expected_from"].value == "packed again from artdaqDB"
        fine = audit.execute_in_process(instance=instance, partition_key="2001", raise_on_error=False)
        assert check_results(fine)[("ucondb_blob", "md5_round_trip")] is True

        # Re-archiving 2002 refuses to treat the different stored blob as archived ...
        rerun = run_partitions(defs, instance, ["2002"])["2002"]
        assert not rerun.success
        assert failed_partitions(defs, instance, MIGRATE) == ["2002"]
        # ... and never overwrote it.
        with client_for(archive_env) as client:
            assert client.get_blob(2002).data == b"corrupted by a test"
            # Fault removed (an operator restores the right bytes); the failed partition re-runs.
            client.put_blob(2002, good, override=True)
        assert run_partitions(defs, instance, failed_partitions(defs, instance, MIGRATE))["2002"].success
        assert failed_partitions(defs, instance, MIGRATE) == []


def test_ucondb_outage_fails_partitions_and_batched_backfill_recovers(archive_env):
    runs = [3001, 3002, 3003, 3004]
    generate_run_records(archive_env.run_records, runs)
    defs = archive_env.definitions()
    keys = [str(r) for r in runs]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("runs", keys)
        archive_env.ucondb.stop()  # outage: nothing listens any more
        results = run_partitions(defs, instance, keys[:2])
        assert not any(r.success for r in results.values())
        assert failed_partitions(defs, instance, MIGRATE) == keys[:2]
        # artdaqDB got them (import succeeded), and the failure names the run and the cause.
        assert instance.get_materialized_partitions(IMPORT) == set(keys[:2])

        from archiver_resources.ucondb.testing import start_local_ucondb

        restarted = start_local_ucondb(archive_env.root / "ucondb", folder=FOLDER,
                                       user=archive_env.ucondb.user,
                                       password=archive_env.ucondb.password)
        try:
            from tests.support import write_config

            write_config(archive_env.root, restarted, run_records=archive_env.run_records,
                         artdaqdb_uri=archive_env.artdaqdb_uri)
            defs = archive_env.definitions()
            # A batched backfill run over the failed and missing partitions (range tags, as the
            # backfill daemon launches them with BackfillPolicy.multi_run).
            job = defs.resolve_implicit_global_asset_job_def().get_subset(
                asset_selection={IMPORT, MIGRATE})
            result = job.execute_in_process(
                instance=instance, raise_on_error=False,
                tags={"dagster/asset_partition_range_start": "3001",
                      "dagster/asset_partition_range_end": "3004"})
            assert result.success
            assert instance.get_materialized_partitions(MIGRATE) == set(keys)
            # Per-partition metadata survives batching.
            runs_seen = {m.partition: m.metadata["run"].value
                         for m in result.asset_materializations_for_node("ucondb_blob")}
            assert runs_seen == {k: int(k) for k in keys}
            restored = UconDBClient(restarted.base_url, FOLDER, "configuration", timeout=5)
            with restored:
                assert restored.existing_runs() == set(runs)
        finally:
            restarted.stop()


@pytest.mark.parametrize("event_batch_size,canary", [("500", "ok"), ("0", "ok"), ("500", "failed")],
                         ids=["batched-writes", "per-event", "canary-failed"])
def test_batched_run_records_check_status_per_run_and_can_run_again(archive_env, monkeypatch,
                                                                    caplog, event_batch_size,
                                                                    canary):
    # Batched event writes (archiver_assets.event_batching) must leave the same records as
    # Dagster's per-event path, and so must the public fallback taken when Dagster's internals
    # changed (the canary of archiver_assets.dagster_internals failed).
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", event_batch_size)
    import archiver_assets.dagster_internals as internals

    internals.reset_canary()
    monkeypatch.setattr(internals, "_verdict", None)  # restored (and so reset) after the test
    if canary == "failed":
        monkeypatch.setitem(internals._S, "SqliteEventLogStorage", None)  # as if renamed
    batched = event_batch_size != "0" and canary == "ok"
    batched_checks = []
    real_store = internals.store_check_evaluations
    monkeypatch.setattr(internals, "store_check_evaluations", lambda storage, entries: (
        batched_checks.append(len(entries)), real_store(storage, entries))[1])
    generate_run_records(archive_env.run_records, [4001, 4002, 4003])
    defs = archive_env.definitions()
    job = defs.resolve_job_def("archive_runs")
    tags = {"dagster/asset_partition_range_start": "4001",
            "dagster/asset_partition_range_end": "4003"}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("runs", ["4001", "4002", "4003"])
        for attempt in range(2):  # a retry or replay of the same batch must work too
            result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
            assert result.success, attempt
            for check in (MD5_CHECK, HASHES_CHECK):
                records = instance.event_log_storage.get_asset_check_execution_history(
                    check, limit=50)
                this_run = {r.partition: r.status.value for r in records
                            if r.run_id == result.run_id}
                # One resolved execution per run, plus the step's summary (no partition).
                assert this_run == {"4001": "SUCCEEDED", "4002": "SUCCEEDED",
                                    "4003": "SUCCEEDED", None: "SUCCEEDED"}, (attempt, check)
            # In the run that uploaded the blobs, the MD5 check expects the MD5 recorded at upload
            # (no second export and pack); each evaluation points at this run's materialization.
            records = instance.event_log_storage.get_asset_check_execution_history(
                MD5_CHECK, limit=50)
            evaluations = {r.partition: r.event.dagster_event.event_specific_data
                           for r in records if r.run_id == result.run_id and r.partition}
            assert {k: e.metadata["expected_from"].value for k, e in evaluations.items()} == {
                k: "this run's upload" for k in ("4001", "4002", "4003")}
            assert {e.target_materialization_data.run_id
                    for e in evaluations.values()} == {result.run_id}
            assert internals.is_patched(instance.event_log_storage) == batched
            # Batched: each check's three per-run evaluations went in as one write.
            assert batched_checks == ([3, 3, 3] if batched else []), attempt
            fallback_warnings = [r for r in caplog.records if "public per-event paths" in
                                 r.getMessage()]
            assert len(fallback_warnings) == (1 if canary == "failed" else 0), attempt
            batched_checks.clear()
            for asset in ("artdaqdb_config", "ucondb_blob"):
                records = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
                mine = sorted(r.partition_key for r in records if r.run_id == result.run_id)
                assert mine == ["4001", "4002", "4003"], (asset, attempt)
                assert instance.get_materialized_partitions(dg.AssetKey(asset)) == {
                    "4001", "4002", "4003"}
