"""Running one stage's runs as real Dagster runs (``import_runs`` / ``migrate_runs``) on the
configured instance, ``batch_size`` partitions per Dagster run, ``parallel_workers`` at a time,
in worker processes; the command line's engine.

Why worker processes and not threads: ``execute_in_process`` from several threads of one process
deadlocks (measured: two runs hang in ``logging.config.dictConfig``, which the instance calls for
every run, against a handler lock held by another run's event logging), and in the main thread
Dagster replaces the SIGINT/SIGTERM handlers for the duration of a run and raises the interrupt
inside the step, which would turn a graceful stop into a failed run. A worker is
``python -m archiver_assets.cli --worker <config.yaml>``: it loads the definitions once, reads one
JSON request per line on stdin (job, partition keys, tags), executes it and answers one JSON line
(per run: archived, or failed as a :class:`~archiver_assets.outcomes.RunFailure` record: stage,
error type, message; the ``legacy_metadata`` results) on its original stdout;
its stderr (Dagster's console log) is logged by the parent at DEBUG (``-v`` shows it). Workers run
in their own session, so a Ctrl-C at the terminal reaches only the parent: the parent stops
handing out batches, the workers finish theirs. Only an immediate stop (3 signals in 2 s) sends
SIGINT to the workers and kills those still running after 5 s; the Dagster runs they left
unfinished (tag ``archiver/invocation``) are then marked failed, so no run stays STARTED and
their partitions show FAILED for ``--retry-failed-*``. When the CLI itself dies (SIGKILL, OOM
killer), Linux sends its workers SIGINT (``PR_SET_PDEATHSIG``): they stop like an immediate stop,
with their interrupted writes rolled back and their Dagster runs recorded as failed by Dagster;
a worker still alive 10 s later exits hard (``_watch_parent``).

Batches are partition ranges (tags ``dagster/asset_partition_range_start`` / ``_end``), and a
range follows partition insertion order, so ``group_batches`` only puts runs together whose
partitions are consecutive in that order; a lone run gets a single-partition run. A batched step
fails as a whole in Dagster: when one run of a range fails, the step fails and its checks are
skipped, although the asset archived the others (its ``failed_runs`` metadata names
exactly which runs failed). The archive assets record those others as materialized before failing
(older steps did not: the worker then records them as runless materializations, ``source=cli``),
and the worker runs the asset's checks for them in a check-only Dagster run (tag
``archiver/audit``), so they are audited (MD5, hashes, ``legacy_metadata``) like any other run.
"""

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Sequence

from archiver_assets.outcomes import STAGE_OF_ASSET, RunFailure, StageOutcome, step_run_failures
from archiver_assets.partitions import range_tags, run_key, run_of
from archiver_assets.state.partition_status import STAGE_ASSETS, partition_keys
from archiver_assets.state.reconcile import ensure_partitions

log = logging.getLogger(__name__)
worker_log = logging.getLogger("archiver_assets.worker")

STAGE_JOBS = {"import": "import_runs", "migrate": "migrate_runs"}
BASE_TAGS = {"archiver/launched_by": "run-record-archiver", "dagster/max_retries": "0"}
INVOCATION_TAG = "archiver/invocation"
VALIDATION_CHECK = "legacy_metadata"
WORKER_EXIT_GRACE_SECONDS = 10.0
IMMEDIATE_GRACE_SECONDS = 5.0
_LIVE_WORKERS: set = set()
_LIVE_LOCK = threading.Lock()


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------

def group_batches(runs: Iterable[int], order: Sequence[str], batch_size: int) -> list:
    """Split ``runs`` into batches of at most ``batch_size`` whose partitions are consecutive in
    the insertion ``order`` (so a partition range covers exactly them). Each batch lists its runs
    in that order (range start first); batches come lowest run first."""
    position = {key: index for index, key in enumerate(order)}
    batches: list = []
    previous = None
    for run in sorted(runs, key=lambda r: position[run_key(r)]):
        where = position[run_key(run)]
        if batches and len(batches[-1]) < batch_size and where == previous + 1:
            batches[-1].append(run)
        else:
            batches.append([run])
        previous = where
    return sorted(batches, key=min)


