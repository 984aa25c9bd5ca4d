"""Store loss repaired by the daemon's side alone: the daily `archive_status` finds the blobs
UconDB lost (a restored backup), marks their `ucondb_blob` partitions failed with the reason and
warns through `stores_in_sync`; the next `new_run_records` tick requests exactly those runs,
migration only (their run records may be gone from disk), once. Good runs are untouched."""

import dagster as dg
import pytest

from archiver_resources.archiving import build_blob
from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.blob import md5_hex
from archiver_resources.samples import generate_run_records
from tests.reliability.conftest import delete_blobs, ucondb_versions

MIGRATE = dg.AssetKey("ucondb_blob")


def tick(defs, instance, cursor=None):
    sensor = defs.resolve_sensor_def("new_run_records")
    with dg.build_sensor_context(instance_ref=instance.get_ref(), definitions=defs,
                                 resources=defs.resources, cursor=cursor) as context:
        data = sensor.evaluate_tick(context)
    for request in data.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions("runs", list(request.partition_keys))
    return data


@pytest.mark.slow
def test_the_daily_status_and_the_sensor_repair_lost_blobs_on_their_own(archive_env):
    from tests.support import FOLDER as PIPELINE_FOLDER
    from tests.pipeline.test_end_to_end import client_for

    runs, lost = [201, 202, 203, 204, 205], [202, 204]
    generate_run_records(archive_env.run_records, runs, profile="small")
    defs = archive_env.definitions()
    job = defs.resolve_job_def("archive_runs")
    with dg.instance_for_test() as instance:
        data = tick(defs, instance)
        for request in data.run_requests:  # one range run (app.batch_size 5)
            assert job.execute_in_process(instance=instance, partition_key=request.partition_key,
                                          tags=dict(request.tags), raise_on_error=False).success
        delete_blobs(archive_env.ucondb, PIPELINE_FOLDER, lost)

        result = defs.resolve_job_def("archive_status_job").execute_in_process(
            instance=instance)
        meta = result.asset_materializations_for_node("archive_status")[0].metadata
        assert meta["lost_by_store"].value == {"UconDB": lost}
        sync = {e.check_name: e for e in result.get_asset_check_evaluations()}["stores_in_sync"]
        assert not sync.passed and sync.severity == dg.AssetCheckSeverity.WARN
        assert "UconDB no longer holds 2 run(s)" in sync.description

        data = tick(defs, instance, data.cursor)  # the sensor requests the lost runs, once
        repairs = [r for r in data.run_requests if r.tags.get("archiver/reason")]
        assert [r.partition_key for r in repairs] == [str(r) for r in lost]
        assert all(r.asset_selection == [MIGRATE] for r in repairs)  # not re-imported
        for request in repairs:
            assert job.execute_in_process(instance=instance, partition_key=request.partition_key,
                                          asset_selection=request.asset_selection,
                                          tags=request.tags).success
        assert not [r for r in tick(defs, instance, data.cursor).run_requests
                    if r.tags.get("archiver/reason")]
        with open_artdaqdb(archive_env.artdaqdb_uri) as store, client_for(archive_env) as client:
            for run in runs:
                assert md5_hex(client.get_blob(run).data) == md5_hex(build_blob(run, store)[3])
        assert ucondb_versions(archive_env.ucondb) == {str(r): 1 for r in runs}
