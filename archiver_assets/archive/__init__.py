"""The archive domain: run partitions, the two archive assets, their checks, sensor and jobs."""

import os

import dagster as dg

from archiver_assets.archive.assets import DEFAULT_BACKFILL_BATCH, build_archive_assets
from archiver_assets.archive.checks import ARCHIVE_CHECKS
from archiver_assets.archive.jobs import ARCHIVE_JOBS, archive_runs
from archiver_assets.archive.sensors import build_new_run_records_sensor
from archiver_assets.resources import resources_for_config


def build_archive_definitions(config_path=None, *, backfill_batch_size=None,
                              sensor_interval_seconds=30) -> dg.Definitions:
    """Assets, checks, jobs, sensors and resources of the archive (import + migration)."""
    batch = backfill_batch_size or int(os.environ.get("ARCHIVER_BACKFILL_BATCH_SIZE",
                                                      DEFAULT_BACKFILL_BATCH))
    automation = dg.AutomationConditionSensorDefinition(
        "archive_automation",
        target=dg.AssetSelection.assets("ucondb_blob"),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=sensor_interval_seconds,
        description="Migrates a run to UconDB after its import succeeded and its blocking "
                    "checks passed (on_missing & all_deps_blocking_checks_passed).",
    )
    return dg.Definitions(
        assets=list(build_archive_assets(batch)),
        asset_checks=ARCHIVE_CHECKS,
        jobs=ARCHIVE_JOBS,
        sensors=[build_new_run_records_sensor(archive_runs, sensor_interval_seconds), automation],
        resources=resources_for_config(config_path),
    )
