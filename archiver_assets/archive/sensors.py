"""The `new_run_records` sensor: finds finished run directories, adds their partitions in
ascending run order and requests their archiving.

Its cursor stays small at any number of runs: the highest run seen, the runs seen but not yet
finished (re-checked every tick, so a run that finishes late is still archived), the runs archived
before their stop time appeared (re-requested once it appears, for the RunHistory2 update), and
the directory count, which reveals directories that appear below the highest run (then, and only
then, the tick compares against the full partition list), and the time of the newest store-drift
repair it requested: runs a store lost after they were archived (``state.drift``) are requested
once, for the asset whose store lost them.

Several runs found in one tick are requested as partition-range runs of at most
``app.batch_size`` runs each (:func:`group_ranges`): one Dagster run per range instead of one per
run, because a run's process start-up (~2 CPU-s) costs several times its archiving work. A tick
that finds a single run still requests a single-partition run. The new partitions are added in
one request in ascending order, so each range covers exactly its runs in Dagster's (insertion)
partition order; a run that already is a partition (added by the command line, a backfill, or
before a lost cursor) sits elsewhere in that order and is requested alone, and ends the range
before it.
"""

import json
import time
from dataclasses import asdict, dataclass, field

import dagster as dg

from archiver_assets.partitions import (
    RANGE_START_TAG, is_run_key, range_tags, run_key, run_of, runs_partitions, targeted_key_list,
)
from archiver_assets.state.drift import repairs_after, requests_for
from archiver_resources.errors import ArchiverError
from archiver_assets.resources import RunRecordsResource
from archiver_resources.runrecords import finished_state, list_runs

SENSOR_NAME = "new_run_records"
MAX_NEW_RUNS_PER_TICK = 500
MAX_AWAITING_STOP = 1000


