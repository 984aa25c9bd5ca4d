"""Fixtures for the Dagster pipeline tests: generated run records, a local UconDB server, a
filesystemdb store and a legacy-format config.yaml tying them together (tests/support.py)."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import FOLDER, running_ucondb, write_config


@dataclass
class ArchiveEnv:
    root: Path
    run_records: Path
    artdaqdb_uri: str
    config_path: Path
    ucondb: object

    def definitions(self, **kw):
        from archiver_assets.definitions import build_definitions

        return build_definitions(str(self.config_path), **kw)


@pytest.fixture
def ucondb_server(tmp_path, monkeypatch):
    with running_ucondb(tmp_path / "ucondb", monkeypatch, folder=FOLDER,
                        testing_faults=True) as server:
        yield server


@pytest.fixture
def archive_env(tmp_path, ucondb_server):
    run_records = tmp_path / "run_records"
    run_records.mkdir()
    uri = f"filesystemdb://{tmp_path / 'artdaqdb' / 'test_db_archive'}"
    config = write_config(tmp_path, ucondb_server, run_records=run_records, artdaqdb_uri=uri)
    return ArchiveEnv(root=tmp_path, run_records=run_records, artdaqdb_uri=uri,
                      config_path=config, ucondb=ucondb_server)
