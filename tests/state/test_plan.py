"""The candidate rules (pure functions over partition status): import F − materialized with the
finished-run rule, migration materialized-import − materialized-migration, incremental marks,
batch caps with the legacy "Limited to" line, retry modes; plan annotation from the stores; the
flag → mode mapping; and batching along the partition insertion order."""

from pathlib import Path

import dagster as dg
import pytest

from archiver_assets.cli.workers import group_batches, strip_run_prefix
from archiver_assets.state.partition_status import PartitionStatus
from archiver_assets.state.plan import (
    MODES, ArchivePlan, annotate_with_stores, mode_for, plan_import, plan_migrate,
)
from archiver_resources.errors import RunRecordError
from archiver_resources.runrecords import FinishedState, RunListing


def status(materialized=(), failed=(), in_progress=(), ever=None):
    materialized = frozenset(materialized)
    return PartitionStatus(asset_key=dg.AssetKey("x"), materialized=materialized,
                           failed=frozenset(failed), in_progress=frozenset(in_progress),
                           ever_materialized=frozenset(ever if ever is not None
                                                       else materialized))


def listing(runs, errors=None):
    return RunListing(runs={r: Path(f"/rr/{r}") for r in runs}, errors=errors or {})


def finished_unless(*running):
    def finished(run, path, *, min_age_seconds, now=None):
        if run in running:
            return FinishedState(False, "running", f"run {run} is still running")
        return FinishedState(True, "stop_time", f"run {run} has a stop time")
    return finished


def test_import_full_selects_unarchived_finished_runs_up_to_the_cap():
    plan = plan_import(selection="full", listing=listing(range(1, 80)),
                       status=status(materialized={1, 2}, failed={3}, in_progress={4}),
                       batch_size=5, min_age_seconds=3600, finished=finished_unless(6))
    assert plan.selected == [3, 5] + list(range(7, 55))
    assert plan.limit == 50 and plan.remaining == 76 - 51  # 76 candidates, 51 examined
    assert plan.limited_line() == "Import Stage: Limited to 50 runs (batch_size * 10). " \
                                  f"{plan.remaining} runs remaining."
    reasons = {e.run: (e.action, e.reason) for e in plan.entries}
    assert reasons[3] == ("import", "failed partition: retry; run 3 has a stop time")
    assert reasons[4][0] == "skip" and "in progress" in reasons[4][1]
    assert reasons[6] == ("skip", "not finished: run 6 is still running")
    assert plan.skipped["already archived (artdaqdb_config materialized)"] == 2


def test_import_incremental_keeps_runs_above_the_highest_materialized():
    plan = plan_import(selection="incremental", listing=listing([1, 2, 3, 10, 11, 12, 13]),
                       status=status(materialized={10}, failed={2}), batch_size=2,
                       min_age_seconds=0, finished=finished_unless())
    assert plan.selected == [11, 12] and plan.remaining == 1
    assert plan.limited_line() == "Import Stage: Limited to 2 runs (batch_size). 1 runs remaining."
    assert any("incremental mark 10" in reason for reason in plan.skipped)
    fresh = plan_import(selection="incremental", listing=listing([1, 2]), status=status(),
                        batch_size=5, min_age_seconds=0, finished=finished_unless())
    assert fresh.selected == [1, 2]


def test_import_retry_takes_every_failed_partition_without_cap_and_reports_bad_dirs():
    error = RunRecordError("several directories name this run (7, 007)", run=7)
    plan = plan_import(selection="retry", listing=listing([1, 2], errors={7: error}),
                       status=status(failed=set(range(100, 160)) | {2}), batch_size=1,
                       min_age_seconds=0, finished=finished_unless())
    assert plan.selected == [2] + list(range(100, 160)) and plan.remaining == 0
    assert plan.entries[0].action == "skip" and "directory problem" in plan.entries[0].reason
    assert "not on disk" in next(e.reason for e in plan.entries if e.run == 100)


def test_migrate_candidates_pending_exclusions_incremental_and_retry():
    imported = status(materialized={1, 2, 3, 4, 5})
    plan = plan_migrate(selection="full", import_status=imported,
                        migrate_status=status(materialized={1}, failed={2}, in_progress={3}),
                        batch_size=5, pending_imports=[6, 7], exclude=[5])
    assert plan.selected == [2, 4, 6, 7]
    reasons = {e.run: e.reason for e in plan.entries}
    assert reasons[2] == "failed partition: retry"
    assert reasons[6] == "after its import in this invocation"
    assert reasons[5] == "its import failed in this invocation"
    incremental = plan_migrate(selection="incremental", import_status=imported,
                               migrate_status=status(materialized={3}), batch_size=1)
    assert incremental.selected == [4] and incremental.remaining == 1
    retry = plan_migrate(selection="retry", import_status=imported,
                         migrate_status=status(failed={9, 2}), batch_size=1)
    assert retry.selected == [2, 9]


