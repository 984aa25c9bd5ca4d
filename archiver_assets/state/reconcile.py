"""Rebuilding Dagster's partition status from the stores: the stores are the truth, the Dagster
instance is disposable (delete ``DAGSTER_HOME``, run ``reconcile``, nothing is re-processed).

For every run artdaqDB holds (its index only: ``archived_runs()``) whose ``artdaqdb_config``
partition is not MATERIALIZED, and every run UconDB holds (``existing_runs()``: keys that are
exact run numbers) whose ``ucondb_blob`` partition is not, reconcile records a runless
materialization with metadata ``source=reconcile``. Missing partitions are added first, in
ascending run order, in one call. Partitions already MATERIALIZED or IN_PROGRESS are left alone,
so a second reconcile writes nothing. A FAILED partition whose run the store holds becomes
MATERIALIZED: the store says it is archived. The other way round, a MATERIALIZED partition whose
run the store no longer holds (a store restored from an older backup) is marked FAILED with the
reason (``state.drift``), so ``--incremental`` and the sensor archive it again.

"Verified" at 10k runs: by default reconcile trusts presence (the store listing) and records
``verified=presence``; the partitions then say "the store holds this run", which is what the legacy
state files said too. ``verify=True`` (CLI ``--verify``) checks each run before recording it:
import, the stored ``hashes`` entity against the run record on disk (``verified=hashes``; a run
whose record is gone is recorded with ``verified=presence``); migration, the MD5 of the blob
packed from artdaqDB against the MD5 of the bytes UconDB serves (``verified=md5``, or
``md5 (verified-legacy)`` for a legacy blob that differs only in its ``Packed on`` lines). A run
that fails verification is not recorded; it stays missing and the next archive run reports it
(IntegrityError), so nothing wrong is hidden. Verification reads every blob: expect roughly the
cost of the ``md5_round_trip`` check per run.

Writes are batched (``events.store_events``): 10k runs × 2 assets in seconds, see
bench/bench_reconcile.py.
"""

import logging
import time
from dataclasses import dataclass, field
from typing import Iterable, List, Optional, Sequence

import dagster as dg

from archiver_assets.partitions import run_key, runs_partitions
from archiver_assets.state import events
from archiver_assets.state.drift import Drift, find_drift, repair_drift
from archiver_assets.state.partition_status import (
    IMPORT_ASSET, MIGRATE_ASSET, STAGE_ASSETS, canonical_runs, partition_keys,
    read_partition_status,
)
from archiver_assets.state.stores import Stores, as_stores
from archiver_resources.archiving import check_stored_blob, prepare_from_disk, verify_archived
from archiver_resources.errors import ArchiverError, IntegrityError
from archiver_resources.redaction import redact_uri
from archiver_assets.resources import (
    ArchiverConfigResource, ArtdaqDBResource, RunRecordsResource, UconDBResource,
)

log = logging.getLogger(__name__)

STAGES = ("import", "migrate")
SOURCE = "reconcile"


@dataclass
class StageReconcile:
    """What reconcile found and did for one stage's asset."""

    stage: str
    asset: str
    store_runs: int = 0
    recorded: list = field(default_factory=list)  # newly recorded as materialized
    already: int = 0  # already MATERIALIZED in Dagster
    in_progress: list = field(default_factory=list)  # left alone: a run is archiving them
    failed_before: list = field(default_factory=list)  # were FAILED, now recorded
    unverified: dict = field(default_factory=dict)  # run → why verification failed


@dataclass
class ReconcileResult:
    """The outcome of one reconcile: per stage, plus the store listings it used."""

    stages: dict
    added_partitions: list
    artdaqdb_runs: dict
    ucondb_runs: Optional[set]
    seconds: float = 0.0
    dry_run: bool = False
    drift: Drift = field(default_factory=Drift)

    @property
    def recorded(self) -> int:
        return sum(len(s.recorded) for s in self.stages.values())

    def summary_lines(self) -> list:
        verb = "would record" if self.dry_run else "recorded"
        lines = [f"Partitions {'to add' if self.dry_run else 'added'}: "
                 f"{len(self.added_partitions)}"]
        for stage in self.stages.values():
            lines.append(
                f"{stage.asset}: {stage.store_runs} run(s) in the store, {stage.already} already "
                f"materialized, {verb} {len(stage.recorded)}"
                + (f" ({len(stage.failed_before)} were failed)" if stage.failed_before else "")
                + (f", {len(stage.in_progress)} in progress left alone"
                   if stage.in_progress else "")
                + (f", {len(stage.unverified)} failed verification" if stage.unverified else ""))
            for run, why in sorted(stage.unverified.items())[:10]:
                lines.append(f"  ✗ run {run} not recorded: {why}")
        for line in self.drift.lines():
            lines.append(f"✗ {line}" + ("; a reconcile without --dry-run marks them failed so "
                                        "they are archived again" if self.dry_run else ""))
        lines.append(f"Reconcile took {self.seconds:.2f} s")
        return lines


