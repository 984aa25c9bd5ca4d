"""The Dagster code location of run-record-archiver: assembles what the archive modules define.

Resources read the legacy-format config.yaml named by ``ARCHIVER_CONFIG``.
"""

import os
import warnings

import dagster as dg

# Deliberate, documented uses of non-GA Dagster features (docs/operations.md): batched backfills
# (BackfillPolicy, beta) and per-partition check status (partitions_def on checks, preview).
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def.*")

from archiver_assets.archive.assets import DEFAULT_BACKFILL_BATCH, build_archive_assets
from archiver_assets.archive.checks import ARCHIVE_CHECKS
from archiver_assets.archive.jobs import ARCHIVE_JOBS, archive_runs
from archiver_assets.archive.sensors import build_new_run_records_sensor
from archiver_resources.resources import resources_for_config


def build_definitions(config_path=None, *, backfill_batch_size=None,
                      sensor_interval_seconds=None) -> dg.Definitions:
    """Everything the code location offers, reading one config.yaml.

    ``ARCHIVER_BACKFILL_BATCH_SIZE`` (runs per backfill run, default 25) and
    ``ARCHIVER_SENSOR_INTERVAL_SECONDS`` (default 30) tune the deployment without code changes.
    """
    sensor_interval_seconds = sensor_interval_seconds or int(
        os.environ.get("ARCHIVER_SENSOR_INTERVAL_SECONDS", 30))
    batch = backfill_batch_size or int(os.environ.get("ARCHIVER_BACKFILL_BATCH_SIZE",
                                                      DEFAULT_BACKFILL_BATCH))
    assets = build_archive_assets(batch)
    automation = dg.AutomationConditionSensorDefinition(
        "archive_automation",
        target=dg.AssetSelection.assets("ucondb_blob"),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=sensor_interval_seconds,
        description="Migrates a run to UconDB after its import succeeded and its blocking "
                    "checks passed (eager & all_deps_blocking_checks_passed).",
    )
    return dg.Definitions(
        assets=list(assets),
        asset_checks=ARCHIVE_CHECKS,
        jobs=ARCHIVE_JOBS,
        sensors=[build_new_run_records_sensor(archive_runs, sensor_interval_seconds), automation],
        resources=resources_for_config(config_path),
        executor=dg.in_process_executor,
    )


defs = build_definitions()