def test_annotation_turns_work_the_store_already_holds_into_verify():
    imports = plan_import(selection="full", listing=listing([1, 2]), status=status(),
                          batch_size=5, min_age_seconds=0, finished=finished_unless())
    migrations = plan_migrate(selection="full", import_status=status(materialized={3, 4}),
                              migrate_status=status(), batch_size=5)
    plan = ArchivePlan(mode=MODES["full"], stages=[imports, migrations], batch_size=5)
    annotate_with_stores(plan, {1: "1/standard", 3: "3/standard"}, {3}, "verify")
    actions = {(e.stage, e.run): e.action for s in plan.stages for e in s.entries}
    assert actions == {("import", 1): "verify", ("import", 2): "import",
                       ("migrate", 3): "verify", ("migrate", 4): "migrate"}
    text = "\n".join(plan.lines())
    assert "already in artdaqDB (1/standard)" in text and "on_existing=verify" in text
    assert "WARNING: artdaqDB's listing lacks this run" in text  # run 4
    table = plan.markdown()
    assert "| import | 1 | verify |" in table and "| migrate | 4 | migrate |" in table
    assert plan.counts() == {"import_verify": 1, "import_import": 1, "migrate_verify": 1,
                             "migrate_migrate": 1}


@pytest.mark.parametrize("flags, key, title", [
    ({}, "full", "Full Pipeline (Full)"),
    ({"incremental": True}, "incremental", "Full Pipeline (Incremental)"),
    ({"import_only": True}, "import-only", "Import Only (Full)"),
    ({"migrate_only": True, "incremental": True}, "migrate-only-incremental",
     "Migration Only (Incremental)"),
    ({"retry_import": True, "incremental": True}, "retry-failed-import", "Retry Failed Imports"),
    ({"retry_migrate": True}, "retry-failed-migrate", "Retry Failed Migrations"),
])
def test_flags_map_to_modes_with_legacy_banners(flags, key, title):
    mode = mode_for(**flags)
    assert (mode.key, mode.title) == (key, title)


def test_batches_follow_partition_insertion_order():
    order = ["5", "6", "7", "1", "2", "3", "4", "9"]
    assert group_batches([1, 2, 3, 4, 5, 6, 7, 9], order, 3) == [[1, 2, 3], [4, 9], [5, 6, 7]]
    assert group_batches([1, 3, 4], order, 5) == [[1], [3, 4]]
    assert group_batches([2], order, 5) == [[2]]
    assert strip_run_prefix(12, "run 12: run 12: cause") == "cause"


def test_incremental_mark_ignores_a_run_far_above_the_rest_and_reports_it():
    absurd = 9223372036854775807
    plan = plan_import(selection="incremental", listing=listing([1, 2, 3, absurd, 4, 5]),
                       status=status(materialized={1, 2, 3, absurd}), batch_size=5,
                       min_age_seconds=0, finished=finished_unless(), max_jump=1000)
    assert plan.selected == [4, 5]
    assert [run for run, _ in plan.far_above.far_above] == [absurd]
    assert plan.far_above_lines()[0].startswith(f"run {absurd} is far above the other runs")
    migrate = plan_migrate(selection="incremental",
                           import_status=status(materialized={1, 2, 3, 4, absurd}),
                           migrate_status=status(materialized={1, 2, absurd}), batch_size=5,
                           max_jump=1000)
    assert migrate.selected == [3, 4]


def test_incremental_takes_runs_a_store_lost_even_below_the_mark():
    lost = PartitionStatus(asset_key=dg.AssetKey("x"), materialized=frozenset({1, 3, 5}),
                           failed=frozenset({2, 4}), in_progress=frozenset(),
                           ever_materialized=frozenset({1, 2, 3, 4, 5}), lost=frozenset({4}))
    plan = plan_migrate(selection="incremental", import_status=status(materialized={1, 2, 3, 4, 5}),
                        migrate_status=lost, batch_size=5)
    assert plan.selected == [4]  # 2 failed the ordinary way: it waits for a full run or a retry
    assert {e.run: e.reason for e in plan.entries}[4].startswith("lost by its store")


def test_the_migration_gate_holds_runs_in_every_selection():
    gate = lambda runs: {r: "blocking check hashes_match of its import failed" for r in runs  # noqa: E731
                         if r == 3}
    for selection, failed in (("full", set()), ("incremental", set()), ("retry", {3, 4})):
        plan = plan_migrate(selection=selection, import_status=status(materialized={3, 4}),
                            migrate_status=status(failed=failed), batch_size=5, held_back=gate)
        assert plan.selected == [4], selection
        assert [(e.run, e.action) for e in plan.entries if e.action == "hold"] == [(3, "hold")]
