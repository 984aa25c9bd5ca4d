"""Every use of Dagster internals in the archiver, in one place, checked at start-up.

Nothing else in ``archiver_assets`` imports ``dagster._…``, calls a ``_``-method of a Dagster
object or writes Dagster's tables. Each use below says what it buys; the figures were measured on
the project's 2-core VM while other jobs shared it (load average about 6; 200 events per sample,
2 rounds, so read them as ratios; the script is ``bench/bench_internals.py``).

Uses that have a public fallback (used automatically when the canary fails):

1. **Batched asset-event rows on SQLite** (:func:`store_sqlite_events`): the rows
   ``SqliteEventLogStorage.store_event`` writes (event row in the run shard, its mirror in the
   index shard, asset-event tags, asset-key row), one transaction per shard for a group of events
   of one run and asset. Private: ``_event_to_row``, ``_store_asset_event_tags``,
   ``_store_asset_event``, ``run_connection``/``index_transaction``, the ``event_logs`` table.
   Buys: runless materializations at 330-377 events/s against 17/s through
   ``report_runless_asset_event`` (about 20x); a 10k-run reconcile in seconds instead of
   minutes. (PostgreSQL's own batch takes materializations, 713-768/s against 24-26/s, but
   only loops over planned materializations: there this function writes a run's planned events
   the same way, without the run-shard insert.) Fallback: ``instance.report_runless_asset_event``
   per materialization, and
   ``instance.handle_new_event`` per planned event of a marker run.
2. **A real ``store_event_batch`` on the instance's SQLite storage** (:func:`patch_batch_writes`,
   a monkeypatch of that one storage object): Dagster's opt-in batching (``DAGSTER_EVENT_BATCH_SIZE``)
   hands a range step's events to ``store_event_batch``, which SQLite only loops over. Buys (100
   runs, range runs of 50, both assets and checks): 7.7-8.4 s of CPU and 639-697 runs/min against
   12.5 s and 342-411 runs/min per event. Fallback: the storage is left as Dagster made it.
3. **Batched check evaluations** (:func:`store_check_evaluations`): the event rows of a range
   step's per-partition check evaluations in one insert, and per event the update (or insert) of
   its planned row in ``asset_check_executions``, in one transaction: the statements
   ``SqlEventLogStorage._update_asset_check_evaluation`` runs per event. Private: the two tables'
   columns, ``_get_asset_check_partition_filter_clause``, ``DagsterEventBatchMetadata`` and
   ``generate_event_batch_id`` (how a step hands events to the batch). On SQLite and on
   PostgreSQL (whose own ``store_event_batch`` refuses check evaluations, so its storage object
   gets the same patch as SQLite's, for check evaluations only; one transaction, so a failed
   batch leaves nothing behind when Dagster retries it event by event). Buys: 1,010-1,509
   evaluations/s against 13-15/s per event on SQLite, 411-1,110/s against 22-23/s on
   PostgreSQL. Fallback: evaluations are logged one by one (``DagsterEvent.asset_check_evaluation``).
4. **Check history of one partition** (:func:`check_history`): ``PartitionKeyFilter`` and
   ``AssetCheckExecutionRecordStatus`` as arguments of ``get_asset_check_execution_history``.
   Buys: one indexed query per partition (not measured separately). Fallback: the check's
   history paged through (1,000 records a query) and filtered here, slower in proportion to the
   history's length.

Uses without a public equivalent (the canary reports them, the code that needs them raises
:class:`DagsterInternalsChanged` naming the symbol instead of writing something inconsistent):

5. ``AssetMaterializationPlannedData``: the planned materializations of a marker run
   (``state.events.mark_partitions_failed``), the only way Dagster OSS shows a partition FAILED.
6. ``AssetCheckEvaluationTargetMaterializationData``: which materialization a per-partition check
   evaluation judged (automation's ``all_deps_blocking_checks_passed`` needs it), and
   ``OpExecutionContext.get_step_execution_context`` + ``DagsterEvent.asset_check_evaluation`` /
   ``DagsterEvent.from_step`` to log such an evaluation as an event of the running step.
7. ``StepMaterializationData`` and ``RUNLESS_RUN_ID``/``RUNLESS_JOB_NAME``: building runless
   materialization entries for use 1 (the fallback does not need them, so they count as having
   one).
8. Storage reads reached through ``instance.event_log_storage`` that Dagster's API docs do not
   list (``get_latest_storage_id_by_partition``, ``get_asset_check_partition_info``,
   ``get_latest_asset_partition_materialization_attempts_without_materializations``): their
   signatures are checked so that a change is named at load; the gate, alerts and partition
   status read through them (two or three queries for any number of runs).

The canary (:func:`check_internals`) verifies every symbol, method signature, table column and
enum value above; :func:`internals_ok` runs it once per process (first use, and at code-location
load from ``definitions.py``) and logs one warning naming what changed when a fallback is taken.
"""

