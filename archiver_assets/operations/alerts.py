"""Alert sensors: failed archive runs, failed asset checks (an event-log sensor with a cursor,
since Dagster OSS has no check alerts), and a summary per batched run. Alerts never block or fail
anything: every send is guarded, a failed send is logged without secrets and archiving goes on.
"""

import logging
from dataclasses import dataclass
from typing import Callable, Optional

import dagster as dg

from archiver_assets import dagster_internals as internals
from archiver_assets.operations.status import (
    ARCHIVE_ASSET_KEYS, ARCHIVE_CHECK_KEYS, STATUS_ASSET, STATUS_JOB,
)
from archiver_assets.outcomes import STAGE_OF_ASSET, StageOutcome, step_run_failures
from archiver_assets.partitions import canonical_runs, runs_partitions, targeted_runs
from archiver_assets.resources import NotifierResource
from archiver_resources.redaction import redact

STAGES = STAGE_OF_ASSET
ARCHIVE_JOBS = frozenset({"archive_runs", "import_runs", "migrate_runs", STATUS_JOB})
STORES_IN_SYNC = dg.AssetCheckKey(dg.AssetKey(STATUS_ASSET), "stores_in_sync")
ALERT_CHECK_KEYS = (*ARCHIVE_CHECK_KEYS, STORES_IN_SYNC)
PARTITIONED_CHECKS = frozenset(ARCHIVE_CHECK_KEYS)
MAX_ALERTS_PER_CHECK = 5  # more new failures of one check in a tick → one summary alert
DEFAULT_INTERVAL_SECONDS = 30
logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Which runs a Dagster run covered, and what happened to them per stage
# ---------------------------------------------------------------------------------------------

def is_archiver_run(run) -> bool:
    """Runs of the archive jobs, of the status job, and asset backfills (``__ASSET_JOB``) of
    the archive assets or checks."""
    if run.job_name in ARCHIVE_JOBS:
        return True
    assets = set(run.asset_selection or ())
    checks = set(run.asset_check_selection or ())
    ours = set(ARCHIVE_ASSET_KEYS) | {dg.AssetKey(STATUS_ASSET)}
    if assets & ours or checks & set(ALERT_CHECK_KEYS):
        return True
    names = tuple(k.to_user_string() for k in ours)  # step keys: `<asset>` or `<asset>_<check>`
    return any(step.startswith(names) for step in run.step_keys_to_execute or ())


def runs_of(run, instance) -> list:
    """The run numbers of a Dagster run: its partition tag or partition-range tags."""
    return targeted_runs(run.tags, lambda: instance.get_dynamic_partitions(runs_partitions.name))


def stage_of_step(step_key: str) -> str:
    """``artdaqdb_config`` → import, ``ucondb_blob`` → migration, the status asset → status,
    anything else (an asset check step) → verification."""
    if step_key in STAGES:
        return STAGES[step_key]
    return "status" if step_key == STATUS_ASSET else "verification"


def _failure_details(event, runs: list, stage: str) -> dict:
    """``{failed run: reason}`` of a step failure: the archive assets' ``dg.Failure`` carries one
    :class:`~archiver_assets.outcomes.RunFailure` per failed run (``run_failures`` metadata);
    anything else fails every run of the step with its (one-line) description."""
    data = event.step_failure_data
    user = data.user_failure_data if data else None
    named, records = step_run_failures(user, stage)
    description = (user.description if user and user.description else
                   (data.error.message.strip() if data and data.error else event.message or ""))
    short = " ".join(description.split())
    reasons = {failure.run: failure.message for failure in records}
    failed = named if named is not None else list(runs)
    if not reasons:
        return {r: short for r in failed}
    return {r: reasons.get(r, short) for r in sorted(set(failed) | set(reasons))}


def stage_outcomes(instance, run, runs: list) -> list:
    """Per stage that ran in ``run``: succeeded and failed runs (a skipped stage is left out)."""
    records = instance.get_records_for_run(
        run.run_id, of_type={dg.DagsterEventType.STEP_SUCCESS,
                             dg.DagsterEventType.STEP_FAILURE}).records
    outcomes: dict = {}
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None or not event.step_key:
            continue
        stage = stage_of_step(event.step_key)
        outcome = outcomes.setdefault(stage, StageOutcome(stage))
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            outcome.failed.update(_failure_details(event, runs, stage))
            outcome.failed = dict(sorted(outcome.failed.items()))
    for outcome in outcomes.values():
        outcome.succeeded = sorted(set(runs) - set(outcome.failed))
    return [outcomes[s] for s in sorted(outcomes, key=_stage_order)]


def _stage_order(stage: str) -> tuple:
    order = {"import": 0, "migration": 1, "verification": 2, "status": 3}
    return (order.get(stage, 9), stage)


