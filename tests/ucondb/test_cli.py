"""The ``python -m archiver_resources.ucondb.server`` command line starts a working server."""

import os
import socket
import subprocess
import sys
import time

import requests

from archiver_resources.ucondb.client import UconDBClient


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_serves_on_loopback_with_password_from_environment(tmp_path):
    port = _free_port()
    secret = "cli-secret-password"
    env = {**os.environ, "UCONDB_PASSWORD": secret}
    command = [sys.executable, "-m", "archiver_resources.ucondb.server",
               "--db", f"sqlite:///{tmp_path / 'cli.db'}", "--port", str(port),
               "--user", "writer", "--create-folder", "sbnd_runs", "--log-level", "info"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}/app"
        deadline = time.monotonic() + 15
        while True:
            try:
                if requests.get(f"{base}/version", timeout=1).text == "3.9.7":
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        with UconDBClient(base, "sbnd_runs", "configuration", user="writer",
                          password=secret) as client:
            client.put_blob(11, b"via cli")
            assert client.get_blob(11).data == b"via cli"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert "127.0.0.1" in output
    assert secret not in output


def test_cli_refuses_missing_password_variable(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "UCONDB_NOPE"}
    result = subprocess.run(
        [sys.executable, "-m", "archiver_resources.ucondb.server", "--db",
         f"sqlite:///{tmp_path / 'x.db'}", "--user", "w", "--password-env", "UCONDB_NOPE"],
        env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "UCONDB_NOPE is not set" in result.stderr