import importlib
import inspect
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Mapping, Optional, Sequence

import dagster as dg

log = logging.getLogger(__name__)


class DagsterInternalsChanged(RuntimeError):
    """A Dagster internal this code needs (no public equivalent) is missing or changed."""


def _load(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


_EVENTS = "dagster._core.events"
_SCHEMA = "dagster._core.storage.event_log.schema"
#: (module, name, has a public fallback) of every private symbol used here.
SYMBOLS = {
    "PartitionKeyFilter": ("dagster._core.event_api", True),
    "AssetCheckExecutionRecordStatus": ("dagster._core.storage.asset_check_execution_record", True),
    "DagsterEventBatchMetadata": (_EVENTS, True),
    "generate_event_batch_id": (_EVENTS, True),
    "BATCH_WRITABLE_EVENTS": (_EVENTS, True),
    "StepMaterializationData": (_EVENTS, True),
    "AssetMaterializationPlannedData": (_EVENTS, False),
    "AssetCheckEvaluationTargetMaterializationData": (
        "dagster._core.definitions.asset_checks.asset_check_evaluation", False),
    "RUNLESS_RUN_ID": ("dagster._core.instance.utils", True),
    "RUNLESS_JOB_NAME": ("dagster._core.instance.utils", True),
    "SqlEventLogStorageTable": (_SCHEMA, True),
    "AssetCheckExecutionsTable": (_SCHEMA, True),
    "EventLogStorage": ("dagster._core.storage.event_log.base", True),
    "SqlEventLogStorage": ("dagster._core.storage.event_log.sql_event_log", True),
    "SqliteEventLogStorage": ("dagster._core.storage.event_log.sqlite.sqlite_event_log", True),
}
_S = {name: _load(module, name) for name, (module, _) in SYMBOLS.items()}

#: (class symbol, method, parameter names it must accept, has a public fallback).
METHODS = [
    ("SqlEventLogStorage", "_event_to_row", ("event",), True),
    ("SqlEventLogStorage", "_store_asset_event_tags", ("conn", "events", "event_ids"), True),
    ("SqlEventLogStorage", "_store_asset_event", ("conn", "event", "event_id"), True),
    ("SqlEventLogStorage", "_get_asset_check_partition_filter_clause", ("partition_filter",), True),
    ("SqlEventLogStorage", "index_transaction", (), True),
    ("SqlEventLogStorage", "run_connection", ("run_id",), True),
    ("SqliteEventLogStorage", "store_event", ("event",), True),
    ("EventLogStorage", "store_event_batch", ("events",), True),
    ("SqlEventLogStorage", "get_asset_check_execution_history",
     ("check_key", "limit", "cursor", "status", "partition_filter"), True),
    ("dg.DagsterEvent", "asset_check_evaluation", ("step_context", "asset_check_evaluation"), False),
    ("dg.DagsterEvent", "from_step",
     ("event_type", "step_context", "event_specific_data", "message", "batch_metadata"), False),
    ("dg.OpExecutionContext", "get_step_execution_context", (), False),
    ("dg.DagsterInstance", "handle_new_event", ("event", "batch_metadata"), True),
    # Storage reads reached through the public ``instance.event_log_storage`` (named without an
    # underscore, but not in Dagster's API docs), checked so that a change is named at load.
    ("EventLogStorage", "get_latest_storage_id_by_partition",
     ("asset_key", "event_type", "partitions"), False),
    ("EventLogStorage", "get_asset_check_partition_info",
     ("keys", "after_storage_id", "partition_keys"), False),
    ("EventLogStorage",
     "get_latest_asset_partition_materialization_attempts_without_materializations",
     ("asset_key",), False),
]
#: Columns of the two tables written here.
COLUMNS = {
    "SqlEventLogStorageTable": ("id", "run_id", "event", "dagster_event_type", "timestamp",
                                "step_key", "asset_key", "partition"),
    "AssetCheckExecutionsTable": ("id", "asset_key", "check_name", "partition", "run_id",
                                  "execution_status", "evaluation_event",
                                  "evaluation_event_timestamp", "evaluation_event_storage_id",
                                  "materialization_event_storage_id"),
}
PLANNED, SUCCEEDED, FAILED = "PLANNED", "SUCCEEDED", "FAILED"
#: Event types Dagster's PostgreSQL ``store_event_batch`` takes (checked against its own set).
PG_BATCHABLE = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_OBSERVATION,
                dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED}


