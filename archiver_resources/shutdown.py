"""Graceful shutdown for long-running commands: SIGINT and SIGTERM request a stop after the current
run (three signals within 2 s exit at once), plus the process exit codes.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Callable, Iterable, Optional

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNEXPECTED",
    "IMMEDIATE_PRESSES",
    "PRESS_WINDOW_SECONDS",
    "ShutdownController",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_UNEXPECTED = 2
EXIT_INTERRUPTED = 130

PRESS_WINDOW_SECONDS = 2.0
IMMEDIATE_PRESSES = 3
USER_REQUEST = "User request"
_BANNER_RULE = "=" * 70
_SIGNAL_LABELS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


def _flush_and_exit(code: int = EXIT_INTERRUPTED) -> None:
    """Default immediate exit: flush what we can, then leave without running cleanup (as legacy)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:
            pass
    os._exit(code)


class ShutdownController:
    """Turns SIGINT/SIGTERM into a shutdown request other threads can watch.

    First signal: log the banner, set `requested` with reason `User request`. Each further signal
    within 2 s of the previous one counts; the third calls `on_immediate()` (default `os._exit(130)`).
    A longer gap starts the count again. `request(reason)` asks for a stop from code (lock monitor).
    Use `install()`/`uninstall()` or `with ShutdownController(...)` (main thread only).
    """

    def __init__(self, logger: Optional[logging.Logger] = None,
                 clock: Callable[[], float] = time.monotonic,
                 on_immediate: Optional[Callable[[], object]] = None,
                 signals: Iterable[int] = (signal.SIGINT, signal.SIGTERM)):
        self.logger = logger or logging.getLogger(__name__)
        self.clock = clock
        self.on_immediate = on_immediate or _flush_and_exit
        self.signals = tuple(signals)
        self.event = threading.Event()
        self.reason: Optional[str] = None
        self._presses = 0
        self._last_press: Optional[float] = None
        self._previous: dict[int, object] = {}
        self._lock = threading.Lock()

    # -- state ---------------------------------------------------------------------------------

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def is_requested(self) -> bool:
        return self.event.is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until a shutdown is requested or `timeout` passes; True if requested."""
        return self.event.wait(timeout)

    def request(self, reason: str) -> bool:
        """Request a graceful shutdown; the first reason is kept. True if this call requested it."""
        with self._lock:
            if self.event.is_set():
                return False
            self.reason = reason
            self.event.set()
        self.logger.warning("Graceful shutdown requested: %s", reason)
        return True

    def exit_code(self, code: int) -> int:
        """The process exit code: 130 after a shutdown request, whatever the stages returned."""
        return EXIT_INTERRUPTED if self.requested else code

    def log_completed(self) -> None:
        """The final banner of a graceful stop."""
        self.logger.warning(_BANNER_RULE)
        self.logger.warning("✓ GRACEFUL SHUTDOWN COMPLETED")
        self.logger.warning("Reason: %s", self.reason or USER_REQUEST)
        self.logger.warning(_BANNER_RULE)

    # -- signals -------------------------------------------------------------------------------

    def handle_signal(self, signum: int, frame: Optional[FrameType] = None) -> None:
        """The signal handler (public so tests and embedders can drive it without a real signal)."""
        label = _SIGNAL_LABELS.get(signum, signal.Signals(signum).name)
        now = self.clock()
        if self._last_press is None or now - self._last_press > PRESS_WINDOW_SECONDS:
            self._presses = 0
        self._presses += 1
        self._last_press = now
        if self._presses == 1:
            self._first_signal(label)
        elif self._presses < IMMEDIATE_PRESSES:
            more = IMMEDIATE_PRESSES - self._presses
            verb, ask = ("pressed", "press") if label == "Ctrl-C" else ("received", "send")
            self.logger.warning("%s %s %d/%d times - %s %d more for immediate shutdown",
                                label, verb, self._presses, IMMEDIATE_PRESSES, ask, more)
        else:
            self.logger.critical("IMMEDIATE SHUTDOWN REQUESTED (%dx %s)", IMMEDIATE_PRESSES, label)
            self.on_immediate()

    def _first_signal(self, label: str) -> None:
        self.logger.warning(_BANNER_RULE)
        self.logger.warning("GRACEFUL SHUTDOWN REQUESTED (%s)", label)
        self.logger.warning("Current run will finish processing...")
        self.logger.warning("Press Ctrl-C two more times within 2 seconds for immediate shutdown")
        self.logger.warning(_BANNER_RULE)
        with self._lock:
            if not self.event.is_set():
                self.reason = USER_REQUEST
                self.event.set()

    def install(self) -> "ShutdownController":
        """Install the handlers, remembering the previous ones (main thread only)."""
        if self._previous:
            return self
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self.handle_signal)
        return self

    def uninstall(self) -> None:
        """Restore the handlers that were in place before `install()`."""
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def __enter__(self) -> "ShutdownController":
        return self.install()

    def __exit__(self, *exc_info: object) -> None:
        self.uninstall()
