"""The modes of the command line: what each flag combination does once the invocation has
started (``main.Invocation``): the full pipeline and its one-stage, incremental and retry forms as
Dagster runs of ``import_runs`` / ``migrate_runs`` (through ``workers``), the recover and reconcile
modes, the legacy state import and the status report.

Every line goes to the ``archiver_assets.cli`` logger, as before the split.
"""

from __future__ import annotations  # ``Invocation`` is only imported for type checking

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from archiver_assets.cli.main import RULE, STAGE_RULE

if TYPE_CHECKING:
    from archiver_assets.cli.main import Invocation

logger = logging.getLogger("archiver_assets.cli")

# ---------------------------------------------------------------------------------------------
# The modes: one function each, chosen from the flags
# ---------------------------------------------------------------------------------------------

def choose(args) -> Callable[["Invocation", object, object], int]:
    """The mode function of the parsed flags, in the legacy precedence: the recover modes, then
    --reconcile, --report-status/--compare-state, --import-legacy-state, and last the processing
    modes (``--dry-run`` plans any of them instead). The mode flags themselves are mutually
    exclusive (argparse); ``--incremental`` narrows the processing modes."""
    if args.recover_import_state:
        return recover_import_state
    if args.recover_migrate_state:
        return recover_migrate_state
    if args.reconcile:
        return reconcile
    if args.report_status or args.compare_state:
        return report_status
    if args.import_legacy_state is not None:
        return import_legacy_state
    if args.dry_run:
        return dry_run
    if args.retry_failed_import:
        return retry_failed_import
    if args.retry_failed_migrate:
        return retry_failed_migrate
    if args.import_only:
        return import_only
    if args.migrate_only:
        return migrate_only
    if args.incremental:
        return incremental
    return full_pipeline


def processing_mode(args):
    """The ``state.plan`` run mode of the processing flags (``--incremental`` included)."""
    from archiver_assets.state.plan import mode_for

    return mode_for(import_only=args.import_only, migrate_only=args.migrate_only,
                    retry_import=args.retry_failed_import,
                    retry_migrate=args.retry_failed_migrate, incremental=args.incremental)


def full_pipeline(inv: Invocation, instance, stores) -> int:
    """No mode flag: the import stage, then the migration stage (the runs whose import failed in
    this invocation are left out of it); candidates capped at batch_size*10 per stage."""
    return process(inv, instance, stores, processing_mode(inv.args))


def incremental(inv: Invocation, instance, stores) -> int:
    """``--incremental``: the full pipeline over the runs above the highest materialized
    partition of each stage, capped at batch_size per stage (the cron job's mode)."""
    return process(inv, instance, stores, processing_mode(inv.args))


def import_only(inv: Invocation, instance, stores) -> int:
    """``--import-only`` (with or without ``--incremental``): job ``import_runs`` only."""
    return process(inv, instance, stores, processing_mode(inv.args))


def migrate_only(inv: Invocation, instance, stores) -> int:
    """``--migrate-only`` (with or without ``--incremental``): job ``migrate_runs`` only."""
    return process(inv, instance, stores, processing_mode(inv.args))


def retry_failed_import(inv: Invocation, instance, stores) -> int:
    """``--retry-failed-import``: every FAILED artdaqdb_config partition and every run whose
    blocking import check failed, no batch cap; no migration stage."""
    return process(inv, instance, stores, processing_mode(inv.args))


def retry_failed_migrate(inv: Invocation, instance, stores) -> int:
    """``--retry-failed-migrate``: every FAILED ucondb_blob partition, no batch cap."""
    return process(inv, instance, stores, processing_mode(inv.args))


def dry_run(inv: Invocation, instance, stores) -> int:
    """``--dry-run`` with a processing mode: what that mode would import, migrate, verify or skip
    and why (``state.plan.build_plan``); writes nothing. Exit 0."""
    from archiver_assets.state.plan import build_plan

    for line in build_plan(instance, stores, processing_mode(inv.args)).lines():
        logger.info(line)
    return 0


def report_status(inv: Invocation, instance, stores) -> int:
    """``--report-status`` / ``--compare-state``: the status report; no processing. Exit 0."""
    return report(instance, stores, compare=inv.args.compare_state)


def recover_import_state(inv: Invocation, instance, stores) -> int:
    """``--recover-import-state``: artdaqdb_config partition status rebuilt from artdaqDB."""
    return recover(inv, instance, stores, "import")