@dataclass(frozen=True)
class Problem:
    """One internal that is not as this module expects."""

    symbol: str
    detail: str
    fallback: bool  # a public path replaces it (else the code needing it raises)

    def __str__(self) -> str:
        return f"{self.symbol}: {self.detail}"


def _owner(name: str):
    return getattr(dg, name[3:], None) if name.startswith("dg.") else _S.get(name)


def check_internals() -> list:
    """Every symbol, method signature, table column and enum value this module relies on;
    returns the :class:`Problem` list (empty when all are as expected)."""
    problems = []
    for name, (module, fallback) in SYMBOLS.items():
        if _S.get(name) is None:
            problems.append(Problem(f"{module}.{name}", "missing", fallback))
    for owner, method, params, fallback in METHODS:
        cls = _owner(owner)
        if cls is None:
            continue  # reported above
        function = getattr(cls, method, None)
        label = f"{getattr(cls, '__name__', owner)}.{method}"
        if not callable(function):
            problems.append(Problem(label, "missing", fallback))
            continue
        try:
            accepted = inspect.signature(function).parameters
        except (TypeError, ValueError):
            problems.append(Problem(label, "signature unreadable", fallback))
            continue
        absent = [p for p in params if p not in accepted]
        if absent:
            problems.append(Problem(label, f"parameter(s) {', '.join(absent)} gone", fallback))
    for table, columns in COLUMNS.items():
        found = _S.get(table)
        if found is None:
            continue
        absent = [c for c in columns if c not in found.c]
        if absent:
            problems.append(Problem(f"{table} ({found.name})",
                                    f"column(s) {', '.join(absent)} gone", True))
    status = _S.get("AssetCheckExecutionRecordStatus")
    if status is not None:
        values = {member.value for member in status}
        absent = {PLANNED, SUCCEEDED, FAILED} - values
        if absent:
            problems.append(Problem("AssetCheckExecutionRecordStatus",
                                    f"value(s) {', '.join(sorted(absent))} gone", True))
    for name in ("RUNLESS_RUN_ID", "RUNLESS_JOB_NAME"):
        if _S.get(name) is not None and _S[name] != "":
            problems.append(Problem(name, f"is {_S[name]!r}, not ''", True))
    writable = _S.get("BATCH_WRITABLE_EVENTS")
    if writable is not None and not PG_BATCHABLE <= set(writable):
        problems.append(Problem("BATCH_WRITABLE_EVENTS",
                                "no longer takes " + ", ".join(
                                    sorted(t.value for t in PG_BATCHABLE - set(writable))), True))
    batch = _S.get("DagsterEventBatchMetadata")
    if batch is not None and tuple(getattr(batch, "_fields", ())) != ("id", "is_end"):
        problems.append(Problem("DagsterEventBatchMetadata", "fields are not (id, is_end)", True))
    return problems


_verdict: Optional[bool] = None


