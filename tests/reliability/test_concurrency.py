"""Concurrency: two workers archiving the same partitions at the same moment (UI double-click,
sensor + backfill) must not both write — the stores are idempotent (artdaqDB refuses a second
insert and the loser verifies; UconDB refuses a second key and the loser verifies by MD5) — and the
development instance's tag limit holds a second run for the same partition in the queue."""

import shutil
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.dagster_run import DagsterRun
from dagster._utils.tags import TagConcurrencyLimitsCounter

from archiver_resources.archiving import build_blob
from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.blob import md5_hex
from archiver_resources.samples import generate_run_records
from tests.reliability.conftest import OLD, SEED, direct_client, leftover_files, ucondb_versions
from tests.reliability.test_crashes import REPO, start_child, wait

RUNS = list(range(8001, 8009))
IMPORT = dg.AssetKey("artdaqdb_config")


def import_actions(home: Path) -> dict:
    """partition → the `action` metadata of every artdaqdb_config materialization it got."""
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        actions = {}
        for key in instance.get_dynamic_partitions("runs"):
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=IMPORT, asset_partitions=[key]), limit=100)
            actions[key] = [r.event_log_entry.asset_materialization.metadata["action"].value
                            for r in records.records]
    return actions


@pytest.mark.slow
def test_two_workers_archive_the_same_runs_at_once(archive_env, tmp_path):
    generate_run_records(archive_env.run_records, RUNS, profile="small", mtime=OLD)
    homes = [tmp_path / "home_a", tmp_path / "home_b"]
    for home in homes:
        home.mkdir()
    # One run per partition (the sensor's way), both workers in the same order at the same time.
    children = [start_child(home, archive_env.config_path, runs=RUNS, batch=1)
                for home in homes]
    outputs = [wait(child) for child in children]
    for code, out in outputs:
        assert code == 0, out[-3000:]
    actions = [import_actions(home) for home in homes]
    context = f"seed {SEED}; actions per worker: {actions}"
    for run in RUNS:
        seen = [action for a in actions for action in a.get(str(run), [])]
        assert seen.count("inserted") == 1, (run, context)  # the other worker verified
    db = open_artdaqdb(archive_env.artdaqdb_uri)
    try:
        assert sorted(db.archived_runs()) == RUNS, context
        want, doubled = {}, {}
        for run, name in db.archived_runs().items():
            versions = db.versions(run, name.split("/", 1)[1])
            assert versions[:2] == [name, f"{name}v1"], (run, versions, context)
            if versions != [name, f"{name}v1"]:
                doubled[run] = versions
            want[run] = md5_hex(build_blob(run, db)[3])
    finally:
        db.close()
    assert leftover_files(archive_env.root / "artdaqdb") == []
    assert ucondb_versions(archive_env.ucondb) == {str(r): 1 for r in RUNS}, context
    with direct_client(archive_env.ucondb) as client:
        for run in RUNS:
            assert md5_hex(client.get_blob(run).data) == want[run]
    assert not doubled, (doubled, context)  # one RunHistory2 update per run, never v1 and v2


@pytest.fixture
def dev_instance(tmp_path):
    home = tmp_path / "dev_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        yield instance


def queued(tags: dict) -> DagsterRun:
    return DagsterRun(job_name="archive_runs", run_id=str(uuid.uuid4()), tags=tags)


def tag_counter(instance, in_progress) -> TagConcurrencyLimitsCounter:
    """The counter the QueuedRunCoordinator daemon builds each tick from the instance's
    ``concurrency.runs.tag_concurrency_limits`` and the runs in progress."""
    limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    return TagConcurrencyLimitsCounter(list(limits), list(in_progress))


def test_dev_instance_queues_and_holds_a_second_run_for_the_same_partition(dev_instance,
                                                                           archive_env):
    from dagster._core.run_coordinator import QueuedRunCoordinator

    assert isinstance(dev_instance.run_coordinator, QueuedRunCoordinator)
    config = dev_instance.get_concurrency_config().run_queue_config
    assert config.max_concurrent_runs == 2
    # A partition run really carries the tag the limit keys on.
    generate_run_records(archive_env.run_records, [8101], profile="small", mtime=OLD)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("runs", ["8101"])
        result = archive_env.definitions().resolve_job_def("archive_runs").execute_in_process(
            instance=instance, partition_key="8101")
        assert result.dagster_run.tags.get("dagster/partition") == "8101"
    running = queued({"dagster/partition": "8101"})
    counter = tag_counter(dev_instance, [running])
    assert counter.is_blocked(queued({"dagster/partition": "8101"}))  # double-click: held
    assert not counter.is_blocked(queued({"dagster/partition": "8102"}))  # other runs go on


def test_dev_instance_queue_does_not_hold_a_backfill_range_so_the_steps_guard_it(dev_instance):
    # The queue's tag limit cannot see a range run's partitions: the range is launched next to a
    # running partition run, and the partition guard inside the steps (tests below) keeps the
    # two from writing the same run at once.
    running = queued({"dagster/partition": "8105"})
    backfill = queued({"dagster/asset_partition_range_start": "8101",
                       "dagster/asset_partition_range_end": "8110",
                       "dagster/backfill": "abc"})
    assert not tag_counter(dev_instance, [running]).is_blocked(backfill)


