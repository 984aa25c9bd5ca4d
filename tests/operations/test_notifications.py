"""Alerts against real loopback servers: Slack Web API (slack_sdk WebClient with base_url) and an
incoming webhook on a local HTTP server, email on a local aiosmtpd server; failure paths never
raise and never log a secret."""

import json
import shutil
import ssl
import subprocess
import logging
import socket
import threading
import time
from datetime import datetime
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from archiver_resources.notifications import (
    EmailSettings, Notifier, SendResult, SlackSettings, format_run_numbers,
)
from tests.support import free_port

TOKEN = "slack-test-token-SECRET-1234"
WEBHOOK_PATH = "/services/T000/B000/WEBHOOKSECRET"
PASSWORD = "smtp-pass-SECRET-5678"
HOST = "daq01.example"
NOW = datetime(2024, 3, 5, 14, 7, 9)
TIME = "2024-03-05 14:07:09"


def _clock():
    return NOW


# ------------------------------------------------------------------------------- local servers

class _SlackHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers),
                                     "body": body})
        status, payload = self.server.reply
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if payload.startswith("{") else "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlackHandler)
    server.requests = []
    server.reply = (200, '{"ok": true, "channel": "C1", "ts": "1.2"}')
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


class _MailHandler:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


class _Authenticator:
    def __init__(self):
        self.calls = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        self.calls.append((mechanism, auth_data.login, auth_data.password))
        ok = auth_data.password == PASSWORD.encode()
        return AuthResult(success=ok, handled=ok)  # handled=False → server answers 535


@pytest.fixture
def smtp_server():
    handler, auth = _MailHandler(), _Authenticator()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                            authenticator=auth, auth_require_tls=False)
    controller.start()
    controller.handler_ = handler
    controller.auth_ = auth
    yield controller
    controller.stop()


