"""Fixtures for the Dagster pipeline tests: generated run records, a local UconDB server, a
filesystemdb store and a legacy-format config.yaml tying them together."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from archiver_resources.fhiclize import default_schema_text
from archiver_resources.ucondb.testing import start_local_ucondb

FOLDER = "test_runs"


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


def write_config(root: Path, ucondb, *, run_records: Path, artdaqdb_uri: str,
                 extra_app: str = "", password_env: str = "TEST_UCONDB_PASSWORD",
                 timeout_seconds: float = 5) -> Path:
    fcl_conf = root / "fcl_conf"
    fcl_conf.mkdir(parents=True, exist_ok=True)
    (fcl_conf / "schema.fcl").write_text(default_schema_text())
    config = root / "config.yaml"
    config.write_text(f"""
app:
  work_dir: "{root / 'work'}"
{extra_app}
source_files:
  run_records_dir: "{run_records}"
  finished_after_seconds: 3600
artdaq_db:
  fcl_conf_dir: "{fcl_conf}"
  database_uri: "{artdaqdb_uri}"
ucon_db:
  server_url: "{ucondb.base_url}"
  folder_name: {FOLDER}
  object_name: configuration
  timeout_seconds: {timeout_seconds}
  retries: 1
  writer_user: "{ucondb.user}"
  writer_password: "${{{password_env}}}"
""")
    return config


@pytest.fixture
def ucondb_server(tmp_path, monkeypatch):
    server = start_local_ucondb(tmp_path / "ucondb", folder=FOLDER, testing_faults=True)
    monkeypatch.setenv("TEST_UCONDB_PASSWORD", server.password)
    try:
        yield server
    finally:
        try:
            server.stop()
        except Exception:  # a test may have stopped it already (outage simulation)
            pass


@pytest.fixture
def archive_env(tmp_path, ucondb_server):
    run_records = tmp_path / "run_records"
    run_records.mkdir()
    uri = f"filesystemdb://{tmp_path / 'artdaqdb' / 'test_db_archive'}"
    config = write_config(tmp_path, ucondb_server, run_records=run_records, artdaqdb_uri=uri)
    return ArchiveEnv(root=tmp_path, run_records=run_records, artdaqdb_uri=uri,
                      config_path=config, ucondb=ucondb_server)
