"""The batched writes and the marker run on the production storage (PostgreSQL, the deploy/
template): PostgreSQL has its own ``store_event_batch`` (one INSERT per batch), so the same
status checks as on SQLite, against a real server (tests/deploy starts one per session)."""

import dagster as dg
import pytest

from archiver_assets import dagster_internals as internals
from archiver_assets.partitions import runs_partitions
from archiver_assets.state import events
from archiver_assets.state.partition_status import read_partition_status
from tests.deploy.conftest import postgres_db, postgres_server  # noqa: F401 (fixtures)
from tests.deploy.instance import DEPLOY, render_home

pytestmark = pytest.mark.postgres
ASSET = dg.AssetKey("ucondb_blob")


def test_batched_materializations_and_marker_run_on_postgres(tmp_path, postgres_server,
                                                             postgres_db, monkeypatch):
    for key, value in postgres_server.env(postgres_db).items():
        monkeypatch.setenv(key, value)
    home = render_home(tmp_path / "home", DEPLOY / "dagster.postgres.yaml")
    keys = [str(r) for r in range(5000, 7500)]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert internals.has_own_batch_store(instance.event_log_storage)
        instance.add_dynamic_partitions("runs", keys)
        events.record_materializations(instance, ASSET,
                                       {k: {"source": "test"} for k in keys[:-10]})
        events.mark_partitions_failed(instance, ASSET, keys[-10:-5], message="legacy failure")
        found = instance.get_status_by_partition(ASSET, keys, runs_partitions)
        values = [None if s is None else s.value for s in (found[k] for k in keys)]
        assert values == ["MATERIALIZED"] * 2490 + ["FAILED"] * 5 + [None] * 5
        status = read_partition_status(instance, ASSET)
        assert status.failed == set(range(7490, 7495)) and len(status.materialized) == 2490
        assert instance.get_latest_materialization_event(ASSET).asset_materialization.partition \
            == keys[-11]


def _evaluations_through_the_instance(instance, keys, *, batched: bool):
    """A range step's per-partition check evaluations as the archive checks hand them to the
    instance (planned executions first, then one evaluation per partition, in one batch when
    ``batched``); returns ``{partition: (status, target storage id)}``."""
    import logging
    import time

    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationPlanned)

    from archiver_assets import event_batching

    instance.add_dynamic_partitions("runs", keys)
    events.record_materializations(instance, ASSET, {k: {} for k in keys})
    latest = instance.fetch_materializations(ASSET, limit=len(keys)).records
    by_key = {r.partition_key: r for r in latest}
    run = instance.add_run(dg.DagsterRun(job_name="j", run_id=internals.new_run_id(),
                                         status=dg.DagsterRunStatus.STARTED))
    assert event_batching.enable_batched_writes(instance)
    assert internals.is_patched(instance.event_log_storage)

    def entry(kind, data):
        return dg.EventLogEntry(
            user_message="", level=logging.INFO, job_name="j", run_id=run.run_id,
            error_info=None, timestamp=time.time(), step_key="s",
            dagster_event=dg.DagsterEvent(event_type_value=kind.value, job_name="j",
                                          step_key="s", event_specific_data=data))

    subset = runs_partitions.empty_subset().with_partition_keys(keys)
    instance.handle_new_event(entry(dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
                                    AssetCheckEvaluationPlanned(asset_key=ASSET,
                                                                check_name=CHECK.name,
                                                                partitions_subset=subset)))
    batches = internals.evaluation_batch(len(keys), batched)
    for key, batch in zip(keys, batches):
        evaluation = dg.AssetCheckEvaluation(
            asset_key=ASSET, check_name=CHECK.name, passed=int(key) % 3 != 0, partition=key,
            target_materialization_data=internals.check_target(by_key[key]))
        instance.handle_new_event(entry(dg.DagsterEventType.ASSET_CHECK_EVALUATION, evaluation),
                                  batch_metadata=batch)
    records = instance.event_log_storage.get_asset_check_execution_history(CHECK, limit=1000)
    assert len(records) == len(keys)
    found = {}
    for r in records:
        data = r.event.dagster_event.event_specific_data
        found[r.partition] = (r.status.value, data.target_materialization_data.storage_id
                              - by_key[r.partition].storage_id)
    return found


CHECK = dg.AssetCheckKey(ASSET, "md5_round_trip")


