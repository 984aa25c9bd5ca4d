"""Declarative automation: `ucondb_blob` follows an import of `artdaqdb_config` by itself, but
not for a run whose blocking `hashes_match` check failed; the definitions load cleanly. The
`new_run_records` sensor requests a tick's new runs as partition-range runs of at most
`app.batch_size` runs, executed with per-partition status and check results, and follows up the
runs a failed range left unmigrated."""

import math

import dagster as dg

from archiver_assets.partitions import runs_partitions
from archiver_resources.samples import generate_run_records

IMPORT = dg.AssetKey("artdaqdb_config")
MIGRATE = dg.AssetKey("ucondb_blob")
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


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


def sensor_tick(defs, instance, cursor=None):
    sensor = defs.resolve_sensor_def("new_run_records")
    with dg.build_sensor_context(instance_ref=instance.get_ref(), definitions=defs,
                                 resources=defs.resources, cursor=cursor) as context:
        data = sensor.evaluate_tick(context)  # as the daemon evaluates it (keys validated)
    for request in data.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(runs_partitions.name, list(request.partition_keys))
    return data


def execute(defs, instance, request):
    """What the daemon launches for ``request``: job archive_runs with its tags."""
    return defs.resolve_job_def("archive_runs").execute_in_process(
        instance=instance, partition_key=request.partition_key, tags=dict(request.tags),
        raise_on_error=False)


def statuses(instance, asset_key):
    keys = instance.get_dynamic_partitions(runs_partitions.name)
    found = instance.get_status_by_partition(asset_key, keys, runs_partitions)
    return {k: (s.value if s else None) for k, s in found.items()}


def check_statuses(instance, asset_key, name):
    """The latest result per partition, as the check's Partitions tab shows it."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(asset_key, name), limit=200)
    latest = {}
    for record in sorted(records, key=lambda r: r.id):
        if record.partition:
            latest[record.partition] = record.status.value
    return latest


def use_batch_size(env, size):
    from tests.pipeline.conftest import write_config

    write_config(env.root, env.ucondb, run_records=env.run_records,
                 artdaqdb_uri=env.artdaqdb_uri, extra_app=f"  batch_size: {size}")


def test_a_tick_with_n_new_runs_requests_ceil_n_over_batch_size_range_runs(archive_env):
    use_batch_size(archive_env, 3)
    runs = list(range(6301, 6309))  # 8 runs
    generate_run_records(archive_env.run_records, runs)
    defs = archive_env.definitions()
    with dg.instance_for_test() as instance:
        data = sensor_tick(defs, instance)
        assert len(data.run_requests) == math.ceil(len(runs) / 3)
        assert [(r.run_key, r.tags.get(RANGE_START), r.tags.get(RANGE_END))
                for r in data.run_requests] == [
            ("runs-6301-6303", "6301", "6303"), ("runs-6304-6306", "6304", "6306"),
            ("runs-6307-6308", "6307", "6308")]
        assert all(r.partition_key is None for r in data.run_requests)
        assert instance.get_dynamic_partitions("runs") == [str(r) for r in runs]
        for request in data.run_requests:
            result = execute(defs, instance, request)
            assert result.success, request.run_key
            # One materialization per partition and asset, each with its own run's metadata.
            for node in ("artdaqdb_config", "ucondb_blob"):
                seen = {m.partition: m.metadata["run"].value
                        for m in result.asset_materializations_for_node(node)}
                first, last = int(request.tags[RANGE_START]), int(request.tags[RANGE_END])
                assert seen == {str(r): r for r in range(first, last + 1)}, node
        # What the UI shows: every partition green, every check passed, per partition.
        every = {str(r) for r in runs}
        assert statuses(instance, IMPORT) == {k: "MATERIALIZED" for k in every}
        assert statuses(instance, MIGRATE) == {k: "MATERIALIZED" for k in every}
        for asset_key, name in ((IMPORT, "hashes_match"), (MIGRATE, "md5_round_trip")):
            assert check_statuses(instance, asset_key, name) == {k: "SUCCEEDED" for k in every}

        # A single new run in a later tick is a single-partition run, as before.
        generate_run_records(archive_env.run_records, [6309])
        single = sensor_tick(defs, instance, data.cursor)
        assert [(r.partition_key, r.run_key) for r in single.run_requests] == [("6309", "run-6309")]
        assert RANGE_START not in single.run_requests[0].tags
        assert execute(defs, instance, single.run_requests[0]).success
        # The same tick evaluated again (daemon restarted before saving the cursor) asks for the
        # same run keys, which the daemon launches once.
        again = sensor_tick(defs, instance, None)
        assert not again.run_requests  # a fresh cursor: everything is a partition already


def test_a_failed_run_in_a_range_fails_only_that_run(archive_env):
    use_batch_size(archive_env, 3)
    runs = list(range(6201, 6208))
    generate_run_records(archive_env.run_records, runs)
    bad = archive_env.run_records / "6204" / "esc.fcl"
    bad.write_text("a: \x1b[2K\n")  # a FHiCL syntax error: run 6204's import fails
    defs = archive_env.definitions()
    with dg.instance_for_test() as instance:
        data = sensor_tick(defs, instance)
        assert [r.run_key for r in data.run_requests] == ["runs-6201-6203", "runs-6204-6206",
                                                          "run-6207"]
        results = [execute(defs, instance, r) for r in data.run_requests]
        assert [r.success for r in results] == [True, False, True]
        # In the failed range, 6205 and 6206 were imported; the range's migration step was
        # skipped as a whole (Dagster shows them failed) ...
        assert statuses(instance, IMPORT)["6205"] == "MATERIALIZED"
        assert statuses(instance, MIGRATE)["6205"] == "FAILED"
        # ... so the next tick requests them again, once, as a range of their own.
        follow = sensor_tick(defs, instance, data.cursor)
        failed_id = results[1].run_id
        assert [(r.run_key, r.tags.get(RANGE_START), r.tags.get(RANGE_END))
                for r in follow.run_requests] == [
            (f"runs-6205-6206-after-{failed_id[:8]}", "6205", "6206")]
        assert all(r.tags["archiver/reason"].startswith("migration skipped")
                   for r in follow.run_requests)
        assert execute(defs, instance, follow.run_requests[0]).success
        assert not sensor_tick(defs, instance, follow.cursor).run_requests  # once only
        # Same cursor again: the same key (the daemon would not launch it twice).
        assert [r.run_key for r in sensor_tick(defs, instance, data.cursor).run_requests] == [
            follow.run_requests[0].run_key]
        # Only 6204 is failed now: "Failed" in the materialize dialog selects exactly it.
        for asset_key in (IMPORT, MIGRATE):
            assert [k for k, s in statuses(instance, asset_key).items() if s != "MATERIALIZED"] \
                == ["6204"], asset_key
        md5 = check_statuses(instance, MIGRATE, "md5_round_trip")
        assert {k: s for k, s in md5.items() if k != "6204"} == {
            str(r): "SUCCEEDED" for r in runs if r != 6204}
        assert md5["6204"] != "SUCCEEDED"  # planned in the failed run, never executed
        # The fault removed, the retry of the failed partition archives it.
        bad.unlink()
        retry = defs.resolve_job_def("archive_runs").execute_in_process(
            instance=instance, partition_key="6204", raise_on_error=False)
        assert retry.success
        assert set(statuses(instance, MIGRATE).values()) == {"MATERIALIZED"}