def internals_ok() -> bool:
    """Whether the internals with a public fallback are all as expected: the canary runs once per
    process; on a change it logs one warning (and an error for internals without a fallback)
    naming them, and the public paths are used from then on."""
    global _verdict
    if _verdict is None:
        problems = check_internals()
        fallback = [p for p in problems if p.fallback]
        required = [p for p in problems if not p.fallback]
        if fallback:
            log.warning("Dagster %s changed internals the archiver uses for batched writes (%s); "
                        "using the public per-event paths instead (slower, same records)",
                        dg.__version__, "; ".join(map(str, fallback)))
        if required:
            log.error("Dagster %s changed internals the archiver needs and has no public "
                      "replacement for (%s): marker runs and per-run check evaluations will "
                      "fail until archiver_assets/dagster_internals.py is adapted",
                      dg.__version__, "; ".join(map(str, required)))
        _verdict = not fallback
    return _verdict


def reset_canary() -> None:
    """Forget the canary's verdict (tests)."""
    global _verdict
    _verdict = None


def _required(name: str):
    value = _S.get(name)
    if value is None:
        raise DagsterInternalsChanged(
            f"{SYMBOLS[name][0]}.{name} is missing in Dagster {dg.__version__}; "
            f"archiver_assets/dagster_internals.py must be adapted")
    return value


# --- reads -----------------------------------------------------------------------------------

ANY = object()  #: no partition filter in :func:`check_history`
_PAGE = 1000


def status_value(status) -> str:
    """``PLANNED`` / ``SUCCEEDED`` / ``FAILED`` for a check execution status."""
    return getattr(status, "value", status)


def check_history(storage, check_key: dg.AssetCheckKey, *, limit: int, partition=ANY,
                  statuses: Optional[Iterable[str]] = None) -> list:
    """The newest ``limit`` executions of ``check_key`` (newest first), of one partition
    (``partition=None``: unpartitioned executions) and with a status in ``statuses``."""
    statuses = set(statuses) if statuses is not None else None
    if internals_ok():
        kwargs = {}
        if partition is not ANY:
            kwargs["partition_filter"] = _S["PartitionKeyFilter"](key=partition)
        if statuses:
            enum = _S["AssetCheckExecutionRecordStatus"]
            kwargs["status"] = {enum(s) for s in statuses}
        return list(storage.get_asset_check_execution_history(check_key, limit=limit, **kwargs))
    found, cursor = [], None
    while len(found) < limit:
        page = storage.get_asset_check_execution_history(check_key, limit=_PAGE, cursor=cursor)
        found.extend(r for r in page if (partition is ANY or r.partition == partition)
                     and (not statuses or status_value(r.status) in statuses))
        if len(page) < _PAGE:
            break
        cursor = page[-1].id
    return found[:limit]


# --- building events -------------------------------------------------------------------------

def _entry(event: dg.DagsterEvent, run_id: str, timestamp: Optional[float]) -> dg.EventLogEntry:
    return dg.EventLogEntry(user_message="", level=logging.INFO, job_name=event.job_name,
                            run_id=run_id, error_info=None, timestamp=timestamp or time.time(),
                            step_key=None, dagster_event=event)


def runless_materialization_entry(asset_key: dg.AssetKey, partition: str, metadata: Mapping, *,
                                  timestamp: Optional[float] = None) -> dg.EventLogEntry:
    """A runless materialization of one partition, as ``report_runless_asset_event`` builds it."""
    materialization = dg.AssetMaterialization(asset_key=asset_key, partition=partition,
                                              metadata=dict(metadata))
    event = dg.DagsterEvent(
        event_type_value=dg.DagsterEventType.ASSET_MATERIALIZATION.value,
        event_specific_data=_required("StepMaterializationData")(materialization),
        job_name=_required("RUNLESS_JOB_NAME"))
    return _entry(event, _required("RUNLESS_RUN_ID"), timestamp)


def planned_materialization_entry(asset_key: dg.AssetKey, partition: str, run_id: str,
                                  job_name: str, *,
                                  timestamp: Optional[float] = None) -> dg.EventLogEntry:
    """A materialization attempt of one partition inside run ``run_id``."""
    data = _required("AssetMaterializationPlannedData")(asset_key, partition=partition)
    event = dg.DagsterEvent(
        event_type_value=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value,
        event_specific_data=data, job_name=job_name)
    return _entry(event, run_id, timestamp)


def new_run_id() -> str:
    """A run id as Dagster makes them (a random UUID)."""
    return str(uuid.uuid4())


