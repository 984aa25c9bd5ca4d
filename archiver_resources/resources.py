"""Dagster resources for the archiver's boundaries, built on the plain classes of this package.

Every resource reads the operator's legacy-format ``config.yaml`` (path in ``ARCHIVER_CONFIG``)
through ``ArchiverConfigResource``, so the only resource configuration the Dagster UI shows is
that path: credentials stay in the file or in the environment and never reach the UI.
"""

import contextlib
import os
import threading
from pathlib import Path
from typing import Iterator, Optional

from dagster import ConfigurableResource

from archiver_resources.archiving import ImportSettings
from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.config import ArchiverConfig, load_config, ucondb_folder_creation
from archiver_resources.fhiclize import load_schema_text
from archiver_resources.redaction import redact_uri
from archiver_resources.ucondb.client import UconDBClient

_CONFIG_CACHE: dict = {}
_CONFIG_LOCK = threading.Lock()


def _cached_config(path: str) -> ArchiverConfig:
    """Load config.yaml once per (path, mtime): a run touches it several times."""
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        mtime = None
    with _CONFIG_LOCK:
        cached = _CONFIG_CACHE.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        config = load_config(path)
        _CONFIG_CACHE[path] = (mtime, config)
        return config


class ArchiverConfigResource(ConfigurableResource):
    """The legacy-format config.yaml shared by every other archiver resource."""

    config_path: str

    def get(self) -> ArchiverConfig:
        return _cached_config(self.config_path)


class RunRecordsResource(ConfigurableResource):
    """The run-records directory on disk and the rules that make a run ready for import."""

    settings: ArchiverConfigResource

    @property
    def run_records_dir(self) -> Path:
        return Path(self.settings.get().source_files.run_records_dir)

    def import_settings(self) -> ImportSettings:
        config = self.settings.get()
        return ImportSettings(
            enabled=config.fhiclize_generate,
            schema_text=load_schema_text(config.artdaq_db.fcl_conf_dir),
            finished_after_seconds=config.source_files.finished_after_seconds,
            max_file_bytes=config.source_files.max_file_bytes,
        )


class ArtdaqDBResource(ConfigurableResource):
    """artdaqDB, the intermediate store (filesystemdb, MongoDB, conftoolp or bulk tools)."""

    settings: ArchiverConfigResource

    def describe(self) -> str:
        return redact_uri(self.settings.get().artdaq_db.database_uri)

    @contextlib.contextmanager
    def open(self) -> Iterator[object]:
        section = self.settings.get().artdaq_db
        store = open_artdaqdb(section.database_uri, use_tools=section.use_tools,
                              remote_host=section.remote_host,
                              tool_timeout=section.tool_timeout_seconds,
                              backend=section.backend)
        try:
            yield store
        finally:
            store.close()


class UconDBResource(ConfigurableResource):
    """UconDB, the long-term blob store, reached over its HTTP API."""

    settings: ArchiverConfigResource

    def describe(self) -> str:
        section = self.settings.get().ucon_db
        return f"{redact_uri(section.server_url)} {section.folder_name}/{section.object_name}"

    @property
    def on_existing(self) -> str:
        return self.settings.get().app.on_existing

    @contextlib.contextmanager
    def client(self) -> Iterator[UconDBClient]:
        section = self.settings.get().ucon_db
        client = UconDBClient(
            section.server_url, section.folder_name, section.object_name,
            user=section.writer_user, password=section.writer_password,
            timeout=float(section.timeout_seconds), retries=section.retries,
            verify_tls=section.verify_tls, ca_bundle=section.ca_bundle,
            create_missing_folder=ucondb_folder_creation(section),
        )
        try:
            yield client
        finally:
            client.close()


def resources_for_config(config_path: Optional[str] = None) -> dict:
    """The resource set of the code location, all reading one config.yaml."""
    path = config_path or os.environ.get("ARCHIVER_CONFIG", "config.yaml")
    settings = ArchiverConfigResource(config_path=str(path))
    return {
        "archiver_config": settings,
        "run_records": RunRecordsResource(settings=settings),
        "artdaqdb": ArtdaqDBResource(settings=settings),
        "ucondb": UconDBResource(settings=settings),
    }
