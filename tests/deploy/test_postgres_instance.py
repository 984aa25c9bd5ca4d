"""deploy/dagster.postgres.yaml against a real PostgreSQL server: the template loads with the
settings it promises, the pipeline scenario of tests/pipeline runs on it (sensor, both assets,
checks, failures, re-run of failed partitions), and the deployment shape (daemon + webserver)
archives a burst of concurrent runs with explicit pool limits."""

import importlib.util
import os
import time

import pytest
import sqlalchemy
from dagster import DagsterInstance

from archiver_resources.samples import generate_run_records
from tests.deploy.instance import DEPLOY, dagster_cli, dagster_services, render_home
from tests.pipeline.conftest import write_config
from tests.pipeline.test_daemon_webserver import CHECK_QUERY, STATUS_QUERY, _graphql
from tests.pipeline.test_end_to_end import (
    IMPORT, MD5_CHECK, MIGRATE, check_results, client_for, failed_partitions, run_partitions, tick,
)

TEMPLATE = DEPLOY / "dagster.postgres.yaml"
POOLS = ("artdaqdb", "ucondb")

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_env(postgres_server, postgres_db, monkeypatch):
    """The template's environment variables for a fresh database, set in this process too."""
    env = postgres_server.env(postgres_db)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_template_loads_with_queue_retries_monitoring_and_no_default_pool_limit(tmp_path, pg_env):
    home = render_home(tmp_path / "home", TEMPLATE)
    assert pg_env["DAGSTER_PG_PASSWORD"] not in (home / "dagster.yaml").read_text()
    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 4
        assert {limit["key"] for limit in queue.tag_concurrency_limits} == {
            "dagster/partition", "dagster/backfill"}
        assert instance.get_concurrency_config().pool_config.default_pool_limit is None
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
        assert instance.run_retries_retry_on_asset_or_op_failure is False
        assert instance.run_monitoring_enabled
        # The stored instance reference keeps the env: indirection, never the password.
        assert pg_env["DAGSTER_PG_PASSWORD"] not in repr(instance.get_ref())


@pytest.mark.skipif(importlib.util.find_spec("psycopg") is not None,
                    reason="psycopg 3 is installed, so plain 'postgresql' works here")
@pytest.mark.skipif(tuple(int(p) for p in sqlalchemy.__version__.split(".")[:2]) < (2, 1),
                    reason="SQLAlchemy < 2.1 still defaults to psycopg2")
def test_template_needs_the_psycopg2_scheme_with_sqlalchemy_21(tmp_path, pg_env):
    home = render_home(tmp_path / "home", TEMPLATE, drop_lines=("scheme: postgresql+psycopg2",))
    assert "scheme:" not in (home / "dagster.yaml").read_text()
    with pytest.raises(ModuleNotFoundError, match="psycopg"):
        DagsterInstance.from_config(str(home))


def per_partition(env):
    """The sensor's per-partition mode (app.batch_size 1): one Dagster run per run, as these
    scenarios expect (the range runs are tested in tests/pipeline/test_automation.py)."""
    write_config(env.root, env.ucondb, run_records=env.run_records,
                 artdaqdb_uri=env.artdaqdb_uri, extra_app="  batch_size: 1")


def test_pipeline_scenario_on_postgres_instance(tmp_path, pg_env, archive_env):
    """tests/pipeline/test_end_to_end.py's scenario, on the production template."""
    home = render_home(tmp_path / "home", TEMPLATE)
    per_partition(archive_env)
    generate_run_records(archive_env.run_records, [4001, 4002, 4003])
    defs = archive_env.definitions()
    tick.cursor = None
    with DagsterInstance.from_config(str(home)) as instance:
        started = time.monotonic()
        keys = [r.partition_key for r in tick(defs, instance).run_requests]
        assert keys == ["4001", "4002", "4003"]
        for key, result in run_partitions(defs, instance, keys).items():
            assert result.success, key
            assert check_results(result) == {("ucondb_blob", "md5_round_trip"): True,
                                             ("artdaqdb_config", "hashes_match"): True,
                                             ("ucondb_blob", "legacy_metadata"): True}
        print(f"3 runs archived on PostgreSQL in {time.monotonic() - started:.1f} s")
        assert instance.get_materialized_partitions(MIGRATE) == set(keys)
        assert not tick(defs, instance).run_requests

        # A corrupted UconDB copy fails the MD5 audit and the re-archive of that partition.
        with client_for(archive_env) as client:
            good = client.get_blob(4002).data
            client.put_blob(4002, b"corrupted by a test", override=True)
        audit = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection=set(), asset_check_selection={MD5_CHECK})
        bad = audit.execute_in_process(instance=instance, partition_key="4002",
                                       raise_on_error=False)
        assert check_results(bad)[("ucondb_blob", "md5_round_trip")] is False
        assert not run_partitions(defs, instance, ["4002"])["4002"].success

        # A UconDB outage fails the next runs; artdaqDB got them.
        generate_run_records(archive_env.run_records, [4004, 4005])
        new = [r.partition_key for r in tick(defs, instance).run_requests]
        assert new == ["4004", "4005"]
        archive_env.ucondb.faults.fail_next(10**6, status=503, body="Simulated outage")
        assert not any(r.success for r in run_partitions(defs, instance, new).values())
        assert failed_partitions(defs, instance, MIGRATE) == ["4002", "4004", "4005"]
        assert {"4004", "4005"} <= instance.get_materialized_partitions(IMPORT)

        # Faults removed: a backfill-shaped run over the failed partitions (partition-range tags,
        # as the backfill daemon launches BackfillPolicy.multi_run batches) repairs all of them.
        archive_env.ucondb.faults.reset()
        with client_for(archive_env) as client:
            client.put_blob(4002, good, override=True)
        assert failed_partitions(defs, instance, MIGRATE) == ["4002", "4004", "4005"]
        backfill = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection={IMPORT, MIGRATE})
        result = backfill.execute_in_process(
            instance=instance, raise_on_error=False,
            tags={"dagster/asset_partition_range_start": "4002",
                  "dagster/asset_partition_range_end": "4005"})
        assert result.success
        assert failed_partitions(defs, instance, MIGRATE) == []
        assert instance.get_materialized_partitions(MIGRATE) == {str(r) for r in range(4001, 4006)}
        with client_for(archive_env) as client:
            assert client.get_blob(4002).data == good


