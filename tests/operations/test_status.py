"""`archive_status` against stores populated by a real archive run, with a store down, and the
`stores_in_sync` thresholds; the daily schedule's definition."""

import base64
import re

import dagster as dg
import pytest

from archiver_assets.operations.status import STATUS_SCHEDULE, evaluate_sync
from archiver_resources.samples import generate_run_records
from tests.operations.conftest import merged_definitions, secrets_of
from tests.pipeline.test_end_to_end import MD5_CHECK, client_for

STATUS = dg.AssetKey("archive_status")
SYNC = dg.AssetCheckKey(STATUS, "stores_in_sync")


def archive(defs, instance, runs, job="archive_runs"):
    keys = [str(r) for r in runs]
    instance.add_dynamic_partitions("runs", keys)
    job_def = defs.resolve_job_def(job)
    return {k: job_def.execute_in_process(instance=instance, partition_key=k, raise_on_error=False)
            for k in keys}


def materialize_status(defs, instance):
    result = defs.resolve_job_def("archive_status_job").execute_in_process(
        instance=instance, raise_on_error=False)
    assert result.success  # never fails, even with a store down
    [materialization] = result.asset_materializations_for_node("archive_status")
    [check] = result.get_asset_check_evaluations()
    return materialization.metadata, check


def test_status_report_of_three_populated_stores(archive_env):
    generate_run_records(archive_env.run_records, [101, 102, 103, 105, 106])
    defs = merged_definitions(archive_env)
    with dg.instance_for_test() as instance:
        results = archive(defs, instance, [101, 102, 103], job="archive_runs")
        assert all(r.success for r in results.values())
        archive(defs, instance, [105], job="import_runs")  # 105 only in artdaqDB; 106 nowhere
        meta, check = materialize_status(defs, instance)

    report = meta["report"].value
    assert "FILESYSTEM (Source)" in report and "✓ UconDB query complete" in report
    assert re.search(r"  Total Runs:      5\n  Range:           101 to 106\n"
                     r"  Contiguous:      101-103, 105-106\n  Gaps:            104", report)
    assert "1. Run IMPORTER: 1 run(s) on filesystem not in artdaqDB (range: 106-106)" in report
    assert "2. Run MIGRATOR: 1 run(s) in artdaqDB not in UconDB (range: 105-105)" in report
    assert "FAILED PARTITIONS" in report and "No failed partitions" in report
    assert (meta["filesystem_runs"].value, meta["artdaqdb_runs"].value,
            meta["ucondb_runs"].value) == (5, 4, 3)
    assert meta["artdaqdb_behind_filesystem"].value == 1
    assert meta["ucondb_behind_artdaqdb"].value == 1
    assert "| Filesystem | 5 | 101 | 106 | 2 | 1 | - |" in meta["summary"].value
    image = meta["plot"].value
    prefix = "(data:image/png;base64,"
    assert prefix in image
    png = base64.b64decode(image.split(prefix, 1)[1].rstrip(")"))
    assert png.startswith(b"\x89PNG")
    assert check.passed and check.check_name == "stores_in_sync"
    text = str({k: getattr(v, "value", v) for k, v in meta.items()})
    assert not any(secret in text for secret in secrets_of(archive_env))


def test_store_down_is_reported_and_the_check_warns(archive_env):
    generate_run_records(archive_env.run_records, [201, 202])
    defs = merged_definitions(archive_env)
    with dg.instance_for_test() as instance:
        archive(defs, instance, [201, 202])
        archive_env.ucondb.stop()
        meta, check = materialize_status(defs, instance)
    assert meta["complete"].value is False
    assert meta["query_failed"].value == "ucondb"
    assert "✗ UconDB query failed: " in meta["report"].value
    assert "plot" not in meta
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert "ucondb query failed" in check.description