def recover_migrate_state(inv: Invocation, instance, stores) -> int:
    """``--recover-migrate-state``: ucondb_blob partition status rebuilt from UconDB."""
    return recover(inv, instance, stores, "migrate")


def reconcile(inv: Invocation, instance, stores) -> int:
    """``--reconcile``: both recover modes in one command (the ``reconcile`` job's form)."""
    return reconcile_all(inv, instance, stores)


def import_legacy_state(inv: Invocation, instance, stores) -> int:
    """``--import-legacy-state [WORK_DIR]``: the legacy state files and failure logs, once."""
    return import_legacy(inv, instance, stores, inv.args.import_legacy_state or None)


# ---------------------------------------------------------------------------------------------
# Processing: full pipeline, --import-only, --migrate-only, retries
# ---------------------------------------------------------------------------------------------

STAGE_BANNERS = {
    ("import", False): ("Import", "Import - Importing runs from filesystem to ArtdaqDB"),
    ("migrate", False): ("Migration", "Migration - Migrating runs from ArtdaqDB to UconDB"),
    ("import", True): ("Import Recovery", "Import Recovery - Retrying failed imports"),
    ("migrate", True): ("Migration Recovery", "Migration Recovery - Retrying failed migrations"),
}
NOTIFY_STAGES = {"import": "import", "migrate": "migration"}


def process(inv: Invocation, instance, stores, mode) -> int:
    """The full pipeline or one stage (normal, incremental or retry: ``mode``), as Dagster runs."""
    config = inv.config
    logger.info("=== Execution Mode: %s ===", mode.title)
    fuzz = config.app_fuzz
    if fuzz.random_skip_percent or fuzz.random_error_percent:
        logger.warning("app_fuzz (fault injection) is not supported by this version; ignored")
    codes = {}
    import_failed: list = []
    if "import" in mode.stages:
        codes["import"], outcome = run_one_stage(inv, instance, stores, mode, "import")
        import_failed = sorted(outcome.failed) if outcome else []
    if "migrate" in mode.stages:
        if inv.controller.requested:
            logger.warning("Shutdown requested: the migration stage is not started")
        else:
            codes["migrate"], _ = run_one_stage(inv, instance, stores, mode, "migrate",
                                                exclude=import_failed)
    code = codes.get("import", 0) or codes.get("migrate", 0)
    if code == 0:
        logger.info("✓ EXECUTION COMPLETED SUCCESSFULLY")
    else:
        logger.error("✗ EXECUTION COMPLETED WITH FAILURES (exit code: %d)", code)
    return code


def run_one_stage(inv: Invocation, instance, stores, mode, stage: str, exclude=()) -> tuple:
    """Banners, candidates, execution, alerts and metrics of one stage: ``(exit code, outcome)``."""
    from archiver_resources.errors import ArchiverError

    retry = mode.selection == "retry"
    label, title = STAGE_BANNERS[(stage, retry)]
    inv.stage = label
    logger.info(STAGE_RULE)
    logger.info("STAGE: %s", title)
    if not retry:
        logger.info("Mode: %s", "Incremental" if mode.incremental else "Full")
    logger.info(STAGE_RULE)
    outcome = None
    try:
        runs = select_runs(inv, instance, stores, mode, stage, exclude)
        if runs:
            outcome = execute_runs(inv, instance, stage, runs)
            code = outcome.exit_code
            after_stage(inv, stage, mode, outcome)
        else:
            logger.info("No runs to process")
            code = 0
            if stage == "migrate" and not retry:
                send_migration_metrics(inv.config, [], [])
    except ArchiverError as error:  # e.g. the run-records directory cannot be listed
        logger.error("✗ %s Stage cannot run: %s", label, error)
        code = 1
    if code == 0:
        logger.info("✓ %s Stage completed successfully (exit code: 0)", label)
    else:
        logger.error("✗ %s Stage completed with failures (exit code: %d)", label, code)
    inv.stage = None
    return code, outcome