def describe_runs(runs: Sequence[int]) -> str:
    if len(runs) == 1:
        return f"run {runs[0]}"
    return f"runs {runs[0]}-{runs[-1]} ({len(runs)} runs)"


def strip_run_prefix(run: int, reason: str) -> str:
    """``run 12: run 12: cause`` → ``cause`` (errors name their run; the log line does too)."""
    prefix = f"run {run}: "
    while reason.startswith(prefix):
        reason = reason[len(prefix):]
    return reason


# ---------------------------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------------------------

def _failure_reasons(event, asset_name: str) -> tuple:
    """(named failed runs or None, {run: RunFailure}, first line of the message, error type of
    the step's exception) from a step-failure event; the records are the failure's
    :class:`~archiver_assets.outcomes.RunFailure` records (``run_failures`` metadata). The error
    type is known for an exception the step did not turn into a ``dg.Failure`` (else empty)."""
    data = event.step_failure_data
    user = data.user_failure_data if data is not None else None
    named, records = step_run_failures(user, STAGE_OF_ASSET.get(asset_name, asset_name))
    reasons = {failure.run: failure for failure in records}
    message = (user.description or "") if user is not None else ""
    if not message and data is not None and data.error is not None:
        message = data.error.message.strip()
    error_type = ""
    if user is None and data is not None and data.error is not None:
        error_type = data.error.cls_name or ""
    return (named, reasons, message.splitlines()[0] if message else "step failed", error_type)


def _run_failure_message(result) -> tuple:
    """``(error type or "", first line of the message)`` of the Dagster run's failure."""
    for event in result.all_events:
        if event.event_type_value in ("PIPELINE_FAILURE", "RUN_FAILURE"):
            data = event.event_specific_data
            error = getattr(data, "error", None)
            if error is not None:
                return error.cls_name or "", error.message.strip().splitlines()[0]
            return "", (event.message or "run failed").strip()
    return "", "run failed"


def archive_outcome(result, asset_name: str, runs: Sequence[int]) -> tuple:
    """``(materialized runs, {failed run: RunFailure}, partial runs)`` of the asset's step;
    partial runs were archived by a batched step that failed for other runs of its range."""
    materialized = {run_of(m.partition) for m in result.asset_materializations_for_node(asset_name)
                    if m.partition is not None}
    failed: dict = {}
    partial: list = []
    stage = STAGE_OF_ASSET.get(asset_name, asset_name)
    named, reasons, message, error_type = None, {}, None, ""
    for event in result.get_step_failure_events():
        if event.step_key == asset_name:
            named, reasons, message, error_type = _failure_reasons(event, asset_name)
    for run in runs:
        if run in materialized:
            if named is not None and len(runs) > 1:
                # Recorded by the failed range step itself; its checks were skipped.
                partial.append(run)
            continue
        if named is not None and run not in named and len(runs) > 1:
            partial.append(run)
        elif message is not None:
            failed[run] = reasons.get(run) or RunFailure(run, stage, error_type, message)
        else:
            run_error_type, run_message = _run_failure_message(result)
            failed[run] = RunFailure(run, stage, run_error_type, f"not archived: {run_message}")
    return materialized, failed, partial


def check_outcome(result, runs: Sequence[int], archived: set, instance=None,
                  stage: str = "") -> tuple:
    """``({run: RunFailure}, {run: legacy_metadata errors})``: archived runs whose blocking check
    failed (in ``stage``; no error type: a check fails, nothing raised), and the
    ``legacy_metadata`` (``--validate``) result of every run it evaluated."""
    failed: dict = {}
    validation: dict = {}
    for evaluation in result.get_asset_check_evaluations():
        meta = {k: getattr(v, "value", v) for k, v in (evaluation.metadata or {}).items()}
        checked = [meta["run"]] if "run" in meta else list(runs)
        bad = set(meta.get("failed_runs") or ([] if evaluation.passed else checked))
        if evaluation.check_name == VALIDATION_CHECK:
            for run in checked:
                validation[run] = list(meta.get("errors") or []) if run in bad else []
                if run in bad and not validation[run]:
                    validation[run] = (_recorded_errors(instance, evaluation, run)
                                       or [evaluation.description or "legacy_metadata failed"])
        elif evaluation.blocking:
            for run in bad & set(archived):
                # A step summary (a batched check) names the run only; the run's own
                # evaluation, recorded in the instance, says why.
                own = None if "run" in meta else _recorded_evaluation(instance, evaluation, run)
                description = (own.description if own is not None and own.description
                               else evaluation.description) or ""
                failed[run] = RunFailure(run, stage, "", (
                    f"blocking check {evaluation.check_name} failed: {description}").rstrip(": "))
    return failed, validation


