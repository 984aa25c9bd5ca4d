"""The two archive assets: `artdaqdb_config` (run record → artdaqDB) and `ucondb_blob`
(artdaqDB → UconDB, MD5-verified), one partition per run.

They are thin adapters over ``archiver_resources.archiving``: they loop over the run's (or the
batch's) partitions, report per-partition metadata an operator can act on, and fail the
partitions whose run could not be archived, naming run and cause.
"""

import time
import traceback
from typing import Callable, Iterator

import dagster as dg

from archiver_assets.archive.gate import MigrationHeldError, holds
from archiver_assets.archive.guard import PartitionGuard
from archiver_assets.event_batching import enable_batched_writes
from archiver_assets.partitions import run_of, runs_partitions
from archiver_assets.resources import (
    ArtdaqDBResource, MetricsResource, RunRecordsResource, UconDBResource,
)
from archiver_assets.outcomes import (
    STAGE_OF_ASSET, RunFailure, failure_description, failures_metadata,
)
from archiver_resources.archiving import ImportOutcome, MigrateOutcome, import_run, migrate_run
from archiver_resources.errors import ArchiverError, RunRecordError
from archiver_resources.printable import printable
from archiver_resources.redaction import redact
from archiver_resources.runrecords import list_runs

FORCE_TAG = "archiver/force"
OWNERS = ["team:daq-operations"]
DEFAULT_BACKFILL_BATCH = 25

# Transient trouble (store briefly unreachable, lock held) is retried with backoff inside the
# run; permanent errors (bad input, integrity) fail at once via Failure(allow_retries=False).
STORE_RETRY_POLICY = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL,
                                    jitter=dg.Jitter.PLUS_MINUS)


def _is_forced(context) -> bool:
    return str(context.run.tags.get(FORCE_TAG, "")).lower() in ("1", "true", "yes")


class RunDirectories:
    """Finds run directories under run_records_dir, listing it once per step (a batch of runs
    costs one directory scan), and refuses a run that two directories name (`123`, `00123`)."""

    def __init__(self, run_records_dir):
        self.root = run_records_dir
        self._listing = None

    def locate(self, run: int):
        if self._listing is None:
            self._listing = list_runs(self.root)
        if run in self._listing.errors:
            raise self._listing.errors[run]
        if run not in self._listing.runs:
            raise RunRecordError(f"run directory not found under {self.root}", run=run)
        return self._listing.runs[run]


def locate_run_dir(run_records_dir, run: int):
    """The directory of one run (see :class:`RunDirectories`)."""
    return RunDirectories(run_records_dir).locate(run)


def unexpected_reason(run: int, error: BaseException, secrets=()) -> str:
    """One line naming run, exception type and message, for an error that is not an archiver
    error (``RecursionError``, a library's ``ValueError``…), secrets masked; the traceback goes
    to the debug log."""
    message = redact(" ".join(str(error).split())[:500], secrets)
    return f"run {run}: unexpected {type(error).__name__}" + (f": {message}" if message else "")


def failure_of(run: int, stage: str, error: BaseException, secrets=()) -> RunFailure:
    """The record of one run's failure: an archiver error as it reads (it names its run), any
    other exception as :func:`unexpected_reason` words it."""
    if isinstance(error, ArchiverError):
        return RunFailure.of_error(run, stage, error)
    return RunFailure.of_error(run, stage, error, unexpected_reason(run, error, secrets))


def _add_partition_metadata(context, key: str, metadata: dict) -> None:
    """Per-partition metadata of a range step.

    ``add_asset_metadata(partition_key=...)`` validates the key by listing every dynamic partition
    on each call (O(partitions): ~0.4 s a call at 100,000 runs, twice per run of a batch). The keys
    here come from ``context.partition_keys``, so they are in range by construction and the
    metadata goes straight to the step's accumulator (Dagster 1.13 internals; the public call is
    the fallback).
    """
    step = context.op_execution_context.get_step_execution_context()
    accumulator = getattr(step, "_metadata_accumulator", None)
    if accumulator is None or not hasattr(accumulator, "with_additional_asset_metadata"):
        context.add_asset_metadata(metadata, partition_key=key)
        return
    step._metadata_accumulator = accumulator.with_additional_asset_metadata(  # noqa: SLF001
        asset_key=context.asset_key, partition_key=key, metadata=metadata)


