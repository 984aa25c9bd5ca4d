"""Operations of the code location: the `archive_status` report asset with its daily schedule and
`stores_in_sync` check, the alert sensors and the notifier resource.

Merge into the archive definitions: ``dg.Definitions.merge(build_definitions(path),
build_operations_definitions(path))``.
"""

import logging
import os
from typing import Optional

import dagster as dg

from archiver_assets.operations.alerts import DEFAULT_INTERVAL_SECONDS, build_alert_sensors
from archiver_assets.operations.status import (
    archive_status, build_status_job_and_schedule, build_stores_in_sync_check,
)
from archiver_resources.config import load_config
from archiver_resources.errors import ConfigError
from archiver_assets.resources import NotifierResource
from archiver_resources.notifications import alerts_enabled
from archiver_assets.resources import ArchiverConfigResource

logger = logging.getLogger(__name__)


def _channels_configured(config_path: str) -> bool:
    """Whether config.yaml enables email or Slack; an unreadable config means no alert sensors
    (the archive assets fail on it anyway, naming the key)."""
    try:
        return alerts_enabled(load_config(config_path))
    except (ConfigError, OSError) as error:
        logger.warning("Alert sensors not added: config %s unreadable (%s)", config_path,
                       type(error).__name__)
        return False


def build_operations_definitions(config_path: Optional[str] = None, *,
                                 alerts: Optional[bool] = None,
                                 sensor_interval_seconds: Optional[int] = None,
                                 max_artdaqdb_lag_runs: Optional[int] = None,
                                 max_ucondb_lag_runs: Optional[int] = None,
                                 status_cron: Optional[str] = None) -> dg.Definitions:
    """`archive_status` + `stores_in_sync` + `archive_status_daily`, the `notifier` resource,
    and the alert sensors when ``reporting.email``/``reporting.slack`` is enabled
    (``alerts=True``/``False`` forces them on/off). Needs the archive definitions' resources
    (`run_records`, `artdaqdb`, `ucondb`, `metrics`) once merged."""
    path = str(config_path or os.environ.get("ARCHIVER_CONFIG", "config.yaml"))
    interval = sensor_interval_seconds or int(
        os.environ.get("ARCHIVER_SENSOR_INTERVAL_SECONDS", DEFAULT_INTERVAL_SECONDS))
    settings = ArchiverConfigResource(config_path=path)
    job, schedule = build_status_job_and_schedule(cron=status_cron)
    with_alerts = _channels_configured(path) if alerts is None else alerts
    return dg.Definitions(
        assets=[archive_status],
        asset_checks=[build_stores_in_sync_check(max_artdaqdb_lag_runs, max_ucondb_lag_runs)],
        jobs=[job],
        schedules=[schedule],
        sensors=build_alert_sensors(interval) if with_alerts else [],
        resources={"notifier": NotifierResource(settings=settings)},
    )


__all__ = ["build_operations_definitions"]