# ---------------------------------------------------------------------------------------------
# Guarded sending and logging
# ---------------------------------------------------------------------------------------------

def _warn(context, message: str) -> None:
    """To the tick's log (UI) and to the process log (daemon output)."""
    context.log.warning(message)
    logger.warning(message)


def _log_results(context, what: str, results) -> None:
    for result in results:
        if result.ok:
            context.log.info(f"{what}: alert sent via {result.channel}")
        else:
            _warn(context, f"{what}: alert not sent via {result.channel}: {result.error}")


def _guarded(context, notifier: NotifierResource, what: str, send: Callable[[], list]) -> int:
    """Run ``send`` (a list of SendResults); log the results; never raise. Returns the number of
    successful sends."""
    try:
        results = send()
    except Exception as error:  # noqa: BLE001 - an alert never fails a tick
        try:
            secrets = notifier.secrets()
        except Exception:  # noqa: BLE001 - config unreadable: say nothing of it
            secrets = []
        cause = redact(" ".join(str(error).split())[:300], secrets)
        _warn(context, f"{what}: alert not sent: {type(error).__name__}: {cause}")
        return 0
    _log_results(context, what, results)
    return sum(1 for r in results if r.ok)


# ---------------------------------------------------------------------------------------------
# Sensors
# ---------------------------------------------------------------------------------------------

def alert_run_failure(context, notifier: NotifierResource, run, instance) -> list:
    """The legacy failed-runs alert for each stage of ``run`` that failed runs."""
    runs = runs_of(run, instance)
    outcomes = [o for o in stage_outcomes(instance, run, runs) if o.failed]
    alerts = notifier.notifier()
    results = []
    for outcome in outcomes:
        results += alerts.notify_failures(outcome.stage, outcome.failed_runs,
                                          reason=dict(outcome.failed))
    if not outcomes and runs:  # no step failed: a crash, a cancel, a run-level error
        message = getattr(context, "failure_event", None)
        text = " ".join(((message.message if message else "") or "run failed").split())
        stage = "migration" if dg.AssetKey("ucondb_blob") in set(run.asset_selection or ()) \
            and dg.AssetKey("artdaqdb_config") not in set(run.asset_selection or ()) else "import"
        results += alerts.notify_failures(stage, runs, reason={r: text for r in runs})
    return results


def build_run_failure_alert_sensor(interval: int = DEFAULT_INTERVAL_SECONDS):
    """`archive_run_failure_alerts`: failed runs of the archive jobs and asset backfills."""

    @dg.run_failure_sensor(name="archive_run_failure_alerts", monitor_all_code_locations=True,
                           minimum_interval_seconds=interval,
                           default_status=dg.DefaultSensorStatus.RUNNING,
                           description="Email/Slack alert naming the failed runs and causes when "
                                       "an archive run or backfill run fails.")
    def archive_run_failure_alerts(context: dg.RunFailureSensorContext,
                                   notifier: NotifierResource):
        run = context.dagster_run
        if not is_archiver_run(run):
            return
        _guarded(context, notifier, f"run {run.run_id[:8]} failure",
                 lambda: alert_run_failure(context, notifier, run, context.instance))

    return archive_run_failure_alerts


def batch_summary(context, notifier: NotifierResource, run, instance) -> list:
    """One summary per stage of a run that covered more than one run number."""
    runs = runs_of(run, instance)
    if len(runs) <= 1:
        return []
    alerts = notifier.notifier()
    results = []
    for outcome in stage_outcomes(instance, run, runs):
        if outcome.stage in ("import", "migration"):
            results += alerts.notify_batch_summary(outcome.stage, outcome.succeeded,
                                                   outcome.failed_runs)
    return results


def build_batch_summary_sensors(interval: int = DEFAULT_INTERVAL_SECONDS):
    """`batch_summary_on_success` / `batch_summary_on_failure`: a summary per batched run."""

    def make(status: dg.DagsterRunStatus, name: str):
        @dg.run_status_sensor(run_status=status, name=name, monitor_all_code_locations=True,
                              minimum_interval_seconds=interval,
                              default_status=dg.DefaultSensorStatus.RUNNING,
                              description="Email/Slack summary (succeeded/failed runs per stage) "
                                          "of a run that archived more than one run.")
        def summary(context: dg.RunStatusSensorContext, notifier: NotifierResource):
            run = context.dagster_run
            if not is_archiver_run(run):
                return
            _guarded(context, notifier, f"run {run.run_id[:8]} batch summary",
                     lambda: batch_summary(context, notifier, run, context.instance))

        return summary

    return [make(dg.DagsterRunStatus.SUCCESS, "batch_summary_on_success"),
            make(dg.DagsterRunStatus.FAILURE, "batch_summary_on_failure")]