def archive_notes(result, asset_name: str) -> dict:
    """``{run: note}`` for runs whose outcome an operator should read beyond "archived": a
    legacy blob taken over (``verified-legacy``, with both MD5s)."""
    from archiver_resources.archiving import legacy_note

    notes = {}
    for materialization in result.asset_materializations_for_node(asset_name):
        meta = {k: getattr(v, "value", v) for k, v in (materialization.metadata or {}).items()}
        if materialization.partition is not None and meta.get("action") == "verified-legacy":
            notes[run_of(materialization.partition)] = legacy_note(
                str(meta.get("stored_packed_on") or ""), str(meta.get("md5") or ""),
                str(meta.get("stored_md5") or ""))
    return notes


def summarize_result(result, asset_name: str, runs: Sequence[int], instance=None) -> dict:
    """Per run: archived or failed (and why), and the warnings of its materialization (files
    skipped or replaced by design, Latin-1 decoding), from an ``execute_in_process`` result."""
    materialized, failed, partial = archive_outcome(result, asset_name, runs)
    check_failed, validation = check_outcome(result, runs, materialized | set(partial), instance,
                                             STAGE_OF_ASSET.get(asset_name, asset_name))
    failed.update(check_failed)
    return {"run_id": result.run_id, "success": bool(result.success),
            "succeeded": sorted((materialized | set(partial)) - set(failed)),
            "failed": {str(k): v.to_json() for k, v in sorted(failed.items())},
            "partial": sorted(partial), "validation": {str(k): v for k, v in validation.items()},
            "notes": {str(k): v for k, v in archive_notes(result, asset_name).items()},
            "warnings": {str(k): v for k, v in sorted(
                materialization_warnings(result, asset_name).items())}}


def materialization_warnings(result, asset_name: str) -> dict:
    """``{run: [warning, …]}`` from the ``warnings`` metadata of the asset's materializations."""
    found: dict = {}
    for materialization in result.asset_materializations_for_node(asset_name):
        value = (materialization.metadata or {}).get("warnings")
        warnings = getattr(value, "value", value)
        if materialization.partition is not None and warnings:
            found.setdefault(run_of(materialization.partition), []).extend(
                str(w) for w in warnings)
    return found


def _recorded_evaluation(instance, evaluation, run: int):
    """The per-run evaluation a batched check recorded for ``run`` in the instance, or None."""
    if instance is None:
        return None
    from archiver_assets.dagster_internals import check_history

    try:
        records = check_history(instance.event_log_storage, evaluation.asset_check_key, limit=1,
                                partition=run_key(run))
        return records[0].event.dagster_event.event_specific_data
    except (IndexError, AttributeError):
        return None


def _recorded_errors(instance, evaluation, run: int) -> list:
    """The ``errors`` of the per-run evaluation a batched check reported for ``run``."""
    data = _recorded_evaluation(instance, evaluation, run)
    errors = data.metadata.get("errors") if data is not None and data.metadata else None
    return list(getattr(errors, "value", errors) or [])


def _record_partial(instance, stage: str, runs: Sequence[int], run_id: str) -> None:
    from archiver_assets.state.events import record_materializations

    metadata = {run_key(r): {"source": "cli", "run": r, "dagster_run_id": run_id,
                             "note": "archived by a batched Dagster run that failed for other "
                                     "runs of its partition range"} for r in runs}
    record_materializations(instance, STAGE_ASSETS[stage], metadata)


def _batch_kwargs(runs: Sequence[int], tags: dict) -> tuple:
    """``execute_in_process`` keyword arguments and tags for a batch: one partition, or a range."""
    if len(runs) == 1:
        return {"partition_key": run_key(runs[0])}, tags
    return {}, {**tags, **range_tags(runs)}


