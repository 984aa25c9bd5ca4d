"""Integrity checks of the archive, runnable alone from the UI at any time as an audit.

* `ucondb_blob` / `md5_round_trip` (blocking): what UconDB serves now for the run is
  byte-identical (MD5) to the blob packed from artdaqDB.
* `artdaqdb_config` / `hashes_match` (blocking): artdaqDB's stored `hashes` entity agrees with
  the run record's prepared files.
* `ucondb_blob` / `legacy_metadata` (non-blocking, WARN): the legacy `--validate` rule.

Per-partition check status is a Dagster preview feature (``partitions_def`` on checks). In a
batched (partition-range) run Dagster records one evaluation for the whole step, so these checks
also log each partition's evaluation as an event of the run; the step's result summarises them.
"""

import warnings
from typing import Callable

import dagster as dg
from dagster._core.events import DagsterEvent

from archiver_assets.archive.assets import RunDirectories
from archiver_assets.partitions import run_of, runs_partitions
from archiver_resources.archiving import build_blob, prepare_from_disk, verify_archived
from archiver_resources.blob import md5_hex, split_blob, validate_metadata
from archiver_resources.errors import ArchiverError
from archiver_resources.resources import ArtdaqDBResource, RunRecordsResource, UconDBResource

warnings.filterwarnings("ignore", message=".*partitions_def.*", category=dg.PreviewWarning)


def _evaluate_partitions(context, asset_key: str, check_name: str,
                         evaluate: Callable[[int], dg.AssetCheckResult], *,
                         blocking: bool = True) -> dg.AssetCheckResult:
    """Evaluate every partition of the step; record each one when the step covers several."""
    keys = list(context.partition_keys) if context.has_partition_key_range else [context.partition_key]
    if len(keys) == 1:
        return evaluate(run_of(keys[0]))
    failed = []
    for key in keys:
        result = evaluate(run_of(key))
        _log_partition_evaluation(context, dg.AssetKey(asset_key), check_name, key, result,
                                  blocking)
        if not result.passed:
            failed.append(int(key))
    return dg.AssetCheckResult(
        passed=not failed,
        description=(f"{len(keys) - len(failed)} of {len(keys)} runs passed"
                     + (f"; failed: {', '.join(map(str, failed[:20]))}" if failed else "")),
        metadata={"runs_checked": len(keys), "failed_runs": dg.MetadataValue.json(failed)},
    )


def _log_partition_evaluation(context, asset_key: dg.AssetKey, check_name: str, key: str,
                              result: dg.AssetCheckResult, blocking: bool) -> None:
    """Record one partition's evaluation as an event of this run and step.

    Dagster plans one check execution per partition of a range step but records the step's result
    without a partition; logging a per-partition evaluation event resolves each planned execution
    (same run id, same partition), so the UI shows per-run check status after a batched backfill.
    """
    step_context = context.op_execution_context.get_step_execution_context()
    target = result._get_partitioned_target_materialization_data(  # noqa: SLF001
        step_context, asset_key, key)
    evaluation = dg.AssetCheckEvaluation(
        asset_key=asset_key, check_name=check_name, passed=result.passed,
        metadata=result.metadata, severity=result.severity, description=result.description,
        partition=key, blocking=blocking, target_materialization_data=target)
    DagsterEvent.asset_check_evaluation(step_context, evaluation)  # builds and logs the event


@dg.asset_check(asset="ucondb_blob", name="md5_round_trip", blocking=True,
                partitions_def=runs_partitions,
                description="Downloads the run's blob from UconDB by key and compares the MD5 of "
                            "the raw bytes with the MD5 of the blob packed from artdaqDB.")
def md5_round_trip(context: dg.AssetCheckExecutionContext, artdaqdb: ArtdaqDBResource,
                   ucondb: UconDBResource) -> dg.AssetCheckResult:
    with artdaqdb.open() as store, ucondb.client() as client:
        def evaluate(run: int) -> dg.AssetCheckResult:
            try:
                _, _, _, data = build_blob(run, store)
                expected = md5_hex(data)
                served = client.get_blob(run).data
            except ArchiverError as error:  # UconDB or artdaqDB unreachable, run not archived
                return dg.AssetCheckResult(passed=False, description=f"run {run}: {error}",
                                           metadata={"run": run})
            actual = md5_hex(served)
            passed = actual == expected
            return dg.AssetCheckResult(
                passed=passed,
                description=(f"run {run}: UconDB serves the packed blob byte for byte" if passed
                             else f"run {run}: MD5 mismatch — UconDB serves different bytes"),
                metadata={"run": run, "expected_md5": expected, "served_md5": actual,
                          "expected_size": len(data), "served_size": len(served)},
            )

        return _evaluate_partitions(context, "ucondb_blob", "md5_round_trip", evaluate)


@dg.asset_check(asset="artdaqdb_config", name="hashes_match", blocking=True,
                partitions_def=runs_partitions,
                description="Re-reads the run record, fhiclizes it and compares the hashes with "
                            "the `hashes` entity stored in artdaqDB.")
def hashes_match(context: dg.AssetCheckExecutionContext, run_records: RunRecordsResource,
                 artdaqdb: ArtdaqDBResource) -> dg.AssetCheckResult:
    settings = run_records.import_settings()
    directories = RunDirectories(run_records.run_records_dir)
    with artdaqdb.open() as store:
        def evaluate(run: int) -> dg.AssetCheckResult:
            try:
                run_dir = directories.locate(run)
            except ArchiverError as error:
                return dg.AssetCheckResult(
                    passed=False, severity=dg.AssetCheckSeverity.WARN,
                    description=f"run {run}: run record not on disk any more, nothing to compare "
                                f"({error})", metadata={"run": run})
            try:
                source = prepare_from_disk(run, run_dir, settings, force=True)
                expected = verify_archived(run, source, settings, store)
            except ArchiverError as error:
                return dg.AssetCheckResult(passed=False, description=str(error),
                                           metadata={"run": run})
            return dg.AssetCheckResult(
                passed=True, description=f"run {run}: stored hashes agree with the run record",
                metadata={"run": run, "configuration_md5": expected.get("configuration", ""),
                          "entities": len(expected) - 1})

        return _evaluate_partitions(context, "artdaqdb_config", "hashes_match", evaluate)


@dg.asset_check(asset="ucondb_blob", name="legacy_metadata", blocking=False,
                partitions_def=runs_partitions,
                description="The legacy `--validate` rule: metadata.fcl in the blob has "
                            "components, config_name and sbndaq_commit_or_version exactly once. "
                            "Warns only.")
def legacy_metadata(context: dg.AssetCheckExecutionContext,
                    ucondb: UconDBResource) -> dg.AssetCheckResult:
    with ucondb.client() as client:
        def evaluate(run: int) -> dg.AssetCheckResult:
            try:
                text = client.get_blob(run).data.decode("utf-8", errors="replace")
            except ArchiverError as error:
                return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                                           description=f"run {run}: {error}", metadata={"run": run})
            errors = validate_metadata(split_blob(text))
            return dg.AssetCheckResult(
                passed=not errors, severity=dg.AssetCheckSeverity.WARN,
                description=(f"run {run}: blob metadata valid" if not errors
                             else f"run {run}: {len(errors)} metadata problem(s): "
                                  + "; ".join(errors[:5])),
                metadata={"run": run, "errors": dg.MetadataValue.json(errors)})

        return _evaluate_partitions(context, "ucondb_blob", "legacy_metadata", evaluate,
                                    blocking=False)


ARCHIVE_CHECKS = [md5_round_trip, hashes_match, legacy_metadata]
