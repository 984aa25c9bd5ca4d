"""Batched event-log writes for range runs (catch-up and backfills).

A range step of N runs makes Dagster write 2N asset events per asset (a planned materialization
at run creation, a materialization at the end), and each one is its own transaction: on SQLite two
database files opened and committed per event (10-70 ms each on this VM). Dagster has an opt-in
for batching them: with ``DAGSTER_EVENT_BATCH_SIZE`` > 0 in the environment it hands the
partition events of one step (and the planned events of one run) to
``EventLogStorage.store_event_batch`` at once. PostgreSQL implements that as one INSERT for asset
events but refuses check evaluations; the SQLite storage inherits a per-event loop. So
:func:`enable_batched_writes` gives the instance's storage a real batch write for what Dagster's
lacks (:func:`archiver_assets.dagster_internals.patch_batch_writes`, where the rows written are
described): on SQLite asset events and check evaluations, on PostgreSQL check evaluations.
The archive checks' per-partition evaluations (:mod:`archiver_assets.archive.checks`) are
batched when this storage is in place (:func:`batches_check_evaluations`). When Dagster's
internals changed (the canary in ``dagster_internals``), nothing is patched and the events are
written one by one through Dagster's public paths.

Measured (100 runs, range runs of 50, both assets and checks, 2-core VM shared with other jobs,
alternating A/B): 12.5 s of CPU and 342-411 runs/min per-event, 7.7-8.4 s of CPU and 639-697
runs/min batched.
"""

import os

from archiver_assets import dagster_internals as internals

BATCH_ENV = "DAGSTER_EVENT_BATCH_SIZE"
DEFAULT_BATCH_SIZE = "500"


#: how :func:`hold_connections` keeps PostgreSQL connections (``optimize_for_webserver``'s
#: arguments: no statement timeout, as without it; reconnect hourly; up to 10 more at once)
POOL_RECYCLE_SECONDS, POOL_MAX_OVERFLOW = 3600, 10
_HELD = "_archiver_holds_connections"


def hold_connections(instance) -> bool:
    """On PostgreSQL, keep the instance's database connections open for the rest of this process.

    Dagster's PostgreSQL storages open a new connection for every statement (``NullPool``, so
    that idle instances hold none): a range run of 25 runs made ~250 connections, ~7 ms each on
    loopback (a backend process and the password exchange), about a third of its wall time.
    The webserver switches to a pool of one connection per storage through the public
    ``DagsterInstance.optimize_for_webserver``; a range run (a run worker, the command line's
    worker) does the same, with no statement timeout. Idempotent; returns whether it applies
    (SQLite: nothing to do)."""
    if getattr(instance, _HELD, False):
        return True
    if not internals.is_postgres(instance.event_log_storage):
        return False
    instance.optimize_for_webserver(statement_timeout=0, pool_recycle=POOL_RECYCLE_SECONDS,
                                    max_overflow=POOL_MAX_OVERFLOW)
    setattr(instance, _HELD, True)
    return True


def enable_batched_writes(instance) -> bool:
    """Turn Dagster's event batching on for this process (unless ``DAGSTER_EVENT_BATCH_SIZE`` is
    set already, e.g. to 0 to turn it off) and give the event log a real batch write where
    Dagster's lacks one; on PostgreSQL also keep the connections open (:func:`hold_connections`).
    Idempotent; returns whether batching is on."""
    hold_connections(instance)
    os.environ.setdefault(BATCH_ENV, DEFAULT_BATCH_SIZE)
    if _batch_size() <= 0:
        return False
    internals.patch_batch_writes(instance.event_log_storage)
    return True


def batches_check_evaluations(instance) -> bool:
    """Whether check evaluations may be sent with batch metadata: only to a storage patched by
    :func:`enable_batched_writes` (Dagster's own ``store_event_batch`` refuses them)."""
    return internals.is_patched(instance.event_log_storage) and _batch_size() > 0


def _batch_size() -> int:
    try:
        return int(os.environ.get(BATCH_ENV, "0"))
    except ValueError:
        return 0
