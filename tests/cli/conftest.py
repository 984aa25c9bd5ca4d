"""Fixtures for the command-line tests: generated run records, a filesystemdb artdaqDB, a local
UconDB server, a legacy-format config.yaml and a temporary DAGSTER_HOME (set in the
environment, so ``DagsterInstance.get()``, the CLI and its workers all use it).

Everything lives under ``fast_root``: a directory in /dev/shm when it is a writable tmpfs, else
pytest's tmp_path. Dagster's SQLite storage commits twice per event; on this CI VM's disk a
commit costs ~18 ms against 0.1 ms on tmpfs, which makes the difference between minutes and
seconds for these end-to-end tests. Timing on a real disk is bench/bench_reconcile.py's job.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from archiver_resources.testing.legacy_config import write_legacy_config
from archiver_resources.ucondb.client import UconDBClient
from tests.support import PASSWORD_ENV, running_ucondb

FOLDER = "cli_runs"
IMPORT = dg.AssetKey("artdaqdb_config")
MIGRATE = dg.AssetKey("ucondb_blob")
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class CliEnv:
    root: Path
    run_records: Path
    artdaqdb_uri: str
    config_path: Path
    dagster_home: Path
    ucondb: object
    capsys: object = None
    app: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    extra_yaml: str = ""  # further top-level sections (reporting, carbon)

    @property
    def work_dir(self) -> Path:
        return self.root / "work"

    @property
    def lock_file(self) -> Path:
        return self.work_dir / ".archiver.lock"

    def write_config(self, **app) -> Path:
        """Rewrite config.yaml; keyword arguments become ``app`` keys (``max_file_bytes`` and
        ``finished_after_seconds`` go to ``source_files``)."""
        for key in ("max_file_bytes", "finished_after_seconds"):
            if key in app:
                self.source[key] = app.pop(key)
        self.app.update(app)
        write_legacy_config(self.root, self.ucondb, run_records=self.run_records,
                            artdaqdb_uri=self.artdaqdb_uri, folder=FOLDER,
                            password_env=PASSWORD_ENV, timeout_seconds=5, retries=0,
                            app=self.app, source={"finished_after_seconds": 3600, **self.source},
                            extra_yaml=self.extra_yaml)
        return self.config_path

    # -- running the command line ------------------------------------------------------------

    def main(self, *args: str) -> tuple:
        """``main([config, *args])`` in-process: (exit code, captured stdout)."""
        from archiver_assets.cli import main

        if self.capsys is not None:
            self.capsys.readouterr()
        code = main([str(self.config_path), *args])
        out = self.capsys.readouterr().out if self.capsys is not None else ""
        return code, out

    def spawn(self, *args: str, **kw) -> subprocess.Popen:
        """The console entry point as a real process (``python -m archiver_assets.cli``)."""
        return subprocess.Popen([sys.executable, "-m", "archiver_assets.cli",
                                 str(self.config_path), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=dict(os.environ), cwd=str(REPO_ROOT), **kw)

    # -- looking at the results --------------------------------------------------------------

    def materialized(self, asset_key=IMPORT) -> set:
        from archiver_assets.state.partition_status import read_partition_status

        with dg.DagsterInstance.get() as instance:
            return set(read_partition_status(instance, asset_key).materialized)

    def status(self, asset_key=IMPORT):
        from archiver_assets.state.partition_status import read_partition_status

        with dg.DagsterInstance.get() as instance:
            return read_partition_status(instance, asset_key)

    def partitions(self) -> list:
        with dg.DagsterInstance.get() as instance:
            return list(instance.get_dynamic_partitions("runs"))

    def dagster_runs(self) -> list:
        with dg.DagsterInstance.get() as instance:
            return list(instance.get_runs())

    def client(self) -> UconDBClient:
        return UconDBClient(self.ucondb.base_url, FOLDER, "configuration",
                            user=self.ucondb.user, password=self.ucondb.password, timeout=5,
                            retries=0)

    def ucondb_runs(self) -> set:
        with self.client() as client:
            return client.existing_runs()

    def artdaqdb_runs(self) -> set:
        from archiver_resources.artdaqdb import open_artdaqdb

        with open_artdaqdb(self.artdaqdb_uri) as store:
            return set(store.archived_runs())


def make_env(tmp_path: Path, ucondb, monkeypatch) -> CliEnv:
    run_records = tmp_path / "run_records"
    run_records.mkdir()
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    env = CliEnv(root=tmp_path, run_records=run_records,
                 artdaqdb_uri=f"filesystemdb://{tmp_path / 'artdaqdb' / 'cli_db_archive'}",
                 config_path=tmp_path / "config.yaml", dagster_home=home, ucondb=ucondb)
    env.write_config(batch_size=5, parallel_workers=2)
    return env


@pytest.fixture
def fast_root(tmp_path):
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    root = Path(tempfile.mkdtemp(prefix="archiver-cli-test-", dir=shm))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ucondb_server(fast_root, monkeypatch):
    with running_ucondb(fast_root / "ucondb", monkeypatch, folder=FOLDER,
                        testing_faults=True) as server:
        yield server


@pytest.fixture
def cli_env(fast_root, ucondb_server, monkeypatch, capsys):
    env = make_env(fast_root, ucondb_server, monkeypatch)
    env.capsys = capsys
    return env
