"""One writer per run at a time across Dagster runs: a step touches a run's stores only when no
older Dagster run still in progress targets the same partition.

The instance's run queue limit keys on the `dagster/partition` tag, which batched backfill runs do
not carry (they have `dagster/asset_partition_range_start`/`_end`), so a sensor run for run N and a
backfill range covering N can both be launched. This guard closes that gap inside the steps,
using the instance's own run records (so it holds across hosts sharing one instance): the older
run goes first, the newer one waits for it, then finds the run archived and only verifies it.

A run whose worker was killed (SIGKILL, OOM killer) stays STARTED in the instance until run
monitoring notices, or NOT_STARTED forever when the worker died (or its disk filled up) between
creating the run and starting it. So that nobody waits for a dead run, each run carries its
worker's identity (``archiver/worker``: host, PID namespace, PID and the process's start time),
set by the command line's worker when it creates the run and by each guarded step; an unfinished
run whose worker identity is on this machine and no longer alive is reported failed (as run
monitoring would) and not waited for, by the guard and by the command line at start-up
(:func:`fail_abandoned_runs`).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

import dagster as dg

from archiver_assets.partitions import targeted_keys
from archiver_resources.errors import ArchiverError

WAIT_ENV = "ARCHIVER_PARTITION_WAIT_SECONDS"
DEFAULT_WAIT_SECONDS = 900.0
WORKER_TAG = "archiver/worker"
REFRESH_SECONDS = 1.0  # how stale the view of other runs may get between partitions

# Runs that may be writing. QUEUED runs have not started; finished runs hold nothing.
WRITING_STATUSES = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
                    dg.DagsterRunStatus.CANCELING]
# Unfinished runs a dead worker may leave behind: NOT_STARTED when it died (or its disk filled
# up) between creating the run and starting it — its partitions then show "in progress" forever.
UNFINISHED_STATUSES = [dg.DagsterRunStatus.NOT_STARTED, *WRITING_STATUSES]


class PartitionBusyError(ArchiverError):
    """Another, older Dagster run kept the run's partition past the wait limit."""

    retryable = True

    def __init__(self, run: int, holder_run_id: str, waited_s: float):
        self.run = run
        self.holder_run_id = holder_run_id
        super().__init__(
            f"run {run}: Dagster run {holder_run_id} (launched earlier) is still archiving this "
            f"run after {waited_s:.0f} s of waiting; nothing was written — retry the partition "
            f"when that run has finished, or terminate it if it is stuck")


@dataclass(frozen=True)
class OtherRun:
    """What the guard needs to know of another Dagster run."""

    run_id: str
    created: float
    tags: dict


def _process_start(pid: int) -> Optional[str]:
    """The start time of process ``pid`` in clock ticks since boot (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()  # field 22 of stat(5); fields[0] is field 3
    except (OSError, IndexError):
        return None


def _process_state(pid: int) -> Optional[str]:
    """The state letter of process ``pid`` (``Z``: exited, not yet reaped by its parent)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return None


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "-"


