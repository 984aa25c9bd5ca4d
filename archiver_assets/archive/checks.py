"""Integrity checks of the archive, runnable alone from the UI at any time as an audit.

* `ucondb_blob` / `md5_round_trip` (blocking): what UconDB serves now for the run is
  byte-identical (MD5) to the blob packed from artdaqDB (in the run that uploaded it: the MD5
  recorded by that upload; run alone as an audit: packed from artdaqDB again), or differs from
  it only in its two `Packed on` lines (`verified-legacy`: a blob the legacy tool packed).
* `artdaqdb_config` / `hashes_match` (blocking): artdaqDB's stored `hashes` entity agrees with
  the run record's prepared files.
* `ucondb_blob` / `legacy_metadata` (non-blocking, WARN): the legacy `--validate` rule.

The two checks of `ucondb_blob` are one step (``ucondb_blob_checks``, a multi-asset check that
can run either alone) over **one streamed download per run**: in the Dagster run that uploaded
the blob, the upload's own verifying download, whose MD5, size, comparison and `--validate`
verdict the materialization records (nothing is downloaded again); run alone as an audit, one
download compared with the blob packed from artdaqDB while the `--validate` scan reads it
(:class:`~archiver_resources.blob.MetadataScan`, which holds only the metadata.fcl section).

Per-partition check status is a Dagster preview feature (``partitions_def`` on checks). In a
batched (partition-range) run Dagster records one evaluation for the whole step, so these checks
also log each partition's evaluation as an event of the run; the step's result summarises them,
as a warning, so one run's failure does not stop the rest of the range: the migration gate
(``archive/gate.py``) holds back exactly the runs whose blocking check failed.
"""

import traceback
import warnings
from typing import Callable, NamedTuple, Optional

import dagster as dg

from archiver_assets import dagster_internals as internals
from archiver_assets.archive.assets import RunDirectories, unexpected_reason
from archiver_assets.event_batching import batches_check_evaluations, enable_batched_writes
from archiver_assets.partitions import run_of, runs_partitions
from archiver_resources.archiving import (StoredBlobCheck, check_stored_blob, prepare_from_disk,
                                          verify_archived)
from archiver_resources.blob import MetadataScan, MetadataVerdict
from archiver_resources.errors import ArchiverError, UconDBError
from archiver_resources.redaction import redact
from archiver_assets.resources import ArtdaqDBResource, RunRecordsResource, UconDBResource

warnings.filterwarnings("ignore", message=".*partitions_def.*", category=dg.PreviewWarning)


def latest_materializations(instance, asset_key: dg.AssetKey, keys) -> dict:
    """``{partition: record}`` of each partition's newest materialization: two queries for any
    number of partitions (Dagster's own lookup is one query per partition and check)."""
    latest_ids = instance.event_log_storage.get_latest_storage_id_by_partition(
        asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=set(keys))
    if not latest_ids:
        return {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, storage_ids=list(latest_ids.values())),
        limit=len(latest_ids)).records
    return {record.partition_key: record for record in records}


def _evaluate_partitions(context, asset_key: str, check_name: str,
                         evaluate: Callable[[int, Optional[object]], dg.AssetCheckResult], *,
                         blocking: bool = True, secrets=()) -> dg.AssetCheckResult:
    """Evaluate every partition of the step; record each one when the step covers several.

    ``evaluate(run, latest)`` gets the partition's newest materialization record (or None). An
    unexpected exception in one run's evaluation fails that run's evaluation (type and message,
    ``secrets`` masked); the others are evaluated.
    """
    keys = list(context.partition_keys) if context.has_partition_key_range else [context.partition_key]
    if len(keys) > 1:
        enable_batched_writes(context.instance)
    latest = latest_materializations(context.instance, dg.AssetKey(asset_key), keys)

    def isolated(run: int, record) -> dg.AssetCheckResult:
        """One run's evaluation; an unexpected exception fails that run's evaluation only."""
        try:
            return evaluate(run, record)
        except Exception as error:  # noqa: BLE001 - the other runs are still evaluated
            reason = unexpected_reason(run, error, secrets)
            context.log.error(f"✗ Check {check_name} of run {run} could not be evaluated: "
                              f"{reason}")
            context.log.debug(redact("".join(traceback.format_exception(error)), secrets))
            return dg.AssetCheckResult(passed=False, description=reason,
                                       metadata={"run": run, "error": type(error).__name__})

    if len(keys) == 1:
        return isolated(run_of(keys[0]), latest.get(keys[0]))
    failed = []
    results: list = []
    try:
        for key in keys:
            result = isolated(run_of(key), latest.get(key))
            results.append((key, result))
            if not result.passed:
                failed.append(int(key))
    finally:  # what was evaluated is recorded, even if an unexpected error stops the loop
        batches = internals.evaluation_batch(len(results),
                                             batches_check_evaluations(context.instance))
        for (key, result), batch in zip(results, batches):
            _log_partition_evaluation(context, dg.AssetKey(asset_key), check_name, key, result,
                                      blocking, latest.get(key), batch)
    # The step's summary is a warning: each run's own evaluation (above) is the verdict, and a
    # run whose blocking check failed is held back from migration by the gate (archive/gate.py).
    # An ERROR here would make Dagster skip the downstream step for every run of the range.
    return dg.AssetCheckResult(
        passed=not failed, severity=dg.AssetCheckSeverity.WARN,
        description=(f"{len(keys) - len(failed)} of {len(keys)} runs passed"
                     + (f"; failed: {', '.join(map(str, failed[:20]))}" if failed else "")),
        metadata={"runs_checked": len(keys), "failed_runs": dg.MetadataValue.json(failed)},
    )


