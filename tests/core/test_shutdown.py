"""Tests of graceful shutdown handling (archiver_resources.shutdown): real signals to a child process
and in-process tests with an injected clock."""

import logging
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import archiver_resources
from archiver_resources import shutdown
from archiver_resources.shutdown import ShutdownController

REPO_ROOT = Path(archiver_resources.__file__).resolve().parents[1]

# The child "processes a run" until it reads a line on stdin, like the batch loop finishing the
# current run; it then completes the graceful shutdown and exits with the controller's code.
CHILD = textwrap.dedent("""
    import logging, sys
    from archiver_resources.shutdown import ShutdownController, EXIT_OK
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    controller = ShutdownController(logging.getLogger("child"))
    with controller:
        print("READY", flush=True)
        if not controller.wait(60):
            sys.exit(EXIT_OK)
        sys.stdin.readline()
        controller.log_completed()
    sys.exit(controller.exit_code(EXIT_OK))
""")


class Child:
    def __init__(self):
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONIOENCODING="utf-8")
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     encoding="utf-8", env=env)
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.expect("READY")

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, text, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"child never printed {text!r}; saw {self.seen}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line

    def signal(self, signum):
        self.proc.send_signal(signum)

    def finish_run(self):
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def wait(self):
        code = self.proc.wait(20)
        time.sleep(0.05)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def child():
    c = Child()
    yield c
    c.kill()


# ---------------------------------------------------------------------------- real signals


def test_sigterm_is_a_graceful_stop_like_ctrl_c(child):
    child.signal(signal.SIGTERM)
    child.expect("GRACEFUL SHUTDOWN REQUESTED (SIGTERM)")
    child.expect("Current run will finish processing...")
    child.finish_run()
    assert child.wait() == shutdown.EXIT_INTERRUPTED
    assert "✓ GRACEFUL SHUTDOWN COMPLETED" in child.seen
    assert "Reason: User request" in child.seen


def test_three_sigints_within_two_seconds_exit_immediately(child):
    child.signal(signal.SIGINT)
    child.expect("GRACEFUL SHUTDOWN REQUESTED (Ctrl-C)")
    child.expect("Press Ctrl-C two more times within 2 seconds for immediate shutdown")
    child.signal(signal.SIGINT)
    child.expect("Ctrl-C pressed 2/3 times - press 1 more for immediate shutdown")
    child.signal(signal.SIGINT)
    assert child.wait() == 130  # without finish_run: the run in progress was abandoned
    assert "IMMEDIATE SHUTDOWN REQUESTED (3x Ctrl-C)" in child.seen
    assert "✓ GRACEFUL SHUTDOWN COMPLETED" not in child.seen


def test_two_sigints_more_than_two_seconds_apart_stay_graceful(child):
    child.signal(signal.SIGINT)
    child.expect("GRACEFUL SHUTDOWN REQUESTED (Ctrl-C)")
    time.sleep(2.3)
    child.signal(signal.SIGINT)
    child.expect("GRACEFUL SHUTDOWN REQUESTED (Ctrl-C)")  # the count started again
    child.finish_run()
    assert child.wait() == 130
    assert "✓ GRACEFUL SHUTDOWN COMPLETED" in child.seen
    assert not any("2/3" in line or "IMMEDIATE" in line for line in child.seen)


# ---------------------------------------------------------------------------- in process


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def immediate():
    calls = []
    return calls


@pytest.fixture
def controller(clock, immediate):
    return ShutdownController(logging.getLogger("test.shutdown"), clock=clock,
                              on_immediate=lambda: immediate.append(clock.now))


def press(controller, clock, *times, signum=signal.SIGINT):
    for t in times:
        clock.now = t
        controller.handle_signal(signum)


def test_first_signal_requests_a_graceful_stop(controller, clock, immediate, caplog):
    caplog.set_level(logging.INFO)
    assert not controller.requested and controller.reason is None
    press(controller, clock, 0.0)
    assert controller.requested and controller.is_requested() and controller.event.is_set()
    assert controller.reason == "User request"
    assert immediate == []
    messages = [r.getMessage() for r in caplog.records]
    assert messages[1:4] == ["GRACEFUL SHUTDOWN REQUESTED (Ctrl-C)", "Current run will finish processing...",
                             "Press Ctrl-C two more times within 2 seconds for immediate shutdown"]


