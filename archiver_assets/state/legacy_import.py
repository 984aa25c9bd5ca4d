"""Importing a legacy deployment's state into Dagster in one command, and keeping the legacy
state files consistent for anyone who still reads them.

``import_legacy_state`` reads ``importer_state.json``, ``migrator_state.json``,
``import_failures.log`` and ``migrate_failures.log`` (``archiver_resources.legacy_state``, the
legacy reading rules), runs :func:`reconcile` first (so every run the stores hold is
MATERIALIZED), then marks the runs the legacy tool logged as failed, and which the target store
still lacks while the source has them, as FAILED partitions (``events.mark_partitions_failed``:
one marker run per stage). Those are what "Materialize failed and missing" and
``--retry-failed-import`` / ``--retry-failed-migrate`` pick up. Everything else the legacy files
say is reported, not recorded: stale failure-log entries (already archived), runs logged as
failed that neither store has (nothing to retry), and runs at or below the legacy high-water mark
that were never archived nor logged (they stay missing partitions; a full run or a "failed and
missing" backfill takes them). Running it twice marks nothing new.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import dagster as dg

from archiver_assets.partitions import run_key
from archiver_assets.state import events
from archiver_assets.state.partition_status import STAGE_ASSETS, read_partition_status
from archiver_assets.state.reconcile import ReconcileResult, reconcile
from archiver_assets.state.stores import Stores, as_stores
from archiver_assets.resources import (
    ArchiverConfigResource, ArtdaqDBResource, RunRecordsResource, UconDBResource,
)

if TYPE_CHECKING:
    # legacy_state pulls in numpy: the functions below import it when they run, so a run worker
    # loading the definitions for an archive run does not pay for it.
    from archiver_resources import legacy_state as ls

RULE = "=" * 70
LEGACY_STAGES = {"import": "import", "migrate": "migration"}  # ours → legacy_state's names
TARGET_NAMES = {"import": "artdaqDB", "migrate": "UconDB"}


@dataclass
class StageImport:
    """One stage of the legacy import: the interpretation and what was marked."""

    stage: str
    plan: "ls.LegacyImportPlan"
    marked: list = field(default_factory=list)
    already_failed: list = field(default_factory=list)
    in_progress: list = field(default_factory=list)
    marker_run_id: Optional[str] = None


@dataclass
class LegacyImportResult:
    work_dir: Path
    files: dict  # file name → exists
    reconcile: ReconcileResult
    stages: dict
    dry_run: bool = False

    @property
    def marked(self) -> int:
        return sum(len(s.marked) for s in self.stages.values())

    def summary_lines(self) -> list:
        lines = [RULE, "LEGACY STATE IMPORT " + ("PLAN (dry run)" if self.dry_run else "COMPLETE"),
                 RULE, f"  Work dir:            {self.work_dir}"]
        for name, exists in self.files.items():
            lines.append(f"  {name + ':':<21}{'found' if exists else 'not found (empty)'}")
        lines += [f"  {line}" for line in self.reconcile.summary_lines()]
        verb = "To mark failed" if self.dry_run else "Marked failed"
        for stage in self.stages.values():
            plan = stage.plan
            asset = STAGE_ASSETS[stage.stage].to_user_string()
            lines += ["", f"{stage.stage.upper()} STAGE ({asset})", "-" * 70,
                      f"  Legacy state:        last contiguous {plan.state.last_contiguous_run}, "
                      f"last attempted {plan.state.last_attempted_run}",
                      f"  {verb + ':':<21}{_runs(stage.marked)}"]
            if stage.already_failed:
                lines.append(f"  Already failed:      {_runs(stage.already_failed)}")
            if stage.in_progress:
                lines.append(f"  In progress (left):  {_runs(stage.in_progress)}")
            if plan.recovered:
                lines.append(f"  Stale log entries:   {_runs(plan.recovered)} already in "
                             f"{TARGET_NAMES[stage.stage]}")
            if plan.failed_without_source:
                lines.append(f"  Cannot retry:        {_runs(plan.failed_without_source)} logged "
                             "as failed but in neither store")
            if plan.skipped:
                lines.append(f"  Never retried:       {_runs(plan.skipped)} at or below the "
                             "legacy high-water mark, neither archived nor logged: missing "
                             "partitions (a full run or a failed-and-missing backfill takes them)")
            if stage.marker_run_id:
                lines.append(f"  Marker run:          {stage.marker_run_id}")
        lines.append(RULE)
        return lines


def _runs(runs, limit: int = 10) -> str:
    runs = sorted(runs)
    if not runs:
        return "none"
    shown = ", ".join(str(r) for r in runs[:limit])
    return f"{len(runs)} run(s) ({shown}{' ...' if len(runs) > limit else ''})"


def legacy_files(stores: Stores, work_dir: Optional[Path] = None) -> dict:
    """``{stage: (state file, failure log)}``: under ``work_dir`` with the legacy names, or the
    paths configured in ``app``."""
    from archiver_resources import legacy_state as ls

    app = stores.config.app
    if work_dir is not None:
        base = Path(work_dir)
        return {"import": (base / ls.IMPORT_STATE_FILE, base / ls.IMPORT_FAILURE_LOG),
                "migrate": (base / ls.MIGRATE_STATE_FILE, base / ls.MIGRATE_FAILURE_LOG)}
    return {"import": (app.import_state_file, app.import_failure_log),
            "migrate": (app.migrate_state_file, app.migrate_failure_log)}


def import_legacy_state(instance, config, *, work_dir=None, dry_run: bool = False,
                        verify: bool = False) -> LegacyImportResult:
    """Reconcile, then mark the legacy tool's failed runs as FAILED partitions (see the module
    docstring)."""
    from archiver_resources import legacy_state as ls

    stores = as_stores(config)
    paths = legacy_files(stores, Path(work_dir) if work_dir else None)
    legacy = {stage: ls.LegacyStage(LEGACY_STAGES[stage], ls.read_state(state),
                                    ls.read_failure_log(failures))
              for stage, (state, failures) in paths.items()}
    filesystem = set(stores.list_filesystem().runs)
    logged = legacy["import"].failures | legacy["migrate"].failures
    result = reconcile(instance, stores, verify=verify, dry_run=dry_run,
                       extra_partitions=logged & filesystem)
    artdaqdb = set(result.artdaqdb_runs)
    sources = {"import": filesystem, "migrate": artdaqdb}
    targets = {"import": artdaqdb, "migrate": set(result.ucondb_runs or ())}
    stages = {}
    for stage, data in legacy.items():
        plan = ls.interpret(data.state, data.failures, targets[stage], sources[stage],
                            stage=LEGACY_STAGES[stage])
        stages[stage] = _mark_stage(instance, stage, plan, dry_run=dry_run)
    files = {path.name: path.exists() for pair in paths.values() for path in pair}
    base = Path(work_dir) if work_dir else stores.config.app.work_dir
    return LegacyImportResult(work_dir=base, files=files, reconcile=result, stages=stages,
                              dry_run=dry_run)


def _mark_stage(instance, stage: str, plan: "ls.LegacyImportPlan", *,
                dry_run: bool) -> StageImport:
    from archiver_resources import legacy_state as ls

    asset_key = STAGE_ASSETS[stage]
    status = read_partition_status(instance, asset_key)
    outcome = StageImport(stage=stage, plan=plan)
    outcome.already_failed = sorted(set(plan.failed) & status.failed)
    outcome.in_progress = sorted(set(plan.failed) & status.in_progress)
    outcome.marked = sorted(set(plan.failed) - status.failed - status.in_progress)
    if outcome.marked and not dry_run:
        log_name = ls.IMPORT_FAILURE_LOG if stage == "import" else ls.MIGRATE_FAILURE_LOG
        outcome.marker_run_id = events.mark_partitions_failed(
            instance, asset_key, [run_key(r) for r in outcome.marked],
            message=f"Marked failed by the legacy state import: the legacy archiver logged "
                    f"these runs in {log_name} and {TARGET_NAMES[stage]} does not hold them. "
                    f"Retry with `run-record-archiver --retry-failed-{stage}` or "
                    f"\"Materialize failed and missing\".",
            tags={"archiver/legacy_stage": stage})
    return outcome


def refresh_legacy_files(stores: Stores, stage: str, source_runs, target_runs) -> tuple:
    """The legacy tool's state recovery for one stage (docs/migration-from-legacy.md §3.1):
    ``(last_contiguous, last_attempted, missing, written)``. The legacy state file and failure
    log are rewritten (atomically: a temporary file in the same directory, renamed into place)
    only when the state file already exists, i.e. for a deployment that still keeps them."""
    from archiver_resources import legacy_state as ls

    last_contiguous, last_attempted, missing = ls.recover_state(source_runs, target_runs)
    state_file, failure_log = legacy_files(stores)[stage]
    written = Path(state_file).exists()
    if written:
        ls.write_state(state_file, last_contiguous, last_attempted)
        ls.write_failure_log(failure_log, missing)
    return last_contiguous, last_attempted, missing, written


# ---------------------------------------------------------------------------------------------
# The Dagster job
# ---------------------------------------------------------------------------------------------

class LegacyImportConfig(dg.Config):
    """Run configuration of ``import_legacy_state``: the legacy work_dir (default: app.*)."""

    work_dir: Optional[str] = None
    dry_run: bool = False


@dg.op(name="import_legacy_state_files", out=dg.Out(dg.Nothing),
       description="Reconciles with the stores, then marks the runs the legacy archiver logged "
                   "as failed (and the target store lacks) as FAILED partitions.")
def import_legacy_state_op(context: dg.OpExecutionContext, config: LegacyImportConfig,
                           archiver_config: ArchiverConfigResource,
                           run_records: RunRecordsResource, artdaqdb: ArtdaqDBResource,
                           ucondb: UconDBResource):
    stores = Stores.from_resources(archiver_config, run_records, artdaqdb, ucondb)
    result = import_legacy_state(context.instance, stores, work_dir=config.work_dir,
                                 dry_run=config.dry_run)
    lines: List[str] = result.summary_lines()
    for line in lines:
        context.log.info(line)
    return dg.Output(None, metadata={
        "summary": dg.MetadataValue.md("```\n" + "\n".join(lines) + "\n```"),
        "marked_failed": dg.MetadataValue.int(result.marked),
        "recorded": dg.MetadataValue.int(result.reconcile.recorded)})


@dg.job(name="import_legacy_state", executor_def=dg.in_process_executor,
        tags={"dagster/max_retries": "0"},
        description="One-shot import of a legacy deployment (state files and failure logs in "
                    "work_dir); same as `run-record-archiver --import-legacy-state`.")
def import_legacy_state_job():
    import_legacy_state_op()