def _log_partition_evaluation(context, asset_key: dg.AssetKey, check_name: str, key: str,
                              result: dg.AssetCheckResult, blocking: bool, latest,
                              batch=None) -> None:
    """Record one partition's evaluation as an event of this run and step.

    Dagster plans one check execution per partition of a range step but records the step's result
    without a partition; logging a per-partition evaluation event resolves each planned execution
    (same run id, same partition), so the UI shows per-run check status after a batched backfill.
    The evaluation points at the partition's newest materialization, as Dagster's own would.
    With ``batch`` metadata the step's evaluations are stored in one write
    (:mod:`..event_batching`). Building the target and logging the event into the running step
    use Dagster internals (:mod:`archiver_assets.dagster_internals`).
    """
    evaluation = dg.AssetCheckEvaluation(
        asset_key=asset_key, check_name=check_name, passed=result.passed,
        metadata=result.metadata, severity=result.severity, description=result.description,
        partition=key, blocking=blocking, target_materialization_data=internals.check_target(latest))
    internals.log_check_evaluation(context, evaluation, batch)


PACKED_ACTIONS = ("uploaded", "replaced", "verified-existing", "verified-legacy")


class RecordedUpload(NamedTuple):
    """What the ucondb_blob step of this Dagster run recorded: the MD5 and size of the blob it
    packed, and for ``verified-legacy`` the MD5 of the legacy blob UconDB held (else "")."""

    md5: str
    size: int
    stored_md5: str = ""


def md5_packed_by_run(latest, run_id: str) -> Optional[RecordedUpload]:
    """What the ucondb_blob step of Dagster run ``run_id`` packed from artdaqDB (its
    materialization metadata), or None when this run did not materialize it."""
    if latest is None or latest.run_id != run_id:
        return None
    materialization = latest.asset_materialization
    metadata = materialization.metadata if materialization is not None else {}
    md5, size = metadata.get("md5"), metadata.get("size_bytes")
    action = metadata.get("action")
    # Only when the recorded MD5 is that of the packed blob: "skipped-existing" records what
    # UconDB already held (kept on purpose), which the check must compare with artdaqDB.
    if md5 is None or size is None or getattr(action, "value", action) not in PACKED_ACTIONS:
        return None
    stored = metadata.get("stored_md5")
    return RecordedUpload(str(getattr(md5, "value", md5)), int(getattr(size, "value", size)),
                          str(getattr(stored, "value", stored) or ""))


def _round_trip_result(check: StoredBlobCheck, source: str) -> dg.AssetCheckResult:
    run = check.run
    descriptions = {
        "identical": f"run {run}: UconDB serves the packed blob byte for byte",
        "verified-legacy": (f"run {run}: verified-legacy — UconDB serves a legacy blob that "
                            f"differs only in its 'Packed on' lines (MD5 ours "
                            f"{check.packed_md5}, stored {check.stored_md5})"),
        "mismatch": (f"run {run}: MD5 mismatch — UconDB serves different bytes "
                     f"({check.difference})"),
    }
    metadata = {"run": run, "outcome": check.outcome, "expected_md5": check.packed_md5,
                "served_md5": check.stored_md5, "expected_size": check.packed_size,
                "served_size": check.stored_size, "expected_from": source}
    if check.outcome == "verified-legacy" and check.stored_packed_on:
        metadata["served_packed_on"] = check.stored_packed_on
    if check.difference:
        metadata["difference"] = check.difference
    return dg.AssetCheckResult(passed=check.verified, description=descriptions[check.outcome],
                               metadata=metadata)