@pytest.fixture
def silent_server():
    """Accepts TCP connections (kernel backlog) and never answers: a hung server."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def _slack_bot(server, **kw):
    return SlackSettings(channel="#daq-alerts", bot_token=TOKEN, mention_users="U1234ABCD,U5678EFGH",
                         base_url=f"http://127.0.0.1:{server.server_address[1]}/api/", **kw)


def _email(port, **kw):
    base = dict(recipient_email="ops@example.org, shifter@example.org",
                sender_email="archiver@example.org", smtp_host="127.0.0.1", smtp_port=port)
    base.update(kw)
    return EmailSettings(**base)


def _assert_no_secret(text):
    for secret in (TOKEN, WEBHOOK_PATH, PASSWORD, "WEBHOOKSECRET"):
        assert secret not in text


EXPECTED_BLOCKS = [
    {"type": "header", "text": {"type": "plain_text", "text": "⚠️ Run Record Archiver Import Failures"}},
    {"type": "section", "fields": [
        {"type": "mrkdwn", "text": f"*Host:*\n{HOST}"},
        {"type": "mrkdwn", "text": f"*Time:*\n{TIME}"},
        {"type": "mrkdwn", "text": "*Stage:*\nImport"},
        {"type": "mrkdwn", "text": "*Failed Runs:*\n12"},
    ]},
    {"type": "section", "text": {"type": "mrkdwn", "text":
        "*Run Numbers:*\n100, 101, 102, 103, 104, 105, 106, 107, 108, 109, ... (2 more)"}},
]
RUNS = [111, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110]


# -------------------------------------------------------------------------------------- Slack

def test_format_run_numbers():
    assert format_run_numbers([3, 1, 2]) == "1, 2, 3"
    assert format_run_numbers(list(range(10))) == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9"
    assert format_run_numbers(list(range(11))) == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ... (1 more)"


def test_slack_bot_token_exact_payload(http_server):
    notifier = Notifier(slack=_slack_bot(http_server), host=HOST, clock=_clock)
    results = notifier.notify_failures("import", RUNS)
    assert results == [SendResult("slack", True, None)]
    [request] = http_server.requests
    assert request["path"] == "/api/chat.postMessage"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    payload = json.loads(request["body"])
    assert payload == {
        "channel": "#daq-alerts",
        "text": f"Run Record Archiver Import Failures: 12 runs failed on {HOST} <@U1234ABCD> <@U5678EFGH>",
        "blocks": EXPECTED_BLOCKS,
    }


def test_slack_webhook_exact_payload(http_server):
    url = f"http://127.0.0.1:{http_server.server_address[1]}{WEBHOOK_PATH}"
    http_server.reply = (200, "ok")
    notifier = Notifier(slack=SlackSettings(webhook_url=url), host=HOST, clock=_clock)
    results = notifier.notify_failures("import", RUNS)
    assert results == [SendResult("slack-webhook", True, None)]
    [request] = http_server.requests
    assert request["path"] == WEBHOOK_PATH
    assert json.loads(request["body"]) == {
        "text": f"Run Record Archiver Import Failures: 12 runs failed on {HOST}",
        "blocks": EXPECTED_BLOCKS,
    }


def test_slack_reasons_block_only_when_given(http_server):
    notifier = Notifier(slack=_slack_bot(http_server), host=HOST, clock=_clock)
    notifier.notify_failures("migration", [7, 5], reason={5: "UconDB: HTTP 503\nretry later"})
    payload = json.loads(http_server.requests[0]["body"])
    assert payload["blocks"][0]["text"]["text"] == "⚠️ Run Record Archiver Migration Failures"
    assert payload["blocks"][2]["text"]["text"] == "*Run Numbers:*\n5, 7"
    assert payload["blocks"][3] == {"type": "section", "text": {
        "type": "mrkdwn", "text": "*Reasons:*\n5: UconDB: HTTP 503 retry later"}}


def test_slack_api_error_returns_not_ok(http_server, caplog):
    http_server.reply = (200, '{"ok": false, "error": "invalid_auth"}')
    notifier = Notifier(slack=_slack_bot(http_server), host=HOST, clock=_clock)
    with caplog.at_level(logging.DEBUG):
        [result] = notifier.notify_failures("import", [1])
    assert result.channel == "slack" and not result.ok
    assert "invalid_auth" in result.error
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and lines[0].startswith("Alert not sent via slack: ")
    _assert_no_secret(caplog.text)


def test_webhook_server_error_and_down(http_server, caplog):
    port = http_server.server_address[1]
    http_server.reply = (500, "internal_error")
    with caplog.at_level(logging.DEBUG):
        [bad] = Notifier(slack=SlackSettings(webhook_url=f"http://127.0.0.1:{port}{WEBHOOK_PATH}"),
                         host=HOST, clock=_clock).notify_failures("import", [1])
        [down] = Notifier(slack=SlackSettings(
            webhook_url=f"http://127.0.0.1:{free_port()}{WEBHOOK_PATH}"),
            host=HOST, clock=_clock).notify_failures("import", [1])
    assert not bad.ok and "500" in bad.error
    assert not down.ok and "refused" in down.error.lower()
    assert "Alert not sent via slack-webhook" in caplog.text
    _assert_no_secret(caplog.text + bad.error + down.error)


def test_slack_timeout(silent_server, caplog):
    settings = SlackSettings(channel="#c", bot_token=TOKEN, timeout=0.3,
                             base_url=f"http://127.0.0.1:{silent_server}/api/")
    start = time.monotonic()
    with caplog.at_level(logging.DEBUG):
        [result] = Notifier(slack=settings, host=HOST, clock=_clock).notify_failures("import", [1])
    assert not result.ok
    assert time.monotonic() - start < 5
    _assert_no_secret(caplog.text + result.error)


def test_settings_repr_hides_secrets():
    text = repr(SlackSettings(channel="#c", bot_token=TOKEN, webhook_url="http://x" + WEBHOOK_PATH))
    text += repr(_email(25, smtp_user="u", smtp_password=PASSWORD))
    _assert_no_secret(text)


# -------------------------------------------------------------------------------------- email

def _received(controller):
    [envelope] = controller.handler_.envelopes
    return envelope, message_from_bytes(envelope.original_content, policy=policy.default)


def _body(message):
    return message.get_content().replace("\r\n", "\n")


def test_email_exact_message_no_login(smtp_server):
    notifier = Notifier(email=_email(smtp_server.port), host=HOST, clock=_clock)
    results = notifier.notify_failures("migration", [12, 3, 7])
    assert results == [SendResult("email", True, None)]
    envelope, message = _received(smtp_server)
    assert message["Subject"] == f"Run Record Archiver Migration Errors on {HOST} at {TIME}"
    assert message["From"] == "archiver@example.org"
    assert message["To"] == "ops@example.org, shifter@example.org"
    assert _body(message) == (
        "The following runs failed during the migration stage:\n\n3\n7\n12\n")
    assert envelope.mail_from == "archiver@example.org"
    assert envelope.rcpt_tos == ["ops@example.org", "shifter@example.org"]
    assert smtp_server.auth_.calls == []  # login skipped without credentials


def test_email_login_only_with_user_and_password(smtp_server):
    Notifier(email=_email(smtp_server.port, smtp_user="arch"), host=HOST,
             clock=_clock).notify_failures("import", [1])
    assert smtp_server.auth_.calls == []
    [result] = Notifier(email=_email(smtp_server.port, smtp_user="arch", smtp_password=PASSWORD),
                        host=HOST, clock=_clock).notify_failures("import", [1])
    assert result.ok
    assert [(login, password) for _, login, password in smtp_server.auth_.calls] == \
        [(b"arch", PASSWORD.encode())]
    assert len(smtp_server.handler_.envelopes) == 2


def test_email_bad_login_not_ok_and_no_secret(smtp_server, caplog):
    wrong = "wrong-" + PASSWORD
    with caplog.at_level(logging.DEBUG):
        [result] = Notifier(email=_email(smtp_server.port, smtp_user="arch", smtp_password=wrong),
                            host=HOST, clock=_clock).notify_failures("import", [1])
    assert not result.ok and result.channel == "email"
    assert "SMTPAuthenticationError" in result.error
    assert wrong not in caplog.text and PASSWORD not in caplog.text
    assert smtp_server.handler_.envelopes == []


def test_email_starttls_unsupported_fails_cleanly(smtp_server, caplog):
    with caplog.at_level(logging.WARNING):
        [result] = Notifier(email=_email(smtp_server.port, smtp_use_tls=True,
                                         smtp_user="arch", smtp_password=PASSWORD),
                            host=HOST, clock=_clock).notify_failures("import", [1])
    assert not result.ok and "STARTTLS" in result.error
    assert smtp_server.handler_.envelopes == []
    _assert_no_secret(caplog.text)


@pytest.fixture
def tls_smtp_server(tmp_path):
    """aiosmtpd requiring STARTTLS (and TLS before AUTH), with a throw-away self-signed cert."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler, auth = _MailHandler(), _Authenticator()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), tls_context=context,
                            require_starttls=True, authenticator=auth)
    controller.start()
    controller.handler_, controller.auth_, controller.cert_ = handler, auth, str(cert)
    yield controller
    controller.stop()


