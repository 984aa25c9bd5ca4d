"""Fixtures of the UconDB tests: a real local UconDB server on a free loopback port.

Other test packages can reuse them with ``from tests.ucondb.conftest import ucondb_server``, or
start a server with ``tests.support.running_ucondb`` (which can also put its password in the
environment).
"""

import pytest

from archiver_resources.ucondb.client import UconDBClient
from tests.support import running_ucondb


@pytest.fixture
def ucondb_server(tmp_path):
    """A running local UconDB (folder ``sbnd_runs``, digest auth, random password)."""
    with running_ucondb(tmp_path / "ucondb") as server:
        yield server


@pytest.fixture
def faulty_ucondb(tmp_path):
    """A local UconDB with test-only fault injection (``server.faults``)."""
    with running_ucondb(tmp_path / "ucondb", testing_faults=True) as server:
        yield server


@pytest.fixture
def ucondb_client(ucondb_server):
    """A client of ``sbnd_runs/configuration`` on the local server, with writer credentials."""
    with UconDBClient(ucondb_server.base_url, ucondb_server.folder, "configuration",
                      user=ucondb_server.user, password=ucondb_server.password,
                      timeout=5.0, retries=2, backoff_factor=0.01) as client:
        yield client