def _as_recorded(run: int, recorded: RecordedUpload, served) -> Optional[StoredBlobCheck]:
    """The verdict when UconDB serves exactly what this run's upload recorded: our blob, or the
    legacy blob the migration just compared (same MD5); None otherwise."""
    if served.md5 == recorded.md5 and served.size == recorded.size:
        outcome = "identical"
    elif recorded.stored_md5 and served.md5 == recorded.stored_md5:
        outcome = "verified-legacy"
    else:
        return None
    return StoredBlobCheck(run=run, outcome=outcome, packed_md5=recorded.md5,
                           packed_size=recorded.size, packed_on="", stored_md5=served.md5,
                           stored_size=served.size, stored_packed_on=None, difference=None)


class ServedInRun(NamedTuple):
    """What the ucondb_blob step of this Dagster run proved with its streamed download of the
    run's blob (materialization metadata ``served_*``, ``blob_sections``,
    ``legacy_metadata_errors``): the checks of the same run read it instead of downloading."""

    md5: str
    size: int
    outcome: str
    difference: str
    packed_md5: str
    packed_size: int
    sections: int
    errors: tuple


def served_by_run(latest, run_id: str) -> Optional[ServedInRun]:
    """The download the ucondb_blob step of Dagster run ``run_id`` recorded, or None when this
    run did not materialize the partition (or recorded no download)."""
    if latest is None or latest.run_id != run_id:
        return None
    materialization = latest.asset_materialization
    metadata = materialization.metadata if materialization is not None else {}
    value = {k: getattr(v, "value", v) for k, v in metadata.items()}
    if not all(k in value for k in ("served_md5", "served_size_bytes", "served_outcome",
                                    "blob_sections", "legacy_metadata_errors")):
        return None
    return ServedInRun(
        md5=str(value["served_md5"]), size=int(value["served_size_bytes"]),
        outcome=str(value["served_outcome"]), difference=str(value.get("served_difference", "")),
        packed_md5=str(value.get("packed_md5") or value.get("md5") or ""),
        packed_size=int(value.get("size_bytes") or 0), sections=int(value["blob_sections"]),
        errors=tuple(str(e) for e in value["legacy_metadata_errors"] or ()))


class OneDownloadPerRun:
    """The step's downloads of run blobs: streamed, at most one per run for all the checks of
    the step. Each download also runs the legacy --validate scan (:class:`MetadataScan`), whose
    verdict, or the UconDB error that stopped the download, waits for ``legacy_metadata``.
    Stands in for the UconDB client where :func:`check_stored_blob` downloads."""

    def __init__(self, client):
        self._client = client
        self._verdicts: dict = {}  # run → MetadataVerdict or the UconDBError of its download

    def blob_digest(self, run: int, *, on_chunk: Optional[Callable[[bytes], None]] = None):
        scan = MetadataScan()

        def both(chunk: bytes) -> None:
            scan.update(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
        try:
            digest = self._client.blob_digest(run, on_chunk=both)
        except UconDBError as error:
            self._verdicts[run] = error
            raise
        self._verdicts[run] = scan.result()
        return digest

    def metadata_verdict(self, run: int) -> MetadataVerdict:
        """The legacy --validate verdict of the run's blob: from this step's download of it, or
        from a download now; raises the UconDBError of that download."""
        if run not in self._verdicts:
            try:
                self.blob_digest(run)
            except UconDBError:
                pass
        verdict = self._verdicts.pop(run)
        if isinstance(verdict, UconDBError):
            raise verdict
        return verdict


def _as_compared(run: int, served: ServedInRun) -> StoredBlobCheck:
    """The verdict of this run's comparison of UconDB's blob with the blob packed from artdaqDB
    (a ``skipped-existing`` blob: a mismatch, kept on purpose by the skip policy)."""
    return StoredBlobCheck(run=run, outcome=served.outcome, packed_md5=served.packed_md5,
                           packed_size=served.packed_size, packed_on="",
                           stored_md5=served.md5, stored_size=served.size,
                           stored_packed_on=None, difference=served.difference or None)


def _md5_round_trip(run: int, latest, run_id: str, store, downloads) -> dg.AssetCheckResult:
    try:
        # In the run that uploaded it, the blob was packed from artdaqDB moments ago (same
        # bytes: packing is deterministic) and the upload's streamed download proved what
        # UconDB serves: both are in the materialization, nothing is downloaded again. Run
        # alone (an audit), the check packs the blob from artdaqDB again and compares the
        # download with it as it arrives (one download for all checks of the run).
        recorded = md5_packed_by_run(latest, run_id)
        served = served_by_run(latest, run_id)
        if recorded is not None:
            check = _as_recorded(run, recorded, served if served is not None
                                 else downloads.blob_digest(run))
            if check is not None:
                return _round_trip_result(check, "this run's upload")
        elif (served is not None and served.outcome == "mismatch" and served.packed_md5
              and served.packed_md5 != served.md5):
            return _round_trip_result(_as_compared(run, served),
                                      "this run's comparison with artdaqDB")
        check = check_stored_blob(run, store, downloads)
    except ArchiverError as error:  # UconDB or artdaqDB unreachable, run not archived
        return dg.AssetCheckResult(passed=False, description=f"run {run}: {error}",
                                   metadata={"run": run})
    return _round_trip_result(check, "packed again from artdaqDB")


@dg.asset_check(asset="artdaqdb_config", name="hashes_match", blocking=True,
                partitions_def=runs_partitions,
                description="Re-reads the run record, fhiclizes it and compares the hashes with "
                            "the `hashes` entity stored in artdaqDB.")
def hashes_match(context: dg.AssetCheckExecutionContext, run_records: RunRecordsResource,
                 artdaqdb: ArtdaqDBResource) -> dg.AssetCheckResult:
    settings = run_records.import_settings()
    directories = RunDirectories(run_records.run_records_dir)
    with artdaqdb.open() as store:
        def evaluate(run: int, latest) -> dg.AssetCheckResult:
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

        return _evaluate_partitions(context, "artdaqdb_config", "hashes_match", evaluate,
                                    secrets=artdaqdb.settings.get().secrets())


def _legacy_metadata(run: int, latest, run_id: str, downloads) -> dg.AssetCheckResult:
    served = served_by_run(latest, run_id)
    try:
        verdict = (MetadataVerdict(served.sections, served.errors) if served is not None
                   else downloads.metadata_verdict(run))
    except ArchiverError as error:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                                   description=f"run {run}: {error}", metadata={"run": run})
    verdict.raise_if_unsplittable()  # the legacy splitter's error, as an unexpected one
    errors = list(verdict.errors)
    return dg.AssetCheckResult(
        passed=not errors, severity=dg.AssetCheckSeverity.WARN,
        description=(f"run {run}: blob metadata valid" if not errors
                     else f"run {run}: {len(errors)} metadata problem(s): "
                          + "; ".join(errors[:5])),
        metadata={"run": run, "errors": dg.MetadataValue.json(errors)})


