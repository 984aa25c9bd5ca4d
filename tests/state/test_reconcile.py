"""Rebuilding partition status from the stores: after DAGSTER_HOME is deleted, the recover modes
restore exactly the materialized partitions and a later full run re-processes nothing; the
reconcile core is idempotent, turns failed-but-archived partitions into materialized ones,
refuses to record what fails verification, writes nothing in a dry run; the Dagster jobs."""

import json
import shutil
from datetime import timedelta

import dagster as dg

from archiver_assets.definitions import build_definitions
from archiver_assets.state import build_state_definitions, events
from archiver_assets.state.reconcile import reconcile
from archiver_resources.archiving import build_blob
from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.blob import pack
from archiver_resources.samples import generate_run_records
from tests.cli.conftest import IMPORT, MIGRATE
from tests.cli.test_processing import latest_metadata, messages
from tests.state.conftest import archive_directly


def test_recover_after_deleting_dagster_home_restores_status_and_nothing_is_reprocessed(cli_env):
    generate_run_records(cli_env.run_records, [1001, 1002, 1003, 1005], profile="small")
    assert cli_env.main()[0] == 0
    before = (cli_env.materialized(IMPORT), cli_env.materialized(MIGRATE))
    assert before == ({1001, 1002, 1003, 1005},) * 2
    (cli_env.work_dir / "importer_state.json").write_text("{}")  # a legacy file, kept in sync

    shutil.rmtree(cli_env.dagster_home)
    code, out = cli_env.main("--recover-import-state")
    assert code == 0, out
    lines = messages(out)
    for expected in ("IMPORT STATE RECOVERY COMPLETE", "Filesystem runs:      4",
                     "ArtdaqDB runs:        4", "Last contiguous run:  1003",
                     "Last attempted run:   1005", "Missing runs:         0",
                     "Dagster partitions:   4 added; artdaqdb_config: recorded 4, already 0",
                     f"Legacy state file:    rewritten ({cli_env.work_dir}/importer_state.json)"):
        assert expected in lines, expected
    assert json.loads((cli_env.work_dir / "importer_state.json").read_text()) == {
        "last_contiguous_run": 1003, "last_attempted_run": 1005}
    code, out = cli_env.main("--recover-migrate-state")
    assert code == 0
    lines = messages(out)
    assert "MIGRATION STATE RECOVERY COMPLETE" in lines
    assert "Legacy state file:    not present, left alone" in lines
    assert not (cli_env.work_dir / "migrator_state.json").exists()

    assert (cli_env.materialized(IMPORT), cli_env.materialized(MIGRATE)) == before
    assert cli_env.partitions() == ["1001", "1002", "1003", "1005"]
    assert latest_metadata(IMPORT, 1002)["source"] == "reconcile"
    assert latest_metadata(IMPORT, 1002)["configuration"] == "1002/standard"

    code, out = cli_env.main("--recover-import-state")  # idempotent
    assert "Dagster partitions:   0 added; artdaqdb_config: recorded 0, already 4" in \
        messages(out)
    code, out = cli_env.main()
    assert code == 0
    assert messages(out).count("No runs to process") == 2
    assert not [r for r in cli_env.dagster_runs() if r.job_name in ("import_runs", "migrate_runs")]


