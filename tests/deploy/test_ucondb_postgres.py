"""The local UconDB server in PostgreSQL mode, on the session's real server: the client round trip
(put, get, list, duplicate key, override, deduplicated blobs), concurrent writers, data that
survives a restart, and the console script started the way deploy/ucondb-local.service starts it
(database password from PGPASSWORD, never on the command line)."""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from archiver_resources.errors import DuplicateKeyError
from archiver_resources.ucondb.client import UconDBClient
from archiver_resources.ucondb.testing import start_local_ucondb
from tests.pipeline.test_daemon_webserver import _free_port

FOLDER = "sbnd_runs"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.postgres


def _client(server) -> UconDBClient:
    return UconDBClient(server.base_url, FOLDER, "configuration", user=server.user,
                        password=server.password, timeout=30, retries=0)


def test_client_round_trip_on_postgres(tmp_path, postgres_server, postgres_db):
    url = postgres_server.url(postgres_db)
    with start_local_ucondb(tmp_path, db_url=url, folder=FOLDER) as server, \
            _client(server) as client:
        big = os.urandom(17 * 1024 * 1024)  # above the in-memory spool: the temp-file path
        first = client.put_blob(101, big)
        assert client.get_blob(101).data == big
        assert client.put_blob(102, big).data_key == first.data_key  # content-deduplicated
        small = client.put_blob(103, b"run 103\n")
        assert small.data_key != first.data_key
        with pytest.raises(DuplicateKeyError):
            client.put_blob(101, b"other")
        assert client.get_blob(101).data == big  # the duplicate did not overwrite
        replaced = client.put_blob(103, b"run 103, new version\n", override=True)
        assert replaced.id > small.id
        assert client.get_blob(103).data == b"run 103, new version\n"
        assert client.existing_runs() == {101, 102, 103}

    # Same database, new server process state: everything is still there.
    with start_local_ucondb(tmp_path / "again", db_url=url, folder=FOLDER) as server, \
            _client(server) as client:
        assert client.existing_runs() == {101, 102, 103}
        assert client.get_blob(102).data == big


def test_concurrent_writers_on_postgres(tmp_path, postgres_server, postgres_db):
    with start_local_ucondb(tmp_path, db_url=postgres_server.url(postgres_db),
                            folder=FOLDER) as server:
        def put(run):
            with _client(server) as client:
                return client.put_blob(run, f"run {run}\n".encode() * 1000).id

        with ThreadPoolExecutor(8) as pool:
            versions = list(pool.map(put, range(200, 240)))
        assert len(set(versions)) == 40
        with _client(server) as client:
            assert client.existing_runs() == set(range(200, 240))
            assert client.get_blob(217).data == b"run 217\n" * 1000


def test_console_script_with_password_from_pgpassword(tmp_path, postgres_server, postgres_db):
    """ExecStart of deploy/ucondb-local.service: the URL carries no password; libpq reads it."""
    db_url = (f"postgresql+psycopg2://{postgres_server.username}@{postgres_server.host}:"
              f"{postgres_server.port}/{postgres_db}")
    port = _free_port()
    env = dict(os.environ, PGPASSWORD=postgres_server.password, UCONDB_PASSWORD="s3cret-writer")
    log = tmp_path / "ucondb.log"
    proc = subprocess.Popen(
        [str(BIN / "ucondb-local-server"), "--db", db_url, "--host", "127.0.0.1", "--port",
         str(port), "--user", "archiver", "--create-folder", FOLDER],
        env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}/app"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")
            try:
                if requests.get(f"{base}/version", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.3)
        with UconDBClient(base, FOLDER, "configuration", user="archiver",
                          password="s3cret-writer", timeout=10, retries=0) as client:
            client.put_blob(7, b"seven\n")
            assert client.get_blob(7).data == b"seven\n"
            assert client.existing_runs() == {7}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    text = log.read_text(errors="replace")
    assert postgres_server.password not in text and "s3cret-writer" not in text
