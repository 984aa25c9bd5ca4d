"""Carbon/Graphite plaintext metrics with the legacy names (docs/alerts.md, "Carbon metrics (legacy
names)": ``<prefix>.<path> <value> <unix seconds>``), sent from one daemon thread
through a bounded queue so the pipeline never waits on the metrics server; ``NullMetrics`` when
``carbon.enabled`` is false.
"""

from __future__ import annotations

import functools
import logging
import queue
import socket
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Protocol, Sequence

logger = logging.getLogger(__name__)

DURATION_SUFFIX = ".duration_ms"

# Per-call durations (float milliseconds, sent even when the call raised): timed(<name>).
ARTDAQDB_GET_ARCHIVED_RUNS = "ArtdaqDBClient.get_archived_runs"
ARTDAQDB_ARCHIVE_RUN = "ArtdaqDBClient.archive_run"  # each insert and each update
ARTDAQDB_EXPORT_RUN_CONFIGURATION = "ArtdaqDBClient.export_run_configuration"
UCONDB_GET_EXISTING_RUNS = "UconDBClient.get_existing_runs"
UCONDB_UPLOAD_BLOB = "UconDBClient.upload_blob"
UCONDB_GET_DATA = "UconDBClient.get_data"
TIMED_CALLS = (ARTDAQDB_GET_ARCHIVED_RUNS, ARTDAQDB_ARCHIVE_RUN, ARTDAQDB_EXPORT_RUN_CONFIGURATION,
               UCONDB_GET_EXISTING_RUNS, UCONDB_UPLOAD_BLOB, UCONDB_GET_DATA)

# Once per normal migration stage (batch); none in the retry mode.
MIGRATE_RUNS_PROCESSED = "migrate.runs_processed"
MIGRATE_RUNS_SUCCESSFUL = "migrate.runs_successful"
MIGRATE_RUNS_FAILED = "migrate.runs_failed"
MIGRATE_LAST_SUCCESSFUL_RUN = "migrate.last_successful_run"  # only if a run succeeded

WARNING_INTERVAL_SECONDS = 60.0
RECONNECT_DELAY_SECONDS = 1.0


class Metrics(Protocol):
    """What the pipeline needs from a metrics sink."""

    def send(self, path: str, value: float, timestamp: Optional[float] = None) -> bool: ...

    def timed(self, name: str): ...

    def flush(self, timeout: float = 5.0) -> bool: ...

    def close(self, timeout: float = 5.0) -> None: ...


def format_line(prefix: str, path: str, value: float, timestamp: float) -> str:
    """``<prefix>.<path> <value> <unix seconds>⏎`` (whitespace in the name becomes ``_``)."""
    name = f"{prefix}.{path}" if prefix else path
    name = "_".join(name.split())
    return f"{name} {value} {int(timestamp)}\n"