MAX_LOGGED_WARNINGS = 5  # per run; all of them (up to 50) are in the materialization metadata


def _log_warnings(context, warnings) -> None:
    """A run's warnings (Latin-1 files, converter repairs, byte-order marks…) in the run's log."""
    for warning in list(warnings)[:MAX_LOGGED_WARNINGS]:
        context.log.warning(warning)
    if len(warnings) > MAX_LOGGED_WARNINGS:
        context.log.warning(f"… and {len(warnings) - MAX_LOGGED_WARNINGS} more warnings "
                            "(materialization metadata `warnings`)")


def _process_partitions(context, what: str, work: Callable[[int], object],
                        metadata_of: Callable[[object], dict], secrets=()) -> Iterator:
    """Run ``work`` for every partition of this step; one failure fails the step at the end.

    Any exception of one run fails that run only, named with its cause (an archiver error as it
    reads, anything else with its type and message, not retried); the other runs go on. The step's
    ``dg.Failure`` carries one :class:`RunFailure` per failed run in its metadata
    (``run_failures``), which the alerts and the command line read.

    Each run waits its turn behind older Dagster runs targeting it (:mod:`.guard`). In a range
    step, per-run outcomes go into the progress lines (one event every 10 runs rather than one per
    run) and into per-partition metadata. When some runs of a range fail, the others are still
    recorded as materialized before the step fails, so a retry of the failed partitions does not
    redo the whole batch.
    """
    keys = list(context.partition_keys)
    batched = len(keys) > 1
    if batched:
        enable_batched_writes(context.instance)  # this step's partition events in one write
    guard = PartitionGuard(context.instance, context.run.run_id, runs_partitions.name, context.log)
    stage = STAGE_OF_ASSET.get(context.asset_key.to_user_string(), context.asset_key.to_user_string())
    failures: dict = {}  # run → RunFailure
    succeeded: dict = {}
    retryable = True
    pending_lines: list = []
    started = time.monotonic()
    for index, key in enumerate(keys, start=1):
        run = run_of(key)
        try:
            guard.wait_turn(run, key)
            outcome = work(run)
        except ArchiverError as error:
            failures[run] = failure_of(run, stage, error)  # one line, control characters escaped
            retryable = retryable and error.retryable
            context.log.error(f"✗ Run {run} {what} failed: {failures[run].message}")
        except Exception as error:  # noqa: BLE001 - one run's surprise never fails its batch
            failures[run] = failure_of(run, stage, error, secrets)
            retryable = False  # a bug or hostile input: the same run would fail again
            context.log.error(f"✗ Run {run} {what} failed: {failures[run].message}")
            context.log.debug(redact(f"Run {run}: " + "".join(traceback.format_exception(error)),
                                     secrets))
        else:
            metadata = metadata_of(outcome)
            action = getattr(outcome, "action", "done")
            _log_warnings(context, getattr(outcome, "warnings", ()))
            if batched:
                _add_partition_metadata(context, key, metadata)
                succeeded[key] = metadata
                pending_lines.append(f"{run} {action}")
            else:
                context.add_asset_metadata(metadata)
                text = outcome.action_text() if hasattr(outcome, "action_text") else action
                context.log.info(f"✓ Run {run} {what}: {text}")
        if batched and (index % 10 == 0 or index == len(keys)):
            context.log.info(f"Progress: {index}/{len(keys)} runs processed "
                             f"({index - len(failures)} successful, {len(failures)} failed)"
                             + (f"; ✓ {what}: {', '.join(pending_lines)}" if pending_lines else ""))
            pending_lines = []
    elapsed = time.monotonic() - started
    if failures:
        for key, metadata in succeeded.items():  # the batch's good runs stay archived
            yield dg.AssetMaterialization(asset_key=context.asset_key, partition=key,
                                          metadata=metadata)
        raise dg.Failure(
            description=failure_description(failures.values(), len(keys), what),
            metadata={**failures_metadata(failures.values()),
                      "recorded_as_materialized": dg.MetadataValue.json(
                          sorted(int(k) for k in succeeded)),
                      "duration_s": round(elapsed, 3)},
            allow_retries=retryable,
        )
    yield dg.MaterializeResult(metadata={"runs_in_step": len(keys),
                                         "step_duration_s": round(elapsed, 3)})


