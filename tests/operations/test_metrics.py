"""Carbon metrics. The sink against a loopback TCP listener: exact plaintext lines, durations on
errors, server down → no exception, quick send, rate-limited warning. The pipeline: the legacy
names received during real archive runs and a status report; a Carbon server that is down never
fails or blocks a run."""

import logging
import re
import socket
import time

import dagster as dg
import pytest

from archiver_resources import metrics as m
from archiver_resources.metrics import CarbonMetrics, NullMetrics, format_line, open_metrics
from archiver_resources.samples import generate_run_records
from tests.operations.conftest import add_sections, merged_definitions, secrets_of
from tests.support import free_port

# --- the Carbon sink ---------------------------------------------------------------------------

def test_format_line():
    assert format_line("sbnd.run_archiver.dev", "migrate.runs_failed", 3, 1700000000.9) == \
        "sbnd.run_archiver.dev.migrate.runs_failed 3 1700000000\n"
    assert format_line("", "a b", 1.5, 10) == "a_b 1.5 10\n"


def test_lines_reach_listener(carbon_listener):
    metrics = CarbonMetrics("127.0.0.1", carbon_listener.port, "demo.run_archiver.dev")
    try:
        assert metrics.send(m.MIGRATE_RUNS_PROCESSED, 5, timestamp=1700000000)
        assert metrics.send(m.MIGRATE_RUNS_SUCCESSFUL, 4, timestamp=1700000001)
        assert metrics.flush(5)
    finally:
        metrics.close()
    assert carbon_listener.lines(2) == [
        "demo.run_archiver.dev.migrate.runs_processed 5 1700000000",
        "demo.run_archiver.dev.migrate.runs_successful 4 1700000001",
    ]


def test_default_timestamp_from_clock(carbon_listener):
    metrics = CarbonMetrics("127.0.0.1", carbon_listener.port, "p", clock=lambda: 1234.75)
    metrics.send("x", 1)
    metrics.close()
    assert carbon_listener.lines(1) == ["p.x 1 1234"]


def test_timed_sends_duration_even_when_body_raises(carbon_listener):
    metrics = CarbonMetrics("127.0.0.1", carbon_listener.port, "p")
    with metrics.timed(m.UCONDB_UPLOAD_BLOB):
        time.sleep(0.01)
    with pytest.raises(RuntimeError):
        with metrics.timed(m.ARTDAQDB_ARCHIVE_RUN):
            raise RuntimeError("boom")
    metrics.close()
    lines = carbon_listener.lines(2)
    assert [line.split()[0] for line in lines] == [
        "p.UconDBClient.upload_blob.duration_ms", "p.ArtdaqDBClient.archive_run.duration_ms"]
    assert float(lines[0].split()[1]) >= 10.0
    assert "." in lines[1].split()[1]  # float milliseconds


def test_migration_counts(carbon_listener):
    metrics = CarbonMetrics("127.0.0.1", carbon_listener.port, "p")
    m.send_migration_counts(metrics, [10, 12], [11], timestamp=5)
    m.send_migration_counts(metrics, [], [], timestamp=6)
    metrics.close()
    assert carbon_listener.lines(7) == [
        "p.migrate.runs_processed 3 5", "p.migrate.runs_successful 2 5", "p.migrate.runs_failed 1 5",
        "p.migrate.last_successful_run 12 5",
        "p.migrate.runs_processed 0 6", "p.migrate.runs_successful 0 6", "p.migrate.runs_failed 0 6",
    ]


def test_many_metrics_one_connection(carbon_listener):
    metrics = CarbonMetrics("127.0.0.1", carbon_listener.port, "p")
    for i in range(2000):
        metrics.send("n", i, timestamp=1)
    assert metrics.flush(10)
    metrics.close()
    lines = carbon_listener.lines(2000)
    assert lines == [f"p.n {i} 1" for i in range(2000)]
    assert carbon_listener.connections == 1


def test_server_down_no_exception_quick_send_warning(caplog):
    metrics = CarbonMetrics("127.0.0.1", free_port(), "p", timeout=0.5)
    with caplog.at_level(logging.WARNING, logger="archiver_resources.metrics"):
        start = time.monotonic()
        for i in range(100):
            metrics.send("x", i)
        with metrics.timed("y"):
            pass
        elapsed = time.monotonic() - start
        assert metrics.flush(5)
        metrics.close()
    assert elapsed < 0.5  # only enqueues
    warnings = [r.getMessage() for r in caplog.records if "Carbon metrics dropped" in r.getMessage()]
    assert 1 <= len(warnings) <= 2  # rate-limited: one, plus the summary at close
    assert "ConnectionRefusedError" in warnings[0]
    assert sum(int(w.split("dropped: ")[1].split()[0]) for w in warnings) == 101


def test_queue_full_drops_without_blocking(caplog):
    hung = socket.socket()  # accepts into the backlog but never reads: writes eventually stall
    hung.bind(("127.0.0.1", 0))
    hung.listen(1)
    metrics = CarbonMetrics("127.0.0.1", hung.getsockname()[1], "p", queue_size=5, timeout=0.3)
    try:
        with caplog.at_level(logging.WARNING, logger="archiver_resources.metrics"):
            results = [metrics.send("x" * 1000, i) for i in range(5000)]
        assert not all(results)
        assert any("queue full" in r.getMessage() for r in caplog.records)
    finally:
        metrics.close(timeout=3)
        hung.close()


def test_null_and_disabled_metrics(carbon_listener):
    null = NullMetrics()
    assert null.send("x", 1) is False
    with null.timed("y"):
        pass
    assert null.flush() is True
    null.close()
    disabled = CarbonMetrics("127.0.0.1", carbon_listener.port, "p", enabled=False)
    assert disabled.send("x", 1) is False
    disabled.close()
    assert isinstance(open_metrics(enabled=False, host="h"), NullMetrics)
    assert isinstance(open_metrics(enabled=True, host=None), NullMetrics)
    time.sleep(0.1)
    assert carbon_listener.connections == 0


def test_legacy_metric_names():
    assert [name + m.DURATION_SUFFIX for name in m.TIMED_CALLS] == [
        "ArtdaqDBClient.get_archived_runs.duration_ms", "ArtdaqDBClient.archive_run.duration_ms",
        "ArtdaqDBClient.export_run_configuration.duration_ms",
        "UconDBClient.get_existing_runs.duration_ms", "UconDBClient.upload_blob.duration_ms",
        "UconDBClient.get_data.duration_ms"]


# --- during archive runs -----------------------------------------------------------------------

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