def check_target(latest) -> Optional[object]:
    """The target-materialization data of a check evaluation from a materialization record."""
    if latest is None:
        return None
    return _required("AssetCheckEvaluationTargetMaterializationData")(
        storage_id=latest.storage_id, run_id=latest.run_id, timestamp=latest.timestamp)


def evaluation_batch(count: int, enabled: bool) -> list:
    """Batch metadata for ``count`` events sent as one batch (``None`` each when not enabled or
    when the canary failed)."""
    if not enabled or not count or not internals_ok():
        return [None] * count
    batch_id = _S["generate_event_batch_id"]()
    metadata = _S["DagsterEventBatchMetadata"]
    return [metadata(batch_id, index == count - 1) for index in range(count)]


def log_check_evaluation(context, evaluation: dg.AssetCheckEvaluation, batch=None) -> None:
    """Log ``evaluation`` as an event of the running step of ``context`` (a check's context);
    with ``batch`` metadata it waits for the rest of its batch."""
    step_context = context.op_execution_context.get_step_execution_context()
    if batch is None:
        dg.DagsterEvent.asset_check_evaluation(step_context, evaluation)  # builds and logs it
        return
    dg.DagsterEvent.from_step(
        event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, step_context=step_context,
        event_specific_data=evaluation, batch_metadata=batch,
        message=(f"Asset check '{evaluation.check_name}' on "
                 f"'{evaluation.asset_key.to_user_string()}' "
                 + ("passed." if evaluation.passed else "did not pass.")
                 + ("" if evaluation.description is None
                    else f" Description: '{evaluation.description}'")))


# --- writing rows ----------------------------------------------------------------------------

def is_sqlite(storage) -> bool:
    cls = _S.get("SqliteEventLogStorage")
    return cls is not None and isinstance(storage, cls)


def is_postgres(storage) -> bool:
    cls = _load("dagster_postgres.event_log.event_log", "PostgresEventLogStorage")
    return cls is not None and isinstance(storage, cls)


def has_own_batch_store(storage) -> bool:
    """Whether the storage class implements ``store_event_batch`` (PostgreSQL: one INSERT)."""
    base = _S.get("EventLogStorage")
    return base is not None and type(storage).store_event_batch is not base.store_event_batch


def store_sqlite_events(storage, entries: Sequence[dg.EventLogEntry]) -> None:
    """What ``SqliteEventLogStorage.store_event`` does per asset event, once per batch.

    Every entry shares one run id and one asset key (the caller groups them): the run-shard
    insert is one statement, the index-shard inserts return their ids in order, the asset-key row
    is updated from the last event (as the PostgreSQL batch does). On PostgreSQL (one database,
    no run shard) the same without the run-shard insert: what its ``store_event`` does per
    planned materialization, which its own batch write only loops over.
    """
    table = _S["SqlEventLogStorageTable"]
    rows = [storage._event_to_row(entry) for entry in entries]  # noqa: SLF001 - use 1
    if is_sqlite(storage):
        with storage.run_connection(entries[0].run_id) as conn:
            conn.execute(table.insert(), rows)
    with storage.index_transaction() as conn:
        result = conn.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True),
                              rows)
        ids = [row[0] for row in result]
        storage._store_asset_event_tags(conn, entries, ids)  # noqa: SLF001
        storage._store_asset_event(conn, entries[-1], ids[-1])  # noqa: SLF001


