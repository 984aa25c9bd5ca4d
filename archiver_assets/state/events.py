"""Writing many partition facts into the Dagster instance at once: runless materializations for
runs the stores already hold, and a failed *marker run* that makes partitions show FAILED.

Why not ``instance.report_runless_asset_event`` in a loop: on SQLite every call opens two
database files and commits twice (measured: 10-70 ms per event on this VM's disk, about 5.6 ms on a
faster one), so 10k runs × 2 assets would take 2-20 minutes. Dagster 1.13
has a batched store API, ``EventLogStorage.store_event_batch``; PostgreSQL implements it as one
INSERT per batch, but the SQLite storage inherits the per-event loop. For SQLite this module
writes the same rows ``SqliteEventLogStorage.store_event`` writes (the event row in the run
shard, its mirror in the index shard, the asset-event tags and the asset-key row), one
transaction per shard per batch: 9,950 materializations in 3.4 s, most of it serialisation
(bench/bench_reconcile.py: 10k runs, both assets, listings included, 12 s).

Why a marker run (job ``legacy_failure_marker`` for a legacy state import, ``store_drift_repair``
for runs a store lost): a partition is FAILED in Dagster OSS when its latest materialization attempt
(an ``ASSET_MATERIALIZATION_PLANNED`` event) belongs to a run whose status is FAILURE and no
materialization followed. ``ASSET_FAILED_TO_MATERIALIZE`` events, the other candidate, are
dropped by the SQL storages (``can_store_asset_failure_events`` is False in 1.13). So
:func:`mark_partitions_failed` records a run (job ``legacy_failure_marker``) with one planned
event per partition and ends it with a run-failure event whose message says why; the run is
visible in the UI like any failed run, tagged ``dagster/max_retries=0`` so no daemon retries it.
"""

import logging
import time
from collections import defaultdict
from typing import Iterable, Mapping, Optional, Sequence

import dagster as dg
from dagster._core.events import (
    AssetMaterializationPlannedData, DagsterEvent, DagsterEventType, StepMaterializationData,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._core.storage.event_log.base import EventLogStorage
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.utils import make_new_run_id

log = logging.getLogger(__name__)

BATCH_SIZE = 2000
MARKER_JOB_NAME = "legacy_failure_marker"
MARKER_TAGS = {"dagster/max_retries": "0", "archiver/source": "legacy-state-import"}
#: Marker runs of store drift: runs a store lost although Dagster recorded them archived.
DRIFT_JOB_NAME = "store_drift_repair"
DRIFT_TAGS = {"archiver/source": "store-drift"}


def _entry(event: DagsterEvent, run_id: str, timestamp: Optional[float]) -> EventLogEntry:
    return EventLogEntry(user_message="", level=logging.INFO, job_name=event.job_name,
                         run_id=run_id, error_info=None, timestamp=timestamp or time.time(),
                         step_key=None, dagster_event=event)


def materialization_entry(asset_key: dg.AssetKey, partition: str, metadata: Mapping,
                          *, timestamp: Optional[float] = None) -> EventLogEntry:
    """A runless materialization of one partition, as ``report_runless_asset_event`` builds it."""
    materialization = dg.AssetMaterialization(asset_key=asset_key, partition=partition,
                                              metadata=dict(metadata))
    event = DagsterEvent(event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
                         event_specific_data=StepMaterializationData(materialization),
                         job_name=RUNLESS_JOB_NAME)
    return _entry(event, RUNLESS_RUN_ID, timestamp)


def planned_entry(asset_key: dg.AssetKey, partition: str, run_id: str, job_name: str,
                  *, timestamp: Optional[float] = None) -> EventLogEntry:
    """A materialization attempt of one partition inside run ``run_id``."""
    event = DagsterEvent(event_type_value=DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value,
                         event_specific_data=AssetMaterializationPlannedData(asset_key,
                                                                             partition=partition),
                         job_name=job_name)
    return _entry(event, run_id, timestamp)


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _is_sqlite(storage) -> bool:
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    return isinstance(storage, SqliteEventLogStorage)


def _has_batched_store(storage) -> bool:
    return type(storage).store_event_batch is not EventLogStorage.store_event_batch


def _store_sqlite(storage, entries: Sequence[EventLogEntry]) -> None:
    """What ``SqliteEventLogStorage.store_event`` does per event, once per batch.

    Every entry shares one run id and one asset key (the caller groups them): the run-shard
    insert is one statement, the index-shard inserts return their ids in order, the asset-key row
    is updated from the last event (as the PostgreSQL batch does).
    """
    rows = [storage._event_to_row(entry) for entry in entries]  # noqa: SLF001 - see docstring
    with storage.run_connection(entries[0].run_id) as conn:
        conn.execute(SqlEventLogStorageTable.insert(), rows)
    with storage.index_transaction() as conn:
        result = conn.execute(
            SqlEventLogStorageTable.insert().returning(SqlEventLogStorageTable.c.id,
                                                       sort_by_parameter_order=True), rows)
        ids = [row[0] for row in result]
        storage._store_asset_event_tags(conn, entries, ids)  # noqa: SLF001
        storage._store_asset_event(conn, entries[-1], ids[-1])  # noqa: SLF001


def store_events(instance, entries: Sequence[EventLogEntry], *,
                 batch_size: int = BATCH_SIZE) -> int:
    """Store asset events (materializations or planned materializations) in batches.

    SQLite: :func:`_store_sqlite`; a storage with its own ``store_event_batch`` (PostgreSQL):
    that; anything else: ``instance.handle_new_event`` per event. Returns how many were stored.
    """
    storage = instance.event_log_storage
    groups: dict = defaultdict(list)
    for entry in entries:
        groups[(entry.run_id, entry.dagster_event.asset_key)].append(entry)
    for group in groups.values():
        for chunk in _chunks(group, batch_size):
            if _is_sqlite(storage):
                _store_sqlite(storage, chunk)
            elif _has_batched_store(storage):
                storage.store_event_batch(list(chunk))
            else:
                for entry in chunk:
                    instance.handle_new_event(entry)
    return len(entries)


def record_materializations(instance, asset_key: dg.AssetKey,
                            metadata_by_partition: Mapping[str, Mapping]) -> int:
    """Runless materializations, one per partition (partitions must exist); returns the count."""
    now = time.time()
    entries = [materialization_entry(asset_key, key, metadata, timestamp=now)
               for key, metadata in metadata_by_partition.items()]
    return store_events(instance, entries)


def mark_partitions_failed(instance, asset_key: dg.AssetKey, partitions: Sequence[str], *,
                           message: str, tags: Optional[Mapping[str, str]] = None,
                           job_name: str = MARKER_JOB_NAME) -> Optional[str]:
    """Make ``partitions`` of ``asset_key`` show FAILED: one marker run (job ``job_name``, tags
    ``MARKER_TAGS`` updated by ``tags``), a planned materialization per partition, then a run
    failure with ``message``. Returns the run id (None when there is nothing to mark). A later
    successful materialization clears it."""
    if not partitions:
        return None
    run = instance.add_run(DagsterRun(
        job_name=job_name, run_id=make_new_run_id(), status=DagsterRunStatus.STARTED,
        tags={**MARKER_TAGS, **dict(tags or {})}, asset_selection=frozenset({asset_key})))
    now = time.time()
    store_events(instance, [planned_entry(asset_key, key, run.run_id, job_name,
                                          timestamp=now) for key in partitions])
    instance.report_run_failed(run, message)
    log.debug("marker run %s: %d partition(s) of %s marked failed", run.run_id,
              len(partitions), asset_key.to_user_string())
    return run.run_id