def worker_identity(pid: Optional[int] = None) -> str:
    """``host|pid-namespace|pid|start`` of a process of this machine (default: this one)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}|{_pid_namespace()}|{pid}|{_process_start(pid) or '-'}"


def worker_is_dead(identity: str) -> bool:
    """True only when ``identity`` names a process of this machine that no longer exists (or
    whose PID now belongs to a process started later). Anything else — another host or PID
    namespace, a malformed value — counts as alive: the guard then waits, the safe side."""
    parts = identity.split("|")
    if len(parts) != 4 or parts[0] != socket.gethostname() or parts[1] != _pid_namespace():
        return False
    try:
        pid = int(parts[2])
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, another user's
    if _process_state(pid) in ("Z", "X"):  # exited; only its exit status waits to be collected
        return True
    start = _process_start(pid)
    return parts[3] != "-" and start is not None and start != parts[3]


def abandoned_message(identity: str, found_by: str) -> str:
    """Why an unfinished run whose worker ``identity`` is gone is marked failed."""
    parts = identity.split("|")
    pid, host = (parts[2], parts[0]) if len(parts) == 4 else ("?", "?")
    return (f"Abandoned: the worker process of this run ({pid} on {host}) is gone (killed, or "
            f"stopped by a full disk) and the run never finished; marked failed by {found_by}. "
            f"Its runs are safe to archive again: the stores roll back interrupted writes.")


def fail_abandoned(instance, records: Iterable, found_by: str, log=None) -> list:
    """Report failed each of ``records`` (unfinished run records) whose ``archiver/worker`` names a
    process of this machine that is gone; returns their run ids. Runs without that tag, or from
    another host, are left alone (nothing tells whether they are alive)."""
    failed = []
    for record in records:
        run = record.dagster_run
        identity = run.tags.get(WORKER_TAG)
        if not identity or not worker_is_dead(identity):
            continue
        if log is not None:
            log.warning(f"Dagster run {run.run_id} is unfinished ({run.status.value}) but its "
                        f"worker is gone: reporting it failed")
        try:
            instance.report_run_failed(run, abandoned_message(identity, found_by))
        except Exception as error:  # noqa: BLE001 (best effort: the caller goes on either way)
            if log is not None:
                log.warning(f"Could not mark Dagster run {run.run_id} failed: {error}")
            continue
        failed.append(run.run_id)
    return failed


def fail_abandoned_runs(instance, found_by: str, log=None) -> list:
    """Every unfinished Dagster run of the instance whose worker is gone from this machine,
    reported failed (:func:`fail_abandoned`); the command line calls it at start-up."""
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=UNFINISHED_STATUSES))
    return fail_abandoned(instance, records, found_by, log)


def holders(me: OtherRun, others: Iterable[OtherRun], keys: Iterable[str],
            key_order: Callable[[], Sequence[str]]) -> dict:
    """``{key: run_id}`` for the ``keys`` that an older run among ``others`` targets.

    "Older" is decided by (creation time, run id), a total order every run computes alike, so
    two runs never wait for each other.
    """
    wanted = set(keys)
    result: dict = {}
    order_cache: list = []

    def cached_order() -> Sequence[str]:
        if not order_cache:
            order_cache.append(list(key_order()))
        return order_cache[0]

    for other in sorted(others, key=lambda r: (r.created, r.run_id)):
        if other.run_id == me.run_id or (other.created, other.run_id) >= (me.created, me.run_id):
            continue
        for key in targeted_keys(other.tags, cached_order) & wanted:
            result.setdefault(key, other.run_id)
    return result


class PartitionGuard:
    """Per step: before a partition is processed, wait until no older in-progress run targets it."""

    def __init__(self, instance, run_id: str, partitions_name: str, log,
                 wait_seconds: Optional[float] = None, poll_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, sleep=time.sleep):
        self.instance = instance
        self.run_id = run_id
        self.partitions_name = partitions_name
        self.log = log
        self.wait_seconds = (float(os.environ.get(WAIT_ENV, DEFAULT_WAIT_SECONDS))
                             if wait_seconds is None else wait_seconds)
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.sleep = sleep
        self._me: Optional[OtherRun] = None
        self._others: list = []
        self._seen_at: Optional[float] = None
        self._tagged = False

    def _tag_own_run(self, tags: dict) -> None:
        identity = worker_identity()
        if tags.get(WORKER_TAG) != identity:
            self.instance.add_run_tags(self.run_id, {WORKER_TAG: identity})
        self._tagged = True

    def _refresh(self) -> None:
        records = self.instance.get_run_records(
            filters=dg.RunsFilter(statuses=UNFINISHED_STATUSES))
        # Runs whose worker died (NOT_STARTED ones too) are reported failed, not waited for.
        dead = set(fail_abandoned(
            self.instance, [r for r in records if r.dagster_run.run_id != self.run_id],
            f"Dagster run {self.run_id}, which needed its partitions", self.log))
        others, me = [], None
        for record in records:
            run = OtherRun(record.dagster_run.run_id, record.create_timestamp.timestamp(),
                           dict(record.dagster_run.tags))
            if run.run_id == self.run_id:
                me = run
                if not self._tagged:
                    self._tag_own_run(run.tags)
            elif run.run_id not in dead and record.dagster_run.status in WRITING_STATUSES:
                others.append(run)
        if me is None:  # not in the instance's run table (should not happen): count as newest
            me = OtherRun(self.run_id, float("inf"), {})
        self._me, self._others, self._seen_at = me, others, self.clock()

    def _holder(self, key: str) -> Optional[str]:
        if self._seen_at is None or self.clock() - self._seen_at >= REFRESH_SECONDS:
            self._refresh()
        if not self._others:
            return None
        found = holders(self._me, self._others, [key],
                        lambda: self.instance.get_dynamic_partitions(self.partitions_name))
        return found.get(key)

    def wait_turn(self, run: int, key: str) -> None:
        """Return when ``key`` is free; raise :class:`PartitionBusyError` after the wait limit."""
        holder = self._holder(key)
        if holder is None:
            return
        started = self.clock()
        self.log.warning(f"Run {run} is being archived by an earlier Dagster run {holder}; "
                         f"waiting for it to finish before touching the stores "
                         f"(at most {self.wait_seconds:.0f} s)")
        while holder is not None:
            waited = self.clock() - started
            if waited >= self.wait_seconds:
                raise PartitionBusyError(run, holder, waited)
            self.sleep(min(self.poll_seconds, max(0.0, self.wait_seconds - waited)))
            self._seen_at = None  # look again now
            holder = self._holder(key)
        self.log.info(f"Run {run}: the earlier Dagster run has finished; going on "
                      f"(waited {self.clock() - started:.1f} s)")