def audit_partial(defs, instance, stage: str, runs: Sequence[int], tags: dict) -> tuple:
    """Run the asset's checks (MD5, hashes, legacy_metadata) for runs archived by a failed
    batched step, whose checks Dagster skipped: ``(failed, validation)`` as ``check_outcome``."""
    checks = defs.resolve_asset_graph().get_check_keys_for_assets({STAGE_ASSETS[stage]})
    if not checks:
        return {}, {}
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(), asset_check_selection=set(checks))
    failed, validation = {}, {}
    for batch in group_batches(runs, partition_keys(instance), len(runs)):
        kwargs, batch_tags = _batch_kwargs(batch, {**tags, "archiver/audit": "partial batch"})
        result = job.execute_in_process(instance=instance, raise_on_error=False,
                                        tags=batch_tags, **kwargs)
        batch_failed, batch_validation = check_outcome(
            result, batch, set(batch), instance, STAGE_OF_ASSET[STAGE_ASSETS[stage].path[-1]])
        failed.update(batch_failed)
        validation.update(batch_validation)
    return failed, validation


def execute_request(defs, instance, request: dict) -> dict:
    """Execute one batch request in this (worker) process; never raises for run failures. The
    Dagster run carries this worker's identity from its creation (``archiver/worker``), so a run
    the worker leaves unfinished (killed, or a full disk before the run started) is recognised
    and reported failed later (``guard.fail_abandoned_runs``)."""
    from archiver_assets.archive.guard import WORKER_TAG, worker_identity

    stage, runs = request["stage"], [int(r) for r in request["runs"]]
    kwargs, tags = _batch_kwargs(runs, {**BASE_TAGS, **request.get("tags", {}),
                                        WORKER_TAG: worker_identity()})
    job = defs.resolve_job_def(STAGE_JOBS[stage])
    try:
        result = job.execute_in_process(instance=instance, raise_on_error=False, tags=tags,
                                        **kwargs)
    except Exception as error:  # noqa: BLE001 - reported per run to the parent
        reason = f"Dagster could not run the batch: {type(error).__name__}: {error}"
        stage_name = STAGE_OF_ASSET[STAGE_ASSETS[stage].path[-1]]
        return {"run_id": None, "success": False, "succeeded": [],
                "failed": {str(r): RunFailure(r, stage_name, type(error).__name__,
                                              reason).to_json() for r in runs},
                "partial": [], "validation": {}}
    summary = summarize_result(result, STAGE_ASSETS[stage].path[-1], runs, instance)
    if summary["partial"]:
        recorded = {run_of(m.partition) for m in result.asset_materializations_for_node(
            STAGE_ASSETS[stage].path[-1]) if m.partition is not None}
        unrecorded = [r for r in summary["partial"] if r not in recorded]
        if unrecorded:
            _record_partial(instance, stage, unrecorded, result.run_id)
        failed, validation = audit_partial(defs, instance, stage, summary["partial"],
                                           request.get("tags", {}))
        summary["failed"].update({str(r): why.to_json() for r, why in failed.items()})
        summary["succeeded"] = [r for r in summary["succeeded"] if r not in failed]
        summary["validation"].update({str(r): v for r, v in validation.items()})
    return summary


PARENT_ENV = "ARCHIVER_CLI_PID"


def die_with_parent(expected_parent: Optional[str]) -> bool:
    """Ask Linux to send this worker SIGINT when the CLI that started it dies (even by SIGKILL:
    ``PR_SET_PDEATHSIG``), so no worker goes on archiving unsupervised while the next CLI may
    already hold the instance lock. SIGINT, not SIGKILL: Dagster turns it into an interrupted step
    (the artdaqDB write rolls back) and records the run as failed. False when the parent is already
    gone (it died before the request took effect): the worker must exit at once."""
    if not sys.platform.startswith("linux"):
        return True
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)
    except (OSError, AttributeError):
        return True  # no prctl: workers then outlive a killed CLI, as before
    return not expected_parent or str(os.getppid()) == expected_parent


ORPHAN_GRACE_SECONDS = 10.0


