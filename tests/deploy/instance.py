"""Helpers shared by the deployment and UI tests: a DAGSTER_HOME rendered from a deploy/ template,
and `dagster-daemon` + `dagster-webserver` started as real processes on loopback."""

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Optional

import requests

from archiver_resources.testing.dagster_home import DEPLOY, ROOT, render_home  # noqa: F401
from tests.pipeline.test_daemon_webserver import _free_port, _wait

BIN = Path(sys.executable).parent


def dagster_cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    """Run the ``dagster`` CLI of this venv (e.g. ``instance concurrency set ucondb 2``)."""
    out = subprocess.run([str(BIN / "dagster"), *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, f"dagster {' '.join(args)} failed: {out.stderr[-2000:]}"
    return out


class DagsterServices:
    """The running daemon and webserver: ``port``, ``procs`` (for ``_wait``) and the log files."""

    def __init__(self, port: int, procs: List[subprocess.Popen], logs: Path):
        self.port = port
        self.procs = procs
        self.logs = logs
        self.url = f"http://127.0.0.1:{port}"

    def wait(self, predicate, timeout: float, what: str):
        return _wait(predicate, timeout, what, self.procs)


@contextlib.contextmanager
def dagster_services(env: dict, logs: Path, port: Optional[int] = None,
                     workspace: Path = ROOT / "workspace.yaml") -> Iterator[DagsterServices]:
    """Start ``dagster-daemon run`` and ``dagster-webserver`` (127.0.0.1) with ``env``; wait until
    the webserver answers; stop both process groups on exit and print the log tails."""
    port = port or _free_port()
    logs.mkdir(parents=True, exist_ok=True)
    # Create the instance's tables first: daemon and webserver starting together on a fresh
    # instance race to create them ("table alembic_version already exists" on SQLite).
    dagster_cli(env, "instance", "migrate")
    procs: List[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], cwd=ROOT, env=env,
            stdout=open(logs / "daemon.log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True))
        procs.append(subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1",
             "-p", str(port)], cwd=ROOT, env=env, stdout=open(logs / "webserver.log", "wb"),
            stderr=subprocess.STDOUT, start_new_session=True))
        services = DagsterServices(port, procs, logs)
        services.wait(lambda: requests.get(f"{services.url}/server_info", timeout=2).ok, 90,
                      "the webserver")
        yield services
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=10)
        for name in ("daemon.log", "webserver.log"):
            path = logs / name
            if path.exists():
                print(f"==== {name} (tail) ====\n{path.read_text(errors='replace')[-3000:]}")


def copy_dev_home(home: Path) -> Path:
    """A DAGSTER_HOME with the repository's development (SQLite) dagster.yaml."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    return home
