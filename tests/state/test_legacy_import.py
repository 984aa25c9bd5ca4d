"""Importing a legacy deployment: the four legacy files plus stores filled by the legacy tool
become partition status in one command; the runs the legacy tool logged as failed become FAILED
partitions (ready for --retry-failed-* or a "failed and missing" backfill); a dry run writes
nothing; a second import marks nothing new."""

import json

import dagster as dg

from archiver_resources.samples import generate_run_records
from tests.cli.conftest import IMPORT, MIGRATE
from tests.cli.test_processing import messages
from tests.state.conftest import archive_directly


def legacy_deployment(cli_env):
    """Run records 1000-1008; the legacy tool imported 1001, 1002, 1004-1006 and migrated
    1001, 1002, 1004; it logged 1003, 1007 (and 999, whose record is gone) as failed imports and
    1005 (and 1001, since archived) as failed migrations; 1000 it never looked at again."""
    generate_run_records(cli_env.run_records, range(1000, 1009), profile="small")
    archive_directly(cli_env, [1001, 1002, 1004])
    archive_directly(cli_env, [1005, 1006], migrate=False)
    legacy = cli_env.root / "legacy_work"
    legacy.mkdir()
    (legacy / "importer_state.json").write_text(json.dumps(
        {"last_contiguous_run": 1002, "last_attempted_run": 1007}, indent=2))
    (legacy / "import_failures.log").write_text("1003\n999\n1007\n1003\n")
    (legacy / "migrator_state.json").write_text(json.dumps(
        {"last_contiguous_run": 1002, "last_attempted_run": 1005}, indent=2))
    (legacy / "migrate_failures.log").write_text("1001\n1005\n")
    return legacy


def test_legacy_import_marks_failed_partitions_once_and_retry_picks_them_up(cli_env):
    legacy = legacy_deployment(cli_env)

    code, out = cli_env.main("--import-legacy-state", str(legacy), "--dry-run")
    assert code == 0, out
    assert "LEGACY STATE IMPORT PLAN (dry run)" in messages(out)
    assert "To mark failed:      2 run(s) (1003, 1007)" in messages(out)
    assert cli_env.partitions() == [] and cli_env.dagster_runs() == []

    code, out = cli_env.main("--import-legacy-state", str(legacy))
    assert code == 0, out
    lines = messages(out)
    for expected in ("=== Execution Mode: Import Legacy State ===",
                     "LEGACY STATE IMPORT COMPLETE", "importer_state.json: found",
                     "IMPORT STAGE (artdaqdb_config)",
                     "Legacy state:        last contiguous 1002, last attempted 1007",
                     "Marked failed:       2 run(s) (1003, 1007)",
                     "Cannot retry:        1 run(s) (999) logged as failed but in neither store",
                     "MIGRATE STAGE (ucondb_blob)",
                     "Marked failed:       1 run(s) (1005)",
                     "Stale log entries:   1 run(s) (1001) already in UconDB"):
        assert expected in lines, expected
    assert any(x.startswith("Never retried:       1 run(s) (1000)") for x in lines)
    imported, migrated = cli_env.status(IMPORT), cli_env.status(MIGRATE)
    assert imported.failed == {1003, 1007}
    assert imported.materialized == {1001, 1002, 1004, 1005, 1006}
    assert migrated.failed == {1005}
    assert migrated.materialized == {1001, 1002, 1004}
    markers = [r for r in cli_env.dagster_runs() if r.job_name == "legacy_failure_marker"]
    assert len(markers) == 2 and all(r.status == dg.DagsterRunStatus.FAILURE for r in markers)
    assert cli_env.partitions() == [str(r) for r in (1001, 1002, 1003, 1004, 1005, 1006, 1007)]

    code, out = cli_env.main("--import-legacy-state", str(legacy))
    lines = messages(out)
    assert code == 0
    assert "Marked failed:       none" in lines
    assert "Already failed:      2 run(s) (1003, 1007)" in lines
    assert len([r for r in cli_env.dagster_runs() if r.job_name == "legacy_failure_marker"]) == 2

    code, out = cli_env.main("--retry-failed-import")
    assert code == 0, out
    assert {"✓ Run 1003 imported successfully", "✓ Run 1007 imported successfully"} <= set(
        messages(out))
    assert cli_env.status(IMPORT).failed == set()
    assert cli_env.status(IMPORT).materialized == set(range(1001, 1008))
