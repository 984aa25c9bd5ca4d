"""The `new_run_records` sensor: finds finished run directories, adds their partitions in
ascending run order and requests their archiving.

Its cursor stays small at any number of runs: the highest run seen, the runs seen but not yet
finished (re-checked every tick, so a run that finishes late is still archived), the runs archived
before their stop time appeared (re-requested once it appears, for the RunHistory2 update), and
the directory count, which reveals directories that appear below the highest run (then, and only
then, the tick compares against the full partition list), and the time of the newest store-drift
repair it requested: runs a store lost after they were archived (``state.drift``) are requested
once, for the asset whose store lost them.
"""

import json
import time
from dataclasses import asdict, dataclass, field

import dagster as dg

from archiver_assets.partitions import run_key, runs_partitions
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
                       repairs_after=float(data.get("repairs_after", 0.0)))
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


def plan_tick(run_records_dir, cursor: SensorCursor, *, min_age_seconds: float,
              known_partitions=None, max_new_runs: int = MAX_NEW_RUNS_PER_TICK,
              now=None) -> TickPlan:
    """Decide which runs to add and request this tick.

    ``known_partitions`` is a callable returning the set of existing run partitions; it is
    called only when directories appeared below the highest run seen (or on the first tick).
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
                              repairs_after=cursor.repairs_after)
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
    plan.cursor = SensorCursor(highest=highest, pending=sorted(set(pending)),
                               awaiting_stop=sorted(awaiting)[-MAX_AWAITING_STOP:],
                               directories=runs.count_up_to(highest),
                               repairs_after=cursor.repairs_after)
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
            "ascending order and requests its archiving (both assets). A run archived before its "
            "stop time appeared is requested again when it appears (RunHistory2 update)."
        ),
    )
    def new_run_records(context: dg.SensorEvaluationContext, run_records: RunRecordsResource):
        started = time.monotonic()
        cursor = SensorCursor.parse(context.cursor)
        settings = run_records.settings.get().source_files
        plan = plan_tick(
            run_records.run_records_dir, cursor,
            min_age_seconds=float(settings.finished_after_seconds),
            known_partitions=lambda: context.instance.get_dynamic_partitions(runs_partitions.name),
        )
        for run, reason in sorted(plan.skipped.items()):
            context.log.info(f"run {run} not archived yet: {reason}")
        for run, reason in sorted(plan.errors.items()):
            context.log.warning(f"run {run} skipped: {reason}")
        keys = [run_key(r) for r in plan.new_runs]
        requests = [dg.RunRequest(partition_key=k, run_key=f"run-{k}") for k in keys]
        requests += [dg.RunRequest(partition_key=run_key(r), run_key=f"run-{r}-stop-time",
                                   tags={"archiver/reason": "stop time appeared"})
                     for r in plan.stop_time_updates]
        repairs = repairs_after(context.instance, cursor.repairs_after)
        requests += repair_requests(repairs)
        if repairs:
            plan.cursor.repairs_after = max(r.created for r in repairs)
        elapsed = time.monotonic() - started
        context.log.info(
            f"tick: {len(keys)} new finished run(s), {len(plan.stop_time_updates)} stop-time "
            f"update(s), {sum(len(r.runs) for r in repairs)} lost by a store, "
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