def test_email_starttls_and_login(tls_smtp_server):
    settings = _email(tls_smtp_server.port, smtp_use_tls=True, smtp_user="arch",
                      smtp_password=PASSWORD, ca_file=tls_smtp_server.cert_)
    [result] = Notifier(email=settings, host=HOST, clock=_clock).notify_failures("import", [4])
    assert result == SendResult("email", True, None)
    assert [login for _, login, _ in tls_smtp_server.auth_.calls] == [b"arch"]
    _, message = _received(tls_smtp_server)
    assert _body(message) == "The following runs failed during the import stage:\n\n4\n"


def test_email_without_starttls_refused_by_tls_server(tls_smtp_server):
    [result] = Notifier(email=_email(tls_smtp_server.port), host=HOST,
                        clock=_clock).notify_failures("import", [4])
    assert not result.ok and tls_smtp_server.handler_.envelopes == []


def test_email_starttls_untrusted_certificate(tls_smtp_server, caplog):
    settings = _email(tls_smtp_server.port, smtp_use_tls=True, smtp_user="arch",
                      smtp_password=PASSWORD)
    with caplog.at_level(logging.WARNING):
        [result] = Notifier(email=settings, host=HOST, clock=_clock).notify_failures("import", [4])
    assert not result.ok and "CERTIFICATE_VERIFY_FAILED" in result.error
    assert tls_smtp_server.auth_.calls == []
    _assert_no_secret(caplog.text)


