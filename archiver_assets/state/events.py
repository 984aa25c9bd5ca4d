"""Writing many partition facts into the Dagster instance at once: runless materializations for
runs the stores already hold, and a failed *marker run* that makes partitions show FAILED.

Why not ``instance.report_runless_asset_event`` in a loop: on SQLite every call opens two
database files and commits twice (measured: 10-70 ms per event on this VM's disk, about 5.6 ms on a
faster one), so 10k runs × 2 assets would take 2-20 minutes. Dagster 1.13
has a batched store API, ``EventLogStorage.store_event_batch``; PostgreSQL implements it as one
INSERT per batch, but the SQLite storage inherits the per-event loop. For SQLite
:mod:`archiver_assets.dagster_internals` writes the same rows ``SqliteEventLogStorage.store_event`` writes (the event row in the run
shard, its mirror in the index shard, the asset-event tags and the asset-key row), one
transaction per shard per batch: 9,950 materializations in 3.4 s, most of it serialisation
(bench/bench_reconcile.py: 10k runs, both assets, listings included, 12 s). When Dagster's
internals changed (its canary failed), the public ``report_runless_asset_event`` is used instead.

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

from archiver_assets import dagster_internals as internals

log = logging.getLogger(__name__)

BATCH_SIZE = 2000
MARKER_JOB_NAME = "legacy_failure_marker"
MARKER_TAGS = {"dagster/max_retries": "0", "archiver/source": "legacy-state-import"}
#: Marker runs of store drift: runs a store lost although Dagster recorded them archived.
DRIFT_JOB_NAME = "store_drift_repair"
DRIFT_TAGS = {"archiver/source": "store-drift"}


#: Kept under their old names: the entries are built in :mod:`archiver_assets.dagster_internals`.
materialization_entry = internals.runless_materialization_entry
planned_entry = internals.planned_materialization_entry


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def store_events(instance, entries: Sequence[dg.EventLogEntry], *,
                 batch_size: int = BATCH_SIZE) -> int:
    """Store asset events (materializations or planned materializations) in batches.

    SQLite: the rows written directly (``dagster_internals.store_sqlite_events``); a storage with
    its own ``store_event_batch`` (PostgreSQL): that; anything else, or when Dagster's internals
    changed (the canary failed): ``instance.handle_new_event`` per event. Returns how many were
    stored.
    """
    storage = instance.event_log_storage
    batched = internals.internals_ok()
    groups: dict = defaultdict(list)
    for entry in entries:
        groups[(entry.run_id, entry.dagster_event.asset_key)].append(entry)
    for group in groups.values():
        for chunk in _chunks(group, batch_size):
            if batched and internals.is_sqlite(storage):
                internals.store_sqlite_events(storage, chunk)
            elif batched and internals.has_own_batch_store(storage):
                storage.store_event_batch(list(chunk))
            else:
                for entry in chunk:
                    instance.handle_new_event(entry)
    return len(entries)


def record_materializations(instance, asset_key: dg.AssetKey,
                            metadata_by_partition: Mapping[str, Mapping]) -> int:
    """Runless materializations, one per partition (partitions must exist); returns the count."""
    if not internals.internals_ok():  # the public path, one event at a time
        for key, metadata in metadata_by_partition.items():
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key=asset_key, partition=key, metadata=dict(metadata)))
        return len(metadata_by_partition)
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
    run = instance.add_run(dg.DagsterRun(
        job_name=job_name, run_id=internals.new_run_id(), status=dg.DagsterRunStatus.STARTED,
        tags={**MARKER_TAGS, **dict(tags or {})}, asset_selection=frozenset({asset_key})))
    now = time.time()
    store_events(instance, [planned_entry(asset_key, key, run.run_id, job_name,
                                          timestamp=now) for key in partitions])
    instance.report_run_failed(run, message)
    log.debug("marker run %s: %d partition(s) of %s marked failed", run.run_id,
              len(partitions), asset_key.to_user_string())
    return run.run_id