def _watch_parent(parent: int, grace: float = ORPHAN_GRACE_SECONDS) -> None:
    """Bound an orphaned worker's life: once the CLI is gone, the worker got SIGINT (Linux,
    ``die_with_parent``; sent here elsewhere) and stops its step; if it is still alive ``grace``
    seconds later (a slow store answer, an interrupt Dagster defers), it exits hard. An exit in
    the middle of an artdaqDB write is rolled back by the next writer, and its Dagster run is
    reported failed by the partition guard or run monitoring."""
    while os.getppid() == parent:
        time.sleep(0.5)
    if not sys.platform.startswith("linux"):
        os.kill(os.getpid(), signal.SIGINT)
    time.sleep(grace)
    sys.stderr.write(f"worker {os.getpid()}: the CLI is gone and the worker did not stop within "
                     f"{grace:g} s; exiting\n")
    sys.stderr.flush()
    os._exit(137)


def worker_main(config_path: str) -> int:
    """The ``--worker`` loop (see the module docstring)."""
    parent = os.environ.get(PARENT_ENV)
    if not die_with_parent(parent):
        return 130
    if parent and parent.isdigit():
        threading.Thread(target=_watch_parent, args=(int(parent),), daemon=True,
                         name="watch-cli").start()
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # anything else printed goes to stderr, never into the protocol
    sys.stdout = sys.stderr
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the parent decides when to stop
    try:
        import dagster as dg

        from archiver_assets.definitions import build_definitions

        defs = build_definitions(config_path)
        with dg.DagsterInstance.get() as instance:
            from archiver_assets.event_batching import enable_batched_writes

            enable_batched_writes(instance)  # partition events of a batch in one write each
            protocol.write(json.dumps({"ready": os.getpid()}) + "\n")
            for line in sys.stdin:
                if not line.strip():
                    continue
                request = json.loads(line)
                answer = execute_request(defs, instance, request)
                answer["batch"] = request.get("batch")
                protocol.write(json.dumps(answer) + "\n")
    except KeyboardInterrupt:
        return 130
    return 0


# ---------------------------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------------------------

@dataclass
class BatchResult:
    batch: int
    runs: list
    run_id: Optional[str]
    succeeded: list
    failed: dict  # run → RunFailure (stage, error type, message)
    partial: list = field(default_factory=list)
    validation: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)  # run → what to add to its ✓ line
    warnings: dict = field(default_factory=dict)  # run → warnings of an archived run


