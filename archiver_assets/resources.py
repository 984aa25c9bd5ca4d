"""Dagster resources for the archiver's boundaries, built on the plain classes of
``archiver_resources`` (which imports no Dagster).

Every resource reads the operator's legacy-format ``config.yaml`` (path in ``ARCHIVER_CONFIG``)
through ``ArchiverConfigResource``, so the only resource configuration the Dagster UI shows is
that path: credentials (UconDB writer password, SMTP password, Slack token or webhook URL) stay in
the file or in the environment and never reach the UI.
"""

import contextlib
import os
import threading
from pathlib import Path
from typing import Iterator, Optional

from dagster import ConfigurableResource

from archiver_resources import metrics as m

from archiver_resources.archiving import ImportSettings
from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.config import ArchiverConfig, load_config, ucondb_folder_creation
from archiver_resources.fhiclize import load_schema_text
from archiver_resources.notifications import Notifier, email_settings, slack_settings
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


FLUSH_TIMEOUT_SECONDS = 2.0  # the longest a step waits for its metrics at its end


class NotifierResource(ConfigurableResource):
    """Email and Slack alerts as configured in ``reporting``; never raises."""

    settings: ArchiverConfigResource
    host: Optional[str] = None  # the host named in alerts; default: this machine's name

    def notifier(self) -> Notifier:
        config = self.settings.get()
        return Notifier(email=email_settings(config), slack=slack_settings(config),
                        host=self.host)

    def secrets(self) -> list:
        """Every secret of the configuration, for scrubbing text before it is logged."""
        return self.settings.get().secrets()


class MetricsResource(ConfigurableResource):
    """Carbon/Graphite plaintext metrics (``carbon`` section) with the legacy names; a no-op
    sink when ``carbon.enabled`` is false. Sending only queues: archiving never waits on Carbon,
    except for a bounded flush (``flush_timeout`` seconds) at the end of a step."""

    settings: ArchiverConfigResource
    timeout: float = 2.0
    flush_timeout: float = FLUSH_TIMEOUT_SECONDS

    def sink(self) -> m.Metrics:
        section = self.settings.get().carbon
        if not (section.enabled and section.host):
            return m.NullMetrics()
        return m.shared_carbon_sink(section.host, section.port, section.metric_prefix or "", self.timeout)

    def timed_artdaqdb(self, store):
        """``store`` with archive/update/list/export timed under the legacy ArtdaqDBClient names."""
        return m.Timed(store, self.sink(), m.ARTDAQDB_CALLS)

    def timed_ucondb(self, client):
        """``client`` with upload/download/list timed under the legacy UconDBClient names."""
        return m.Timed(client, self.sink(), m.UCONDB_CALLS)

    @contextlib.contextmanager
    def migration_step(self) -> Iterator[m.MigrationCounts]:
        """Counts the step's runs; sends ``migrate.runs_*`` once at the end (also on failure)."""
        counts = m.MigrationCounts()
        try:
            yield counts
        finally:
            sink = self.sink()
            m.send_migration_counts(sink, counts.successes, counts.failures)
            self.flush()

    def send(self, path: str, value: float, timestamp: Optional[float] = None) -> bool:
        return self.sink().send(path, value, timestamp)

    def flush(self) -> bool:
        """Wait at most ``flush_timeout`` seconds for queued metrics (a run worker may exit next)."""
        return self.sink().flush(self.flush_timeout)

    @contextlib.contextmanager
    def flushed(self) -> Iterator[None]:
        """Flush (bounded) when the block ends, whatever happened in it."""
        try:
            yield
        finally:
            self.flush()



def resources_for_config(config_path: Optional[str] = None) -> dict:
    """The resource set the archive assets (and `archive_status`) use, all reading one
    config.yaml; the operations definitions add `notifier`."""
    path = config_path or os.environ.get("ARCHIVER_CONFIG", "config.yaml")
    settings = ArchiverConfigResource(config_path=str(path))
    return {
        "archiver_config": settings,
        "run_records": RunRecordsResource(settings=settings),
        "artdaqdb": ArtdaqDBResource(settings=settings),
        "ucondb": UconDBResource(settings=settings),
        # Carbon timings and counters of the archive assets and of `archive_status`.
        "metrics": MetricsResource(settings=settings),
    }