def test_failed_partitions_and_checks_appear_in_the_report(archive_env):
    generate_run_records(archive_env.run_records, [301, 302])
    defs = merged_definitions(archive_env)
    with dg.instance_for_test() as instance:
        archive(defs, instance, [301, 302])
        with client_for(archive_env) as client:
            client.put_blob(302, b"corrupted by a test", override=True)
        audit = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection=set(), asset_check_selection={MD5_CHECK})
        audit.execute_in_process(instance=instance, partition_key="302", raise_on_error=False)
        assert not archive(defs, instance, [302])["302"].success  # different blob: FAILED
        meta, _ = materialize_status(defs, instance)
    report = meta["report"].value
    assert "  ucondb_blob: 1 partition(s) (302)" in report
    assert "  ucondb_blob:md5_round_trip: 1 failure(s) (302)" in report
    assert "BACKFILL ucondb_blob: 1 failed partition(s)" in report
    assert meta["failed_partitions"].value == 1
    assert meta["failed_checks"].value == 1


@pytest.mark.parametrize("adb_lag, ucon_lag, limits, passed", [
    (0, 0, (10, 10), True), (10, 10, (10, 10), True), (11, 0, (10, 10), False),
    (0, 3, (10, 2), False), (5, 5, (4, 10), False),
])
def test_stores_in_sync_thresholds(adb_lag, ucon_lag, limits, passed):
    meta = {"complete": True, "artdaqdb_behind_filesystem": adb_lag,
            "ucondb_behind_artdaqdb": ucon_lag, "artdaqdb_max_run_behind": 0,
            "ucondb_max_run_behind": 0}
    result = evaluate_sync({k: dg.MetadataValue.int(v) if not isinstance(v, bool) else
                            dg.MetadataValue.bool(v) for k, v in meta.items()}, *limits)
    assert result.passed is passed
    assert result.severity == dg.AssetCheckSeverity.WARN
    if not passed:
        assert "allowed" in result.description


def test_stores_in_sync_threshold_from_the_environment_in_a_real_run(archive_env, monkeypatch):
    generate_run_records(archive_env.run_records, [401, 402, 403])
    monkeypatch.setenv("ARCHIVER_MAX_ARTDAQDB_LAG_RUNS", "2")
    defs = merged_definitions(archive_env)
    with dg.instance_for_test() as instance:
        _, check = materialize_status(defs, instance)  # nothing archived: artdaqDB lags by 3
    assert not check.passed
    assert "artdaqDB lacks 3 run(s) of the filesystem (allowed 2)" in check.description


def test_schedule_definition(archive_env, monkeypatch):
    defs = merged_definitions(archive_env)
    schedule = defs.resolve_schedule_def(STATUS_SCHEDULE)
    assert schedule.cron_schedule == "0 6 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "archive_status_job"
    monkeypatch.setenv("ARCHIVER_STATUS_CRON", "30 7 * * 1-5")
    assert merged_definitions(archive_env).resolve_schedule_def(
        STATUS_SCHEDULE).cron_schedule == "30 7 * * 1-5"
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance)
        data = schedule.evaluate_tick(context)
        assert len(data.run_requests) == 1


def test_whole_merged_definitions_load(archive_env):
    defs = merged_definitions(archive_env)
    dg.Definitions.validate_loadable(defs)
    assert {s.name for s in defs.sensors} >= {"check_failure_alerts",
                                               "archive_run_failure_alerts",
                                               "batch_summary_on_success",
                                               "batch_summary_on_failure"}
    quiet = archive_env.definitions()
    assert not {s.name for s in quiet.sensors} & {"check_failure_alerts"}


def test_stores_in_sync_warns_about_lost_runs_and_runs_far_above():
    meta = {"complete": dg.MetadataValue.bool(True),
            **{k: dg.MetadataValue.int(0) for k in ("artdaqdb_behind_filesystem",
                                                    "ucondb_behind_artdaqdb",
                                                    "artdaqdb_max_run_behind",
                                                    "ucondb_max_run_behind")}}
    assert evaluate_sync(meta, 10, 10).passed
    lost = {**meta, "lost_by_store": dg.MetadataValue.json({"UconDB": [7, 9]})}
    result = evaluate_sync(lost, 10, 10)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert "UconDB no longer holds 2 run(s) Dagster recorded as archived (7, 9)" in \
        result.description
    far = {**meta, "far_above_runs": dg.MetadataValue.json([9223372036854775807])}
    result = evaluate_sync(far, 10, 10)
    assert not result.passed and "9223372036854775807" in result.description
