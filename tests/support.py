"""Helpers shared by the test packages (plain functions and classes; each conftest wraps them in
its fixtures): a free loopback port, the pipeline tests' legacy-format config.yaml, a running
local UconDB whose password is in the environment, and a loopback Carbon listener.

The config.yaml writer itself lives in ``archiver_resources.testing.legacy_config``: the
benchmarks use it too, and bench/ imports nothing from tests/."""

from __future__ import annotations

import re
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from archiver_resources.testing.legacy_config import write_legacy_config
from archiver_resources.ucondb.testing import start_local_ucondb

FOLDER = "test_runs"
PASSWORD_ENV = "TEST_UCONDB_PASSWORD"


def free_port() -> int:
    """A loopback TCP port nobody listens on (at the time of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(root: Path, ucondb, *, run_records: Path, artdaqdb_uri: str,
                 extra_app: str = "", password_env: str = PASSWORD_ENV,
                 timeout_seconds: float = 5) -> Path:
    """The pipeline tests' config.yaml (folder ``test_runs``, one retry) under ``root``."""
    return write_legacy_config(root, ucondb, run_records=run_records, artdaqdb_uri=artdaqdb_uri,
                               folder=FOLDER, password_env=password_env,
                               timeout_seconds=timeout_seconds, retries=1, app=extra_app)


@contextmanager
def running_ucondb(root: Path, monkeypatch=None, *, password_env: str = PASSWORD_ENV,
                   **options) -> Iterator:
    """A local UconDB server under ``root`` (``options`` go to start_local_ucondb), its writer
    password in ``password_env`` when ``monkeypatch`` is given; stopped at the end, also when a
    test stopped it already (an outage simulation)."""
    server = start_local_ucondb(root, **options)
    if monkeypatch is not None:
        monkeypatch.setenv(password_env, server.password)
    try:
        yield server
    finally:
        try:
            server.stop()
        except Exception:  # noqa: BLE001 (already stopped)
            pass


class CarbonListener:
    """A loopback TCP server collecting Carbon plaintext lines (``.data``, ``.lines()``) and
    counting connections."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.data = bytearray()
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
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

    def lines(self, count: int = 0, timeout: float = 5.0) -> list:
        """The lines received so far; with ``count``, once that many arrived (or at timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                lines = bytes(self.data).decode().splitlines()
            if len(lines) >= count or time.monotonic() >= deadline:
                return lines
            time.sleep(0.01)

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    close = stop


def failure_lines(lines, run: int) -> list:
    """The CLI's ``✗ Run N failed…`` lines for ``run``: ``✗ Run N failed: cause`` or, when the
    error's type is known, ``✗ Run N failed (stage, ErrorType): cause``."""
    pattern = re.compile(rf"✗ Run {run} failed(?: \([a-z-]+, [A-Za-z_.]+\))?: ")
    return [line for line in lines if pattern.search(line)]


def sigkill_when_paused(script: str, marker: Path, timeout: float = 60.0) -> None:
    """Run ``script`` in a child Python, wait until it creates ``marker`` (its pause point),
    then SIGKILL it: a crash at exactly that point."""
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + timeout
        while not marker.exists():
            assert proc.poll() is None, "archiver exited before reaching the pause"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
