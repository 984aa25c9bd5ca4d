"""Dagster resources for operations: alerts (``NotifierResource``) and Carbon metrics
(``MetricsResource``), both reading the legacy config.yaml through ``ArchiverConfigResource``.

Secrets (SMTP password, Slack token or webhook URL) come from config.yaml, usually as
``${VAR}`` references to the environment; the only resource field the UI shows is the config path.
"""

import contextlib
import functools
import threading
from typing import Iterator, Optional

from dagster import ConfigurableResource

from archiver_resources import metrics as m
from archiver_resources.config import ArchiverConfig
from archiver_resources.notifications import EmailSettings, Notifier, SlackSettings
from archiver_resources.resources import ArchiverConfigResource

FLUSH_TIMEOUT_SECONDS = 2.0  # the longest a step waits for its metrics at its end

_SINKS: dict = {}
_SINKS_LOCK = threading.Lock()


def email_settings(config: ArchiverConfig) -> Optional[EmailSettings]:
    """``reporting.email`` as notification settings, or None when disabled."""
    section = config.reporting.email
    if not section.enabled:
        return None
    return EmailSettings(recipient_email=section.recipient_email or "",
                         sender_email=section.sender_email or "",
                         smtp_host=section.smtp_host or "", smtp_port=section.smtp_port,
                         smtp_use_tls=section.smtp_use_tls, smtp_user=section.smtp_user,
                         smtp_password=section.smtp_password)


def slack_settings(config: ArchiverConfig) -> Optional[SlackSettings]:
    """``reporting.slack`` as notification settings, or None when disabled."""
    section = config.reporting.slack
    if not section.enabled:
        return None
    return SlackSettings(channel=section.channel or "", bot_token=section.bot_token,
                         webhook_url=section.webhook_url,
                         mention_users=section.mention_users or "")


def alerts_enabled(config: ArchiverConfig) -> bool:
    """True when at least one alert channel (email, Slack) is enabled."""
    return config.reporting.email.enabled or config.reporting.slack.enabled


class NotifierResource(ConfigurableResource):
    """Email and Slack alerts as configured in ``reporting`` (spec §12); never raises."""

    settings: ArchiverConfigResource
    host: Optional[str] = None  # the host named in alerts; default: this machine's name

    def notifier(self) -> Notifier:
        config = self.settings.get()
        return Notifier(email=email_settings(config), slack=slack_settings(config),
                        host=self.host)

    def secrets(self) -> list:
        """Every secret of the configuration, for scrubbing text before it is logged."""
        return self.settings.get().secrets()


def _sink(host: str, port: int, prefix: str, timeout: float) -> m.Metrics:
    """One Carbon sender per process and destination: its daemon thread outlives the steps."""
    key = (host, port, prefix, timeout)
    with _SINKS_LOCK:
        sink = _SINKS.get(key)
        if sink is None or getattr(sink, "_closed", False):
            sink = m.CarbonMetrics(host, port, prefix, timeout=timeout)
            _SINKS[key] = sink
        return sink


class _Timed:
    """A proxy timing the named methods of a store or client as ``<Class>.<call>.duration_ms``."""

    def __init__(self, target, metrics: m.Metrics, names: dict):
        self._target, self._metrics, self._names = target, metrics, names

    def __getattr__(self, attribute):
        value = getattr(self._target, attribute)
        name = self._names.get(attribute)
        if name is None or not callable(value):
            return value

        @functools.wraps(value)
        def timed(*args, **kwargs):
            with self._metrics.timed(name):
                return value(*args, **kwargs)

        return timed


ARTDAQDB_CALLS = {"archive_run": m.ARTDAQDB_ARCHIVE_RUN, "update_run": m.ARTDAQDB_ARCHIVE_RUN,
                  "archived_runs": m.ARTDAQDB_GET_ARCHIVED_RUNS,
                  "export_run": m.ARTDAQDB_EXPORT_RUN_CONFIGURATION}
# blob_digest is the migration's streamed verification download: the legacy get_data timing.
UCONDB_CALLS = {"put_blob": m.UCONDB_UPLOAD_BLOB, "get_blob": m.UCONDB_GET_DATA,
                "blob_digest": m.UCONDB_GET_DATA, "existing_runs": m.UCONDB_GET_EXISTING_RUNS}


class MigrationCounts:
    """Counts the runs of one migration step for the ``migrate.*`` counters (spec §13)."""

    def __init__(self):
        self.successes: list = []
        self.failures: list = []

    def track(self, run: int, work):
        """Run ``work()`` for ``run``, recording success or failure (any exception, re-raised)."""
        try:
            outcome = work()
        except Exception:  # noqa: BLE001 - counted, then re-raised
            self.failures.append(run)
            raise
        self.successes.append(run)
        return outcome


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
        return _sink(section.host, section.port, section.metric_prefix or "", self.timeout)

    def timed_artdaqdb(self, store):
        """``store`` with archive/update/list/export timed under the legacy ArtdaqDBClient names."""
        return _Timed(store, self.sink(), ARTDAQDB_CALLS)

    def timed_ucondb(self, client):
        """``client`` with upload/download/list timed under the legacy UconDBClient names."""
        return _Timed(client, self.sink(), UCONDB_CALLS)

    @contextlib.contextmanager
    def migration_step(self) -> Iterator[MigrationCounts]:
        """Counts the step's runs; sends ``migrate.runs_*`` once at the end (also on failure)."""
        counts = MigrationCounts()
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

