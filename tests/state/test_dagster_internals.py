"""The canary over Dagster internals (archiver_assets/dagster_internals.py) and the public
fallback it switches to: a changed symbol, signature, column or enum value is named, and the
archiver then records the same facts through Dagster's public per-event paths."""

import logging
from types import SimpleNamespace

import dagster as dg
import pytest
import sqlalchemy as db

from archiver_assets import dagster_internals as internals
from archiver_assets.partitions import runs_partitions
from archiver_assets.state import events
from archiver_assets.state.partition_status import read_partition_status

ASSET = dg.AssetKey("artdaqdb_config")
CHECK = dg.AssetCheckKey(ASSET, "hashes_match")


@pytest.fixture(autouse=True)
def fresh_canary(monkeypatch):
    """Each test judges the canary anew; the process-wide verdict is restored afterwards."""
    monkeypatch.setattr(internals, "_verdict", None)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def names(problems):
    return [str(p) for p in problems]


def test_the_installed_dagster_has_everything_the_archiver_relies_on():
    assert internals.check_internals() == []
    assert internals.internals_ok()


@pytest.mark.parametrize("symbol", sorted(internals.SYMBOLS))
def test_a_missing_symbol_is_named(monkeypatch, symbol):
    monkeypatch.setitem(internals._S, symbol, None)
    problems = internals.check_internals()
    module, fallback = internals.SYMBOLS[symbol]
    assert f"{module}.{symbol}: missing" in names(problems)
    assert all(p.fallback == fallback for p in problems if p.symbol.endswith(symbol))


def test_a_changed_method_signature_is_named(monkeypatch):
    storage_class = internals._S["SqlEventLogStorage"]

    def _store_asset_event(self, connection, event, event_id):  # "conn" renamed
        raise AssertionError("not called")

    monkeypatch.setattr(storage_class, "_store_asset_event", _store_asset_event)
    assert "SqlEventLogStorage._store_asset_event: parameter(s) conn gone" in \
        names(internals.check_internals())
    monkeypatch.delattr(storage_class, "_event_to_row")
    assert "SqlEventLogStorage._event_to_row: missing" in names(internals.check_internals())


def test_a_renamed_column_is_named(monkeypatch):
    real = internals._S["AssetCheckExecutionsTable"]
    fake = db.Table(real.name, db.MetaData(),
                    *[db.Column("materialization_storage_id" if c.name ==
                                "materialization_event_storage_id" else c.name, c.type)
                      for c in real.c])
    monkeypatch.setitem(internals._S, "AssetCheckExecutionsTable", fake)
    assert names(internals.check_internals()) == [
        "AssetCheckExecutionsTable (asset_check_executions): column(s) "
        "materialization_event_storage_id gone"]
    assert not internals.internals_ok()


def test_changed_values_are_named(monkeypatch):
    import enum

    monkeypatch.setitem(internals._S, "AssetCheckExecutionRecordStatus",
                        enum.Enum("Status", {"PLANNED": "PLANNED", "SUCCESS": "SUCCESS",
                                             "FAILED": "FAILED"}))
    monkeypatch.setitem(internals._S, "RUNLESS_RUN_ID", "__runless__")
    monkeypatch.setitem(internals._S, "BATCH_WRITABLE_EVENTS",
                        {dg.DagsterEventType.ASSET_MATERIALIZATION})
    found = names(internals.check_internals())
    assert "AssetCheckExecutionRecordStatus: value(s) SUCCEEDED gone" in found
    assert "RUNLESS_RUN_ID: is '__runless__', not ''" in found
    assert any(p.startswith("BATCH_WRITABLE_EVENTS: no longer takes") for p in found)


def test_the_canary_warns_once_and_the_batch_patch_stays_off(monkeypatch, caplog, instance):
    monkeypatch.setitem(internals._S, "PartitionKeyFilter", None)
    with caplog.at_level(logging.WARNING, logger=internals.__name__):
        assert not internals.internals_ok()
        assert not internals.internals_ok()
        assert not internals.patch_batch_writes(instance.event_log_storage)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "dagster._core.event_api.PartitionKeyFilter: missing" in warnings[0].getMessage()
    assert not internals.is_patched(instance.event_log_storage)


def test_a_missing_symbol_without_fallback_fails_loudly(monkeypatch, caplog):
    monkeypatch.setitem(internals._S, "AssetMaterializationPlannedData", None)
    with caplog.at_level(logging.ERROR, logger=internals.__name__):
        assert internals.internals_ok()  # the batched paths are still usable
    assert "AssetMaterializationPlannedData: missing" in caplog.text
    with pytest.raises(internals.DagsterInternalsChanged, match="AssetMaterializationPlannedData"):
        internals.planned_materialization_entry(ASSET, "1", "run", "job")


