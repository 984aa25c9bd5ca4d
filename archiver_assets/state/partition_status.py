"""What the Dagster instance says about each run partition of an archive asset, read without
writing anything (no status-cache update), so dry runs and plans leave the instance untouched.

The rules are Dagster's own (``get_status_by_partition``): a partition is IN_PROGRESS when its
latest attempt belongs to an unfinished run, FAILED when it belongs to a failed run and no
materialization followed, MATERIALIZED when it has a materialization and neither of the former
applies, else missing. Measured on 10k partitions: about 0.3 s per asset.
"""

from dataclasses import dataclass
from typing import Iterable, Optional

import dagster as dg
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.storage.partition_status_cache import (
    build_failed_and_in_progress_partition_subset, get_last_planned_storage_id,
)

from archiver_assets.partitions import RUNS_PARTITIONS_NAME, run_key, runs_partitions
from archiver_assets.state.events import DRIFT_JOB_NAME

IMPORT_ASSET = dg.AssetKey("artdaqdb_config")
MIGRATE_ASSET = dg.AssetKey("ucondb_blob")
STAGE_ASSETS = {"import": IMPORT_ASSET, "migrate": MIGRATE_ASSET}


def canonical_runs(keys: Iterable[str]) -> set:
    """Run numbers of the partition keys that are canonical run numbers (others ignored)."""
    return {int(k) for k in keys if k.isascii() and k.isdigit() and run_key(int(k)) == k}


@dataclass(frozen=True)
class PartitionStatus:
    """Run sets of one archive asset by partition status (disjoint except ``ever_materialized``)."""

    asset_key: dg.AssetKey
    materialized: frozenset  # latest attempt succeeded
    failed: frozenset
    in_progress: frozenset
    ever_materialized: frozenset  # any materialization on record (also failed since)
    lost: frozenset = frozenset()  # failed because a store lost them (store drift), a subset

    @property
    def highest_materialized(self) -> Optional[int]:
        return max(self.ever_materialized) if self.ever_materialized else None

    def label(self, run: int) -> str:
        if run in self.in_progress:
            return "in progress"
        if run in self.failed:
            return "failed"
        if run in self.materialized:
            return "materialized"
        return "missing"


def partition_keys(instance) -> list:
    """The run partitions in insertion order (what partition ranges follow)."""
    return list(instance.get_dynamic_partitions(RUNS_PARTITIONS_NAME))


def read_partition_status(instance, asset_key: dg.AssetKey) -> PartitionStatus:
    """Materialized / failed / in-progress runs of ``asset_key``; reads only."""
    ever = canonical_runs(instance.get_materialized_partitions(asset_key))
    record = next(iter(instance.get_asset_records(asset_keys=[asset_key])), None)
    failed, in_progress = set(), set()
    if record is not None:
        with partition_loading_context(None, instance):
            last_planned = get_last_planned_storage_id(instance, asset_key, record)
            failed_subset, in_progress_subset, _ = build_failed_and_in_progress_partition_subset(
                instance, asset_key, runs_partitions,
                last_planned_materialization_storage_id=last_planned)
            failed = canonical_runs(failed_subset.get_partition_keys())
            in_progress = canonical_runs(in_progress_subset.get_partition_keys())
    failed -= in_progress
    return PartitionStatus(asset_key=asset_key,
                           materialized=frozenset(ever - failed - in_progress),
                           failed=frozenset(failed), in_progress=frozenset(in_progress),
                           ever_materialized=frozenset(ever),
                           lost=lost_runs(instance, asset_key, failed))


def latest_attempt_runs(instance, asset_key: dg.AssetKey) -> dict:
    """``{partition: Dagster run id}`` of the latest attempt of each partition of ``asset_key``
    that no materialization followed (failed or in progress)."""
    attempts = instance.event_log_storage.\
        get_latest_asset_partition_materialization_attempts_without_materializations(asset_key)
    return {key: run_id for key, (run_id, _) in attempts.items()}


def lost_runs(instance, asset_key: dg.AssetKey, failed: Iterable[int]) -> frozenset:
    """The ``failed`` runs whose latest attempt is a store-drift marker run: a store lost them
    after they were archived (``state.drift``), so even ``--incremental`` archives them again."""
    failed = set(failed)
    if not failed:
        return frozenset()
    markers = {run.run_id for run in instance.get_runs(
        filters=dg.RunsFilter(job_name=DRIFT_JOB_NAME))}
    if not markers:
        return frozenset()
    attempts = latest_attempt_runs(instance, asset_key)
    return frozenset(run for run in failed if attempts.get(run_key(run)) in markers)


def read_stage_status(instance) -> dict:
    """``{"import": PartitionStatus, "migrate": PartitionStatus}``."""
    return {stage: read_partition_status(instance, key) for stage, key in STAGE_ASSETS.items()}