def _add_missing_partitions(instance, runs: Iterable[int], *, dry_run: bool) -> list:
    known = canonical_runs(partition_keys(instance))
    missing = sorted(set(runs) - known)
    if missing and not dry_run:
        instance.add_dynamic_partitions(runs_partitions.name, [run_key(r) for r in missing])
    return missing


def ensure_partitions(instance, runs: Iterable[int]) -> list:
    """Add the runs that are not partitions yet, ascending, in one call; returns them."""
    return _add_missing_partitions(instance, runs, dry_run=False)


def _verify_imports(stores: Stores, runs: Sequence[int], artdaqdb_runs: dict,
                    stage: StageReconcile) -> dict:
    """run → verification label for runs that pass; failures go to ``stage.unverified``."""
    settings = stores.run_records.import_settings()
    listing = stores.list_filesystem().runs
    labels = {}
    with stores.open_artdaqdb() as store:
        for run in runs:
            if run not in listing:
                labels[run] = "presence (run record not on disk)"
                continue
            try:
                source = prepare_from_disk(run, listing[run], settings, force=True)
                verify_archived(run, source, settings, store)
            except IntegrityError as error:
                stage.unverified[run] = str(error)
                continue
            except ArchiverError as error:
                labels[run] = f"presence (cannot verify: {error})"
                continue
            labels[run] = "hashes"
    return labels


def _verify_migrations(stores: Stores, runs: Sequence[int], artdaqdb_runs: dict,
                       stage: StageReconcile) -> dict:
    labels = {}
    with stores.open_artdaqdb() as store, stores.open_ucondb() as client:
        for run in runs:
            if run not in artdaqdb_runs:
                labels[run] = "presence (not in artdaqDB: cannot re-pack)"
                continue
            try:
                check = check_stored_blob(run, store, client, artdaqdb_runs[run])
            except ArchiverError as error:
                stage.unverified[run] = str(error)
                continue
            if check.outcome == "mismatch":
                stage.unverified[run] = (f"MD5 mismatch: UconDB serves {check.stored_md5}, "
                                         f"artdaqDB packs to {check.packed_md5} "
                                         f"({check.difference})")
                continue
            labels[run] = "md5" if check.outcome == "identical" else "md5 (verified-legacy)"
    return labels


def _plan_stage(stage_name: str, asset_key: dg.AssetKey, store_runs: Iterable[int],
                status) -> tuple:
    store_runs = set(store_runs)
    stage = StageReconcile(stage=stage_name, asset=asset_key.to_user_string(),
                           store_runs=len(store_runs))
    stage.already = len(store_runs & status.materialized)
    stage.in_progress = sorted(store_runs & status.in_progress)
    todo = sorted(store_runs - status.materialized - status.in_progress)
    stage.failed_before = sorted(set(todo) & status.failed)
    return stage, todo


