"""The Docker scale-out on a real Docker engine: the production template plus
deploy/scale-out/docker.run_launcher.yaml on a PostgreSQL instance, `dagster-daemon` and
`dagster-webserver` on the host, every run's worker a container of the image built by
deploy/docker/build-image.sh (host networking, run records / artdaqDB store / config mounted at
the same paths). A burst of 20 sensor runs is archived with one container per Dagster run (asked
of the engine); then a worker container is `docker kill`ed in the middle of its run: run
monitoring's health check fails the run, the run retry archives it, and neither store holds
anything twice. Skipped, saying why, when no dockerd can start
(archiver_resources/testing/docker_engine.py)."""

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import docker
import pytest
from dagster import (
    AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter,
)
from sqlalchemy import select

from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.samples import generate_run_record
from archiver_resources.testing.docker_engine import CA_BUNDLE_OVERRIDES, docker_instance_yaml
from tests.deploy.conftest import DOCKER_TIMINGS
from tests.deploy.instance import dagster_cli, dagster_services
from tests.support import FOLDER, write_config

BURST = list(range(7001, 7021))
KILLED = 7021
CONTAINER_ID_TAG = "docker/container_id"
PARENT_TAG = "dagster/parent_run_id"
SENSOR_TAG = "dagster/sensor_name"

pytestmark = [pytest.mark.docker, pytest.mark.postgres, pytest.mark.slow]


def drop_runs(staging: Path, run_records: Path, runs) -> None:
    """Generate run records beside the watched directory and move them in whole."""
    for run in runs:
        generate_run_record(staging, run)
        os.rename(staging / str(run), run_records / str(run))


def container_events(client, since: datetime) -> list:
    """The engine's start/die events of Dagster run containers since ``since``."""
    events = client.events(since=since, until=datetime.now(timezone.utc), decode=True,
                           filters={"type": "container", "event": ["start", "die"]})
    return [e for e in events if "dagster/run_id" in e["Actor"]["Attributes"]]


def _runs(instance, **filters):
    return instance.get_runs(filters=RunsFilter(**filters)) if filters else instance.get_runs()


def describe_runs(instance, runs) -> str:
    """Each run's status and its last engine/failure messages (what a timeout shows)."""
    lines = []
    for run in runs:
        lines.append(f"{run.run_id} {run.tags.get('dagster/partition')} {run.status}")
        for entry in instance.all_logs(run.run_id)[-4:]:
            lines.append(f"    {entry.dagster_event_type}: {(entry.message or '')[:300]}")
    return "\n".join(lines)


def wait_or_describe(services, instance, predicate, timeout: float, what: str):
    try:
        return services.wait(predicate, timeout, what)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{describe_runs(instance, _runs(instance))}") from None


def late_runs_note(instance, sensor_runs, others) -> str:
    """When archive_automation's extra runs were created, against their sensor run's end."""
    ends = {r.tags["dagster/partition"]: instance.get_run_record_by_id(r.run_id).end_time
            for r in sensor_runs}
    parts = []
    for run in others:
        created = instance.get_run_record_by_id(run.run_id).create_timestamp.timestamp()
        key = run.tags["dagster/partition"]
        parts.append(f"{key} created {created - ends[key]:+.1f} s after its sensor run ended")
    return "extra runs of archive_automation during the burst: " + ", ".join(parts)


def _md5_passed(instance, partition: str) -> bool:
    from dagster import AssetCheckKey

    key = AssetCheckKey(AssetKey("ucondb_blob"), "md5_round_trip")
    for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=200):
        evaluation = record.event and record.event.dagster_event \
            and record.event.dagster_event.event_specific_data
        if getattr(evaluation, "partition", None) == partition:
            return bool(evaluation.passed)
    return False