@dataclass
class SensorCursor:
    """What the sensor remembers between ticks (serialised as compact JSON)."""

    highest: int = -1
    pending: list = field(default_factory=list)
    awaiting_stop: list = field(default_factory=list)
    directories: int = 0
    repairs_after: float = 0.0  # creation time of the newest store-drift repair requested
    stranded_after: float = 0.0  # end time of the newest failed range run followed up

    @classmethod
    def parse(cls, text):
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(highest=int(data.get("highest", -1)),
                       pending=sorted({int(r) for r in data.get("pending", [])}),
                       awaiting_stop=sorted({int(r) for r in data.get("awaiting_stop", [])}),
                       directories=int(data.get("directories", 0)),
                       repairs_after=float(data.get("repairs_after", 0.0)),
                       stranded_after=float(data.get("stranded_after", 0.0)))
        except (ValueError, TypeError, AttributeError):
            return cls()

    def dump(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass
class TickPlan:
    """The decisions of one tick, computed without Dagster so they can be tested alone."""

    new_runs: list = field(default_factory=list)
    stop_time_updates: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    cursor: SensorCursor = field(default_factory=SensorCursor)
    full_scan: bool = False
    # The Dagster runs to request for ``new_runs``: lists of runs, ascending, each a partition
    # range (or a single partition); together they hold ``new_runs`` once each, in order.
    batches: list = field(default_factory=list)


def group_ranges(runs, max_range_size: int, existing=frozenset()) -> list:
    """Split ``runs`` (the runs whose partitions one tick adds) into the Dagster runs to request:
    lists of at most ``max_range_size`` runs, each contiguous in the partitions' insertion order.

    The runs are taken in ascending order, the order the tick adds their partitions in (one add
    request), so consecutive new partitions stay adjacent whatever the gaps between their numbers.
    A run in ``existing`` (its partition key already exists) is not added again: its partition
    sits elsewhere in the order, so it is requested alone and ends the range before it.
    ``max_range_size`` 1 gives one Dagster run per partition. Duplicates are requested once.
    """
    size = max(1, int(max_range_size))
    batches: list = []
    current: list = []
    for run in sorted(set(runs)):
        if run_key(run) in existing:
            if current:
                batches.append(current)
                current = []
            batches.append([run])
            continue
        current.append(run)
        if len(current) == size:
            batches.append(current)
            current = []
    if current:
        batches.append(current)
    return batches


def batch_run_key(batch) -> str:
    """The sensor's run key of a Dagster run over ``batch``: ``run-<n>`` for one run (as before
    ranges existed), ``runs-<first>-<last>`` for a range. The same tick evaluated again (same
    cursor, same directories) gives the same batches and so the same keys, which the daemon
    launches once."""
    return f"run-{batch[0]}" if len(batch) == 1 else f"runs-{batch[0]}-{batch[-1]}"


def plan_tick(run_records_dir, cursor: SensorCursor, *, min_age_seconds: float,
              known_partitions=None, max_new_runs: int = MAX_NEW_RUNS_PER_TICK,
              max_range_size: int = 1, now=None) -> TickPlan:
    """Decide which runs to add and request this tick.

    ``known_partitions`` is a callable returning the set of existing run partitions; it is
    called when directories appeared below the highest run seen (or on the first tick), and
    otherwise only when several new runs are to be grouped into ranges of up to
    ``max_range_size`` runs (:func:`group_ranges` must know which of them are partitions already).
    """
    listing = list_runs(run_records_dir)
    runs = listing.runs  # names only: a Path is built for the runs this tick reads
    plan = TickPlan()
    plan.errors = {run: str(error) for run, error in listing.errors.items()}
    above = runs.runs_above(cursor.highest)
    if cursor.highest < 0 or len(runs) != cursor.directories + len(above):
        # First tick, or directories appeared/vanished below the highest run: compare with the
        # partitions Dagster already has (one query), so nothing is requested twice or missed.
        plan.full_scan = True
        known = set(known_partitions()) if known_partitions else set()
        candidates = {r for r in runs.unordered() if run_key(r) not in known}
        # Runs that are partitions already count as seen: without this, a fresh cursor over an
        # archive with nothing new would repeat the full comparison every tick.
        handled = [r for r in runs.unordered() if r not in candidates]
        cursor = SensorCursor(highest=max([cursor.highest] + handled), pending=cursor.pending,
                              awaiting_stop=cursor.awaiting_stop, directories=cursor.directories,
                              repairs_after=cursor.repairs_after,
                              stranded_after=cursor.stranded_after)
    else:
        candidates = set(above) | {r for r in cursor.pending if r in runs}
    pending, new_runs, awaiting = [], [], set(cursor.awaiting_stop)
    highest = cursor.highest
    for run in sorted(candidates):
        if len(new_runs) >= max_new_runs:
            if run > cursor.highest:
                break
            pending.append(run)
            continue
        try:
            state = finished_state(run, runs[run], min_age_seconds=min_age_seconds, now=now)
        except (ArchiverError, OSError) as error:
            plan.errors[run] = str(error)
            pending.append(run)
            highest = max(highest, run)
            continue
        highest = max(highest, run)
        if state.finished:
            new_runs.append(run)
            if state.rule != "stop_time":
                awaiting.add(run)
        else:
            pending.append(run)
            plan.skipped[run] = state.reason
    for run in sorted(awaiting - set(new_runs)):
        if run not in runs:
            awaiting.discard(run)
            continue
        try:
            state = finished_state(run, runs[run], min_age_seconds=min_age_seconds, now=now)
        except (ArchiverError, OSError) as error:
            plan.errors[run] = str(error)
            continue
        if state.stop_time:
            plan.stop_time_updates.append(run)
            awaiting.discard(run)
    plan.new_runs = new_runs
    existing = frozenset()
    if len(new_runs) > 1 and max_range_size > 1 and not plan.full_scan and known_partitions:
        # A full scan left out the runs that are partitions already; otherwise ask once.
        wanted = {run_key(r) for r in new_runs}
        existing = frozenset(k for k in known_partitions() if k in wanted)
    plan.batches = group_ranges(new_runs, max_range_size, existing)
    plan.cursor = SensorCursor(highest=highest, pending=sorted(set(pending)),
                               awaiting_stop=sorted(awaiting)[-MAX_AWAITING_STOP:],
                               directories=runs.count_up_to(highest),
                               repairs_after=cursor.repairs_after,
                               stranded_after=cursor.stranded_after)
    return plan


def repair_requests(repairs) -> list:
    """One request per run a store lost (``state.drift``), for the assets whose store lost it
    (a run only UconDB lost is migrated again, not re-imported: its record may be gone)."""
    newest = {}
    for repair in repairs:
        for run in repair.runs:
            newest[run] = repair.run_id
    return [dg.RunRequest(partition_key=run_key(run),
                          run_key=f"run-{run}-repair-{newest[run][:8]}",
                          asset_selection=sorted(assets, key=lambda k: k.to_user_string()),
                          tags={"archiver/reason": "store drift repair"})
            for run, assets in sorted(requests_for(repairs).items())]


IMPORT_STEP, MIGRATE_STEP = "artdaqdb_config", "ucondb_blob"
STRANDED_REASON = "migration skipped: another run of its range failed"


def stranded_runs(instance, ended_after: float, limit: int = 50) -> tuple:
    """The runs that a failed range run of this sensor imported but never migrated, because
    another run of the range failed its import or its blocking ``hashes_match`` check: Dagster
    then skips the whole range's ``ucondb_blob`` step (and shows those partitions failed).

    Returns ``([(failed run id, [[adjacent runs], …]), …], newest end time seen)`` for the
    range runs that ended after ``ended_after``, oldest first. Runs whose own import or check
    failed are left out (they stay failed, for the operator), so following up converges."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE],
                              tags={"dagster/sensor_name": SENSOR_NAME}), limit=limit)
    records = sorted((r for r in records if (r.end_time or 0.0) > ended_after
                      and RANGE_START_TAG in r.dagster_run.tags), key=lambda r: r.end_time)
    found, newest, order = [], ended_after, []
    for record in records:
        run = record.dagster_run
        newest = max(newest, record.end_time)
        steps = {s.step_key: getattr(s.status, "value", None)
                 for s in instance.get_run_step_stats(run.run_id)}
        if steps.get(MIGRATE_STEP) not in (None, "SKIPPED"):
            continue  # the migration ran: its own failures are per run
        events = instance.get_records_for_run(run.run_id, of_type={
            dg.DagsterEventType.ASSET_MATERIALIZATION,
            dg.DagsterEventType.ASSET_CHECK_EVALUATION}).records
        imported, refused = set(), set()
        for event in events:
            data = event.event_log_entry.dagster_event.event_specific_data
            if event.event_log_entry.dagster_event.event_type == \
                    dg.DagsterEventType.ASSET_MATERIALIZATION:
                if event.asset_key == dg.AssetKey(IMPORT_STEP) and event.partition_key:
                    imported.add(event.partition_key)
            elif not data.passed and data.partition:
                refused.add(data.partition)
        if not order:
            order = instance.get_dynamic_partitions(runs_partitions.name)
        groups, current = [], []
        for key in targeted_key_list(run.tags, lambda: order):
            if key in imported - refused and is_run_key(key):
                current.append(run_of(key))
            elif current:
                groups.append(current)
                current = []
        if current:
            groups.append(current)
        if groups:
            found.append((run.run_id, groups))
    return found, newest


def stranded_requests(stranded, max_range_size: int) -> list:
    """Requests for the stranded runs (:func:`stranded_runs`): range runs over runs that were
    adjacent in the failed range (a run left out in between splits it) of at most
    ``max_range_size`` runs, or single-partition runs; both assets, so the import is verified,
    the checks run and the migration follows. The failed run's id is in the run key: each failed
    range is followed up once."""
    requests = []
    for failed_run_id, groups in stranded:
        for group in groups:
            for start in range(0, len(group), max(1, int(max_range_size))):
                batch = group[start:start + max(1, int(max_range_size))]
                request = batch_request(batch)
                requests.append(request.with_replaced_attrs(
                    run_key=f"{batch_run_key(batch)}-after-{failed_run_id[:8]}",
                    tags={**request.tags, "archiver/reason": STRANDED_REASON}))
    return requests


def batch_request(batch) -> dg.RunRequest:
    """The request archiving ``batch`` (runs from :func:`group_ranges`): a single-partition run
    for one run, a partition-range run (both assets, per-partition events) for several."""
    if len(batch) == 1:
        return dg.RunRequest(partition_key=run_key(batch[0]), run_key=batch_run_key(batch))
    return dg.RunRequest(run_key=batch_run_key(batch), tags=range_tags(batch))


def build_new_run_records_sensor(job, minimum_interval_seconds: int = 30):
    """The sensor that turns finished run directories into partitions and archive runs."""

    @dg.sensor(
        name=SENSOR_NAME,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Scans run_records_dir for finished runs (stop time written, or untouched for "
            "source_files.finished_after_seconds), adds a `runs` partition for each new one in "
            "ascending order and requests its archiving (both assets): one Dagster run for a "
            "single new run, partition-range runs of up to app.batch_size runs when a tick finds "
            "several. A run archived before its "
            "stop time appeared is requested again when it appears (RunHistory2 update)."
        ),
    )
    def new_run_records(context: dg.SensorEvaluationContext, run_records: RunRecordsResource):
        started = time.monotonic()
        cursor = SensorCursor.parse(context.cursor)
        config = run_records.settings.get()
        settings = config.source_files
        plan = plan_tick(
            run_records.run_records_dir, cursor,
            min_age_seconds=float(settings.finished_after_seconds),
            known_partitions=lambda: context.instance.get_dynamic_partitions(runs_partitions.name),
            max_range_size=config.app.batch_size,
        )
        for run, reason in sorted(plan.skipped.items()):
            context.log.info(f"run {run} not archived yet: {reason}")
        for run, reason in sorted(plan.errors.items()):
            context.log.warning(f"run {run} skipped: {reason}")
        keys = [run_key(r) for r in plan.new_runs]
        requests = [batch_request(batch) for batch in plan.batches]
        requests += [dg.RunRequest(partition_key=run_key(r), run_key=f"run-{r}-stop-time",
                                   tags={"archiver/reason": "stop time appeared"})
                     for r in plan.stop_time_updates]
        repairs = repairs_after(context.instance, cursor.repairs_after)
        requests += repair_requests(repairs)
        if repairs:
            plan.cursor.repairs_after = max(r.created for r in repairs)
        stranded, plan.cursor.stranded_after = stranded_runs(context.instance,
                                                             cursor.stranded_after)
        requests += stranded_requests(stranded, config.app.batch_size)
        elapsed = time.monotonic() - started
        context.log.info(
            f"tick: {len(keys)} new finished run(s) in {len(plan.batches)} Dagster run(s) (up "
            f"to {config.app.batch_size} per range), {len(plan.stop_time_updates)} stop-time "
            f"update(s), {sum(len(r.runs) for r in repairs)} lost by a store, "
            f"{sum(len(g) for _, groups in stranded for g in groups)} stranded by a failed range, "
            f"{len(plan.skipped)} unfinished, {len(plan.errors)} bad, "
            f"full scan={plan.full_scan}, {elapsed:.3f}s")
        if not requests:
            return dg.SkipReason(
                f"no new finished runs ({len(plan.skipped)} unfinished, {len(plan.errors)} "
                f"skipped for errors; highest run seen {plan.cursor.highest})"
            ) if context.cursor == plan.cursor.dump() else dg.SensorResult(
                cursor=plan.cursor.dump(), skip_reason=dg.SkipReason(
                    f"no new finished runs ({len(plan.skipped)} unfinished)"))
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[runs_partitions.build_add_request(keys)] if keys else [],
            cursor=plan.cursor.dump(),
        )

    return new_run_records