def select_runs(inv: Invocation, instance, stores, mode, stage: str, exclude) -> list:
    """This stage's runs by the legacy candidate rules over partition status (state.plan)."""
    from archiver_assets.state.partition_status import read_stage_status
    from archiver_assets.state.plan import (
        migration_gate, plan_import, plan_migrate, retried_check_failures,
    )

    config = inv.config
    status = read_stage_status(instance)
    if stage == "import":
        listing = stores.list_filesystem()
        plan = plan_import(selection=mode.selection, listing=listing, status=status["import"],
                           batch_size=config.app.batch_size,
                           min_age_seconds=float(config.source_files.finished_after_seconds),
                           check_failed=retried_check_failures(instance, mode.selection),
                           max_jump=config.app.max_run_number_jump)
        if listing.runs and not status["import"].ever_materialized and mode.selection != "retry":
            warn_if_instance_is_empty(stores)
    else:
        plan = plan_migrate(selection=mode.selection, import_status=status["import"],
                            migrate_status=status["migrate"], batch_size=config.app.batch_size,
                            exclude=exclude, held_back=migration_gate(instance),
                            max_jump=config.app.max_run_number_jump)
    for line in plan.far_above_lines():
        logger.warning("Run number far above the others: %s", line)
    for entry in plan.entries:
        if entry.action == "skip":
            level = logging.WARNING if "problem" in entry.reason else logging.INFO
            logger.log(level, "Run %d skipped: %s", entry.run, entry.reason)
        elif entry.action == "hold":
            logger.warning("Run %d held back from migration: %s", entry.run, entry.reason)
    for reason, count in plan.skipped.items():
        if count:
            logger.debug("%d run(s) skipped: %s", count, reason)
    what = "import" if stage == "import" else "migrate"
    logger.info("Found %d run(s) to %s", len(plan.selected) + plan.remaining, what)
    if plan.limited_line():
        logger.info(plan.limited_line())
    return plan.selected


def warn_if_instance_is_empty(stores) -> None:
    """A fresh DAGSTER_HOME beside populated stores: every run would be re-verified."""
    from archiver_resources.errors import ArchiverError

    try:
        archived = stores.list_artdaqdb()
    except ArchiverError:
        return
    if archived:
        logger.warning("This Dagster instance knows no imported run, but artdaqDB holds %d: run "
                       "`run-record-archiver %s --reconcile` first, or every run is re-verified",
                       len(archived), stores.config.path or "config.yaml")


def execute_runs(inv: Invocation, instance, stage: str, runs: list):
    from archiver_assets.cli.workers import run_stage

    mode_tag = "retry" if inv.args.retry_failed_import or inv.args.retry_failed_migrate else (
        "incremental" if inv.args.incremental else "full")
    return run_stage(stage=stage, runs=runs, instance=instance, pool=inv.worker_pool(),
                     batch_size=inv.config.app.batch_size,
                     stop_requested=lambda: inv.controller.requested,
                     tags={"archiver/mode": mode_tag,
                           "archiver/invocation": inv.invocation_id}, logger=logger)


def after_stage(inv: Invocation, stage: str, mode, outcome) -> None:
    """--validate lines, failure alerts (never blocking), migration metrics."""
    if stage == "migrate" and inv.args.validate and mode.selection != "retry":
        for run, errors in sorted(outcome.validation.items()):
            if errors:
                logger.warning("✗ Blob validation found %d errors for run %d: %s", len(errors),
                               run, "; ".join(errors))
            else:
                logger.info("✓ Blob validation passed for run %d", run)
    if outcome.failed:
        notify_failures(inv.config, NOTIFY_STAGES[stage], outcome.failed)
    if stage == "migrate" and mode.selection != "retry":
        send_migration_metrics(inv.config, outcome.succeeded, sorted(outcome.failed))


def notify_failures(config, stage: str, failed: dict) -> None:
    from archiver_resources.notifications import Notifier
    from archiver_resources.notifications import email_settings, slack_settings

    notifier = Notifier(email=email_settings(config), slack=slack_settings(config))
    if notifier.enabled:
        notifier.notify_failures(stage, failed, reason=failed)


def send_migration_metrics(config, succeeded, failed) -> None:
    from archiver_resources.metrics import open_metrics, send_migration_counts

    carbon = config.carbon
    if not carbon.enabled:
        return
    metrics = open_metrics(enabled=True, host=carbon.host, port=carbon.port,
                           prefix=carbon.metric_prefix or "")
    try:
        send_migration_counts(metrics, list(succeeded), list(failed))
    finally:
        metrics.close(timeout=2.0)