class Worker:
    """One worker process and the two threads reading its stdout (answers) and stderr (log)."""

    def __init__(self, number: int, config_path: str, answers: "queue.Queue"):
        self.number = number
        self.answers = answers
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "archiver_assets.cli", "--worker", str(config_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", errors="replace", bufsize=1,
            start_new_session=True, env={**os.environ, "ARCHIVER_CONFIG": str(config_path),
                                         PARENT_ENV: str(os.getpid())})
        with _LIVE_LOCK:
            _LIVE_WORKERS.add(self)
        threading.Thread(target=self._read_answers, daemon=True,
                         name=f"worker-{number}-answers").start()
        threading.Thread(target=self._read_log, daemon=True,
                         name=f"worker-{number}-log").start()

    def _read_answers(self) -> None:
        for line in self.proc.stdout:
            try:
                answer = json.loads(line)
            except ValueError:
                worker_log.debug("[worker %d] %s", self.number, line.rstrip())
                continue
            if "ready" not in answer:
                self.answers.put((self, answer))
        self.answers.put((self, None))  # EOF: the process is gone

    def _read_log(self) -> None:
        for line in self.proc.stderr:
            worker_log.debug("[worker %d] %s", self.number, line.rstrip())

    def send(self, batch: int, stage: str, runs: list, tags: dict) -> None:
        request = {"batch": batch, "stage": stage, "runs": runs, "tags": tags}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        """No more work: close stdin so the worker exits after its batch."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def wait(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        with _LIVE_LOCK:
            _LIVE_WORKERS.discard(self)

    def interrupt(self) -> None:
        self._signal(signal.SIGINT)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def _signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass


def interrupt_workers(grace: float = WORKER_EXIT_GRACE_SECONDS) -> None:
    """Immediate stop: SIGINT every live worker, wait up to ``grace`` seconds, kill the rest.

    SIGINT interrupts a step only when it reaches the worker's main thread while that thread runs
    Python code; a step blocked in a socket read (a stalled upload) may not notice it, hence the
    kill, and :func:`fail_unfinished_runs` afterwards."""
    with _LIVE_LOCK:
        workers = list(_LIVE_WORKERS)
    for worker in workers:
        worker.close()
        worker.interrupt()
    deadline = time.monotonic() + grace
    for worker in workers:
        try:
            worker.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()


def fail_unfinished_runs(invocation: str, message: str) -> list:
    """Mark this invocation's Dagster runs that are still unfinished (their worker was killed)
    as failed, so their partitions show FAILED and a retry mode takes them; returns their ids."""
    import dagster as dg

    unfinished = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
                  dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
                  dg.DagsterRunStatus.CANCELING]
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={INVOCATION_TAG: invocation},
                                                    statuses=unfinished))
        for run in runs:
            instance.report_run_failed(run, message)
    return [run.run_id for run in runs]


class WorkerPool:
    """Up to ``size`` worker processes, started when first needed and kept for the whole
    invocation (both stages), so each pays the start-up (~1.5 s) once."""

    def __init__(self, config_path: str, size: int):
        self.config_path = str(config_path)
        self.size = max(1, int(size))
        self.answers: queue.Queue = queue.Queue()
        self.workers: list = []
        self.idle: list = []
        self._started = 0

    def available(self) -> bool:
        return bool(self.idle) or len(self.workers) < self.size

    def take(self) -> Worker:
        if self.idle:
            return self.idle.pop()
        self._started += 1
        worker = Worker(self._started, self.config_path, self.answers)
        self.workers.append(worker)
        return worker

    def give_back(self, worker: Worker) -> None:
        if worker in self.workers and worker not in self.idle:
            self.idle.append(worker)

    def discard(self, worker: Worker) -> None:
        for group in (self.workers, self.idle):
            if worker in group:
                group.remove(worker)
        worker.wait(1)

    def close(self, grace: float = WORKER_EXIT_GRACE_SECONDS) -> None:
        """No more work: every worker exits after its batch (killed after ``grace`` s)."""
        for worker in self.workers:
            worker.close()
        for worker in self.workers:
            worker.wait(grace)
        self.workers.clear()
        self.idle.clear()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def run_stage(*, stage: str, runs: Sequence[int], instance, pool: WorkerPool, batch_size: int,
              stop_requested: Callable[[], bool], tags: Optional[dict] = None,
              logger: Optional[logging.Logger] = None) -> StageOutcome:
    """Archive ``runs`` in ``stage``: add their partitions (ascending, one call), group them into
    Dagster runs, execute up to ``pool.size`` at once; once ``stop_requested()``, hand out no
    new batch and wait for those in flight. Logs the legacy progress lines."""
    logger = logger or log
    outcome = StageOutcome(stage=stage)
    ensure_partitions(instance, runs)
    batches = group_batches(runs, partition_keys(instance), batch_size)
    total = len(runs)
    pending = deque(enumerate(batches))
    in_flight: dict = {}
    stopping = False
    tags = {**(tags or {}), "archiver/stage": stage}
    while pending or in_flight:
        if not stopping and stop_requested() and pending:
            stopping = True
            logger.warning("Shutdown requested: finishing %d Dagster run(s) in progress, "
                           "not starting %d more", len(in_flight), len(pending))
        if stopping:
            for _, batch in pending:
                outcome.not_processed.extend(batch)
            pending.clear()
        while pending and pool.available():
            worker = pool.take()
            number, batch = pending.popleft()
            logger.info("→ Processing %s", describe_runs(batch))
            try:
                worker.send(number, stage, batch, tags)
            except OSError:  # the worker died before taking it
                pool.discard(worker)
                _account(outcome, _batch_result(number, batch, None, worker, stage), stage,
                         logger, total)
                continue
            in_flight[worker] = (number, batch)
        if not in_flight:
            continue
        try:
            worker, answer = pool.answers.get(timeout=0.2)
        except queue.Empty:
            continue
        if answer is None:  # the worker process is gone
            pool.discard(worker)
        number, batch = in_flight.pop(worker, (None, None))
        if batch is None:
            continue
        if answer is not None:
            pool.give_back(worker)
        _account(outcome, _batch_result(number, batch, answer, worker, stage), stage, logger,
                 total)
    outcome.interrupted = stopping or bool(outcome.not_processed)
    if outcome.interrupted:
        logger.warning("Batch processing interrupted by shutdown: %d successful, %d failed, "
                       "%d not processed", len(outcome.succeeded), len(outcome.failed),
                       len(outcome.not_processed))
    else:
        logger.info("Batch processing complete: %d successful, %d failed",
                    len(outcome.succeeded), len(outcome.failed))
    if outcome.notes:
        logger.info("Legacy blobs taken over: %d run(s) verified-legacy (UconDB held the legacy "
                    "tool's blob, the same archive but for its 'Packed on' lines; not counted "
                    "as mismatches): %s", len(outcome.notes), describe_run_list(outcome.notes))
    return outcome


def describe_run_list(runs, limit: int = 10) -> str:
    ordered = sorted(runs)
    text = ", ".join(map(str, ordered[:limit]))
    return text + (f" ... ({len(ordered)} total)" if len(ordered) > limit else "")


def _batch_result(number, batch, answer, worker, stage: str = "") -> BatchResult:
    """The worker's answer for ``batch`` (None: the worker is gone) as a :class:`BatchResult`."""
    if answer is None:
        code = worker.proc.poll()
        reason = f"worker process exited unexpectedly (exit code {code})"
        stage_name = STAGE_OF_ASSET[STAGE_ASSETS[stage].path[-1]] if stage in STAGE_ASSETS \
            else stage
        return BatchResult(number, batch, None, [],
                           {r: RunFailure(r, stage_name, "", reason) for r in batch})
    return BatchResult(
        batch=number, runs=batch, run_id=answer.get("run_id"),
        succeeded=[int(r) for r in answer.get("succeeded", [])],
        failed={int(r): RunFailure.from_json(why)
                for r, why in answer.get("failed", {}).items()},
        partial=[int(r) for r in answer.get("partial", [])],
        validation={int(r): v for r, v in answer.get("validation", {}).items()},
        notes={int(r): v for r, v in answer.get("notes", {}).items()},
        warnings={int(r): v for r, v in answer.get("warnings", {}).items()})