def test_three_presses_within_the_window_are_immediate(controller, clock, immediate, caplog):
    press(controller, clock, 0.0, 1.5, 3.5)  # each within 2 s of the previous one
    assert immediate == [3.5]
    assert "Ctrl-C pressed 2/3 times - press 1 more for immediate shutdown" in caplog.text
    assert "IMMEDIATE SHUTDOWN REQUESTED (3x Ctrl-C)" in caplog.text


def test_a_gap_longer_than_two_seconds_resets_the_count(controller, clock, immediate, caplog):
    press(controller, clock, 0.0, 1.0, 3.01)
    assert immediate == []
    assert caplog.text.count("GRACEFUL SHUTDOWN REQUESTED") == 2
    press(controller, clock, 5.0)  # exactly 2 s after the previous one still counts
    assert immediate == []
    press(controller, clock, 6.0)
    assert immediate == [6.0]


def test_sigterm_counts_like_sigint_with_its_own_wording(controller, clock, immediate, caplog):
    press(controller, clock, 0.0, 0.5, signum=signal.SIGTERM)
    assert "GRACEFUL SHUTDOWN REQUESTED (SIGTERM)" in caplog.text
    assert "SIGTERM received 2/3 times - send 1 more for immediate shutdown" in caplog.text
    press(controller, clock, 1.0, signum=signal.SIGINT)
    assert immediate == [1.0]
    assert controller.reason == "User request"


def test_request_keeps_the_first_reason_and_wakes_waiters(controller):
    woke = []
    watcher = threading.Thread(target=lambda: woke.append(controller.wait(10)))
    watcher.start()
    assert controller.wait(0.01) is False
    assert controller.request("Lock file removed") is True
    watcher.join(10)
    assert woke == [True]
    assert controller.request("User request") is False
    assert controller.reason == "Lock file removed"
    assert controller.exit_code(0) == shutdown.EXIT_INTERRUPTED == 130


def test_exit_code_passes_through_without_a_request(controller):
    assert controller.exit_code(shutdown.EXIT_FAILURE) == 1
    assert (shutdown.EXIT_OK, shutdown.EXIT_UNEXPECTED) == (0, 2)


def test_completed_banner_names_the_reason(controller, caplog):
    controller.request("Lock file removed")
    controller.log_completed()
    assert "✓ GRACEFUL SHUTDOWN COMPLETED" in caplog.text
    assert "Reason: Lock file removed" in caplog.text


def test_install_uninstall_restore_previous_handlers_and_catch_real_signals(clock, immediate):
    def previous_term(signum, frame):
        raise AssertionError("previous handler must not run while installed")

    old_term = signal.signal(signal.SIGTERM, previous_term)
    old_int = signal.getsignal(signal.SIGINT)
    try:
        controller = ShutdownController(clock=clock, on_immediate=lambda: immediate.append(1))
        with controller:
            assert controller.installed
            assert signal.getsignal(signal.SIGTERM) == controller.handle_signal
            assert signal.getsignal(signal.SIGINT) == controller.handle_signal
            signal.raise_signal(signal.SIGINT)
            assert controller.requested
        assert not controller.installed
        assert signal.getsignal(signal.SIGTERM) is previous_term
        assert signal.getsignal(signal.SIGINT) is old_int
    finally:
        signal.signal(signal.SIGTERM, old_term)


def test_default_immediate_action_is_exit_130():
    script = textwrap.dedent("""
        import signal
        from archiver_resources.shutdown import ShutdownController
        c = ShutdownController(clock=lambda: 0.0)
        for _ in range(3):
            c.handle_signal(signal.SIGINT)
        print("not reached")
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 130
    assert "not reached" not in result.stdout
    assert "IMMEDIATE SHUTDOWN REQUESTED (3x Ctrl-C)" in result.stderr