def _after(block, events: Iterator) -> Iterator:
    """``events`` run inside the context manager ``block`` and yielded once it has exited (an
    exception of ``events`` after the ones before it, as the step would have seen them)."""
    collected, failure = [], None
    with block:
        try:
            for event in events:
                collected.append(event)
        except Exception as error:  # noqa: BLE001 - re-raised below, after the block's exit
            failure = error
    yield from collected
    if failure is not None:
        raise failure


def _import_metadata(outcome: ImportOutcome, artdaqdb_uri: str) -> dict:
    metadata = {
        "run": dg.MetadataValue.int(outcome.run),
        "configuration": printable(outcome.configuration),
        "action": outcome.action,
        "versions": dg.MetadataValue.json([printable(v) for v in outcome.versions]),
        "file_count": dg.MetadataValue.int(outcome.file_count),
        "stored_files": dg.MetadataValue.int(outcome.stored_files),
        "bytes": dg.MetadataValue.int(outcome.total_bytes),
        "finished_rule": outcome.finished_rule,
        "finished_reason": printable(outcome.finished_reason),
        "fingerprint_sha256": outcome.fingerprint,
        "artdaqdb": artdaqdb_uri,
        "duration_s": dg.MetadataValue.float(round(outcome.duration_s, 4)),
    }
    if outcome.warnings:
        metadata["warnings"] = dg.MetadataValue.json([printable(w) for w in outcome.warnings[:50]])
    if outcome.latin1_files:
        metadata["latin1_decoded_files"] = dg.MetadataValue.json(
            [printable(f) for f in outcome.latin1_files])
    if outcome.beyond_cpp_files:
        metadata["beyond_cpp_files"] = dg.MetadataValue.json(outcome.beyond_cpp_files)
    if outcome.converter_repairs:
        metadata["converter_repairs"] = dg.MetadataValue.int(outcome.converter_repairs)
    if outcome.bom_removed_files:
        metadata["bom_removed_files"] = dg.MetadataValue.json(outcome.bom_removed_files)
    return metadata


def _migrate_metadata(outcome: MigrateOutcome, ucondb_where: str) -> dict:
    metadata = {
        "run": dg.MetadataValue.int(outcome.run),
        "configuration": printable(outcome.configuration),
        "action": outcome.action,
        "ucondb_version_id": dg.MetadataValue.int(outcome.version_id or 0),
        "ucondb_data_key": str(outcome.data_key or ""),
        "size_bytes": dg.MetadataValue.int(outcome.size),
        "md5": outcome.md5,
        "adler32": dg.MetadataValue.int(outcome.adler32),
        "file_count": dg.MetadataValue.int(outcome.file_count),
        "packed_on": outcome.packed_on,
        "ucondb": ucondb_where,
        "duration_s": dg.MetadataValue.float(round(outcome.duration_s, 4)),
    }
    if outcome.replaced_version_id is not None:
        metadata["replaced_version_id"] = dg.MetadataValue.int(outcome.replaced_version_id)
    if outcome.stored_md5:  # verified-legacy: md5 is ours, stored_md5 what UconDB holds
        metadata["stored_md5"] = outcome.stored_md5
        metadata["stored_packed_on"] = outcome.stored_packed_on
    metadata.update(served_metadata(outcome))
    return metadata


def served_metadata(outcome: MigrateOutcome) -> dict:
    """What the migration's streamed download proved (``served_*``, the legacy --validate
    verdict): the checks of the same Dagster run read it instead of downloading again."""
    if not outcome.served_outcome or outcome.legacy_metadata is None:
        return {}
    metadata = {
        "served_md5": outcome.served_md5,
        "served_size_bytes": dg.MetadataValue.int(outcome.served_size),
        "served_outcome": outcome.served_outcome,
        "blob_sections": dg.MetadataValue.int(outcome.legacy_metadata.sections),
        "legacy_metadata_errors": dg.MetadataValue.json(list(outcome.legacy_metadata.errors)),
    }
    if outcome.served_difference:
        metadata["served_difference"] = printable(outcome.served_difference)
    if outcome.packed_md5 and outcome.packed_md5 != outcome.md5:  # skipped-existing
        metadata["packed_md5"] = outcome.packed_md5
    return metadata