def started_run(instance, tags: dict) -> DagsterRun:
    """A Dagster run of the archive job that is in progress (as if launched a moment ago)."""
    run = DagsterRun(job_name="archive_runs", run_id=str(uuid.uuid4()), tags=tags,
                     status=dg.DagsterRunStatus.STARTED)
    instance.add_run(run)
    return run


def archive_job_for(archive_env, runs, monkeypatch, *, wait_seconds: int):
    """The archive job over fresh run records ``runs``, the guard waiting ``wait_seconds``."""
    generate_run_records(archive_env.run_records, runs, profile="small", mtime=OLD)
    monkeypatch.setenv("ARCHIVER_PARTITION_WAIT_SECONDS", str(wait_seconds))
    return archive_env.definitions().resolve_job_def("archive_runs")


def range_tags(first: str, last: str) -> dict:
    return {"dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last}


def test_backfill_range_does_not_touch_a_run_an_older_dagster_run_is_archiving(archive_env,
                                                                               monkeypatch):
    runs = [8101, 8102, 8103]
    job = archive_job_for(archive_env, runs, monkeypatch, wait_seconds=1)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("runs", [str(r) for r in runs])
        holder = started_run(instance, {"dagster/partition": "8102"})  # the sensor's run
        result = job.execute_in_process(instance=instance, tags=range_tags("8101", "8103"),
                                        raise_on_error=False)
        assert not result.success
        errors = [entry.user_message for entry in instance.all_logs(result.run_id)
                  if entry.level >= 40 and "8102" in entry.user_message]
        assert any(holder.run_id in m and "nothing was written" in m for m in errors), errors
        db = open_artdaqdb(archive_env.artdaqdb_uri)
        try:
            assert sorted(db.archived_runs()) == [8101, 8103]  # 8102 untouched
        finally:
            db.close()
        # The runs that went through are recorded as materialized, 8102 as failed.
        status = instance.get_status_by_partition(IMPORT, ["8101", "8102", "8103"],
                                                  dg.DynamicPartitionsDefinition(name="runs"))
        assert {k: s.value for k, s in status.items()} == {
            "8101": "MATERIALIZED", "8102": "FAILED", "8103": "MATERIALIZED"}

        # Once the holder has finished, the failed partition goes through.
        instance.report_run_failed(holder)
        retry = job.execute_in_process(instance=instance, partition_key="8102",
                                       raise_on_error=False)
        assert retry.success


def test_backfill_range_waits_for_the_older_run_and_then_only_verifies(archive_env, monkeypatch):
    import threading

    runs = [8111, 8112]
    job = archive_job_for(archive_env, runs, monkeypatch, wait_seconds=120)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("runs", [str(r) for r in runs])
        # An older range run covering 8112 is archiving it (here: the test does the writing).
        holder = started_run(instance, range_tags("8112", "8112"))
        outcome = {}
        waiter = threading.Thread(target=lambda: outcome.setdefault(
            "result", job.execute_in_process(instance=instance, tags=range_tags("8111", "8112"),
                                             raise_on_error=False)))
        waiter.start()
        db = open_artdaqdb(archive_env.artdaqdb_uri)

        def waiting_for_the_holder() -> bool:
            # (8111's import is not visible in the store before the range's group commit at its
            # end, so the guard's own log line tells that the range reached 8112)
            return any("is being archived by an earlier Dagster run" in entry.user_message
                       for run in instance.get_runs() if run.run_id != holder.run_id
                       for entry in instance.all_logs(run.run_id))

        try:
            deadline = time.monotonic() + 60
            while not waiting_for_the_holder() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.5)  # several of the guard's polls
            assert waiting_for_the_holder()
            assert waiter.is_alive() and 8112 not in db.archived_runs()
            from archiver_resources.archiving import import_run
            from tests.reliability.conftest import import_settings

            assert import_run(8112, archive_env.run_records / "8112", db,
                              import_settings()).action == "inserted"  # the holder's write
            instance.report_run_failed(holder)  # ... and it ends
            waiter.join(timeout=120)
            assert not waiter.is_alive()
            assert outcome["result"].success
            actions = {m.partition: m.metadata["action"].value
                       for m in outcome["result"].asset_materializations_for_node(
                           "artdaqdb_config")}
            assert actions["8111"] == "inserted" and actions["8112"] != "inserted", actions
            assert db.versions(8112, "standard") == ["8112/standard", "8112/standardv1"]
        finally:
            db.close()


def test_concurrent_imports_of_one_run_add_a_single_update_version(tmp_path):
    import threading

    from archiver_resources.archiving import import_run
    from tests.reliability.conftest import import_settings

    runs = list(range(8201, 8211))
    generate_run_records(tmp_path / "records", runs, profile="small", mtime=OLD)
    uri = f"filesystemdb://{tmp_path / 'db'}"
    outcomes = {}

    def worker(run, barrier, index):
        db = open_artdaqdb(uri)
        barrier.wait()
        try:
            outcomes[(run, index)] = import_run(run, tmp_path / "records" / str(run), db,
                                                import_settings()).action
        finally:
            db.close()

    for run in runs:
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=worker, args=(run, barrier, i)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    db = open_artdaqdb(uri)
    assert sorted(outcomes.values()).count("inserted") == len(runs)  # one insert per run
    extra = {run: db.versions(run, "standard") for run in runs
             if db.versions(run, "standard") != [f"{run}/standard", f"{run}/standardv1"]}
    assert not extra, extra