MD5_ROUND_TRIP = dg.AssetCheckSpec(
    "md5_round_trip", asset="ucondb_blob", blocking=True, partitions_def=runs_partitions,
    description="Downloads the run's blob from UconDB by key and compares the MD5 of the raw "
                "bytes with the MD5 of the blob packed from artdaqDB. A legacy blob that "
                "differs only in its two `Packed on` lines passes as `verified-legacy`.")
LEGACY_METADATA = dg.AssetCheckSpec(
    "legacy_metadata", asset="ucondb_blob", blocking=False, partitions_def=runs_partitions,
    description="The legacy `--validate` rule: metadata.fcl in the blob has components, "
                "config_name and sbndaq_commit_or_version exactly once. Warns only.")


@dg.multi_asset_check(
    specs=[MD5_ROUND_TRIP, LEGACY_METADATA], can_subset=True,
    description="The checks of ucondb_blob over one streamed download per run: in the run "
                "that uploaded the blob, the upload's own verifying download (recorded in the "
                "materialization); run alone, one download compared with the blob packed from "
                "artdaqDB again while the legacy rule scans it.")
def ucondb_blob_checks(context: dg.AssetCheckExecutionContext, artdaqdb: ArtdaqDBResource,
                       ucondb: UconDBResource):
    selected = {key.name for key in context.selected_asset_check_keys}
    secrets = ucondb.settings.get().secrets()
    run_id = context.run.run_id
    with artdaqdb.open() as store, ucondb.client() as client:
        downloads = OneDownloadPerRun(client)
        if MD5_ROUND_TRIP.name in selected:
            yield _for_check(MD5_ROUND_TRIP, _evaluate_partitions(
                context, "ucondb_blob", MD5_ROUND_TRIP.name,
                lambda run, latest: _md5_round_trip(run, latest, run_id, store, downloads),
                secrets=secrets))
        if LEGACY_METADATA.name in selected:
            yield _for_check(LEGACY_METADATA, _evaluate_partitions(
                context, "ucondb_blob", LEGACY_METADATA.name,
                lambda run, latest: _legacy_metadata(run, latest, run_id, downloads),
                blocking=False, secrets=secrets))


def _for_check(spec: dg.AssetCheckSpec, result: dg.AssetCheckResult) -> dg.AssetCheckResult:
    """``result`` addressed to one check of the multi-check step."""
    return dg.AssetCheckResult(passed=result.passed, asset_key=spec.asset_key,
                               check_name=spec.name, metadata=result.metadata,
                               severity=result.severity, description=result.description)


ARCHIVE_CHECKS = [ucondb_blob_checks, hashes_match]
