"""The command line as a real process: SIGTERM mid-batch (exit 130, the Dagster run in progress
finishes, no new one starts, stores and partitions agree), a second invocation meanwhile (exit
1, the first's lock file untouched), three Ctrl-C within 2 s (immediate exit 130, the run in
progress recorded as interrupted, not left STARTED) and lock-file removal."""

import queue
import signal
import threading
import time

import dagster as dg
import pytest

from archiver_resources.samples import generate_run_records
from tests.cli.conftest import IMPORT, MIGRATE

pytestmark = pytest.mark.slow


class Output:
    """Collects a process's output lines in a thread; ``wait_for`` blocks until one matches."""

    def __init__(self, proc):
        self.proc = proc
        self.lines: list = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not seen; output:\n" + "\n".join(self.lines[-60:]))

    def finish(self, timeout: float = 180) -> int:
        code = self.proc.wait(timeout)
        while True:
            try:
                line = self._queue.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        return code

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def imported(cli_env, runs, **app):
    cli_env.write_config(**app)
    generate_run_records(cli_env.run_records, runs, profile="small")
    code, out = cli_env.main("--import-only")
    assert code == 0, out
    assert cli_env.materialized(IMPORT) == set(runs)


def assert_consistent(cli_env):
    """Partition status and stores agree for every run: nothing half-recorded."""
    assert cli_env.materialized(IMPORT) == cli_env.artdaqdb_runs()
    assert cli_env.materialized(MIGRATE) == cli_env.ucondb_runs()
    assert not [r for r in cli_env.dagster_runs() if r.status == dg.DagsterRunStatus.STARTED]


def test_sigterm_mid_batch_finishes_the_run_in_progress_and_exits_130(cli_env):
    imported(cli_env, [1001, 1002, 1003, 1004, 1005, 1006], batch_size=2, parallel_workers=1)
    cli_env.ucondb.faults.stall_next(100, 3.0, method="POST")
    first = Output(cli_env.spawn("--migrate-only"))
    first.wait_for("→ Processing runs 1001-1002")

    second = Output(cli_env.spawn("--report-status"))
    assert second.finish() == 1
    assert f"Lock file '{cli_env.lock_file}' is held" in second.text
    assert cli_env.lock_file.read_text() == f"{first.proc.pid}\n"  # the holder's file untouched

    first.proc.send_signal(signal.SIGTERM)
    assert first.finish() == 130, first.text
    for text in ("GRACEFUL SHUTDOWN REQUESTED (SIGTERM)",
                 "Batch processing interrupted by shutdown: 2 successful, 0 failed, "
                 "4 not processed",
                 "✓ GRACEFUL SHUTDOWN COMPLETED", "Reason: User request"):
        assert text in first.text, text
    assert "→ Processing runs 1003-1004" not in first.text
    assert cli_env.ucondb_runs() == {1001, 1002}
    assert_consistent(cli_env)
    assert [r.status for r in cli_env.dagster_runs() if r.job_name == "migrate_runs"] == [
        dg.DagsterRunStatus.SUCCESS]


def test_three_ctrl_c_within_two_seconds_stop_at_once(cli_env):
    imported(cli_env, [1001, 1002], batch_size=2, parallel_workers=1)
    cli_env.ucondb.faults.stall_next(100, 30.0, method="POST")
    proc = Output(cli_env.spawn("--migrate-only"))
    proc.wait_for("→ Processing runs 1001-1002")
    deadline = time.monotonic() + 120
    while not any(r.job_name == "migrate_runs" for r in cli_env.dagster_runs()):
        assert time.monotonic() < deadline, "the worker never started its Dagster run"
        time.sleep(0.5)
    time.sleep(2)  # the worker is inside the stalled upload
    started = time.monotonic()
    for _ in range(3):
        proc.proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
    assert proc.finish(timeout=60) == 130
    assert time.monotonic() - started < 25  # did not wait for the 30 s upload
    assert "Ctrl-C pressed 2/3 times - press 1 more for immediate shutdown" in proc.text
    assert "IMMEDIATE SHUTDOWN REQUESTED (3x Ctrl-C)" in proc.text
    migrate_runs = [r for r in cli_env.dagster_runs() if r.job_name == "migrate_runs"]
    assert migrate_runs and all(r.status in (dg.DagsterRunStatus.FAILURE,
                                             dg.DagsterRunStatus.CANCELED)
                                for r in migrate_runs)
    assert cli_env.materialized(MIGRATE) == set()


def test_removing_the_lock_file_stops_gracefully(cli_env):
    imported(cli_env, [1001, 1002], batch_size=1, parallel_workers=1)
    cli_env.ucondb.faults.stall_next(100, 3.0, method="POST")
    proc = Output(cli_env.spawn("--migrate-only"))
    proc.wait_for("→ Processing run 1001")
    cli_env.lock_file.unlink()
    assert proc.finish() == 130, proc.text
    assert "LOCK FILE REMOVED - INITIATING GRACEFUL SHUTDOWN" in proc.text
    assert "Reason: Lock file removed" in proc.text
    assert cli_env.ucondb_runs() == {1001}
    assert_consistent(cli_env)
