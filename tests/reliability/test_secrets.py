"""Credentials never leak: a full scenario with distinctive secret values (UconDB writer password,
a MongoDB URI password, SMTP password, Slack token, a password embedded in the UconDB URL), with
successes and failures, then every text an operator or the UI could see is grepped for them:
captured logs and output, exception messages, every event of every Dagster run (and the instance
directory on disk: event log database, compute logs), the resources as the UI shows them, the
status report. Also: TLS verification is on by default, and ``verify_tls: false`` warns once."""

import dataclasses
import logging
import uuid
import warnings
from pathlib import Path

import dagster as dg
import pytest

from archiver_resources.config import load_config
from archiver_resources.redaction import redact_uri
from archiver_resources.samples import generate_run_records
from archiver_resources.ucondb.client import UconDBClient
from archiver_resources.ucondb.testing import free_loopback_socket
from tests.support import FOLDER, running_ucondb, write_config
from tests.reliability.conftest import OLD

UCON_PW = "UconPW-s3cr3t-Zq81"
WRONG_PW = "WrongPW-s3cr3t-Hh90"
URL_PW = "UrlPW-s3cr3t-Mm33"
MONGO_PW = "MongoPW-s3cr3t-Xk22"
SMTP_PW = "SmtpPW-s3cr3t-Tt55"
SLACK_TOKEN = "slack-0000-s3cr3t-Ss44"
ALL_SECRETS = [UCON_PW, WRONG_PW, URL_PW, MONGO_PW, SMTP_PW, SLACK_TOKEN]

REPORTING = f"""
reporting:
  email:
    enabled: true
    recipient_email: ops@example.invalid
    sender_email: archiver@example.invalid
    smtp_host: 127.0.0.1
    smtp_port: {{smtp_port}}
    smtp_user: archiver
    smtp_password: "{SMTP_PW}"
  slack:
    enabled: true
    bot_token: "{SLACK_TOKEN}"
    channel: "#daq"
"""


def closed_port() -> int:
    sock = free_loopback_socket()
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    return port


def config_with_secrets(root: Path, server, *, password_env: str, url: str = None) -> Path:
    path = write_config(root, server, run_records=root / "run_records",
                        artdaqdb_uri=f"filesystemdb://{root / 'artdaqdb' / 'db'}",
                        password_env=password_env)
    text = path.read_text()
    if url:
        text = text.replace(f'server_url: "{server.base_url}"', f'server_url: "{url}"')
    path.write_text(text + REPORTING.format(smtp_port=closed_port()))
    return path


def leaks(text: str) -> list:
    return [s for s in ALL_SECRETS if s in text]


def event_texts(instance) -> list:
    from dagster._serdes import serialize_value

    texts = []
    for run in instance.get_runs():
        texts.append(serialize_value(run))  # run config and tags as the UI shows them
        for record in instance.all_logs(run.run_id):
            texts.append(serialize_value(record))
    return texts


def files_with_secrets(directory: Path) -> dict:
    found = {}
    for path in Path(directory).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits = [s for s in ALL_SECRETS if s.encode() in data]
            if hits:
                found[str(path)] = hits
    return found


@pytest.fixture
def secret_server(tmp_path, monkeypatch):
    monkeypatch.setenv("RELIABILITY_WRONG_PW", WRONG_PW)
    with running_ucondb(tmp_path / "ucondb", monkeypatch, password_env="RELIABILITY_UCON_PW",
                        folder=FOLDER, password=UCON_PW) as server:
        yield server


