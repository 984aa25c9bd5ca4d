"""Which runs a command-line invocation processes, and why: the candidate rules of the legacy
tool over Dagster partition status, used both to execute and to plan.

* Import candidates: finished runs on the filesystem whose ``artdaqdb_config`` partition is not
  MATERIALIZED (missing or FAILED), the legacy ``F − A``; IN_PROGRESS partitions are left to the
  run that is archiving them. Migration candidates: runs whose ``artdaqdb_config`` is
  MATERIALIZED and ``ucondb_blob`` is not (legacy ``A − U``), minus the runs the migration gate
  holds back (``archive/gate.py``: a blocking import check failed), which are listed as
  ``hold`` with the reason, in every mode.
* Incremental: only runs above the highest run ever materialized for that stage's asset (the
  analogue of ``max(last_contiguous_run, last_attempted_run)``); failures below it wait for a full
  run or a retry mode, as in the legacy tool. A run far above the others (more than
  ``app.max_run_number_jump`` above the next lower run, e.g. a directory named
  ``9223372036854775807``) does not count for the mark, and every mode reports it. Batch cap ``batch_size`` (incremental) or
  ``batch_size × 10`` (full), with the legacy ``Limited to …`` line.
* Retry modes: the FAILED partitions of that stage's asset (which includes runs a legacy state
  import marked failed), all of them, no cap; ``--retry-failed-import`` also re-imports the runs
  whose blocking import check failed, so their check runs again.

``build_plan`` adds the "why" an operator wants from a dry run: it lists artdaqDB and UconDB and
turns an import or migration of a run the target store already holds into ``verify`` (the job
compares hashes / MD5 instead of writing). It writes nothing anywhere; ``plan_archive`` is the
same plan as a Dagster job whose output metadata is a markdown table.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, List, Mapping, Optional

import dagster as dg

from archiver_assets.archive.gate import failed_checks, holds
from archiver_assets.state.partition_status import (
    PartitionStatus, read_stage_status,
)
from archiver_assets.state.stores import Stores
from archiver_resources.errors import ArchiverError
from archiver_assets.resources import (
    ArchiverConfigResource, ArtdaqDBResource, RunRecordsResource, UconDBResource,
)
from archiver_resources.run_numbers import DEFAULT_MAX_JUMP, HighWaterMark, high_water_mark
from archiver_resources.runrecords import RunListing, finished_state

MAX_TABLE_ROWS = 500
STAGE_TITLES = {"import": "Import", "migrate": "Migration"}


@dataclass(frozen=True)
class RunMode:
    """One command-line mode: the legacy banner name, its stages and how candidates are chosen."""

    key: str
    title: str  # `=== Execution Mode: <title> ===`
    stages: tuple
    selection: str  # "full" | "incremental" | "retry"

    @property
    def incremental(self) -> bool:
        return self.selection == "incremental"


MODES = {mode.key: mode for mode in (
    RunMode("full", "Full Pipeline (Full)", ("import", "migrate"), "full"),
    RunMode("incremental", "Full Pipeline (Incremental)", ("import", "migrate"), "incremental"),
    RunMode("import-only", "Import Only (Full)", ("import",), "full"),
    RunMode("import-only-incremental", "Import Only (Incremental)", ("import",), "incremental"),
    RunMode("migrate-only", "Migration Only (Full)", ("migrate",), "full"),
    RunMode("migrate-only-incremental", "Migration Only (Incremental)", ("migrate",),
            "incremental"),
    RunMode("retry-failed-import", "Retry Failed Imports", ("import",), "retry"),
    RunMode("retry-failed-migrate", "Retry Failed Migrations", ("migrate",), "retry"),
)}


def mode_for(*, import_only=False, migrate_only=False, retry_import=False, retry_migrate=False,
             incremental=False) -> RunMode:
    """The mode of a combination of legacy flags (the mode flags are mutually exclusive)."""
    if retry_import:
        return MODES["retry-failed-import"]
    if retry_migrate:
        return MODES["retry-failed-migrate"]
    base = "import-only" if import_only else "migrate-only" if migrate_only else "full"
    if incremental:
        base = "incremental" if base == "full" else f"{base}-incremental"
    return MODES[base]


@dataclass(frozen=True)
class PlannedRun:
    """One line of a plan: what happens to ``run`` in ``stage`` and why."""

    run: int
    stage: str  # "import" | "migrate"
    action: str  # "import" | "migrate" | "verify" | "skip"
    reason: str


@dataclass
class StagePlan:
    """The runs one stage processes (``selected``, ascending) and the runs it leaves, with why."""

    stage: str
    selection: str
    selected: list = field(default_factory=list)
    entries: list = field(default_factory=list)  # PlannedRun for selected runs and notable skips
    skipped: Counter = field(default_factory=Counter)  # summarised reasons → count
    remaining: int = 0  # candidates beyond the batch cap
    limit: Optional[int] = None
    limit_label: str = ""
    far_above: HighWaterMark = HighWaterMark(None)  # runs far above the rest (reported)
    max_jump: int = DEFAULT_MAX_JUMP

    def far_above_lines(self) -> list:
        """One warning per run far above the others (``archiver_resources.run_numbers``)."""
        return self.far_above.describe(self.max_jump)

    def limited_line(self) -> Optional[str]:
        """The legacy ``<Stage> Stage: Limited to <n> runs (…). <m> runs remaining.`` line."""
        if not self.remaining:
            return None
        return (f"{STAGE_TITLES[self.stage]} Stage: Limited to {self.limit} runs "
                f"({self.limit_label}). {self.remaining} runs remaining.")

    def skip(self, run: int, reason: str) -> None:
        self.entries.append(PlannedRun(run, self.stage, "skip", reason))


def _incremental(plan: StagePlan, candidates: list, status: PartitionStatus, seen: Iterable[int],
                 retry_hint: str) -> list:
    """Runs far above the others are noted (``seen``: the runs this stage can see); in
    incremental mode the candidates at or below the mark (the highest run ever materialized,
    leaving out runs far above the rest) wait for a full run or a retry mode, except the runs a
    store lost after they were archived (``status.lost``), which are redone at once."""
    plan.far_above = high_water_mark(set(status.ever_materialized) | set(seen), plan.max_jump)
    if plan.selection != "incremental":
        return candidates
    mark = high_water_mark(status.ever_materialized, plan.max_jump).mark
    if mark is None:
        return candidates
    below = [r for r in candidates if r <= mark and r not in status.lost]
    if below:
        plan.skipped[f"at or below the incremental mark {mark} (a full run or "
                     f"{retry_hint} takes them)"] = len(below)
    return [r for r in candidates if r > mark or r in status.lost]


def _why(run: int, status: PartitionStatus, otherwise: str) -> str:
    if run in status.lost:
        return "lost by its store after it was archived (store drift): archive again"
    return "failed partition: retry" if run in status.failed else otherwise


def _cap(selection: str, batch_size: int) -> tuple:
    if selection == "incremental":
        return batch_size, "batch_size"
    return batch_size * 10, "batch_size * 10"


def plan_import(*, selection: str, listing: RunListing, status: PartitionStatus,
                batch_size: int, min_age_seconds: float, now=None,
                finished: Callable = finished_state,
                check_failed: Mapping[int, str] = {},
                max_jump: int = DEFAULT_MAX_JUMP) -> StagePlan:
    """The import stage's runs (module docstring); reads only the candidates' metadata.txt.
    ``check_failed``: runs whose blocking import check failed (retried with the failed ones);
    ``max_jump``: ``app.max_run_number_jump`` (runs far above the others)."""
    plan = StagePlan(stage="import", selection=selection, max_jump=max_jump)
    for run, error in sorted(listing.errors.items()):
        plan.skip(run, f"run directory problem: {error}")
    if selection == "retry":
        for run in sorted(set(status.failed) | set(check_failed)):
            where = "" if run in listing.runs else "; run record not on disk (will fail again)"
            why = ("failed partition" if run in status.failed
                   else check_failed[run].split(" (", 1)[0])
            plan.selected.append(run)
            plan.entries.append(PlannedRun(run, "import", "import", f"{why}: retry{where}"))
        return plan
    runs = set(listing.runs)
    archived = len(runs & status.materialized)
    plan.skipped["already archived (artdaqdb_config materialized)"] = archived
    for run in sorted(runs & status.in_progress):
        plan.skip(run, "a Dagster run is archiving it now (partition in progress)")
    candidates = sorted(runs - status.materialized - status.in_progress)
    candidates = _incremental(plan, candidates, status, runs, "--retry-failed-import")
    plan.limit, plan.limit_label = _cap(selection, batch_size)
    for index, run in enumerate(candidates):
        if len(plan.selected) >= plan.limit:
            plan.remaining = len(candidates) - index
            break
        try:
            state = finished(run, listing.runs[run], min_age_seconds=min_age_seconds, now=now)
        except (ArchiverError, OSError) as error:
            plan.skip(run, f"run directory problem, cannot decide whether it is finished: "
                           f"{error}")
            continue
        if not state.finished:
            plan.skip(run, f"not finished: {state.reason}")
            continue
        why = _why(run, status, "not archived yet")
        plan.selected.append(run)
        plan.entries.append(PlannedRun(run, "import", "import", f"{why}; {state.reason}"))
    return plan


def _hold(plan: StagePlan, candidates: list, held_back: Optional[Callable],
          pending: set = frozenset()) -> list:
    """The candidates the migration gate lets through; the others become ``hold`` entries."""
    if held_back is None:
        return candidates
    held = held_back([r for r in candidates if r not in pending])
    for run in sorted(held):
        plan.entries.append(PlannedRun(run, plan.stage, "hold", held[run]))
    return [r for r in candidates if r not in held]


def plan_migrate(*, selection: str, import_status: PartitionStatus,
                 migrate_status: PartitionStatus, batch_size: int,
                 pending_imports: Iterable[int] = (), exclude: Iterable[int] = (),
                 held_back: Optional[Callable[[list], Mapping[int, str]]] = None,
                 max_jump: int = DEFAULT_MAX_JUMP) -> StagePlan:
    """The migration stage's runs. ``pending_imports``: runs the import stage of the same
    invocation is about to import (a plan counts them in); ``exclude``: runs whose import failed
    in this invocation (never migrated after a failed import); ``held_back(runs)``: the
    migration gate, ``{run: why}`` for the runs it holds back (``hold`` entries, not selected);
    ``max_jump``: ``app.max_run_number_jump`` (runs far above the others)."""
    plan = StagePlan(stage="migrate", selection=selection, max_jump=max_jump)
    excluded = set(exclude)
    if selection == "retry":
        for run in _hold(plan, sorted(migrate_status.failed - excluded), held_back):
            plan.selected.append(run)
            plan.entries.append(PlannedRun(run, "migrate", "migrate", "failed partition: retry"))
        return plan
    pending = set(pending_imports) - import_status.materialized
    source = (set(import_status.materialized) | pending) - excluded
    plan.skipped["already in UconDB (ucondb_blob materialized)"] = len(
        source & migrate_status.materialized)
    for run in sorted(source & migrate_status.in_progress):
        plan.skip(run, "a Dagster run is migrating it now (partition in progress)")
    for run in sorted(excluded):
        plan.skip(run, "its import failed in this invocation")
    candidates = sorted(source - migrate_status.materialized - migrate_status.in_progress)
    candidates = _incremental(plan, candidates, migrate_status, source, "--retry-failed-migrate")
    candidates = _hold(plan, candidates, held_back, pending)
    plan.limit, plan.limit_label = _cap(selection, batch_size)
    if len(candidates) > plan.limit:
        plan.remaining = len(candidates) - plan.limit
        candidates = candidates[:plan.limit]
    for run in candidates:
        if run in pending:
            why = "after its import in this invocation"
        else:
            why = _why(run, migrate_status,
                       "in artdaqDB (artdaqdb_config materialized), not yet in UconDB")
        plan.selected.append(run)
        plan.entries.append(PlannedRun(run, "migrate", "migrate", why))
    return plan


# ---------------------------------------------------------------------------------------------
# The whole plan of one invocation, annotated with the stores
# ---------------------------------------------------------------------------------------------

@dataclass
class ArchivePlan:
    mode: RunMode
    stages: list
    batch_size: int
    notes: list = field(default_factory=list)

    def lines(self) -> list:
        rule = "=" * 70
        out = [rule,
               "DRY RUN - nothing is written (no store, no partition, no Dagster run or event)",
               rule, f"=== Execution Mode: {self.mode.title} ==="]
        for stage in self.stages:
            title = STAGE_TITLES[stage.stage]
            out += ["", f"PLAN: {title} Stage - Mode: {stage.selection.capitalize()}", "-" * 70]
            for entry in stage.entries:
                out.append(f"  {entry.action:<8}{entry.run:>10}  {entry.reason}")
            for reason, count in stage.skipped.items():
                if count:
                    out.append(f"  skipped {count} run(s): {reason}")
            if stage.limited_line():
                out.append(f"  {stage.limited_line()}")
            out += [f"  WARNING: {line}" for line in stage.far_above_lines()]
            jobs = "import_runs" if stage.stage == "import" else "migrate_runs"
            batches = -(-len(stage.selected) // self.batch_size) if stage.selected else 0
            out.append(f"  {title} Stage would process {len(stage.selected)} run(s) in "
                       f"{batches} Dagster run(s) of job {jobs} (up to {self.batch_size} "
                       f"partitions each)" if stage.selected else
                       f"  {title} Stage: no runs to process")
        out += [f"Note: {note}" for note in self.notes]
        return out

    def markdown(self, limit: int = MAX_TABLE_ROWS) -> str:
        rows = [e for stage in self.stages for e in stage.entries]
        text = ["| Stage | Run | Action | Why |", "|---|---:|---|---|"]
        for entry in rows[:limit]:
            reason = entry.reason.replace("|", "\\|")
            text.append(f"| {entry.stage} | {entry.run} | {entry.action} | {reason} |")
        if len(rows) > limit:
            text.append(f"| … | | | {len(rows) - limit} more rows |")
        summary = [f"- {STAGE_TITLES[s.stage]}: {len(s.selected)} to process"
                   + (f", {s.remaining} beyond the batch cap" if s.remaining else "")
                   + "".join(f"; {n} {why}" for why, n in s.skipped.items() if n)
                   for s in self.stages]
        return "\n".join(summary + [""] + text + [""] + [f"Note: {n}" for n in self.notes])

    def counts(self) -> dict:
        out = Counter()
        for stage in self.stages:
            for entry in stage.entries:
                out[f"{entry.stage}_{entry.action}"] += 1
        return dict(out)


def annotate_with_stores(plan: ArchivePlan, artdaqdb_runs: dict, ucondb_runs: set,
                         on_existing: str) -> None:
    """Turn an import/migration of a run the target already holds into ``verify``, and warn
    about migrations of runs artdaqDB does not hold."""
    for stage in plan.stages:
        updated = []
        for entry in stage.entries:
            if entry.action == "import" and entry.run in artdaqdb_runs:
                entry = PlannedRun(entry.run, entry.stage, "verify",
                                   f"already in artdaqDB ({artdaqdb_runs[entry.run]}): the "
                                   f"import compares its hashes instead of inserting "
                                   f"({entry.reason})")
            elif entry.action == "migrate" and entry.run in ucondb_runs:
                entry = PlannedRun(entry.run, entry.stage, "verify",
                                   f"already in UconDB: the stored blob is compared with the "
                                   f"packed one (same MD5, or verified-legacy when only its "
                                   f"'Packed on' lines differ); on another difference "
                                   f"on_existing={on_existing} decides ({entry.reason})")
            elif (entry.action == "migrate" and entry.run not in artdaqdb_runs
                  and "after its import" not in entry.reason):
                entry = PlannedRun(entry.run, entry.stage, entry.action,
                                   f"{entry.reason}; WARNING: artdaqDB's listing lacks this run, "
                                   f"the migration will fail")
            updated.append(entry)
        stage.entries = updated


def migration_gate(instance) -> Callable[[list], dict]:
    """The migration gate (``archive/gate.py``) as ``plan_migrate`` takes it."""
    return lambda runs: {run: hold.reason for run, hold in holds(instance, runs).items()}


def retried_check_failures(instance, selection: str) -> dict:
    """Runs a ``--retry-failed-import`` takes besides the failed partitions: those whose blocking
    import check failed (their partition is materialized, but the gate holds them)."""
    return failed_checks(instance) if selection == "retry" else {}


def build_plan(instance, stores: Stores, mode: RunMode) -> ArchivePlan:
    """Everything the invocation in ``mode`` would do, and why; writes nothing."""
    config = stores.config
    batch_size = config.app.batch_size
    status = read_stage_status(instance)
    plan = ArchivePlan(mode=mode, stages=[], batch_size=batch_size)
    pending: List[int] = []
    if "import" in mode.stages:
        stage = plan_import(selection=mode.selection, listing=stores.list_filesystem(),
                            status=status["import"], batch_size=batch_size,
                            min_age_seconds=float(config.source_files.finished_after_seconds),
                            check_failed=retried_check_failures(instance, mode.selection),
                            max_jump=config.app.max_run_number_jump)
        plan.stages.append(stage)
        pending = stage.selected
    if "migrate" in mode.stages:
        plan.stages.append(plan_migrate(selection=mode.selection, import_status=status["import"],
                                        migrate_status=status["migrate"], batch_size=batch_size,
                                        pending_imports=pending,
                                        held_back=migration_gate(instance),
                                        max_jump=config.app.max_run_number_jump))
    try:
        artdaqdb_runs = stores.list_artdaqdb()
        ucondb_runs = stores.list_ucondb() if "migrate" in mode.stages else set()
    except ArchiverError as error:
        plan.notes.append(f"stores not queried, actions not refined ({error})")
    else:
        annotate_with_stores(plan, artdaqdb_runs, ucondb_runs, config.app.on_existing)
        if "import" in mode.stages and artdaqdb_runs and not status["import"].ever_materialized:
            plan.notes.append(f"Dagster knows no imported run but artdaqDB holds "
                              f"{len(artdaqdb_runs)}: run `run-record-archiver --reconcile` "
                              f"(or --recover-import-state) first, or every run is re-verified")
    return plan


# ---------------------------------------------------------------------------------------------
# The Dagster job
# ---------------------------------------------------------------------------------------------

class PlanConfig(dg.Config):
    """Run configuration of ``plan_archive``: a command-line mode (see ``MODES``)."""

    mode: str = "full"


@dg.op(name="plan_archive_op", out=dg.Out(dg.Nothing),
       description="Lists what the command line would import, migrate or verify in the given "
                   "mode, and why, without writing anything (the legacy flags as modes).")
def plan_archive_op(context: dg.OpExecutionContext, config: PlanConfig,
                    archiver_config: ArchiverConfigResource, run_records: RunRecordsResource,
                    artdaqdb: ArtdaqDBResource, ucondb: UconDBResource):
    if config.mode not in MODES:
        raise dg.Failure(f"unknown mode {config.mode!r}; choose one of {', '.join(MODES)}")
    stores = Stores.from_resources(archiver_config, run_records, artdaqdb, ucondb)
    plan = build_plan(context.instance, stores, MODES[config.mode])
    for line in plan.lines():
        context.log.info(line)
    metadata = {"plan": dg.MetadataValue.md(plan.markdown()), "mode": config.mode}
    metadata.update({k: dg.MetadataValue.int(v) for k, v in plan.counts().items()})
    return dg.Output(None, metadata=metadata)


@dg.job(name="plan_archive", executor_def=dg.in_process_executor,
        description="Dry run: what `run-record-archiver` would do in a mode, and why (markdown "
                    "table in the step's output metadata). Writes nothing.")
def plan_archive_job():
    plan_archive_op()
