"""Carbon metrics against a local TCP listener: exact plaintext lines, durations on errors,
server down → no exception, quick send, rate-limited warning."""

import logging
import socket
import threading
import time

import pytest

from archiver_resources import metrics as m
from archiver_resources.metrics import CarbonMetrics, NullMetrics, format_line, open_metrics


class Listener:
    """Accepts connections on loopback and records every received line."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.data = b""
        self.connections = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        conn.settimeout(0.1)
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                with self._lock:
                    self.data += chunk

    def lines(self, count, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                lines = self.data.decode().splitlines()
            if len(lines) >= count:
                return lines
            time.sleep(0.01)
        return self.data.decode().splitlines()

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_format_line():
    assert format_line("sbnd.run_archiver.dev", "migrate.runs_failed", 3, 1700000000.9) == \
        "sbnd.run_archiver.dev.migrate.runs_failed 3 1700000000\n"
    assert format_line("", "a b", 1.5, 10) == "a_b 1.5 10\n"


def test_lines_reach_listener(listener):
    metrics = CarbonMetrics("127.0.0.1", listener.port, "demo.run_archiver.dev")
    try:
        assert metrics.send(m.MIGRATE_RUNS_PROCESSED, 5, timestamp=1700000000)
        assert metrics.send(m.MIGRATE_RUNS_SUCCESSFUL, 4, timestamp=1700000001)
        assert metrics.flush(5)
    finally:
        metrics.close()
    assert listener.lines(2) == [
        "demo.run_archiver.dev.migrate.runs_processed 5 1700000000",
        "demo.run_archiver.dev.migrate.runs_successful 4 1700000001",
    ]


def test_default_timestamp_from_clock(listener):
    metrics = CarbonMetrics("127.0.0.1", listener.port, "p", clock=lambda: 1234.75)
    metrics.send("x", 1)
    metrics.close()
    assert listener.lines(1) == ["p.x 1 1234"]


def test_timed_sends_duration_even_when_body_raises(listener):
    metrics = CarbonMetrics("127.0.0.1", listener.port, "p")
    with metrics.timed(m.UCONDB_UPLOAD_BLOB):
        time.sleep(0.01)
    with pytest.raises(RuntimeError):
        with metrics.timed(m.ARTDAQDB_ARCHIVE_RUN):
            raise RuntimeError("boom")
    metrics.close()
    lines = listener.lines(2)
    assert [line.split()[0] for line in lines] == [
        "p.UconDBClient.upload_blob.duration_ms", "p.ArtdaqDBClient.archive_run.duration_ms"]
    assert float(lines[0].split()[1]) >= 10.0
    assert "." in lines[1].split()[1]  # float milliseconds


def test_migration_counts(listener):
    metrics = CarbonMetrics("127.0.0.1", listener.port, "p")
    m.send_migration_counts(metrics, [10, 12], [11], timestamp=5)
    m.send_migration_counts(metrics, [], [], timestamp=6)
    metrics.close()
    assert listener.lines(7) == [
        "p.migrate.runs_processed 3 5", "p.migrate.runs_successful 2 5", "p.migrate.runs_failed 1 5",
        "p.migrate.last_successful_run 12 5",
        "p.migrate.runs_processed 0 6", "p.migrate.runs_successful 0 6", "p.migrate.runs_failed 0 6",
    ]


def test_many_metrics_one_connection(listener):
    metrics = CarbonMetrics("127.0.0.1", listener.port, "p")
    for i in range(2000):
        metrics.send("n", i, timestamp=1)
    assert metrics.flush(10)
    metrics.close()
    lines = listener.lines(2000)
    assert lines == [f"p.n {i} 1" for i in range(2000)]
    assert listener.connections == 1


def test_server_down_no_exception_quick_send_warning(caplog):
    metrics = CarbonMetrics("127.0.0.1", _free_port(), "p", timeout=0.5)
    with caplog.at_level(logging.WARNING, logger="archiver_resources.metrics"):
        start = time.monotonic()
        for i in range(100):
            metrics.send("x", i)
        with metrics.timed("y"):
            pass
        elapsed = time.monotonic() - start
        assert metrics.flush(5)
        metrics.close()
    assert elapsed < 0.5  # only enqueues
    warnings = [r.getMessage() for r in caplog.records if "Carbon metrics dropped" in r.getMessage()]
    assert 1 <= len(warnings) <= 2  # rate-limited: one, plus the summary at close
    assert "ConnectionRefusedError" in warnings[0]
    assert sum(int(w.split("dropped: ")[1].split()[0]) for w in warnings) == 101


def test_queue_full_drops_without_blocking(caplog):
    hung = socket.socket()  # accepts into the backlog but never reads: writes eventually stall
    hung.bind(("127.0.0.1", 0))
    hung.listen(1)
    metrics = CarbonMetrics("127.0.0.1", hung.getsockname()[1], "p", queue_size=5, timeout=0.3)
    try:
        with caplog.at_level(logging.WARNING, logger="archiver_resources.metrics"):
            results = [metrics.send("x" * 1000, i) for i in range(5000)]
        assert not all(results)
        assert any("queue full" in r.getMessage() for r in caplog.records)
    finally:
        metrics.close(timeout=3)
        hung.close()


def test_null_and_disabled_metrics(listener):
    null = NullMetrics()
    assert null.send("x", 1) is False
    with null.timed("y"):
        pass
    assert null.flush() is True
    null.close()
    disabled = CarbonMetrics("127.0.0.1", listener.port, "p", enabled=False)
    assert disabled.send("x", 1) is False
    disabled.close()
    assert isinstance(open_metrics(enabled=False, host="h"), NullMetrics)
    assert isinstance(open_metrics(enabled=True, host=None), NullMetrics)
    time.sleep(0.1)
    assert listener.connections == 0


def test_legacy_metric_names():
    assert [name + m.DURATION_SUFFIX for name in m.TIMED_CALLS] == [
        "ArtdaqDBClient.get_archived_runs.duration_ms", "ArtdaqDBClient.archive_run.duration_ms",
        "ArtdaqDBClient.export_run_configuration.duration_ms",
        "UconDBClient.get_existing_runs.duration_ms", "UconDBClient.upload_blob.duration_ms",
        "UconDBClient.get_data.duration_ms"]
