"""Alert sensors end to end: real archive runs on a local UconDB, email to a loopback aiosmtpd
server (with login), Slack's webhook on a loopback HTTP server; a channel that is down never
fails a tick; no secret reaches any log, the sensor tick logs or the event log."""

import json
import socket
from email import message_from_bytes, policy

import dagster as dg

from archiver_resources.samples import generate_run_records
from tests.operations.conftest import enable_alerts, merged_definitions, secrets_of
from tests.pipeline.test_end_to_end import MD5_CHECK, client_for
from tests.support import free_port

HOST = socket.gethostname()


class Ticker:
    """Evaluates sensors as the daemon does, keeping each sensor's cursor between ticks."""

    def __init__(self, defs, instance):
        self.defs, self.instance, self.cursors, self.logs = defs, instance, {}, []

    def __call__(self, name):
        sensor = self.defs.resolve_sensor_def(name)
        with dg.build_sensor_context(instance_ref=self.instance.get_ref(), definitions=self.defs,
                                     resources=self.defs.resources,
                                     cursor=self.cursors.get(name)) as context:
            data = sensor.evaluate_tick(context)
        self.cursors[name] = data.cursor
        self.logs.append(repr(data))
        return data

    def baseline(self, *names):
        for name in names:
            self(name)


def mails(smtp):
    return [message_from_bytes(e.content, policy=policy.default) for e in smtp.mail.envelopes]


def hooks(webhook):
    return [json.loads(r["body"]) for r in webhook.requests]


def batch_run(defs, instance, keys):
    """A batched run over a partition range, as the backfill daemon launches it."""
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey("artdaqdb_config"), dg.AssetKey("ucondb_blob")})
    return job.execute_in_process(instance=instance, raise_on_error=False, tags={
        "dagster/asset_partition_range_start": keys[0],
        "dagster/asset_partition_range_end": keys[-1]})


def event_log_text(instance) -> str:
    """Every event of every run (materialization metadata included) and every runless event."""
    parts = []
    for record in instance.get_run_records():
        for event in instance.get_records_for_run(record.dagster_run.run_id).records:
            parts.append(repr(event.event_log_entry))
        parts.append(repr(record.dagster_run.tags))
    for key in instance.get_asset_keys():
        event = instance.get_latest_materialization_event(key)
        parts.append(repr(event))
    return "\n".join(parts)


def assert_no_secret(env, *texts):
    for text in texts:
        for secret in secrets_of(env):
            assert secret not in text


def test_failed_batch_alerts_by_email_and_webhook_with_legacy_payload(
        archive_env, smtp_server, webhook_server, monkeypatch, captured_logs):
    runs = list(range(5001, 5012))  # 11 runs: the list is capped at 10
    keys = [str(r) for r in runs]
    generate_run_records(archive_env.run_records, runs)
    enable_alerts(archive_env, monkeypatch, smtp=smtp_server, webhook=webhook_server)
    defs = merged_definitions(archive_env)
    with dg.instance_for_test() as instance:
        tick = Ticker(defs, instance)
        tick.baseline("archive_run_failure_alerts", "batch_summary_on_failure")
        instance.add_dynamic_partitions("runs", keys)
        archive_env.ucondb.stop()  # UconDB outage: every migration fails, imports succeed
        assert not batch_run(defs, instance, keys).success

        tick("archive_run_failure_alerts")
        [mail] = mails(smtp_server)
        [hook] = hooks(webhook_server)
        assert mail["Subject"].startswith(f"Run Record Archiver Migration Errors on {HOST} at ")
        body = mail.get_content().replace("\r\n", "\n")
        assert body.startswith("The following runs failed during the migration stage:\n\n"
                               + "".join(f"{r}\n" for r in runs))
        assert "Reasons:\n5001: UconDB: run 5001: put run 5001" in body  # cause per run
        assert hook["text"] == (f"Run Record Archiver Migration Failures: 11 runs failed on "
                                f"{HOST} <@U1234ABCD> <@U5678EFGH>")
        header, fields, numbers = hook["blocks"][:3]
        assert header["text"]["text"] == "⚠️ Run Record Archiver Migration Failures"
        texts = [f["text"] for f in fields["fields"]]
        assert texts[0] == f"*Host:*\n{HOST}" and texts[1].startswith("*Time:*\n")
        assert texts[2:] == ["*Stage:*\nMigration", "*Failed Runs:*\n11"]
        assert numbers["text"]["text"] == ("*Run Numbers:*\n5001, 5002, 5003, 5004, 5005, 5006, "
                                           "5007, 5008, 5009, 5010, ... (1 more)")

        # The batch summary: imports all succeeded, migrations all failed.
        tick("batch_summary_on_failure")
        summaries = hooks(webhook_server)[1:]
        assert [h["text"] for h in summaries] == [
            f"Run Record Archiver Import Batch: 11 succeeded, 0 failed on {HOST}",
            f"Run Record Archiver Migration Batch: 0 succeeded, 11 failed on {HOST} "
            "<@U1234ABCD> <@U5678EFGH>"]
        assert len(mails(smtp_server)) == 3
        # A second tick sends nothing more.
        tick("archive_run_failure_alerts")
        tick("batch_summary_on_failure")
        assert len(hooks(webhook_server)) == 3 and len(mails(smtp_server)) == 3
        assert_no_secret(archive_env, "\n".join(captured_logs), "\n".join(tick.logs),
                         event_log_text(instance))


