"""A UconDB folder that does not exist, through the command line: without the opt-in the
migration fails naming the folder and how to create it, and nothing is created; with
``--create-ucondb-folder`` the first upload creates it and the runs are archived."""

import os

import pytest

from archiver_resources.config import CREATE_UCONDB_FOLDER_ENV
from archiver_resources.samples import generate_run_records
from archiver_resources.ucondb.testing import start_local_ucondb
from tests.cli.conftest import FOLDER, IMPORT, MIGRATE, make_env
from tests.cli.test_processing import messages


@pytest.fixture
def env_without_folder(fast_root, monkeypatch, capsys):
    server = start_local_ucondb(fast_root / "ucondb", folder=None)
    monkeypatch.setenv("TEST_UCONDB_PASSWORD", server.password)
    monkeypatch.delenv(CREATE_UCONDB_FOLDER_ENV, raising=False)
    env = make_env(fast_root, server, monkeypatch)
    env.capsys = capsys
    try:
        yield env
    finally:
        server.stop()


def test_missing_folder_fails_with_how_to_then_the_flag_creates_it(env_without_folder):
    env = env_without_folder
    storage = env.ucondb.storage
    generate_run_records(env.run_records, [1001, 1002], profile="small")
    code, out = env.main()
    assert code == 1, out
    failure = next(line for line in messages(out)
                   if line.startswith("✗ Run 1001 failed (migration, UconDBError): "))
    assert f"UconDB folder '{FOLDER}' does not exist" in failure
    assert "--create-ucondb-folder" in failure and "ucon_db.create_folder: true" in failure
    assert env.materialized(IMPORT) == {1001, 1002} and env.materialized(MIGRATE) == set()
    assert storage.folder(FOLDER) is None  # never created without the opt-in

    code, out = env.main("--retry-failed-migrate", "--create-ucondb-folder")
    assert code == 0, out
    assert any("is created by the first upload" in line for line in messages(out))
    assert storage.folder(FOLDER) is not None
    assert env.materialized(MIGRATE) == env.ucondb_runs() == {1001, 1002}
    assert CREATE_UCONDB_FOLDER_ENV not in os.environ  # the switch ends with the invocation