# ---------------------------------------------------------------------------------------------
# --recover-*-state, --import-legacy-state
# ---------------------------------------------------------------------------------------------

def recover(inv: Invocation, instance, stores, stage: str) -> int:
    """Reconcile one stage from the stores and print the legacy recovery summary."""
    from archiver_assets.state.legacy_import import refresh_legacy_files
    from archiver_assets.state.reconcile import line_level, reconcile
    from archiver_resources import legacy_state as ls

    name = "IMPORT" if stage == "import" else "MIGRATION"
    logger.info("=== Execution Mode: Recover %s State ===", name.capitalize())
    inv.stage = f"{name.capitalize()} State Recovery"
    result = reconcile(instance, stores, stages=(stage,), verify=inv.args.verify,
                       dry_run=inv.args.dry_run)
    if stage == "import":
        source, target = set(stores.list_filesystem().runs), set(result.artdaqdb_runs)
        source_name, target_name = "Filesystem", "ArtdaqDB"
    else:
        source, target = set(result.artdaqdb_runs), set(result.ucondb_runs)
        source_name, target_name = "ArtdaqDB", "UconDB"
    if inv.args.dry_run:
        last_contiguous, last_attempted, missing = ls.recover_state(source, target)
        written = False
    else:
        last_contiguous, last_attempted, missing, written = refresh_legacy_files(
            stores, stage, source, target)
    outcome = result.stages[stage]
    shown = ", ".join(str(r) for r in missing[:10]) + (" ..." if len(missing) > 10 else "")
    state_file = (inv.config.app.import_state_file if stage == "import"
                  else inv.config.app.migrate_state_file)
    verb = "would record" if inv.args.dry_run else "recorded"
    lines = [RULE, f"{name} STATE RECOVERY {'PLAN (dry run)' if inv.args.dry_run else 'COMPLETE'}",
             RULE,
             f"  {source_name + ' runs:':<22}{len(source)}",
             f"  {target_name + ' runs:':<22}{len(target)}",
             f"  {'Last contiguous run:':<22}{last_contiguous}",
             f"  {'Last attempted run:':<22}{last_attempted}",
             f"  {'Missing runs:':<22}{len(missing)}" + (f" ({shown})" if missing else ""),
             f"  {'Dagster partitions:':<22}{len(result.added_partitions)} added; "
             f"{outcome.asset}: {verb} {len(outcome.recorded)}, already {outcome.already}",
             f"  {'Legacy state file:':<22}"
             + (f"rewritten ({state_file})" if written else "not present, left alone"),
             f"  {'Took:':<22}{result.seconds:.2f} s"]
    for run, why in sorted(outcome.unverified.items())[:10]:
        lines.append(f"  ✗ run {run} failed verification, not recorded: {why}")
    lines += [f"  ✗ {line}" for line in result.drift.lines()]
    lines.append(RULE)
    for line in lines:
        logger.log(line_level(line), line)
    inv.stage = None
    return 1 if outcome.unverified else 0


def reconcile_all(inv: Invocation, instance, stores) -> int:
    """Both stages from the stores in one command (the ``reconcile`` job's command-line form)."""
    from archiver_assets.state.reconcile import line_level, reconcile

    logger.info("=== Execution Mode: Reconcile ===")
    inv.stage = "Reconcile"
    result = reconcile(instance, stores, verify=inv.args.verify, dry_run=inv.args.dry_run)
    lines = [RULE, "STATE RECONCILE " + ("PLAN (dry run)" if inv.args.dry_run else "COMPLETE"),
             RULE] + [f"  {line}" for line in result.summary_lines()] + [RULE]
    for line in lines:
        logger.log(line_level(line), line)
    inv.stage = None
    return 1 if any(stage.unverified for stage in result.stages.values()) else 0


def import_legacy(inv: Invocation, instance, stores, work_dir: Optional[str]) -> int:
    from archiver_assets.state.legacy_import import import_legacy_state

    logger.info("=== Execution Mode: Import Legacy State ===")
    inv.stage = "Legacy State Import"
    result = import_legacy_state(instance, stores, work_dir=work_dir, dry_run=inv.args.dry_run,
                                 verify=inv.args.verify)
    for line in result.summary_lines():
        logger.info(line)
    inv.stage = None
    return 0


# ---------------------------------------------------------------------------------------------
# --report-status, --compare-state
# ---------------------------------------------------------------------------------------------