def test_batch_summary_on_success(archive_env, webhook_server, monkeypatch):
    generate_run_records(archive_env.run_records, [5101, 5102, 5103, 5104])
    enable_alerts(archive_env, monkeypatch, webhook=webhook_server)
    defs = merged_definitions(archive_env)
    with dg.instance_for_test() as instance:
        tick = Ticker(defs, instance)
        tick.baseline("batch_summary_on_success")
        instance.add_dynamic_partitions("runs", ["5101", "5102", "5103"])
        assert batch_run(defs, instance, ["5101", "5102", "5103"]).success
        # A single-run run gets no summary.
        instance.add_dynamic_partitions("runs", ["5104"])
        assert defs.resolve_job_def("archive_runs").execute_in_process(
            instance=instance, partition_key="5104").success
        tick("batch_summary_on_success")
        tick("batch_summary_on_success")
    assert [h["text"] for h in hooks(webhook_server)] == [
        f"Run Record Archiver Import Batch: 3 succeeded, 0 failed on {HOST}",
        f"Run Record Archiver Migration Batch: 3 succeeded, 0 failed on {HOST}"]


def test_check_failures_alert_once_per_failed_evaluation(
        archive_env, smtp_server, webhook_server, monkeypatch, captured_logs):
    generate_run_records(archive_env.run_records, [6001, 6002, 6003])
    enable_alerts(archive_env, monkeypatch, smtp=smtp_server, webhook=webhook_server)
    monkeypatch.setenv("ARCHIVER_MAX_ARTDAQDB_LAG_RUNS", "0")
    defs = merged_definitions(archive_env)
    with dg.instance_for_test() as instance:
        tick = Ticker(defs, instance)
        instance.add_dynamic_partitions("runs", ["6001", "6002"])
        job = defs.resolve_job_def("archive_runs")
        for key in ("6001", "6002"):
            assert job.execute_in_process(instance=instance, partition_key=key).success
        tick.baseline("check_failure_alerts")
        with client_for(archive_env) as client:
            client.put_blob(6002, b"x", override=True)
        audit = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection=set(), asset_check_selection={MD5_CHECK})
        audit.execute_in_process(instance=instance, partition_key="6002", raise_on_error=False)
        audit.execute_in_process(instance=instance, partition_key="6001", raise_on_error=False)

        tick("check_failure_alerts")
        [hook] = hooks(webhook_server)
        assert hook["text"] == (f"Run Record Archiver Check Failure: md5_round_trip failed for "
                                f"run 6002 on {HOST} <@U1234ABCD> <@U5678EFGH>")
        fields = [f["text"] for f in hook["blocks"][1]["fields"]]
        assert fields[2:] == ["*Check:*\nmd5_round_trip", "*Run:*\n6002"]
        assert "ERROR (blocking): run 6002: MD5 mismatch" in hook["blocks"][2]["text"]["text"]
        [mail] = mails(smtp_server)
        assert mail["Subject"].startswith(f"Run Record Archiver Check md5_round_trip Failed on {HOST}")
        tick("check_failure_alerts")  # the cursor moved on: nothing new
        assert len(hooks(webhook_server)) == 1 and len(mails(smtp_server)) == 1

        # A non-blocking WARN check: run 6003 is on disk only and the allowed lag is 0.
        status = defs.resolve_job_def("archive_status_job").execute_in_process(instance=instance)
        assert status.success
        tick("check_failure_alerts")
        assert len(hooks(webhook_server)) == 2
        assert hooks(webhook_server)[1]["text"].startswith(
            "Run Record Archiver Check Failure: stores_in_sync failed for all runs")
        assert "WARN (non-blocking): artdaqDB lacks 1 run(s)" in \
            hooks(webhook_server)[1]["blocks"][2]["text"]["text"]
        tick("check_failure_alerts")
        assert len(hooks(webhook_server)) == 2 and len(mails(smtp_server)) == 2
        assert_no_secret(archive_env, "\n".join(captured_logs), "\n".join(tick.logs),
                         event_log_text(instance))


def test_channel_down_tick_succeeds_and_logs_a_warning(archive_env, monkeypatch, captured_logs):
    generate_run_records(archive_env.run_records, [7001])
    dead_smtp, dead_hook = free_port(), free_port()

    class Dead:
        port = dead_smtp
        url = f"http://127.0.0.1:{dead_hook}/services/T0001/B0002/HOOKSECRET0003"

    enable_alerts(archive_env, monkeypatch, smtp=Dead, webhook=Dead)
    defs = merged_definitions(archive_env)
    with dg.instance_for_test() as instance:
        tick = Ticker(defs, instance)
        tick.baseline("archive_run_failure_alerts")
        instance.add_dynamic_partitions("runs", ["7001"])
        archive_env.ucondb.stop()
        assert not defs.resolve_job_def("archive_runs").execute_in_process(
            instance=instance, partition_key="7001", raise_on_error=False).success
        data = tick("archive_run_failure_alerts")  # does not raise
        assert len(data.dagster_run_reactions) == 1 and data.dagster_run_reactions[0].error is None
    warnings = [line for line in captured_logs if "Alert not sent via" in line]
    assert any("via email" in line for line in warnings)
    assert any("via slack-webhook" in line for line in warnings)
    assert any("alert not sent via email" in line for line in captured_logs)
    assert_no_secret(archive_env, "\n".join(captured_logs), "\n".join(tick.logs))


def test_alert_sensors_only_when_a_channel_is_enabled(archive_env, webhook_server, monkeypatch):
    from archiver_assets.operations import build_operations_definitions

    quiet = build_operations_definitions(str(archive_env.config_path))
    assert not list(quiet.sensors)
    enable_alerts(archive_env, monkeypatch, webhook=webhook_server)
    loud = build_operations_definitions(str(archive_env.config_path))
    assert {s.name for s in loud.sensors} == {"archive_run_failure_alerts",
                                               "check_failure_alerts",
                                               "batch_summary_on_success",
                                               "batch_summary_on_failure"}