@dataclass(frozen=True)
class CheckFailure:
    """One new failed check execution found in the event log."""

    check_key: dg.AssetCheckKey
    partition: Optional[str]
    storage_id: int
    description: str

    @property
    def run(self) -> Optional[int]:
        runs = canonical_runs([self.partition]) if self.partition else []
        return runs[0] if runs else None


def _evaluation_text(storage, check_key, partition: Optional[str]) -> str:
    history = internals.check_history(storage, check_key, limit=1, partition=partition)
    evaluation = history[0].evaluation if history else None
    if evaluation is None:
        return "check failed"
    severity = getattr(evaluation.severity, "value", str(evaluation.severity))
    blocking = "blocking" if evaluation.blocking else "non-blocking"
    return f"{severity} ({blocking}): {evaluation.description or 'check failed'}"


def new_check_failures(instance, after_storage_id: int) -> tuple[list, int]:
    """Failed check executions evaluated after ``after_storage_id`` (latest per partition), and
    the new cursor (the highest check event storage id seen)."""
    storage = instance.event_log_storage
    infos = storage.get_asset_check_partition_info(list(ALERT_CHECK_KEYS),
                                                   after_storage_id=after_storage_id)
    cursor = after_storage_id
    found = []
    for info in sorted(infos, key=lambda i: i.latest_check_event_storage_id):
        cursor = max(cursor, info.latest_check_event_storage_id)
        if info.latest_check_event_storage_id <= after_storage_id:
            continue  # listed for a newer materialization, not for a new evaluation
        if internals.status_value(info.latest_execution_status) != internals.FAILED:
            continue
        if info.partition_key is None and info.check_key in PARTITIONED_CHECKS:
            continue  # a batched step's summary; its runs are reported one by one
        found.append(CheckFailure(info.check_key, info.partition_key,
                                  info.latest_check_event_storage_id,
                                  _evaluation_text(storage, info.check_key, info.partition_key)))
    return found, cursor


def send_check_alerts(notifier: NotifierResource, failures: list) -> list:
    """One alert per failed evaluation; above MAX_ALERTS_PER_CHECK for one check, one summary."""
    alerts = notifier.notifier()
    by_check: dict = {}
    for failure in failures:
        by_check.setdefault(failure.check_key, []).append(failure)
    results = []
    for check_key, items in by_check.items():
        name = check_key.name
        if len(items) <= MAX_ALERTS_PER_CHECK:
            for item in items:
                results += alerts.notify_check_failure(name, item.run, item.description)
            continue
        from archiver_resources.notifications import format_run_numbers

        runs = sorted(i.run for i in items if i.run is not None)
        message = (f"{len(items)} new failures: runs {format_run_numbers(runs)}; first: "
                   f"{items[0].description}")
        results += alerts.notify_check_failure(name, None, message)
    return results


def build_check_failure_sensor(interval: int = DEFAULT_INTERVAL_SECONDS):
    """`check_failure_alerts`: an event-log sensor over failed executions of the archive checks
    and `stores_in_sync`, blocking or not. The cursor is the highest check event storage id seen;
    the first tick only sets it (no alerts for history)."""

    @dg.sensor(name="check_failure_alerts", minimum_interval_seconds=interval,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Email/Slack alert for each new failed asset check execution "
                           "(md5_round_trip, hashes_match, legacy_metadata, stores_in_sync).")
    def check_failure_alerts(context: dg.SensorEvaluationContext, notifier: NotifierResource):
        instance = context.instance
        if context.cursor is None:
            start = instance.event_log_storage.get_maximum_record_id() or 0
            return dg.SensorResult(cursor=str(start),
                                   skip_reason=f"Baseline: alerting on check failures after "
                                               f"event {start}")
        last = int(context.cursor)
        failures, cursor = new_check_failures(instance, last)
        if not failures:
            return dg.SensorResult(cursor=str(cursor), skip_reason="no new check failures")
        for failure in failures:
            where = f"run {failure.run}" if failure.run is not None else "archive"
            context.log.warning(f"check {failure.check_key.name} failed for {where}")
        _guarded(context, notifier, f"{len(failures)} check failure(s)",
                 lambda: send_check_alerts(notifier, failures))
        return dg.SensorResult(cursor=str(cursor),
                               skip_reason=f"{len(failures)} check failure(s) alerted")

    return check_failure_alerts


def build_alert_sensors(interval: int = DEFAULT_INTERVAL_SECONDS) -> list:
    """Every alert sensor (added to the code location only when a channel is enabled)."""
    return [build_run_failure_alert_sensor(interval), build_check_failure_sensor(interval),
            *build_batch_summary_sensors(interval)]