def test_reconcile_core_failed_partitions_idempotence_verify_and_dry_run(cli_env, monkeypatch):
    generate_run_records(cli_env.run_records, [1001, 1002, 1003, 1004], profile="small")
    archive_directly(cli_env, [1001, 1002, 1003])
    archive_directly(cli_env, [1004], migrate=False)
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("runs", ["1002"])
        events.mark_partitions_failed(instance, IMPORT, ["1002"], message="a failed run")

        dry = reconcile(instance, cli_env.config_path, dry_run=True)
        assert dry.stages["import"].recorded == [1001, 1002, 1003, 1004]
        assert dry.added_partitions == [1001, 1003, 1004]
        assert instance.get_dynamic_partitions("runs") == ["1002"]  # nothing written
        assert instance.get_materialized_partitions(IMPORT) == set()

        result = reconcile(instance, cli_env.config_path)
        assert result.stages["import"].recorded == [1001, 1002, 1003, 1004]
        assert result.stages["import"].failed_before == [1002]
        assert result.stages["migrate"].recorded == [1001, 1002, 1003]
        assert instance.get_dynamic_partitions("runs") == ["1002", "1001", "1003", "1004"]
        again = reconcile(instance, cli_env.config_path)
        assert again.recorded == 0 and again.added_partitions == []
        assert again.stages["import"].already == 4

    with cli_env.client() as client:
        client.put_blob(1003, b"not what artdaqDB packs", override=True)
    (cli_env.root / "second_home").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(cli_env.root / "second_home"))
    with dg.DagsterInstance.get() as instance:
        result = reconcile(instance, cli_env.config_path, verify=True)
        assert result.stages["import"].recorded == [1001, 1002, 1003, 1004]
        assert result.stages["migrate"].recorded == [1001, 1002]
        assert "MD5 mismatch" in result.stages["migrate"].unverified[1003]
    assert latest_metadata(IMPORT, 1001)["verified"] == "hashes"
    assert latest_metadata(MIGRATE, 1001)["verified"] == "md5"
    assert cli_env.status(MIGRATE).materialized == {1001, 1002}


def test_state_jobs_run_from_dagster_and_load_with_the_code_location(cli_env):
    generate_run_records(cli_env.run_records, [1001, 1002], profile="small")
    archive_directly(cli_env, [1001, 1002])
    defs = build_state_definitions(str(cli_env.config_path))
    dg.Definitions.validate_loadable(defs)
    merged = dg.Definitions.merge(build_definitions(str(cli_env.config_path)),
                                  build_state_definitions(with_resources=False))
    dg.Definitions.validate_loadable(merged)
    with dg.DagsterInstance.get() as instance:
        plan = defs.resolve_job_def("plan_archive").execute_in_process(
            instance=instance, run_config={"ops": {"plan_archive_op": {"config": {
                "mode": "full"}}}})
        assert plan.success
        outputs = [e for e in plan.all_events if e.event_type_value == "STEP_OUTPUT"]
        table = outputs[0].event_specific_data.metadata["plan"].value
        assert "| Stage | Run | Action | Why |" in table
        assert "| import | 1001 | verify |" in table  # in artdaqDB, unknown to Dagster
        assert instance.get_dynamic_partitions("runs") == []

        result = defs.resolve_job_def("reconcile").execute_in_process(
            instance=instance, run_config={"ops": {"reconcile_archive": {"config": {
                "stages": ["import"]}}}})
        assert result.success
        assert instance.get_materialized_partitions(IMPORT) == {"1001", "1002"}
        assert instance.get_materialized_partitions(MIGRATE) == set()


def test_reconcile_command_with_and_without_verify(cli_env):
    generate_run_records(cli_env.run_records, [1001, 1002, 1003], profile="small")
    archive_directly(cli_env, [1001, 1002, 1003])
    with open_artdaqdb(cli_env.artdaqdb_uri) as store:  # the legacy tool's blob of 1003
        _, files, packed_at, _ = build_blob(1003, store)
    with cli_env.client() as client:
        client.put_blob(1002, b"a blob artdaqDB does not pack", override=True)
        client.put_blob(1003, pack(1003, files, packed_at - timedelta(hours=30)), override=True)
    code, out = cli_env.main("--reconcile", "--verify")
    assert code == 1  # something is wrong in the stores: say so
    lines = messages(out)
    assert "=== Execution Mode: Reconcile ===" in lines and "STATE RECONCILE COMPLETE" in lines
    assert any(x.startswith("✗ run 1002 not recorded: MD5 mismatch") for x in lines)
    assert cli_env.materialized(IMPORT) == {1001, 1002, 1003}
    assert cli_env.materialized(MIGRATE) == {1001, 1003}
    assert latest_metadata(MIGRATE, 1001)["verified"] == "md5"
    assert latest_metadata(MIGRATE, 1003)["verified"] == "md5 (verified-legacy)"
    code, out = cli_env.main("--reconcile")  # trusting presence records the rest
    assert code == 0
    assert cli_env.materialized(MIGRATE) == {1001, 1002, 1003}
    assert latest_metadata(MIGRATE, 1002)["verified"] == "presence"
