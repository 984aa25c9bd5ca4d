"""Carbon metrics with the legacy names, received by a loopback TCP listener during real archive
runs and a status report; a Carbon server that is down never fails or blocks a run."""

import re
import time

import dagster as dg

from archiver_resources.samples import generate_run_records
from tests.operations.conftest import add_sections, free_port, merged_definitions, secrets_of

PREFIX = "sbnd.run_archiver.test"
LINE = re.compile(r"^(\S+) (-?\d+(?:\.\d+)?) (\d+)$")


def enable_carbon(env, port):
    add_sections(env, f"carbon:\n  enabled: true\n  host: 127.0.0.1\n  port: {port}\n"
                      f"  metric_prefix: \"{PREFIX}\"\n")


def received(listener, want: set, timeout=5.0) -> dict:
    """name → list of values, once every wanted name arrived (or the timeout ran out)."""
    deadline = time.monotonic() + timeout
    while True:
        seen: dict = {}
        for line in listener.lines():
            match = LINE.match(line)
            assert match, f"not a Carbon plaintext line: {line!r}"
            seen.setdefault(match.group(1), []).append(float(match.group(2)))
            assert abs(int(match.group(3)) - time.time()) < 600
        if want <= set(seen) or time.monotonic() > deadline:
            return seen
        time.sleep(0.05)


def test_legacy_metrics_during_real_archive_runs(archive_env, carbon_listener):
    generate_run_records(archive_env.run_records, [8001, 8002])
    enable_carbon(archive_env, carbon_listener.port)
    defs = merged_definitions(archive_env, alerts=False)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("runs", ["8001", "8002"])
        job = defs.resolve_job_def("archive_runs")
        for key in ("8001", "8002"):
            assert job.execute_in_process(instance=instance, partition_key=key).success
        assert defs.resolve_job_def("archive_status_job").execute_in_process(
            instance=instance).success
    names = {f"{PREFIX}.{n}" for n in (
        "ArtdaqDBClient.archive_run.duration_ms",
        "ArtdaqDBClient.export_run_configuration.duration_ms",
        "ArtdaqDBClient.get_archived_runs.duration_ms",
        "UconDBClient.upload_blob.duration_ms", "UconDBClient.get_data.duration_ms",
        "UconDBClient.get_existing_runs.duration_ms",
        "migrate.runs_processed", "migrate.runs_successful", "migrate.runs_failed",
        "migrate.last_successful_run")}
    seen = received(carbon_listener, names)
    assert names <= set(seen), names - set(seen)
    assert len(seen[f"{PREFIX}.UconDBClient.upload_blob.duration_ms"]) == 2  # one per run
    assert all(v > 0 for v in seen[f"{PREFIX}.ArtdaqDBClient.archive_run.duration_ms"])
    # Once per migration step (one run each here): 1 processed, 1 successful, 0 failed.
    assert seen[f"{PREFIX}.migrate.runs_processed"] == [1.0, 1.0]
    assert seen[f"{PREFIX}.migrate.runs_successful"] == [1.0, 1.0]
    assert seen[f"{PREFIX}.migrate.runs_failed"] == [0.0, 0.0]
    assert seen[f"{PREFIX}.migrate.last_successful_run"] == [8001.0, 8002.0]
    text = "\n".join(carbon_listener.lines())
    assert not any(secret in text for secret in secrets_of(archive_env))


def test_failed_migration_counts(archive_env, carbon_listener):
    generate_run_records(archive_env.run_records, [8101])
    enable_carbon(archive_env, carbon_listener.port)
    defs = merged_definitions(archive_env, alerts=False)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("runs", ["8101"])
        archive_env.ucondb.stop()
        assert not defs.resolve_job_def("archive_runs").execute_in_process(
            instance=instance, partition_key="8101", raise_on_error=False).success
    name = f"{PREFIX}.migrate.runs_failed"
    seen = received(carbon_listener, {name})
    assert seen[name] and set(seen[name]) == {1.0}  # once per attempt of the step
    assert f"{PREFIX}.migrate.last_successful_run" not in seen
    # A failed upload is still timed (legacy: sent even when the call raised).
    assert f"{PREFIX}.UconDBClient.upload_blob.duration_ms" in seen


def test_carbon_down_never_fails_the_run(archive_env, captured_logs):
    generate_run_records(archive_env.run_records, [8201])
    enable_carbon(archive_env, free_port())  # nothing listens there
    defs = merged_definitions(archive_env, alerts=False)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("runs", ["8201"])
        assert defs.resolve_job_def("archive_runs").execute_in_process(
            instance=instance, partition_key="8201").success
    assert any("Carbon metrics dropped" in line for line in captured_logs)
