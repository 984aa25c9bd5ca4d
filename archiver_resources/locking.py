"""Single-instance lock for the command line (flock on a PID file) and the monitor that stops the
archiver when its lock file is removed. A failed attempt never touches the holder's file.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import Callable, Optional, Union

from archiver_resources.errors import ArchiverError

__all__ = ["InstanceLock", "LockHeldError", "LockMonitor", "LOCK_LOST_REASON"]

LOCK_LOST_REASON = "Lock file removed"
_MAX_PID_BYTES = 64


class LockHeldError(ArchiverError):
    """Another process holds the lock file; try again when it has finished."""

    retryable = True

    def __init__(self, path: Union[str, os.PathLike], pid: Optional[int]):
        self.path = str(path)
        self.pid = pid
        holder = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"Another process may be running. Lock file '{self.path}' is held ({holder}).")


def _read_pid(fd: int) -> Optional[int]:
    try:
        text = os.pread(fd, _MAX_PID_BYTES, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class InstanceLock:
    """Exclusive, non-blocking flock on `path`, holding `<pid>⏎` while held.

    The file is opened without truncation; only after the lock is acquired is it truncated and the
    PID written, so a second instance cannot disturb the running one. Release unlocks and closes;
    the file stays (a leftover file never blocks a start: the kernel drops the flock with the process).
    """

    def __init__(self, path: Union[str, os.PathLike]):
        self.path = Path(path)
        self._fd: Optional[int] = None
        self.pid: Optional[int] = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "InstanceLock":
        if self._fd is not None:
            raise RuntimeError(f"lock {self.path} is already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockHeldError(self.path, holder) from None
            raise
        try:
            pid = os.getpid()
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{pid}\n".encode("ascii"), 0)
            os.fsync(fd)
        except BaseException:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise
        self._fd = fd
        self.pid = pid
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def still_ours(self) -> bool:
        """True while the path is the very file we locked and still holds our PID."""
        fd = self._fd
        if fd is None:
            return False
        try:
            mine = os.fstat(fd)
            on_disk = os.stat(self.path)
            with open(self.path, "rb") as fh:
                content = fh.read(_MAX_PID_BYTES)
        except OSError:
            return False
        same_file = (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)
        return same_file and content.strip() == str(self.pid).encode("ascii")

    def __enter__(self) -> "InstanceLock":
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"InstanceLock({str(self.path)!r}, held={self.held})"


class LockMonitor:
    """Daemon thread checking every `interval` s that the lock file still exists and holds our PID.

    Otherwise it logs `LOCK FILE REMOVED - INITIATING GRACEFUL SHUTDOWN` and calls
    `on_lost("Lock file removed")` once, then stops: deleting the lock file is the documented way to
    stop a running archiver gracefully.
    """

    def __init__(self, lock: InstanceLock, on_lost: Callable[[str], object], interval: float = 1.0,
                 logger: Optional[logging.Logger] = None):
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.lock = lock
        self.on_lost = on_lost
        self.interval = interval
        self.logger = logger or logging.getLogger(__name__)
        self.fired = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "LockMonitor":
        if not self.lock.held:
            raise RuntimeError(f"cannot monitor {self.lock.path}: lock not held")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="LockMonitor", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: Optional[float] = None) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout if timeout is not None else self.interval + 5)

    def check(self) -> bool:
        """One check; fires `on_lost` (once) when the lock file is gone or foreign. True if fired."""
        if self.fired.is_set() or not self.lock.held:
            return False
        if self.lock.still_ours() or not self.lock.held:  # released meanwhile: nothing lost
            return False
        self.fired.set()
        self.logger.warning("LOCK FILE REMOVED - INITIATING GRACEFUL SHUTDOWN")
        try:
            self.on_lost(LOCK_LOST_REASON)
        except Exception:  # the monitor must not die loudly; the caller's handler failed
            self.logger.exception("lock-lost handler failed")
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.lock.held or self.check():  # released: nothing left to watch
                return

    def __enter__(self) -> "LockMonitor":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
