"""The deployment shape: `dagster-daemon` and `dagster-webserver` as real processes on a temporary
DAGSTER_HOME; new run directories dropped in are archived by the daemon's sensor, and partition
status and check results are read back through the webserver's GraphQL endpoint."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from archiver_resources.samples import generate_run_records

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow

STATUS_QUERY = """
query {
  assetNodeOrError(assetKey: {path: ["ucondb_blob"]}) {
    __typename
    ... on AssetNode {
      assetPartitionStatuses {
        __typename
        ... on DefaultPartitionStatuses { materializedPartitions failedPartitions }
      }
    }
  }
}"""

CHECK_QUERY = """
query($name: String!, $asset: [String!]!) {
  assetCheckExecutions(assetKey: {path: $asset}, checkName: $name, limit: 100) {
    status partition evaluation { success partition }
  }
}"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str, variables=None) -> dict:
    response = requests.post(f"http://127.0.0.1:{port}/graphql",
                             json={"query": query, "variables": variables or {}}, timeout=30)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def _wait(predicate, timeout: float, what: str, procs):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.poll() is None, f"{proc.args[0]} exited early ({proc.returncode})"
        try:
            last = predicate()
            if last:
                return last
        except (requests.RequestException, KeyError, TypeError) as error:
            last = error
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def test_daemon_sensor_archives_new_runs_visible_through_graphql(archive_env, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = dict(os.environ, DAGSTER_HOME=str(home), ARCHIVER_CONFIG=str(archive_env.config_path),
               ARCHIVER_SENSOR_INTERVAL_SECONDS="3", PYTHONUNBUFFERED="1")
    port = _free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    # Create the instance's tables first: daemon and webserver starting together on a fresh
    # SQLite home race to create them ("table alembic_version already exists").
    subprocess.run([str(BIN / "dagster"), "instance", "migrate"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    procs = []
    try:
        procs.append(subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")], cwd=ROOT,
            env=env, stdout=open(logs / "daemon.log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True))
        procs.append(subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1",
             "-p", str(port)], cwd=ROOT, env=env, stdout=open(logs / "webserver.log", "wb"),
            stderr=subprocess.STDOUT, start_new_session=True))
        _wait(lambda: requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok,
              90, "the webserver", procs)

        runs = ["5001", "5002", "5003"]
        generate_run_records(archive_env.run_records, [int(r) for r in runs])

        def archived():
            node = _graphql(port, STATUS_QUERY)["assetNodeOrError"]
            statuses = node["assetPartitionStatuses"]
            return sorted(statuses["materializedPartitions"]) == runs and statuses

        statuses = _wait(archived, 240, "the daemon to archive the runs", procs)
        assert statuses["failedPartitions"] == []

        def checks_passed():
            executions = _graphql(port, CHECK_QUERY, {"name": "md5_round_trip",
                                                      "asset": ["ucondb_blob"]})
            # Per run; a range run (the sensor's, when one tick found several runs) also
            # records its step's summary, without a partition.
            passed = {e["partition"] for e in executions["assetCheckExecutions"]
                      if e["status"] == "SUCCEEDED" and e["evaluation"]["success"]
                      and e["partition"] is not None}
            return passed == set(runs)

        _wait(checks_passed, 60, "the MD5 check results", procs)
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
            text = (logs / name).read_text(errors="replace")
            print(f"==== {name} (tail) ====\n{text[-3000:]}")