def build_archive_assets(backfill_batch_size: int = DEFAULT_BACKFILL_BATCH):
    """The two archive assets; backfills group up to ``backfill_batch_size`` runs per Dagster run."""
    backfill_policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=max(1, backfill_batch_size))

    @dg.asset(
        partitions_def=runs_partitions,
        group_name="archive",
        kinds={"python", "artdaqdb"},
        owners=OWNERS,
        pool="artdaqdb",
        retry_policy=STORE_RETRY_POLICY,
        backfill_policy=backfill_policy,
        description=(
            "The run's configuration in artdaqDB (`<run>/<config>`): the run record's text files "
            "fhiclized, with RunHistory.fcl and schema.fcl, plus the RunHistory2 update once the "
            "stop time is known. Re-materializing an archived run verifies it; it never inserts "
            "a second copy. Tag a run `archiver/force=true` to archive a run that is not finished."
        ),
    )
    def artdaqdb_config(context: dg.AssetExecutionContext, run_records: RunRecordsResource,
                        artdaqdb: ArtdaqDBResource, metrics: MetricsResource) -> Iterator:
        settings = run_records.import_settings()
        force = _is_forced(context)
        where = artdaqdb.describe()
        with artdaqdb.open() as raw_store, metrics.flushed():
            store = metrics.timed_artdaqdb(raw_store)

            directories = RunDirectories(run_records.run_records_dir)

            def work(run: int) -> ImportOutcome:
                return import_run(run, directories.locate(run), store, settings, force=force)

            # Group commit over the range (filesystemdb writes its indexes once, at the end);
            # the step's events are yielded after the flush, so nothing is reported
            # materialized before it is committed.
            yield from _after(raw_store.batch(), _process_partitions(
                context, "imported", work, lambda outcome: _import_metadata(outcome, where),
                secrets=artdaqdb.settings.get().secrets()))

    @dg.asset(
        partitions_def=runs_partitions,
        deps=[artdaqdb_config],
        group_name="archive",
        kinds={"python", "ucondb"},
        owners=OWNERS,
        pool="ucondb",
        retry_policy=STORE_RETRY_POLICY,
        backfill_policy=backfill_policy,
        # on_missing, not eager: eager also fired right after a run that had already produced
        # both assets (deps updated in the same tick), launching duplicate migrations.
        # Only partitions added while the automation sensor runs are considered (the sensor adds
        # them); a run already archiving the partition (in progress) is never doubled.
        automation_condition=(dg.AutomationCondition.on_missing()
                              & ~dg.AutomationCondition.in_progress()
                              & ~dg.AutomationCondition.any_deps_in_progress()
                              & dg.AutomationCondition.all_deps_blocking_checks_passed()),
        description=(
            "The run's blob in UconDB (key = run number): artdaqDB's export packed in the legacy "
            "text format with a deterministic `Packed on` time, uploaded, downloaded again and "
            "MD5-compared byte for byte. A blob already there that differs only in its two "
            "`Packed on` lines (packed by the legacy tool) is the same archive: "
            "`verified-legacy`, with both MD5s. Any other difference fails the partition; an "
            "existing different blob is never overwritten unless `app.on_existing: new_version`. "
            "A run whose import is not materialized or failed a blocking check (hashes_match) is "
            "not migrated."
        ),
    )
    def ucondb_blob(context: dg.AssetExecutionContext, artdaqdb: ArtdaqDBResource,
                    ucondb: UconDBResource, metrics: MetricsResource) -> Iterator:
        where = ucondb.describe()
        policy = ucondb.on_existing
        with artdaqdb.open() as raw_store, ucondb.client() as raw_client, \
                metrics.migration_step() as counts:
            store, client = metrics.timed_artdaqdb(raw_store), metrics.timed_ucondb(raw_client)

            held = holds(context.instance, [run_of(k) for k in context.partition_keys])

            def work(run: int) -> MigrateOutcome:
                if run in held:  # the migration gate (archive/gate.py)
                    raise MigrationHeldError(run, held[run].reason)
                return counts.track(run, lambda: migrate_run(run, store, client,
                                                             on_existing=policy))

            yield from _process_partitions(context, "migrated and verified", work,
                                           lambda outcome: _migrate_metadata(outcome, where),
                                           secrets=ucondb.settings.get().secrets())

    return artdaqdb_config, ucondb_blob
