"""Fixtures for the operations tests: the pipeline fixtures (re-exported), and loopback servers
standing in for SMTP (aiosmtpd, with login), Slack's incoming webhook and Carbon (TCP,
tests/support.py)."""

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.pipeline.conftest import archive_env, ucondb_server  # noqa: F401 (re-exported fixtures)
from tests.support import CarbonListener, free_port

SMTP_USER = "archiver"
SMTP_PASSWORD = "smtp-SECRET-pass-4711"
WEBHOOK_PATH = "/services/T0001/B0002/HOOKSECRET0003"


class _MailHandler:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok, handled=ok)


@pytest.fixture
def smtp_server():
    handler = _MailHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                            authenticator=_authenticator, auth_require_tls=False)
    controller.start()
    controller.mail = handler
    try:
        yield controller
    finally:
        controller.stop()


class _HookHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append({"path": self.path, "body": body})
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HookHandler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}{WEBHOOK_PATH}"
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def carbon_listener():
    listener = CarbonListener()
    try:
        yield listener
    finally:
        listener.stop()


def add_sections(env, text: str) -> None:
    """Append YAML sections (reporting, carbon) to the test config.yaml."""
    with open(env.config_path, "a") as handle:
        handle.write(text)


def enable_alerts(env, monkeypatch, *, smtp=None, webhook=None, mentions="U1234ABCD,U5678EFGH"):
    """reporting.email (login with a password from the environment) and/or reporting.slack
    (webhook URL from the environment) pointing at the loopback servers."""
    text = "reporting:\n"
    if smtp is not None:
        monkeypatch.setenv("TEST_SMTP_PASSWORD", SMTP_PASSWORD)
        text += (f"  email:\n    enabled: true\n    recipient_email: shift@example.org\n"
                 f"    sender_email: archiver@example.org\n    smtp_host: 127.0.0.1\n"
                 f"    smtp_port: {smtp.port}\n    smtp_user: {SMTP_USER}\n"
                 f"    smtp_password: \"${{TEST_SMTP_PASSWORD}}\"\n")
    if webhook is not None:
        monkeypatch.setenv("TEST_SLACK_WEBHOOK", webhook.url)
        text += (f"  slack:\n    enabled: true\n    webhook_url: \"${{TEST_SLACK_WEBHOOK}}\"\n"
                 f"    mention_users: \"{mentions}\"\n")
    add_sections(env, text)


def secrets_of(env) -> list:
    """Every secret value the tests put in the environment."""
    return [SMTP_PASSWORD, WEBHOOK_PATH, "HOOKSECRET0003", env.ucondb.password]


def merged_definitions(env, **kw) -> dg.Definitions:
    """The whole code location (archive + operations + state), alert sensors on by default."""
    kw.setdefault("alerts", True)
    return env.definitions(**kw)


@pytest.fixture
def captured_logs():
    """Every log record of every logger during the test, formatted."""
    records = []

    class _Collect(logging.Handler):
        def emit(self, record):
            try:
                records.append(self.format(record))
            except Exception:  # noqa: BLE001
                records.append(str(record.msg))

    handler = _Collect(level=logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