def report(instance, stores, *, compare: bool) -> int:
    """The legacy status report (archiver_resources.statusreport) plus what Dagster knows."""
    from archiver_assets.operations.status import dagster_status
    from archiver_assets.state.drift import find_drift
    from archiver_assets.state.partition_status import read_stage_status
    from archiver_resources import statusreport as sr
    from archiver_resources.redaction import redact

    status = read_stage_status(instance)  # before the listings (state.drift)
    inputs = {"filesystem": None, "artdaqdb": None, "ucondb": None}
    errors: dict = {}
    queries = (("filesystem", lambda: list(stores.list_filesystem().runs)),
               ("artdaqdb", lambda: list(stores.list_artdaqdb())),
               ("ucondb", stores.list_ucondb))
    for name, fetch in queries:
        try:
            inputs[name] = fetch()
        except Exception as error:  # noqa: BLE001 - any store failure is a report line
            errors[name] = redact(" ".join(str(error).split())[:300], stores.config.secrets())
            break
    comparison = None
    if compare and not errors:
        comparison = dagster_state_comparison(instance, inputs["filesystem"], inputs["artdaqdb"])
    drift = find_drift(status, artdaqdb_runs=inputs["artdaqdb"], ucondb_runs=inputs["ucondb"])
    built = sr.build_report(inputs["filesystem"], inputs["artdaqdb"], inputs["ucondb"],
                            locations=stores.describe(), errors=errors,
                            dagster=dagster_status(instance, drift), state_comparison=comparison,
                            max_run_jump=stores.config.app.max_run_number_jump)
    records = built.records()
    if comparison is not None:
        records = with_legacy_comparison(records, stores, inputs)
    for record in records:
        logger.log(record.level, record.text)
    return 0


def dagster_state_comparison(instance, filesystem, artdaqdb):
    """The STATE COMPARISON inputs from partition status: last contiguous run = end of the
    consecutive stretch of materialized runs from the lowest, failed runs =
    FAILED partitions."""
    from archiver_assets.state.partition_status import read_stage_status
    from archiver_resources import legacy_state as ls
    from archiver_resources import statusreport as sr

    status = read_stage_status(instance)
    imported, migrated = status["import"], status["migrate"]
    return sr.StateComparison(
        import_state=sr.StageState(ls.recover_state(filesystem, imported.materialized)[0],
                                   frozenset(imported.failed)),
        migration_state=sr.StageState(ls.recover_state(artdaqdb, migrated.materialized)[0],
                                      frozenset(migrated.failed)))


def with_legacy_comparison(records: list, stores, inputs: dict) -> list:
    """When legacy state files exist in work_dir, add their STATE COMPARISON after ours."""
    from archiver_assets.state.legacy_import import legacy_files
    from archiver_resources import legacy_state as ls
    from archiver_resources import statusreport as sr

    paths = legacy_files(stores)
    if not any(Path(p).exists() for pair in paths.values() for p in pair):
        return records
    stages = {stage: sr.StageState(ls.read_state(state).last_contiguous_run,
                                   ls.read_failure_log(failures))
              for stage, (state, failures) in paths.items()}
    legacy = sr.build_report(inputs["filesystem"], inputs["artdaqdb"], inputs["ucondb"],
                             locations=stores.describe(),
                             state_comparison=sr.StateComparison(stages["import"],
                                                                 stages["migrate"]))
    legacy_records = legacy.records()
    start, end = _section_bounds(legacy_records, "STATE COMPARISON")
    section = list(legacy_records[start:end])
    section[2] = sr.ReportLine(
        f"STATE COMPARISON (legacy state files in {stores.config.app.work_dir})")
    _, ours_end = _section_bounds(records, "STATE COMPARISON")
    return records[:ours_end] + section + records[ours_end:]


def _section_bounds(records: list, title: str) -> tuple:
    """``(start, end)`` of one titled block: from its blank line to the next title block."""
    from archiver_resources.statusreport import RULE_EQ

    texts = [r.text for r in records]
    start = next(i for i in range(1, len(texts))
                 if texts[i] == title and texts[i - 1] == RULE_EQ) - 2
    end = start + 4
    while end < len(texts) and not (texts[end] == "" and end + 1 < len(texts)
                                     and texts[end + 1] == RULE_EQ):
        end += 1
    return start, end
