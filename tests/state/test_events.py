"""Batched event writes and the failed marker run, on a temporary SQLite instance: what Dagster's
own status functions then report, and that reading status writes nothing."""

import dagster as dg
import pytest

from archiver_assets import dagster_internals as internals
from archiver_assets.partitions import runs_partitions
from archiver_assets.state import events
from archiver_assets.state.partition_status import read_partition_status

ASSET = dg.AssetKey("artdaqdb_config")


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def keys(runs):
    return [str(r) for r in runs]


def status(instance, runs):
    found = instance.get_status_by_partition(ASSET, keys(runs), runs_partitions)
    return {int(k): (v.value if v is not None else None) for k, v in found.items()}


def test_batched_materializations_are_what_dagster_reports(instance):
    runs = range(1000, 1300)
    instance.add_dynamic_partitions("runs", keys(runs))
    written = events.record_materializations(
        instance, ASSET, {str(r): {"source": "test", "run": r} for r in runs if r != 1100})
    assert written == 299
    assert instance.get_materialized_partitions(ASSET) == set(keys(runs)) - {"1100"}
    found = status(instance, runs)
    assert found[1100] is None and all(found[r] == "MATERIALIZED" for r in runs if r != 1100)
    latest = instance.get_latest_materialization_event(ASSET)
    assert latest.asset_materialization.partition == "1299"
    assert latest.run_id == ""  # runless, like report_runless_asset_event
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=ASSET, asset_partitions=["1042"]), limit=1).records[0]
    assert record.asset_materialization.metadata["run"].value == 1042


def test_marker_run_makes_partitions_failed_until_materialized(instance):
    instance.add_dynamic_partitions("runs", keys(range(1, 6)))
    run_id = events.mark_partitions_failed(instance, ASSET, ["2", "4"], message="legacy said so",
                                           tags={"archiver/legacy_stage": "import"})
    found = status(instance, range(1, 6))
    assert found == {1: None, 2: "FAILED", 3: None, 4: "FAILED", 5: None}
    run = instance.get_run_by_id(run_id)
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert run.job_name == events.MARKER_JOB_NAME
    assert run.tags["dagster/max_retries"] == "0"
    assert run.tags["archiver/legacy_stage"] == "import"
    failure = [e for e in instance.all_logs(run_id) if e.dagster_event
               and e.dagster_event.event_type_value in ("PIPELINE_FAILURE", "RUN_FAILURE")]
    assert failure and "legacy said so" in failure[0].dagster_event.message
    assert events.mark_partitions_failed(instance, ASSET, [], message="x") is None

    events.record_materializations(instance, ASSET, {"2": {"source": "test"}})
    assert status(instance, range(1, 6))[2] == "MATERIALIZED"
    assert read_partition_status(instance, ASSET).failed == {4}


def test_generic_storage_path_gives_the_same_result(instance, monkeypatch):
    monkeypatch.setattr(internals, "is_sqlite", lambda storage: False)
    monkeypatch.setattr(internals, "has_own_batch_store", lambda storage: False)
    instance.add_dynamic_partitions("runs", keys(range(1, 4)))
    events.record_materializations(instance, ASSET, {"1": {}, "3": {}})
    events.mark_partitions_failed(instance, ASSET, ["2"], message="m")
    assert status(instance, range(1, 4)) == {1: "MATERIALIZED", 2: "FAILED", 3: "MATERIALIZED"}


def test_reading_partition_status_writes_nothing(instance):
    instance.add_dynamic_partitions("runs", keys(range(1, 4)))
    events.record_materializations(instance, ASSET, {"1": {}})
    events.mark_partitions_failed(instance, ASSET, ["2"], message="m")

    def cached():
        record = next(iter(instance.get_asset_records(asset_keys=[ASSET])))
        return record.asset_entry.cached_status

    before = cached()
    found = read_partition_status(instance, ASSET)
    assert (found.materialized, found.failed, found.in_progress) == ({1}, {2}, set())
    assert found.ever_materialized == {1} and found.highest_materialized == 1
    assert cached() == before  # no status-cache update (dry runs leave the instance alone)
    assert found.label(1) == "materialized" and found.label(3) == "missing"