def reconcile(instance, config, *, stages: Sequence[str] = STAGES, verify: bool = False,
              dry_run: bool = False, extra_partitions: Iterable[int] = (),
              found_by: str = "reconcile") -> ReconcileResult:
    """Record in ``instance`` what the stores of ``config`` hold (see the module docstring).

    ``config``: a ``Stores``, a loaded ``ArchiverConfig`` or a config.yaml path. ``stages``:
    any of ``import`` (artdaqDB → ``artdaqdb_config``) and ``migrate`` (UconDB →
    ``ucondb_blob``). ``extra_partitions``: runs to add as partitions too (legacy import).
    ``dry_run``: compute everything, write nothing. Store listing errors propagate. Runs
    Dagster records as archived that a store lacks (``state.drift``) are marked failed so they
    are archived again; ``found_by`` names the caller in that message.
    """
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)}; use {STAGES}")
    started = time.monotonic()
    stores = as_stores(config)
    # Dagster first, the stores second: a run archived in between is not mistaken for drift.
    status = {stage: read_partition_status(instance, STAGE_ASSETS[stage]) for stage in stages}
    artdaqdb_runs = stores.list_artdaqdb()
    ucondb_runs = stores.list_ucondb() if "migrate" in stages else None
    plans = {}
    if "import" in stages:
        plans["import"] = _plan_stage("import", IMPORT_ASSET, artdaqdb_runs, status["import"])
    if "migrate" in stages:
        plans["migrate"] = _plan_stage("migrate", MIGRATE_ASSET, ucondb_runs, status["migrate"])
    drift = find_drift(status, artdaqdb_runs=artdaqdb_runs if "import" in stages else None,
                       ucondb_runs=ucondb_runs)

    metadata = {}
    where_adb = redact_uri(stores.config.artdaq_db.database_uri)
    ucon = stores.config.ucon_db
    where_ucon = f"{redact_uri(ucon.server_url)} {ucon.folder_name}/{ucon.object_name}"
    for name, (stage, todo) in plans.items():
        if verify and todo:
            verifier = _verify_imports if name == "import" else _verify_migrations
            labels = verifier(stores, todo, artdaqdb_runs, stage)
        else:
            labels = {run: "presence" for run in todo}
        stage.recorded = sorted(labels)
        metadata[name] = {}
        for run in stage.recorded:
            entry = {"source": SOURCE, "run": run, "verified": labels[run]}
            if name == "import":
                entry.update(configuration=artdaqdb_runs[run], artdaqdb=where_adb)
            else:
                entry.update(ucondb=where_ucon, in_artdaqdb=run in artdaqdb_runs)
            metadata[name][run_key(run)] = entry

    wanted = set(extra_partitions)
    for stage, _ in plans.values():
        wanted |= set(stage.recorded)
    added = _add_missing_partitions(instance, wanted, dry_run=dry_run)
    if not dry_run:
        for name, by_partition in metadata.items():
            if by_partition:
                events.record_materializations(
                    instance, IMPORT_ASSET if name == "import" else MIGRATE_ASSET, by_partition)
        repair_drift(instance, drift, where={"import": where_adb, "migrate": where_ucon},
                     found_by=found_by)
    result = ReconcileResult(stages={name: stage for name, (stage, _) in plans.items()},
                             added_partitions=added, artdaqdb_runs=artdaqdb_runs,
                             ucondb_runs=ucondb_runs, seconds=time.monotonic() - started,
                             dry_run=dry_run, drift=drift)
    for line in result.summary_lines():
        log.log(line_level(line), line)
    return result


def line_level(line: str) -> int:
    """WARNING for a summary line that reports a problem (``✗ …``), else INFO."""
    return logging.WARNING if line.lstrip().startswith("✗") else logging.INFO


# ---------------------------------------------------------------------------------------------
# The Dagster job
# ---------------------------------------------------------------------------------------------

class ReconcileConfig(dg.Config):
    """Run configuration of the ``reconcile`` job."""

    stages: List[str] = list(STAGES)
    verify: bool = False
    dry_run: bool = False


def _reconcile_metadata(result: ReconcileResult) -> dict:
    metadata = {
        "summary": dg.MetadataValue.md("\n".join(f"- {line}" for line in result.summary_lines())),
        "partitions_added": dg.MetadataValue.int(len(result.added_partitions)),
        "recorded": dg.MetadataValue.int(result.recorded),
        "dry_run": dg.MetadataValue.bool(result.dry_run),
        "duration_s": dg.MetadataValue.float(round(result.seconds, 3)),
    }
    for name, stage in result.stages.items():
        metadata[f"{name}_recorded"] = dg.MetadataValue.int(len(stage.recorded))
        metadata[f"{name}_store_runs"] = dg.MetadataValue.int(stage.store_runs)
        if stage.unverified:
            metadata[f"{name}_unverified"] = dg.MetadataValue.json(
                {str(r): why for r, why in sorted(stage.unverified.items())[:200]})
        metadata[f"{name}_lost_by_store"] = dg.MetadataValue.json(
            result.drift.lost.get(name, [])[:1000])
    return metadata


@dg.op(
    name="reconcile_archive",
    out=dg.Out(dg.Nothing),
    description="Records in Dagster what artdaqDB and UconDB hold: adds the missing run "
                "partitions (ascending) and a runless materialization (source=reconcile) for "
                "every archived run Dagster does not know as materialized. Idempotent.",
)
def reconcile_archive(context: dg.OpExecutionContext, config: ReconcileConfig,
                      archiver_config: ArchiverConfigResource, run_records: RunRecordsResource,
                      artdaqdb: ArtdaqDBResource, ucondb: UconDBResource):
    stores = Stores.from_resources(archiver_config, run_records, artdaqdb, ucondb)
    result = reconcile(context.instance, stores, stages=tuple(config.stages),
                       verify=config.verify, dry_run=config.dry_run)
    for line in result.summary_lines():
        context.log.info(line)
    return dg.Output(None, metadata=_reconcile_metadata(result))


@dg.job(
    name="reconcile",
    executor_def=dg.in_process_executor,
    tags={"dagster/max_retries": "0"},
    description="Rebuild the partition status of both archive assets from the stores (the "
                "stores are the truth; run after losing DAGSTER_HOME or after a legacy "
                "deployment). Same as `run-record-archiver --recover-import-state` and "
                "`--recover-migrate-state`.",
)
def reconcile_job():
    reconcile_archive()