RUNS_QUERY = """
query {
  runsOrError(limit: 200) {
    ... on Runs { results { runId status tags { key value } } }
  }
}"""

INTERESTING_TAGS = ("dagster/partition", "dagster/sensor_name", "dagster/parent_run_id",
                    "dagster/asset_evaluation_id", "dagster/backfill", "dagster/run_key")


def _tag(run, key):
    return next((t["value"] for t in run["tags"] if t["key"] == key), None)


def _runs(port):
    return _graphql(port, RUNS_QUERY)["runsOrError"]["results"]


def _finished(runs):
    return all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs)


def _statuses(port):
    return _graphql(port, STATUS_QUERY)["assetNodeOrError"]["assetPartitionStatuses"]


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_daemon_on_postgres_burst_with_explicit_pool_limits(tmp_path, pg_env, archive_env):
    """Pool limits set with `dagster instance concurrency set` (not default_limit): a burst of
    concurrent sensor runs through the real daemon all succeed at their first attempt."""
    home = render_home(tmp_path / "home", TEMPLATE)
    per_partition(archive_env)  # concurrent runs contending for the pools
    env = dict(os.environ, DAGSTER_HOME=str(home), ARCHIVER_CONFIG=str(archive_env.config_path),
               ARCHIVER_SENSOR_INTERVAL_SECONDS="3", PYTHONUNBUFFERED="1")
    for pool in POOLS:
        dagster_cli(env, "instance", "concurrency", "set", pool, "1")
    with DagsterInstance.from_config(str(home)) as instance:
        for pool in POOLS:
            assert instance.event_log_storage.get_concurrency_info(pool).slot_count == 1
    burst = [str(r) for r in range(6001, 6007)]
    with dagster_services(env, tmp_path / "logs") as services:
        port = services.port
        started = time.monotonic()
        generate_run_records(archive_env.run_records, [int(r) for r in burst])
        services.wait(lambda: sorted(_statuses(port)["materializedPartitions"]) == burst, 300,
                      "the daemon to archive the burst")
        services.wait(lambda: _finished(_runs(port)), 60, "the burst's runs to finish")
        elapsed = time.monotonic() - started
        runs = _runs(port)
        for run in runs:
            print(run["status"], {t["key"]: t["value"] for t in run["tags"]
                                  if t["key"] in INTERESTING_TAGS})
        sensor_runs = [r for r in runs if _tag(r, "dagster/sensor_name") == "new_run_records"]
        assert sorted(_tag(r, "dagster/partition") for r in sensor_runs) == burst
        assert {r["status"] for r in runs} == {"SUCCESS"}
        assert not any(t["key"] == "dagster/parent_run_id" for r in runs for t in r["tags"]), \
            "a run needed a run retry: the pool-limit race (dagster#33552) is back"
        assert _statuses(port)["failedPartitions"] == []
        print(f"burst of {len(burst)} runs archived by the daemon on PostgreSQL in {elapsed:.1f} s")

        def md5_passed():
            executions = _graphql(port, CHECK_QUERY, {"name": "md5_round_trip",
                                                      "asset": ["ucondb_blob"]})
            return {e["partition"] for e in executions["assetCheckExecutions"]
                    if e["status"] == "SUCCEEDED" and e["evaluation"]["success"]}

        services.wait(lambda: set(burst) <= md5_passed(), 60, "the MD5 check results")
