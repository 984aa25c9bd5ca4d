"""Declarative automation: `ucondb_blob` follows an import of `artdaqdb_config` by itself, but
not for a run whose blocking `hashes_match` check failed; the definitions load cleanly."""

import dagster as dg

from archiver_resources.samples import generate_run_records

MIGRATE = dg.AssetKey("ucondb_blob")


def test_definitions_load_and_declare_the_running_sensors(archive_env):
    defs = archive_env.definitions()
    dg.Definitions.validate_loadable(defs)
    sensor = defs.resolve_sensor_def("new_run_records")
    automation = defs.resolve_sensor_def("archive_automation")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert automation.default_status == dg.DefaultSensorStatus.RUNNING
    for name in ("archive_runs", "import_runs", "migrate_runs"):
        assert defs.resolve_job_def(name).executor_def.name == "in_process"


def test_migration_follows_import_only_when_blocking_checks_passed(archive_env):
    generate_run_records(archive_env.run_records, [6001, 6002])
    defs = archive_env.definitions()
    with dg.instance_for_test() as instance:
        # The automation sensor runs before the partitions appear (as the sensor adds them).
        baseline = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        instance.add_dynamic_partitions("runs", ["6001", "6002"])
        baseline = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                     cursor=baseline.cursor)
        assert baseline.get_requested_partitions(MIGRATE) == set()  # nothing imported yet
        import_job = defs.resolve_job_def("import_runs")
        assert import_job.execute_in_process(instance=instance, partition_key="6001").success
        # 6002's record changes after archiving, so its hashes check fails (blocking).
        assert import_job.execute_in_process(instance=instance, partition_key="6002").success
        boot = archive_env.run_records / "6002" / "boot.txt"
        boot.write_text(boot.read_text() + "\nedited after archiving: 1\n")
        audit = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection=set(),
            asset_check_selection={dg.AssetCheckKey(dg.AssetKey("artdaqdb_config"), "hashes_match")})
        failed = audit.execute_in_process(instance=instance, partition_key="6002",
                                          raise_on_error=False)
        assert [e.passed for e in failed.get_asset_check_evaluations()] == [False]
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                   cursor=baseline.cursor)
        requested = result.get_requested_partitions(MIGRATE)
        assert requested == {"6001"}


def test_no_duplicate_migration_after_a_run_that_archived_both_assets(archive_env):
    generate_run_records(archive_env.run_records, [6101])
    defs = archive_env.definitions()
    with dg.instance_for_test() as instance:
        baseline = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        instance.add_dynamic_partitions("runs", ["6101"])
        baseline = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                     cursor=baseline.cursor)
        assert defs.resolve_job_def("archive_runs").execute_in_process(
            instance=instance, partition_key="6101").success
        after = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                  cursor=baseline.cursor)
        assert after.get_requested_partitions(MIGRATE) == set()
        later = dg.evaluate_automation_conditions(defs=defs, instance=instance,
                                                  cursor=after.cursor)
        assert later.get_requested_partitions(MIGRATE) == set()