def _statuses(instance, runs):
    found = instance.get_status_by_partition(ASSET, [str(r) for r in runs], runs_partitions)
    return {int(k): (v.value if v is not None else None) for k, v in found.items()}


def _record_and_mark(instance):
    runs = range(1, 41)
    instance.add_dynamic_partitions("runs", [str(r) for r in runs])
    written = events.record_materializations(
        instance, ASSET, {str(r): {"run": r} for r in runs if r % 10})
    events.mark_partitions_failed(instance, ASSET, ["10", "20", "5"], message="legacy failure")
    return written, _statuses(instance, runs), read_partition_status(instance, ASSET)


def test_failed_canary_records_the_same_materializations_and_failures(monkeypatch):
    with dg.instance_for_test() as instance:
        batched = _record_and_mark(instance)
    monkeypatch.setitem(internals._S, "SqlEventLogStorageTable", None)
    internals.reset_canary()  # judged again with the symbol gone
    public = []
    real_report = dg.DagsterInstance.report_runless_asset_event
    monkeypatch.setattr(dg.DagsterInstance, "report_runless_asset_event",
                        lambda self, event: (public.append(event.partition),
                                             real_report(self, event))[1])
    with dg.instance_for_test() as instance:
        fallback = _record_and_mark(instance)
        latest = instance.get_latest_materialization_event(ASSET)
        record = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=ASSET, asset_partitions=["17"]), limit=1).records[0]
    assert not internals.internals_ok()
    assert len(public) == 36  # one public call per materialization
    assert fallback == batched
    assert fallback[1][5] == "FAILED" and fallback[1][10] == "FAILED" and fallback[1][1] == \
        "MATERIALIZED"
    assert latest.run_id == "" and record.asset_materialization.metadata["run"].value == 17


def test_check_history_fallback_reads_the_same_records(monkeypatch, instance):
    instance.add_dynamic_partitions("runs", ["1", "2", "3", "4", "5"])
    for passed, partition in [(True, "1"), (False, "2"), (False, "3"), (True, "4"),
                              (True, "5"), (False, None)]:
        instance.report_runless_asset_event(dg.AssetCheckEvaluation(
            asset_key=ASSET, check_name=CHECK.name, passed=passed, partition=partition))
    storage = instance.event_log_storage
    queries = [dict(limit=1, partition="1"), dict(limit=5, partition="2"),
               dict(limit=1, partition=None), dict(limit=10),
               dict(limit=1, partition="2", statuses={internals.SUCCEEDED}),
               dict(limit=2, statuses={internals.SUCCEEDED}),
               dict(limit=9, statuses={internals.FAILED})]
    direct = [[(r.id, r.partition) for r in internals.check_history(storage, CHECK, **q)]
              for q in queries]
    monkeypatch.setattr(internals, "_PAGE", 2)  # several pages
    monkeypatch.setitem(internals._S, "PartitionKeyFilter", None)
    monkeypatch.setattr(internals, "_verdict", None)
    assert not internals.internals_ok()
    paged = [[(r.id, r.partition) for r in internals.check_history(storage, CHECK, **q)]
             for q in queries]
    assert paged == direct
    assert [len(found) for found in direct] == [1, 1, 1, 6, 0, 2, 3]
    assert [p for _, p in direct[5]] == ["5", "4"] and [p for _, p in direct[6]] == [None, "3", "2"]
    assert direct[0][0][1] == "1" and direct[2][0][1] is None


def test_a_batch_with_other_events_keeps_their_order(instance):
    """store_batch: non-batchable events go one by one between the batched groups."""
    stored = []
    storage = SimpleNamespace(store_event=lambda e: stored.append(("single", e.user_message)))
    entry = lambda kind, message, run="r": dg.EventLogEntry(  # noqa: E731
        user_message=message, level=logging.INFO, job_name="j", run_id=run, error_info=None,
        timestamp=1.0, step_key=None,
        dagster_event=None if kind is None else dg.DagsterEvent(
            event_type_value=kind.value, job_name="j",
            event_specific_data=internals._S["StepMaterializationData"](
                dg.AssetMaterialization(ASSET, partition="1"))))
    original = []
    internals.store_batch(storage, [
        entry(dg.DagsterEventType.ASSET_MATERIALIZATION, "a"),
        entry(dg.DagsterEventType.ASSET_MATERIALIZATION, "b"),
        entry(None, "log line"),
        entry(dg.DagsterEventType.ASSET_MATERIALIZATION, "c")],
        original=lambda group: original.append([e.user_message for e in group]))
    assert original == [["a", "b"], ["c"]] and stored == [("single", "log line")]