def _account(outcome: StageOutcome, result: BatchResult, stage: str, logger, total: int) -> None:
    done_word = ("imported successfully" if stage == "import"
                 else "migrated and verified successfully")
    if result.run_id:
        outcome.dagster_runs.append(result.run_id)
        logger.info("Dagster run %s (%s): %d archived, %d failed", result.run_id,
                    describe_runs(result.runs), len(result.succeeded), len(result.failed))
    for run in result.runs:
        if run in result.failed:
            failure = result.failed[run]
            reason = strip_run_prefix(run, failure.message)
            outcome.failed[run] = reason
            if failure.error_type:  # e.g. ✗ Run 12 failed (import, FhiclSyntaxError): …
                logger.error("✗ Run %d failed (%s, %s): %s", run, failure.stage,
                             failure.error_type, reason)
            else:
                logger.error("✗ Run %d failed: %s", run, reason)
        elif run in result.succeeded:
            outcome.succeeded.append(run)
            note = result.notes.get(run)
            if note:
                outcome.notes[run] = note
            tick = f"{done_word}: {note}" if note else done_word
            warnings = result.warnings.get(run, [])
            if not warnings:
                logger.info("✓ Run %d %s", run, tick)
                continue
            # Files dropped or replaced by design are said here too, not only in Dagster.
            logger.warning("✓ Run %d %s, with %d warning(s):", run, tick, len(warnings))
            for warning in warnings:
                logger.warning("    ⚠ %s", warning)
    if result.partial:
        logger.warning("Runs %s were archived, but their batched Dagster run failed for other "
                       "runs; recorded as materialized (source=cli)",
                       ", ".join(map(str, result.partial)))
    outcome.validation.update(result.validation)
    done = len(outcome.succeeded) + len(outcome.failed)
    logger.info("Progress: %d/%d runs processed (%d successful, %d failed)", done, total,
                len(outcome.succeeded), len(outcome.failed))