@contextmanager
def _timer(send: Callable[[str, float], object], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        send(name + DURATION_SUFFIX, (time.perf_counter() - start) * 1000.0)


class NullMetrics:
    """Metrics disabled: same interface, sends nothing."""

    def send(self, path: str, value: float, timestamp: Optional[float] = None) -> bool:
        return False

    def timed(self, name: str):
        return _timer(lambda _path, _value: None, name)

    def flush(self, timeout: float = 5.0) -> bool:
        return True

    def close(self, timeout: float = 5.0) -> None:
        return None


class CarbonMetrics:
    """Plaintext Carbon sender. ``send`` only enqueues (never blocks, never raises); one daemon
    thread keeps a TCP connection (``timeout`` for connect and write) and reconnects when it
    breaks. Queue full or server down → the metric is dropped and a warning is logged at most
    once per ``warning_interval`` seconds with the number dropped."""

    def __init__(self, host: str, port: int = 2003, prefix: str = "", *, timeout: float = 2.0,
                 enabled: bool = True, queue_size: int = 10_000,
                 warning_interval: float = WARNING_INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.time):
        self.host, self.port, self.prefix = host, int(port), prefix.rstrip(".")
        self.timeout = timeout
        self.enabled = enabled
        self._clock = clock
        self._queue: queue.Queue[Optional[str]] = queue.Queue(maxsize=queue_size)
        self._pending = 0
        self._idle = threading.Condition()
        self._warning_interval = warning_interval
        self._warn_lock = threading.Lock()
        self._last_warning = float("-inf")
        self._dropped = 0
        self._sock: Optional[socket.socket] = None
        self._down_until = 0.0
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        if enabled:
            self._thread = threading.Thread(target=self._run, name="CarbonMetrics", daemon=True)
            self._thread.start()

    # -- caller side ------------------------------------------------------------------------

    def send(self, path: str, value: float, timestamp: Optional[float] = None) -> bool:
        """Queue one metric; False if disabled, closed or dropped because the queue is full."""
        if not self.enabled or self._closed:
            return False
        line = format_line(self.prefix, path, value,
                           self._clock() if timestamp is None else timestamp)
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self._done(1)
            self._drop(1, "queue full")
            return False
        return True

    def send_many(self, metrics: Sequence[tuple[str, float]],
                  timestamp: Optional[float] = None) -> None:
        stamp = self._clock() if timestamp is None else timestamp
        for path, value in metrics:
            self.send(path, value, stamp)

    def timed(self, name: str):
        """Context manager sending ``<name>.duration_ms`` (float ms), also when the body raises."""
        return _timer(self.send, name)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued metric was sent or dropped; False if ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Flush (bounded), stop the sender thread and close the connection."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        if self._thread is not None:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                pass
            self._thread.join(timeout)
        with self._warn_lock:
            dropped, self._dropped = self._dropped, 0
        if dropped:
            logger.warning("Carbon metrics dropped: %d metric(s) not sent to %s:%d (at close)",
                           dropped, self.host, self.port)

    # -- sender thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            line = self._queue.get()
            if line is None:
                break
            batch = [line]
            stop = False
            while len(batch) < 500:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            try:
                self._deliver(batch)
            finally:
                self._done(len(batch))
            if stop:
                break
        self._disconnect()

    def _deliver(self, lines: list[str]) -> None:
        if time.monotonic() < self._down_until:
            self._drop(len(lines), "server unavailable")
            return
        payload = "".join(lines).encode("utf-8")
        for attempt in (1, 2):  # a stale kept-alive connection gets one reconnect
            try:
                if self._sock is None:
                    self._sock = socket.create_connection((self.host, self.port), self.timeout)
                    self._sock.settimeout(self.timeout)
                self._sock.sendall(payload)
                return
            except OSError as error:
                self._disconnect()
                if attempt == 2 or not isinstance(error, (BrokenPipeError, ConnectionResetError)):
                    self._down_until = time.monotonic() + RECONNECT_DELAY_SECONDS
                    self._drop(len(lines), f"{type(error).__name__}: {error}")
                    return

    def _disconnect(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def _done(self, count: int) -> None:
        with self._idle:
            self._pending -= count
            if self._pending <= 0:
                self._idle.notify_all()

    def _drop(self, count: int, cause: str) -> None:
        with self._warn_lock:
            self._dropped += count
            now = time.monotonic()
            if now - self._last_warning < self._warning_interval:
                return
            dropped, self._dropped, self._last_warning = self._dropped, 0, now
        logger.warning("Carbon metrics dropped: %d metric(s) not sent to %s:%d (%s)",
                       dropped, self.host, self.port, cause)


def open_metrics(*, enabled: bool, host: Optional[str], port: int = 2003, prefix: str = "",
                 timeout: float = 2.0) -> Metrics:
    """``CarbonMetrics`` when enabled with a host, else ``NullMetrics``."""
    if enabled and host:
        return CarbonMetrics(host, port, prefix, timeout=timeout)
    return NullMetrics()


def send_migration_counts(metrics: Metrics, successes: Sequence[int], failures: Sequence[int],
                          timestamp: Optional[float] = None) -> None:
    """The migration counters ``migrate.runs_processed``/``runs_successful``/``runs_failed`` (0/0/0
    when there were no runs) and ``migrate.last_successful_run`` (the highest success, if any)."""
    metrics.send(MIGRATE_RUNS_PROCESSED, len(successes) + len(failures), timestamp)
    metrics.send(MIGRATE_RUNS_SUCCESSFUL, len(successes), timestamp)
    metrics.send(MIGRATE_RUNS_FAILED, len(failures), timestamp)
    if successes:
        metrics.send(MIGRATE_LAST_SUCCESSFUL_RUN, max(successes), timestamp)


# --- shared by the code location's metrics resource ------------------------------------

_SINKS: dict = {}
_SINKS_LOCK = threading.Lock()


def shared_carbon_sink(host: str, port: int, prefix: str, timeout: float) -> Metrics:
    """One Carbon sender per process and destination: its daemon thread outlives the steps."""
    key = (host, port, prefix, timeout)
    with _SINKS_LOCK:
        sink = _SINKS.get(key)
        if sink is None or getattr(sink, "_closed", False):
            sink = CarbonMetrics(host, port, prefix, timeout=timeout)
            _SINKS[key] = sink
        return sink


class Timed:
    """A proxy timing the named methods of a store or client as ``<Class>.<call>.duration_ms``."""

    def __init__(self, target, metrics: Metrics, names: dict):
        self._target, self._metrics, self._names = target, metrics, names

    def __getattr__(self, attribute):
        value = getattr(self._target, attribute)
        name = self._names.get(attribute)
        if name is None or not callable(value):
            return value

        @functools.wraps(value)
        def timed(*args, **kwargs):
            with self._metrics.timed(name):
                return value(*args, **kwargs)

        return timed


ARTDAQDB_CALLS = {"archive_run": ARTDAQDB_ARCHIVE_RUN, "update_run": ARTDAQDB_ARCHIVE_RUN,
                  "archived_runs": ARTDAQDB_GET_ARCHIVED_RUNS,
                  "export_run": ARTDAQDB_EXPORT_RUN_CONFIGURATION,
                  "export_run_spooled": ARTDAQDB_EXPORT_RUN_CONFIGURATION}
# blob_digest is the migration's streamed verification download: the legacy get_data timing.
UCONDB_CALLS = {"put_blob": UCONDB_UPLOAD_BLOB, "get_blob": UCONDB_GET_DATA,
                "blob_digest": UCONDB_GET_DATA, "existing_runs": UCONDB_GET_EXISTING_RUNS}


class MigrationCounts:
    """Counts the runs of one migration step for the ``migrate.*`` counters."""

    def __init__(self):
        self.successes: list = []
        self.failures: list = []

    def track(self, run: int, work):
        """Run ``work()`` for ``run``, recording success or failure (any exception, re-raised)."""
        try:
            outcome = work()
        except Exception:  # noqa: BLE001 - counted, then re-raised
            self.failures.append(run)
            raise
        self.successes.append(run)
        return outcome