def _batched_and_one_by_one(tmp_path, postgres_server, postgres_db, monkeypatch, writer: str,
                            keys, through) -> dict:
    """``through(instance, keys, batched=...)`` on two fresh PostgreSQL databases, batched and
    one by one; asserts that only the batched one went through ``internals.<writer>`` (once,
    with every event) and returns ``{batched: what through returned}``."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "500")
    written = []
    real = getattr(internals, writer)
    monkeypatch.setattr(internals, writer, lambda storage, entries: (
        written.append(len(entries)), real(storage, entries))[1])
    results = {}
    for batched, db_name in ((True, postgres_db), (False, postgres_server.create_database())):
        for key, value in postgres_server.env(db_name).items():
            monkeypatch.setenv(key, value)
        home = render_home(tmp_path / f"home-{batched}", DEPLOY / "dagster.postgres.yaml")
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert internals.is_postgres(instance.event_log_storage)
            results[batched] = through(instance, keys, batched=batched)
        assert written == ([len(keys)] if batched else []), batched
        written.clear()
    assert results[True] == results[False]
    return results


def test_check_evaluations_batched_on_postgres_leave_the_per_event_records(
        tmp_path, postgres_server, postgres_db, monkeypatch):
    """PostgreSQL's store_event_batch refuses check evaluations; the patched storage writes a
    step's evaluations in one transaction, with the same execution records as one by one."""
    keys = [str(r) for r in range(100, 160)]
    results = _batched_and_one_by_one(tmp_path, postgres_server, postgres_db, monkeypatch,
                                      "store_check_evaluations", keys,
                                      _evaluations_through_the_instance)
    assert results[True]["102"] == ("FAILED", 0) and results[True]["100"] == ("SUCCEEDED", 0)


def _planned_through_the_instance(instance, keys, *, batched: bool):
    """The planned materializations Dagster writes when it creates a range run (one per
    partition, handed over with batch metadata when batching is on); returns what a reader
    sees: each partition's planned event (run, partition) and the asset row's last run."""
    import logging
    import time

    from dagster._core.events import AssetMaterializationPlannedData

    from archiver_assets import event_batching

    instance.add_dynamic_partitions("runs", keys)
    run = instance.add_run(dg.DagsterRun(job_name="j", run_id=internals.new_run_id(),
                                         status=dg.DagsterRunStatus.NOT_STARTED))
    if batched:
        assert event_batching.enable_batched_writes(instance)
    batches = internals.evaluation_batch(len(keys), batched)
    for key, batch in zip(keys, batches):
        event = dg.DagsterEvent.build_asset_materialization_planned_event(
            "j", "s", AssetMaterializationPlannedData(ASSET, partition=key))
        instance.handle_new_event(dg.EventLogEntry(
            user_message="", level=logging.DEBUG, job_name="j", run_id=run.run_id,
            error_info=None, timestamp=time.time(), step_key="s", dagster_event=event),
            batch_metadata=batch)
    records = instance.fetch_planned_materializations(ASSET, limit=1000).records
    planned = sorted((r.partition_key, r.run_id == run.run_id) for r in records)
    (asset_record,) = instance.get_asset_records([ASSET])
    status = instance.get_status_by_partition(ASSET, keys, runs_partitions)
    return planned, asset_record.asset_entry.last_run_id == run.run_id, \
        sorted(str(v) for v in status.values())


def test_a_range_runs_planned_events_in_one_write_on_postgres(
        tmp_path, postgres_server, postgres_db, monkeypatch):
    """Dagster's PostgreSQL batch write loops over planned materializations (one transaction
    each, 200 for a range run of 100 runs): the patched storage writes them in one, and a
    reader sees the same planned events, asset row and partition status as one by one."""
    keys = [str(r) for r in range(300, 340)]
    results = _batched_and_one_by_one(tmp_path, postgres_server, postgres_db, monkeypatch,
                                      "store_sqlite_events", keys, _planned_through_the_instance)
    planned, last_run_is_ours, _ = results[True]
    assert planned == [(k, True) for k in keys] and last_run_is_ours


def _sessions(postgres_server, db_name: str) -> int:
    """Connections ever made to ``db_name`` (PostgreSQL's own count, pg_stat_database)."""
    import psycopg2

    conn = psycopg2.connect(postgres_server.url(db_name, scheme="postgresql"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (db_name,))
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_a_range_run_holds_its_postgres_connections(tmp_path, postgres_server, postgres_db,
                                                    monkeypatch):
    """Dagster's PostgreSQL storages connect anew for every statement; once a range step has
    enabled batched writes, the process keeps its connections open: 40 reads make 40
    connections before and (nearly) none after, with the same answers."""
    from archiver_assets import event_batching

    for key, value in postgres_server.env(postgres_db).items():
        monkeypatch.setenv(key, value)
    home = render_home(tmp_path / "home", DEPLOY / "dagster.postgres.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("runs", ["1", "2"])

        def reads() -> tuple[int, list]:
            before = _sessions(postgres_server, postgres_db)
            answers = [sorted(instance.get_dynamic_partitions("runs")) for _ in range(40)]
            return _sessions(postgres_server, postgres_db) - before - 1, answers

        opened, answers = reads()
        assert opened >= 40
        assert event_batching.enable_batched_writes(instance)
        assert event_batching.hold_connections(instance)  # idempotent
        opened_held, answers_held = reads()
        assert opened_held <= 2, opened_held
        assert answers_held == answers == [["1", "2"]] * 40
