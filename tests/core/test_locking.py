"""Tests of the single-instance lock and the lock-file monitor (archiver_resources.locking)."""

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import archiver_resources
from archiver_resources.errors import ArchiverError
from archiver_resources.locking import LOCK_LOST_REASON, InstanceLock, LockHeldError, LockMonitor

REPO_ROOT = Path(archiver_resources.__file__).resolve().parents[1]
CHILD_ENV = dict(os.environ, PYTHONPATH=str(REPO_ROOT))

TRY_LOCK = textwrap.dedent("""
    import sys
    from archiver_resources.locking import InstanceLock, LockHeldError
    try:
        with InstanceLock(sys.argv[1]):
            print("ACQUIRED", flush=True)
    except LockHeldError as exc:
        print(exc, flush=True)
        sys.exit(1)
""")

HOLD_LOCK = textwrap.dedent("""
    import os, sys
    from archiver_resources.locking import InstanceLock
    with InstanceLock(sys.argv[1]):
        print("LOCKED", os.getpid(), flush=True)
        sys.stdin.readline()
    print("RELEASED", flush=True)
""")


def try_lock_in_child(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", TRY_LOCK, str(path)], capture_output=True, text=True,
                          env=CHILD_ENV, timeout=60)


@pytest.fixture
def holder_child(tmp_path):
    path = tmp_path / "run" / "archiver.lock"
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=CHILD_ENV)
    line = proc.stdout.readline().split()
    assert line[0] == "LOCKED", line
    yield path, int(line[1]), proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_lock_writes_pid_and_keeps_file_on_release(tmp_path):
    path = tmp_path / "sub" / "archiver.lock"
    with InstanceLock(path) as lock:
        assert lock.held and lock.pid == os.getpid()
        assert path.read_text() == f"{os.getpid()}\n"
    assert not lock.held
    assert path.read_text() == f"{os.getpid()}\n"  # not deleted, as the legacy archiver


def test_second_process_fails_without_touching_the_holders_file(tmp_path):
    path = tmp_path / "archiver.lock"
    with InstanceLock(path):
        result = try_lock_in_child(path)
        assert result.returncode == 1, result.stderr
        assert result.stdout.strip() == (
            f"Another process may be running. Lock file '{path}' is held (pid {os.getpid()}).")
        assert path.read_text() == f"{os.getpid()}\n"
    assert try_lock_in_child(path).stdout.strip() == "ACQUIRED"


def test_lock_held_by_another_process_then_released(holder_child):
    path, child_pid, proc = holder_child
    with pytest.raises(LockHeldError) as exc:
        InstanceLock(path).acquire()
    assert isinstance(exc.value, ArchiverError) and exc.value.retryable
    assert exc.value.pid == child_pid
    assert str(exc.value) == (
        f"Another process may be running. Lock file '{path}' is held (pid {child_pid}).")
    assert path.read_text() == f"{child_pid}\n"
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "RELEASED"
    proc.wait(10)
    with InstanceLock(path) as lock:
        assert path.read_text() == f"{lock.pid}\n"


def test_same_process_second_lock_object_is_refused(tmp_path):
    path = tmp_path / "archiver.lock"
    with InstanceLock(path):
        with pytest.raises(LockHeldError):
            InstanceLock(path).acquire()
    lock = InstanceLock(path).acquire()
    with pytest.raises(RuntimeError):
        lock.acquire()
    lock.release()
    lock.release()  # idempotent


def test_leftover_file_with_stale_content_does_not_block(tmp_path):
    path = tmp_path / "archiver.lock"
    path.write_text("123456789012\nleftover garbage that is longer than a pid\n")
    with InstanceLock(path):
        assert path.read_text() == f"{os.getpid()}\n"


def test_lock_file_descriptor_is_not_inherited(tmp_path):
    path = tmp_path / "archiver.lock"
    with InstanceLock(path):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert try_lock_in_child(path).stdout.strip() == "ACQUIRED"
    finally:
        child.kill()
        child.wait(10)


# ---------------------------------------------------------------------------- monitor


class Recorder:
    def __init__(self):
        self.calls = []
        self.event = threading.Event()

    def __call__(self, reason):
        self.calls.append(reason)
        self.event.set()


def test_monitor_check_is_quiet_while_the_file_is_ours(tmp_path):
    with InstanceLock(tmp_path / "a.lock") as lock:
        recorder = Recorder()
        monitor = LockMonitor(lock, recorder)
        assert monitor.check() is False
        assert recorder.calls == []


def test_monitor_fires_once_when_the_lock_file_is_deleted(tmp_path, caplog):
    path = tmp_path / "a.lock"
    recorder = Recorder()
    with InstanceLock(path) as lock, LockMonitor(lock, recorder, interval=0.02):
        path.unlink()
        assert recorder.event.wait(10)
        threading.Event().wait(0.1)  # further intervals must not fire again
    assert recorder.calls == [LOCK_LOST_REASON] == ["Lock file removed"]
    assert "LOCK FILE REMOVED - INITIATING GRACEFUL SHUTDOWN" in caplog.text


def test_monitor_fires_on_a_foreign_pid(tmp_path):
    path = tmp_path / "a.lock"
    recorder = Recorder()
    with InstanceLock(path) as lock:
        monitor = LockMonitor(lock, recorder)
        path.write_text(f"{os.getpid() + 1}\n")
        assert monitor.check() is True
        assert monitor.check() is False
    assert recorder.calls == ["Lock file removed"]


def test_monitor_fires_when_the_file_is_replaced_by_a_new_one(tmp_path):
    path = tmp_path / "a.lock"
    recorder = Recorder()
    with InstanceLock(path) as lock:
        monitor = LockMonitor(lock, recorder)
        path.unlink()
        with InstanceLock(path):  # a new instance after deletion: same pid here, different file
            assert monitor.check() is True
    assert recorder.calls == ["Lock file removed"]


def test_monitor_stays_quiet_after_release_and_survives_a_failing_handler(tmp_path, caplog):
    path = tmp_path / "a.lock"
    lock = InstanceLock(path).acquire()
    monitor = LockMonitor(lock, lambda reason: 1 / 0)
    lock.release()
    path.unlink()
    assert monitor.check() is False
    with pytest.raises(RuntimeError):
        monitor.start()
    lock.acquire()
    path.unlink()
    assert monitor.check() is True  # the handler raised; logged, not propagated
    assert "lock-lost handler failed" in caplog.text
    lock.release()