@pytest.mark.timeout(1800)
def test_docker_runs_burst_then_killed_worker_is_retried(
        tmp_path, monkeypatch, postgres_server, postgres_db, ucondb_server, docker_engine,
        worker_image):
    site = tmp_path / "site"
    for sub in ("etc", "run_records", "artdaqdb", "staging"):
        (site / sub).mkdir(parents=True)
    artdaqdb_uri = f"filesystemdb://{site / 'artdaqdb' / 'archive_db'}"
    config = write_config(site / "etc", ucondb_server, run_records=site / "run_records",
                          artdaqdb_uri=artdaqdb_uri, password_env="UCONDB_WRITER_PASSWORD",
                          timeout_seconds=60,
                          # one container per run: the sensor's per-partition mode
                          extra_app="  batch_size: 1")
    home = tmp_path / "home"
    home.mkdir()
    # Run monitoring every 2 s instead of 120 s, slots of dead runs freed after 2 s, not 60 s.
    (home / "dagster.yaml").write_text(docker_instance_yaml(
        storage=home / "storage", artdaqdb=site / "artdaqdb", etc=site / "etc",
        run_records=site / "run_records", monitoring_s=2))
    # The daemon reaches the engine as it would a remote one: TCP + TLS client certificates.
    env = dict(os.environ, **postgres_server.env(postgres_db), **docker_engine.remote_env(),
               DAGSTER_HOME=str(home), ARCHIVER_CONFIG=str(config),
               UCONDB_WRITER_PASSWORD=ucondb_server.password, ARCHIVER_RUN_IMAGE=worker_image,
               ARCHIVER_SENSOR_INTERVAL_SECONDS="2", PYTHONUNBUFFERED="1")
    for name in CA_BUNDLE_OVERRIDES:  # would replace the engine's CA (docker_engine.py)
        env.pop(name, None)
        monkeypatch.delenv(name, raising=False)
    for key, value in env.items():  # this process reads the same instance
        monkeypatch.setenv(key, value)
    # The production pool limits would be 2; 1 for ucondb makes a slot leaked by the killed
    # worker block its retry unless run monitoring frees it (free_slots_after_run_end_seconds).
    dagster_cli(env, "instance", "migrate")
    dagster_cli(env, "instance", "concurrency", "set", "artdaqdb", "2")
    dagster_cli(env, "instance", "concurrency", "set", "ucondb", "1")
    client = docker_engine.client()
    keys = [str(r) for r in BURST]

    with DagsterInstance.from_config(str(home)) as instance, \
            dagster_services(env, tmp_path / "logs") as services:
        assert docker.from_env(environment=docker_engine.remote_env()).ping()
        DOCKER_TIMINGS.append(f"the daemon's launcher reached the engine at "
                              f"{docker_engine.remote_env()['DOCKER_HOST']}"
                              + (" with TLS client verification"
                                 if docker_engine.tls_port else " (no openssl: no TLS listener)"))
        launcher = instance.run_launcher
        assert type(launcher).__name__ == "DockerRunLauncher" and launcher.image == worker_image
        assert launcher.supports_check_run_worker_health and instance.run_monitoring_enabled

        # ---- a burst of 20 sensor runs, each in its own container --------------------------
        since = datetime.now(timezone.utc)
        started = time.monotonic()
        drop_runs(site / "staging", site / "run_records", BURST)

        def burst_done():
            runs = [r for r in _runs(instance) if r.tags.get("dagster/partition") in keys]
            by_sensor = [r for r in runs if r.tags.get(SENSOR_TAG) == "new_run_records"]
            return len(by_sensor) == len(BURST) and all(r.is_finished for r in runs) and runs

        runs = wait_or_describe(services, instance, burst_done, 900,
                                "the daemon to archive the burst in containers")
        burst_s = time.monotonic() - started
        assert {r.status for r in runs} == {DagsterRunStatus.SUCCESS}, \
            [(r.tags.get("dagster/partition"), r.status) for r in runs]
        assert not [r for r in runs if PARENT_TAG in r.tags], "a burst run needed a retry"
        sensor_runs = [r for r in runs if r.tags.get(SENSOR_TAG) == "new_run_records"]
        assert sorted(r.tags["dagster/partition"] for r in sensor_runs) == keys
        assert instance.get_materialized_partitions(AssetKey("ucondb_blob")) == set(keys)
        services.wait(lambda: all(_md5_passed(instance, k) for k in keys), 60,
                      "every burst run's MD5 check to pass")

        # Asked of the engine: one container per Dagster run, labelled with its run id, started
        # once and exited 0; the run's own docker/container_id tag names that container.
        def all_exited():
            # archive_automation may add a verifying run for a burst partition late (see the
            # summary line): wait until every run the engine started is finished and exited.
            runs = [r for r in _runs(instance) if r.tags.get("dagster/partition") in keys]
            events = container_events(client, since)
            started = {e["Actor"]["Attributes"]["dagster/run_id"] for e in events
                       if e["Action"] == "start"}
            died = {e["id"] for e in events if e["Action"] == "die"}
            return (all(r.is_finished for r in runs) and started == {r.run_id for r in runs}
                    and {r.tags[CONTAINER_ID_TAG] for r in runs} <= died and (runs, events))

        runs, events = services.wait(all_exited, 180, "every run's container to exit")
        assert {r.status for r in runs} == {DagsterRunStatus.SUCCESS}
        others = [r for r in runs if r.run_id not in {s.run_id for s in sensor_runs}]
        if others:  # archive_automation's own verifying runs: say when they came
            DOCKER_TIMINGS.append(late_runs_note(instance, sensor_runs, others))
        starts = [e for e in events if e["Action"] == "start"]
        deaths = {e["id"]: e["Actor"]["Attributes"].get("exitCode") for e in events
                  if e["Action"] == "die"}
        by_run = {}
        for event in starts:
            by_run.setdefault(event["Actor"]["Attributes"]["dagster/run_id"], []).append(
                event["id"])
        assert sorted(by_run) == sorted(r.run_id for r in runs)
        assert all(len(ids) == 1 for ids in by_run.values()), by_run
        for run in runs:
            assert run.tags[CONTAINER_ID_TAG] == by_run[run.run_id][0]
            assert deaths.get(run.tags[CONTAINER_ID_TAG]) == "0", (run.run_id, deaths)
        assert {e["Actor"]["Attributes"].get("image") for e in starts} == {worker_image}
        # The captured step logs were written by the containers into the instance's storage.
        assert any((home / "storage" / runs[0].run_id).rglob("*")), "no compute logs"
        DOCKER_TIMINGS.append(f"burst of {len(BURST)} runs in containers: {burst_s:.0f} s "
                              f"({len(BURST) / burst_s * 60:.0f} runs/min incl. sensor ticks)")

        # ---- a worker container killed in the middle of its run ------------------------------
        # The UconDB verification download right after the upload stalls, so the container is
        # killed with artdaqDB written and the blob stored but the run not finished.
        ucondb_server.faults.stall_next(1, 30.0, method="GET", path_contains=f"key={KILLED}")
        since = datetime.now(timezone.utc)
        started = time.monotonic()
        drop_runs(site / "staging", site / "run_records", [KILLED])
        services.wait(lambda: ucondb_server.faults.count(
            method="GET", path_contains=f"key={KILLED}") >= 1, 180,
            "the killed run to reach its verification download")
        victim = next(r for r in _runs(instance, tags={"dagster/partition": str(KILLED)}))
        assert victim.status == DagsterRunStatus.STARTED
        container = client.containers.get(victim.tags[CONTAINER_ID_TAG])
        assert container.status == "running"
        # Secrets travel only as the container's environment, never in its command or labels.
        visible = json.dumps([container.attrs["Config"]["Cmd"],
                              container.attrs["Config"]["Labels"]])
        for secret in (postgres_server.password, ucondb_server.password):
            assert secret not in visible
        assert "dagster" in visible and "execute_run" in visible
        container.kill()  # docker kill: SIGKILL to the run worker, the container is gone

        def retried():
            runs = _runs(instance, tags={"dagster/partition": str(KILLED)})
            retry = [r for r in runs if r.tags.get(PARENT_TAG) == victim.run_id]
            return retry and all(r.is_finished for r in runs) and (runs, retry[0])

        runs, retry = wait_or_describe(services, instance, retried, 300,
                                       "run monitoring + the run retry")
        recovered_s = time.monotonic() - started
        assert instance.get_run_by_id(victim.run_id).status == DagsterRunStatus.FAILURE
        assert retry.status == DagsterRunStatus.SUCCESS
        failure = instance.all_logs(victim.run_id, of_type=DagsterEventType.PIPELINE_FAILURE)
        assert failure and "Detected run worker status" in failure[-1].message, \
            "the run was not failed by run monitoring's health check"
        # archive_automation may also have asked for the missing blob between the failure and
        # the retry: such a run is the only other one allowed, and it must succeed too.
        others = [r for r in runs if r.run_id not in (victim.run_id, retry.run_id)]
        assert all(r.tags.get(SENSOR_TAG) == "archive_automation" for r in others), \
            [(r.run_id, r.tags) for r in others]
        assert all(r.status == DagsterRunStatus.SUCCESS for r in others)
        services.wait(lambda: _md5_passed(instance, str(KILLED)), 60, "the retry's MD5 check")

        # What each run did to the stores, from its materializations: the killed run inserted the
        # configuration into artdaqDB and was killed after uploading the blob; every later run
        # found both and only verified them (the retry re-executes from the failed step).
        def actions(asset):
            result = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[str(KILLED)]),
                limit=20, ascending=True)
            return [(r.event_log_entry.run_id,
                     r.asset_materialization.metadata["action"].value,
                     r.asset_materialization.metadata) for r in result.records]

        imports, migrations = actions("artdaqdb_config"), actions("ucondb_blob")
        assert [a for _, a, _ in imports] == ["inserted"] + ["verified"] * (len(imports) - 1)
        assert imports[0][0] == victim.run_id
        assert migrations and {a for _, a, _ in migrations} == {"verified-existing"}
        assert retry.run_id in {run_id for run_id, _, _ in migrations}
        assert victim.run_id not in {run_id for run_id, _, _ in migrations}
        verified_versions = {m["ucondb_version_id"].value for _, _, m in migrations}

        def all_exited_again():
            events = container_events(client, since)
            died = {e["Actor"]["Attributes"]["dagster/run_id"] for e in events
                    if e["Action"] == "die"}
            return {r.run_id for r in runs} <= died and events

        events = services.wait(all_exited_again, 120, "the killed run's containers to exit")
        mine = {r.run_id for r in runs}
        exits = {e["Actor"]["Attributes"]["dagster/run_id"]: e["Actor"]["Attributes"]["exitCode"]
                 for e in events if e["Action"] == "die"
                 and e["Actor"]["Attributes"]["dagster/run_id"] in mine}
        assert exits == {victim.run_id: "137", **{r.run_id: "0" for r in runs
                                                  if r.run_id != victim.run_id}}
        DOCKER_TIMINGS.append(f"killed worker: run failed by run monitoring and retried, "
                              f"archived {recovered_s:.0f} s after its run records appeared")

    # ---- nothing twice in either store ---------------------------------------------------------
    all_runs = BURST + [KILLED]
    store = open_artdaqdb(artdaqdb_uri)
    try:
        archived = store.archived_runs()  # run -> "<run>/<config>"
        assert sorted(archived) == all_runs
        versions = {run: store.versions(run, name.split("/", 1)[1])
                    for run, name in archived.items()}
        # Every run holds the versions one import makes (the first, plus the RunHistory2
        # update when the stop time is known), the killed-and-retried run included.
        shape = [v.removeprefix(str(BURST[0])) for v in versions[BURST[0]]]
        for run, names in versions.items():
            assert [v.removeprefix(str(run)) for v in names] == shape, (run, names)
    finally:
        store.close()
    storage = ucondb_server.storage
    tables = storage.folder(FOLDER)
    with storage.engine.connect() as conn:
        rows = conn.execute(select(tables.versions.c.key, tables.versions.c.id)).all()
    assert sorted(int(key) for key, _ in rows) == all_runs
    assert {dict((int(k), i) for k, i in rows)[KILLED]} == verified_versions
