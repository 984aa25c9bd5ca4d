"""The local UconDB server on PostgreSQL (opt-in: set UCONDB_TEST_POSTGRES_URL to a scratch DB)."""

import os
import uuid

import pytest

from archiver_resources.errors import DuplicateKeyError
from archiver_resources.ucondb.client import UconDBClient
from archiver_resources.ucondb.testing import start_local_ucondb

POSTGRES_URL = os.environ.get("UCONDB_TEST_POSTGRES_URL")


@pytest.mark.skipif(not POSTGRES_URL, reason="UCONDB_TEST_POSTGRES_URL not set")
def test_put_get_dedup_and_duplicate_on_postgres(tmp_path):
    folder = f"t_{uuid.uuid4().hex[:12]}"
    with start_local_ucondb(tmp_path, db_url=POSTGRES_URL, folder=folder) as server, \
            UconDBClient(server.base_url, folder, "configuration", user=server.user,
                         password=server.password, timeout=30) as client:
        big = os.urandom(17 * 1024 * 1024)  # above the in-memory spool: temp-file path
        first = client.put_blob(1, big)
        assert client.get_blob(1).data == big
        assert client.put_blob(2, big).data_key == first.data_key
        twin = client.put_blob(3, b"\x02\x03\x02")
        assert client.put_blob(4, b"\x01\x05\x01").data_key != twin.data_key
        with pytest.raises(DuplicateKeyError):
            client.put_blob(1, b"other")
        assert client.existing_runs() == {1, 2, 3, 4}