def store_check_evaluations(storage, entries: Sequence[dg.EventLogEntry]) -> None:
    """What ``store_event`` does for in-run check evaluations, once per batch: the event rows
    (SQLite: in the run shard, mirrored in the index shard), and per event the update of its
    planned execution row (inserted when there is none), in one index transaction."""
    import sqlalchemy as db

    events_table, executions = _S["SqlEventLogStorageTable"], _S["AssetCheckExecutionsTable"]
    partition_filter = _S["PartitionKeyFilter"]
    rows = [storage._event_to_row(entry) for entry in entries]  # noqa: SLF001 - use 3
    if is_sqlite(storage):
        with storage.run_connection(entries[0].run_id) as conn:
            conn.execute(events_table.insert(), rows)
    with storage.index_transaction() as conn:
        result = conn.execute(events_table.insert().returning(
            events_table.c.id, sort_by_parameter_order=True), rows)
        ids = [row[0] for row in result]
        for entry, event_id in zip(entries, ids):
            evaluation = entry.dagster_event.event_specific_data
            target = evaluation.target_materialization_data
            values = dict(
                execution_status=SUCCEEDED if evaluation.passed else FAILED,
                evaluation_event=dg.serialize_value(entry),
                evaluation_event_timestamp=datetime.fromtimestamp(
                    entry.timestamp, timezone.utc).replace(tzinfo=None),
                evaluation_event_storage_id=event_id,
                materialization_event_storage_id=target.storage_id if target else None,
                partition=evaluation.partition,
            )
            key = evaluation.asset_key.to_string()
            updated = conn.execute(executions.update().where(db.and_(
                executions.c.asset_key == key,
                executions.c.check_name == evaluation.check_name,
                executions.c.run_id == entry.run_id,
                storage._get_asset_check_partition_filter_clause(  # noqa: SLF001
                    partition_filter(key=evaluation.partition)),
            )).values(**values)).rowcount
            if updated == 0:
                conn.execute(executions.insert().values(
                    asset_key=key, check_name=evaluation.check_name, run_id=entry.run_id,
                    **values))


_BATCHABLE = {dg.DagsterEventType.ASSET_MATERIALIZATION,
              dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
              dg.DagsterEventType.ASSET_CHECK_EVALUATION}
_MARK = "_archiver_batched_writes"


def _group_key(entry: dg.EventLogEntry):
    event = entry.dagster_event
    if event is None or event.event_type not in _BATCHABLE:
        return None
    if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
        if not entry.run_id:
            return None  # runless evaluations take another path in the storage
        asset_key = event.event_specific_data.asset_key  # DagsterEvent.asset_key is None here
    else:
        asset_key = event.asset_key
    if asset_key is None:
        return None
    return entry.run_id, asset_key, event.event_type


def store_batch(storage, events: Sequence[dg.EventLogEntry], original=None) -> None:
    """Store ``events`` in order. SQLite: runs of consecutive batchable events with one (run,
    asset, type) as one write each, anything else with ``store_event``. PostgreSQL (``original``:
    its own ``store_event_batch``): check-evaluation and planned-materialization runs as one
    write each (its own batch loops over planned events: a range run of 100 runs is created
    with 200 of them), runs of the other events its batch takes through it, anything else with
    ``store_event``."""
    def flush(group):
        check = group[0].dagster_event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        if check:
            store_check_evaluations(storage, group)
        elif original is None or group[0].dagster_event.event_type == \
                dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED:
            store_sqlite_events(storage, group)
        else:
            original(list(group))

    group: list = []
    key = None
    for entry in events:
        entry_key = _group_key(entry)
        if original is not None and entry_key is not None \
                and entry_key[2] != dg.DagsterEventType.ASSET_CHECK_EVALUATION \
                and entry_key[2] not in PG_BATCHABLE:
            entry_key = None
        if group and entry_key != key:
            flush(group)
            group = []
        if entry_key is None:
            storage.store_event(entry)
            key = None
            continue
        group.append(entry)
        key = entry_key
    if group:
        flush(group)


def patch_batch_writes(storage) -> bool:
    """Give this storage object a ``store_event_batch`` that writes check evaluations (and, on
    SQLite, asset events) in one write (uses 2 and 3). Idempotent; returns whether the storage is
    patched (False for other storages, or when the canary failed: Dagster's own path stays)."""
    if getattr(storage, _MARK, False):
        return True
    if not internals_ok():
        return False
    if is_sqlite(storage):
        def store_event_batch(events: Sequence[dg.EventLogEntry]) -> None:
            store_batch(storage, events)
    elif is_postgres(storage):
        original = storage.store_event_batch

        def store_event_batch(events: Sequence[dg.EventLogEntry]) -> None:
            store_batch(storage, events, original)
    else:
        return False
    storage.store_event_batch = store_event_batch  # this storage object only
    setattr(storage, _MARK, True)
    return True


def is_patched(storage) -> bool:
    return bool(getattr(storage, _MARK, False))