def test_email_server_down_and_timeout(silent_server, caplog):
    with caplog.at_level(logging.DEBUG):
        [down] = Notifier(email=_email(free_port(), smtp_user="u", smtp_password=PASSWORD),
                          host=HOST, clock=_clock).notify_failures("import", [1])
        start = time.monotonic()
        [hung] = Notifier(email=_email(silent_server, timeout=0.3, smtp_user="u",
                                       smtp_password=PASSWORD),
                          host=HOST, clock=_clock).notify_failures("import", [1])
        elapsed = time.monotonic() - start
    assert not down.ok and not hung.ok
    assert "ConnectionRefusedError" in down.error
    assert "timed out" in hung.error.lower()
    assert elapsed < 5
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2 and all(w.startswith("Alert not sent via email: ") for w in warnings)
    _assert_no_secret(caplog.text)


# ---------------------------------------------------------------------------- both channels

def test_slack_first_then_email_and_one_failure_does_not_stop_other(smtp_server):
    slack = SlackSettings(channel="#c", bot_token=TOKEN,
                          base_url=f"http://127.0.0.1:{free_port()}/api/")
    notifier = Notifier(slack=slack, email=_email(smtp_server.port), host=HOST, clock=_clock)
    results = notifier.notify_failures("import", [5])
    assert [r.channel for r in results] == ["slack", "email"]
    assert [r.ok for r in results] == [False, True]


def test_disabled_and_empty_send_nothing(http_server):
    notifier = Notifier(slack=_slack_bot(http_server, enabled=False), host=HOST, clock=_clock)
    assert notifier.notify_failures("import", [1]) == []
    notifier = Notifier(slack=_slack_bot(http_server), host=HOST, clock=_clock)
    assert notifier.notify_failures("import", []) == []
    assert http_server.requests == []


def test_check_failure_messages(http_server, smtp_server):
    notifier = Notifier(slack=_slack_bot(http_server), email=_email(smtp_server.port),
                        host=HOST, clock=_clock)
    results = notifier.notify_check_failure("blob_md5_matches", 1234,
                                            "MD5 mismatch: expected ab, got cd")
    assert all(r.ok for r in results) and len(results) == 2
    payload = json.loads(http_server.requests[0]["body"])
    assert payload["text"] == (f"Run Record Archiver Check Failure: blob_md5_matches failed for "
                               f"run 1234 on {HOST} <@U1234ABCD> <@U5678EFGH>")
    assert payload["blocks"][1]["fields"][2:] == [
        {"type": "mrkdwn", "text": "*Check:*\nblob_md5_matches"},
        {"type": "mrkdwn", "text": "*Run:*\n1234"}]
    assert payload["blocks"][2]["text"]["text"] == "*Message:*\nMD5 mismatch: expected ab, got cd"
    _, message = _received(smtp_server)
    assert message["Subject"] == f"Run Record Archiver Check blob_md5_matches Failed on {HOST} at {TIME}"
    assert _body(message) == (
        "The asset check blob_md5_matches failed for run 1234:\n\nMD5 mismatch: expected ab, got cd\n")


def test_batch_summary(http_server, smtp_server):
    notifier = Notifier(slack=_slack_bot(http_server), email=_email(smtp_server.port),
                        host=HOST, clock=_clock)
    results = notifier.notify_batch_summary("migration", [1, 2, 3], [9, 8])
    assert [r.ok for r in results] == [True, True]
    payload = json.loads(http_server.requests[0]["body"])
    assert payload["text"] == (f"Run Record Archiver Migration Batch: 3 succeeded, 2 failed on "
                               f"{HOST} <@U1234ABCD> <@U5678EFGH>")
    assert payload["blocks"][0]["text"]["text"] == "⚠️ Run Record Archiver Migration Batch Summary"
    assert payload["blocks"][2]["text"]["text"] == "*Failed Run Numbers:*\n8, 9"
    _, message = _received(smtp_server)
    assert message["Subject"] == f"Run Record Archiver Migration Batch Summary on {HOST} at {TIME}"
    assert _body(message) == (
        f"Batch summary of the migration stage on {HOST} at {TIME}:\n\n"
        "Succeeded: 3\nFailed: 2\n\nFailed runs:\n8\n9\n")
    notifier.notify_batch_summary("import", [1], [])
    clean = json.loads(http_server.requests[1]["body"])
    assert clean["text"] == f"Run Record Archiver Import Batch: 1 succeeded, 0 failed on {HOST}"
    assert len(clean["blocks"]) == 2