def test_no_secret_in_any_output_of_a_full_scenario(tmp_path, secret_server, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    generate_run_records(tmp_path / "run_records", [101, 102, 103, 104], profile="small", mtime=OLD)
    good = config_with_secrets(tmp_path / "good", secret_server, password_env="RELIABILITY_UCON_PW")
    wrong = config_with_secrets(tmp_path / "wrong", secret_server,
                                password_env="RELIABILITY_WRONG_PW")
    # A password embedded in the UconDB URL (some sites do this) and a closed port.
    url_down = f"http://writer:{URL_PW}@127.0.0.1:{closed_port()}/app"
    down = config_with_secrets(tmp_path / "down", secret_server, password_env="RELIABILITY_UCON_PW",
                               url=url_down)
    # The same password in the URL of the reachable server: archiving succeeds.
    url_up = secret_server.base_url.replace("http://", f"http://writer:{URL_PW}@")
    up = config_with_secrets(tmp_path / "up", secret_server, password_env="RELIABILITY_UCON_PW",
                             url=url_up)
    shared_run_records = tmp_path / "run_records"
    for path in (good, wrong, down, up):
        path.write_text(path.read_text().replace(str(path.parent / "run_records"),
                                                 str(shared_run_records)))
    for path in (good, wrong, down, up):
        assert load_config(path).secrets()  # the loader knows its secrets

    from archiver_assets.definitions import build_definitions

    errors: list = []
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("runs", ["101", "102", "103", "104"])
        for config, key in ((good, "101"), (wrong, "102"), (down, "103"), (good, "103"),
                            (up, "104")):
            defs = build_definitions(str(config))
            result = defs.resolve_job_def("archive_runs").execute_in_process(
                instance=instance, partition_key=key, raise_on_error=False)
            if not result.success:
                errors += [str(e.event_specific_data.error) for e in result.all_events
                           if e.event_type_value in ("STEP_FAILURE", "RUN_FAILURE")
                           and e.event_specific_data and getattr(e.event_specific_data, "error", None)]
            if key == "104":
                assert result.success, "a password in the URL must not stop archiving"
            # The resources as the UI shows them: only the config path.
            for name, resource in defs.resources.items():
                errors.append(f"{name}={resource!r}")
        failed_text = " ".join(errors)
        assert "authentication failed (HTTP 401)" in failed_text, failed_text[:2000]
        assert "cannot reach http://127.0.0.1:" in failed_text, failed_text[:2000]

        # Alerts through both channels, both unreachable (loopback, closed ports).
        from archiver_resources.notifications import email_settings, slack_settings
        from archiver_resources.notifications import Notifier

        config = load_config(good)
        slack = dataclasses.replace(slack_settings(config),
                                    base_url=f"http://127.0.0.1:{closed_port()}/api/")
        notifier = Notifier(email=email_settings(config), slack=slack, host="test-host")
        results = notifier.notify_failures("migration", [102, 103],
                                           reason={102: "authentication failed (HTTP 401)"})
        assert results and not any(r.ok for r in results), results
        errors += [repr(r) for r in results]

        # The status report, with the UconDB URL that carries a password and is down.
        from archiver_assets.operations.status import gather_report, report_metadata
        from archiver_assets.resources import MetricsResource

        defs = build_definitions(str(down))
        resources = defs.resources
        metrics = MetricsResource(settings=resources["archiver_config"])
        report = gather_report(instance, resources["run_records"], resources["artdaqdb"],
                               resources["ucondb"], metrics)
        report_text = report.text()
        assert "query failed" in report_text.lower() or not report.complete
        meta = report_metadata(report, load_config(down).secrets())
        errors += [report_text, repr(meta), repr(load_config(down)), repr(load_config(good))]

        hits = {i: leaks(t) for i, t in enumerate(event_texts(instance)) if leaks(t)}
        assert not hits, f"secrets in Dagster events: {hits}"
        on_disk = files_with_secrets(Path(instance.root_directory))
        assert not on_disk, f"secrets in the instance directory: {on_disk}"
    out = capsys.readouterr()
    assert not leaks(caplog.text), [r.getMessage() for r in caplog.records if leaks(r.getMessage())]
    assert not leaks(out.out + out.err)
    assert not leaks("\n".join(errors)), [e for e in errors if leaks(e)]


def test_mongodb_uri_password_is_redacted_in_config_resource_and_errors(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    uri = f"mongodb://archiver:{MONGO_PW}@127.0.0.1:{closed_port()}/run_history_archive"
    assert MONGO_PW not in redact_uri(uri) and "archiver:***@" in redact_uri(uri)
    server = type("S", (), {"base_url": "http://127.0.0.1:9/app", "user": "w"})()
    path = write_config(tmp_path, server, run_records=tmp_path, artdaqdb_uri=uri,
                        password_env="RELIABILITY_NOT_SET")
    path.write_text(path.read_text().replace('"${RELIABILITY_NOT_SET}"', '"x"'))
    config = load_config(path)
    assert MONGO_PW in config.secrets()
    assert MONGO_PW not in repr(config) and MONGO_PW not in str(config.artdaq_db)
    from archiver_assets.resources import resources_for_config

    resources = resources_for_config(str(path))
    assert MONGO_PW not in resources["artdaqdb"].describe()
    pytest.importorskip("pymongo")
    from archiver_resources.artdaqdb.mongo import MongoArtdaqDB

    with pytest.raises(Exception) as caught:
        store = MongoArtdaqDB(uri, timeout_seconds=0.3)
        try:
            store.archived_runs()
        finally:
            store.close()
    assert MONGO_PW not in str(caught.value) and MONGO_PW not in repr(caught.value)
    assert MONGO_PW not in caplog.text


def test_ucondb_client_verifies_tls_by_default(secret_server):
    client = UconDBClient("https://127.0.0.1:1/app", FOLDER, "configuration")
    assert client._session.verify is True
    client.close()


def test_verify_tls_false_warns_once(caplog):
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        url = f"https://{uuid.uuid4().hex}.example.invalid/app"
        clients = [UconDBClient(url, FOLDER, "configuration", verify_tls=False)
                   for _ in range(3)]
        UconDBClient(url, FOLDER, "configuration").close()  # verifying: no warning
    for client in clients:
        client.close()
    said = [r.getMessage() for r in caplog.records if "TLS" in r.getMessage()] + \
           [str(w.message) for w in caught if "TLS" in str(w.message)]
    assert len(said) == 1, said
