"""Email and Slack alerts (failed runs, failed checks, batch summaries) with the legacy message
contents (docs/alerts.md, "The alerts and what to do"). A send never raises and never blocks
archiving, nor keeps state from being saved: it returns a
``SendResult`` and logs one line naming the channel and the cause, never a secret.
"""

from __future__ import annotations

import email.policy
import json
import logging
import smtplib
import socket
import ssl
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Callable, Iterable, Mapping, Optional, Sequence
from urllib.parse import urlsplit

from archiver_resources.printable import printable

logger = logging.getLogger(__name__)

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_LISTED_RUNS = 10
MAX_REASON_CHARS = 200
DEFAULT_TIMEOUT = 10.0
SLACK_API_URL = "https://slack.com/api/"


@dataclass(frozen=True)
class EmailSettings:
    """SMTP alert settings (``reporting.email``); the password never appears in ``repr``."""

    recipient_email: str
    sender_email: str
    smtp_host: str
    smtp_port: int = 25
    smtp_use_tls: bool = False
    smtp_user: Optional[str] = None
    smtp_password: Optional[str] = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    enabled: bool = True
    ca_file: Optional[str] = None  # extra CA bundle for STARTTLS (default: system CAs)

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.smtp_password,) if s)


@dataclass(frozen=True)
class SlackSettings:
    """Slack alert settings (``reporting.slack``): a bot token + channel (Web API, ``base_url``
    overridable for tests) or an incoming-webhook URL. Token and URL never appear in ``repr``."""

    channel: str = ""
    bot_token: Optional[str] = field(default=None, repr=False)
    webhook_url: Optional[str] = field(default=None, repr=False)
    mention_users: str = ""  # comma-separated Slack user IDs
    base_url: str = SLACK_API_URL
    timeout: float = DEFAULT_TIMEOUT
    enabled: bool = True

    def secrets(self) -> tuple[str, ...]:
        found = [s for s in (self.bot_token, self.webhook_url) if s]
        if self.webhook_url:
            path = urlsplit(self.webhook_url).path
            if len(path) > 1:
                found.append(path)  # the path of a webhook URL is the secret part
        return tuple(found)

    def mentions(self) -> list[str]:
        return [f"<@{user.strip()}>" for user in self.mention_users.split(",") if user.strip()]


@dataclass(frozen=True)
class SendResult:
    """Outcome of one send: ``channel`` is ``slack``, ``slack-webhook`` or ``email``."""

    channel: str
    ok: bool
    error: Optional[str] = None


@dataclass(frozen=True)
class Alert:
    """One alert, rendered for both channels: Slack text + blocks, email subject + body."""

    slack_text: str
    slack_blocks: list
    email_subject: str
    email_body: str


# ---------------------------------------------------------------------------------------------
# Message contents
# ---------------------------------------------------------------------------------------------

def stage_label(stage: str) -> str:
    """``import`` → ``Import``, ``migration`` → ``Migration`` (any other word: capitalised)."""
    return stage[:1].upper() + stage[1:].lower()


def format_run_numbers(runs: Sequence[int], limit: int = MAX_LISTED_RUNS) -> str:
    """Sorted, ``, ``-joined, at most ``limit`` then ``, ... (<k> more)``, as the
    legacy Slack message listed them."""
    ordered = sorted(runs)
    text = ", ".join(str(r) for r in ordered[:limit])
    if len(ordered) > limit:
        text += f", ... ({len(ordered) - limit} more)"
    return text


def _mrkdwn(label: str, value: object) -> dict:
    return {"type": "mrkdwn", "text": f"*{label}:*\n{value}"}


def _header(text: str) -> dict:
    return {"type": "header", "text": {"type": "plain_text", "text": text}}


def _fields(pairs: Sequence[tuple[str, object]]) -> dict:
    return {"type": "section", "fields": [_mrkdwn(label, value) for label, value in pairs]}


def _section(label: str, value: object) -> dict:
    return {"type": "section", "text": _mrkdwn(label, value)}


def _with_mentions(text: str, mentions: Sequence[str]) -> str:
    return f"{text} {' '.join(mentions)}" if mentions else text


def _short(text: str) -> str:
    one_line = printable(" ".join(str(text).split()))  # control characters of run records escaped
    return one_line if len(one_line) <= MAX_REASON_CHARS else one_line[:MAX_REASON_CHARS - 1] + "…"


def _reason_lines(runs: Sequence[int], reason: Optional[Mapping[int, str]]) -> list[str]:
    if not reason:
        return []
    listed = [r for r in sorted(runs) if r in reason][:MAX_LISTED_RUNS]
    return [f"{r}: {_short(reason[r])}" for r in listed]


def failure_alert(stage: str, runs: Sequence[int], *, host: str, time: str,
                  mentions: Sequence[str] = (), reason: Optional[Mapping[int, str]] = None) -> Alert:
    """The legacy failed-runs message (Slack: header, Host/Time/Stage/Failed Runs fields, the run
    list; email: subject and one run per line, docs/alerts.md). ``reason`` (new) adds a ``Reasons`` block/paragraph
    for up to 10 runs; without it the payload is exactly the legacy one."""
    label = stage_label(stage)
    ordered = sorted(runs)
    blocks = [
        _header(f"⚠️ Run Record Archiver {label} Failures"),
        _fields([("Host", host), ("Time", time), ("Stage", label), ("Failed Runs", len(ordered))]),
        _section("Run Numbers", format_run_numbers(ordered)),
    ]
    body = f"The following runs failed during the {stage.lower()} stage:\n\n"
    body += "".join(f"{r}\n" for r in ordered)
    reasons = _reason_lines(ordered, reason)
    if reasons:
        blocks.append(_section("Reasons", "\n".join(reasons)))
        body += "\nReasons:\n" + "".join(f"{line}\n" for line in reasons)
    return Alert(
        slack_text=_with_mentions(
            f"Run Record Archiver {label} Failures: {len(ordered)} runs failed on {host}", mentions),
        slack_blocks=blocks,
        email_subject=f"Run Record Archiver {label} Errors on {host} at {time}",
        email_body=body,
    )


def check_failure_alert(check_name: str, run: Optional[int], message: str, *, host: str,
                        time: str, mentions: Sequence[str] = ()) -> Alert:
    """A failed asset check (blocking or not), in the style of the legacy failure message."""
    where = f"run {run}" if run is not None else "all runs"
    run_text = str(run) if run is not None else "-"
    blocks = [
        _header("⚠️ Run Record Archiver Check Failure"),
        _fields([("Host", host), ("Time", time), ("Check", check_name), ("Run", run_text)]),
        _section("Message", _short(message)),
    ]
    return Alert(
        slack_text=_with_mentions(
            f"Run Record Archiver Check Failure: {check_name} failed for {where} on {host}", mentions),
        slack_blocks=blocks,
        email_subject=f"Run Record Archiver Check {check_name} Failed on {host} at {time}",
        email_body=f"The asset check {check_name} failed for {where}:\n\n{message}\n",
    )


def batch_summary_alert(stage: str, succeeded: Sequence[int], failed: Sequence[int], *,
                        host: str, time: str, mentions: Sequence[str] = ()) -> Alert:
    """One summary per batch: counts, and the failed runs capped like the legacy list.
    Mentions are added only when something failed."""
    label = stage_label(stage)
    ok, bad = sorted(succeeded), sorted(failed)
    icon = "⚠️" if bad else "✅"
    blocks = [
        _header(f"{icon} Run Record Archiver {label} Batch Summary"),
        _fields([("Host", host), ("Time", time), ("Succeeded", len(ok)), ("Failed", len(bad))]),
    ]
    if bad:
        blocks.append(_section("Failed Run Numbers", format_run_numbers(bad)))
    body = (f"Batch summary of the {stage.lower()} stage on {host} at {time}:\n\n"
            f"Succeeded: {len(ok)}\nFailed: {len(bad)}\n")
    if bad:
        body += "\nFailed runs:\n" + "".join(f"{r}\n" for r in bad)
    text = (f"Run Record Archiver {label} Batch: {len(ok)} succeeded, {len(bad)} failed "
            f"on {host}")
    return Alert(
        slack_text=_with_mentions(text, mentions if bad else ()),
        slack_blocks=blocks,
        email_subject=f"Run Record Archiver {label} Batch Summary on {host} at {time}",
        email_body=body,
    )


# ---------------------------------------------------------------------------------------------
# Sending
# ---------------------------------------------------------------------------------------------

def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***`` (longest first, so a URL goes before its path)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _cause(error: BaseException, secrets: Iterable[str]) -> str:
    detail = " ".join(str(error).split())[:300]
    name = type(error).__name__
    return scrub(f"{name}: {detail}" if detail else name, secrets)


def send_slack(settings: SlackSettings, text: str, blocks: list) -> SendResult:
    """Post through the Web API (bot token) or, without a token, the incoming webhook. Never raises."""
    channel = "slack" if settings.bot_token else "slack-webhook"
    try:
        if settings.bot_token:
            _post_web_api(settings, text, blocks)
        elif settings.webhook_url:
            _post_webhook(settings, text, blocks)
        else:
            return _failed(channel, "neither bot_token nor webhook_url is set")
    except Exception as error:  # noqa: BLE001 - an alert never raises nor blocks archiving
        return _failed(channel, _cause(error, settings.secrets()))
    return SendResult(channel, True)


def _post_web_api(settings: SlackSettings, text: str, blocks: list) -> None:
    from slack_sdk import WebClient  # installed with dagster-slack

    client = WebClient(token=settings.bot_token, base_url=settings.base_url,
                       timeout=settings.timeout, retry_handlers=[],  # one attempt: bounded time
                       logger=logging.getLogger(__name__ + ".slack_sdk"))
    client.chat_postMessage(channel=settings.channel, text=text, blocks=blocks)


def _post_webhook(settings: SlackSettings, text: str, blocks: list) -> None:
    # urllib rather than requests: urllib3's debug log would print the URL path (the secret).
    data = json.dumps({"text": text, "blocks": blocks}).encode("utf-8")
    request = urllib.request.Request(settings.webhook_url, data=data, method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8"})
    with urllib.request.urlopen(request, timeout=settings.timeout) as response:
        response.read()


# Long subjects (host + time) are not folded at 78 columns: Python folds them before the first
# word, which some readers show with a leading space. 998 is the RFC 5322 hard limit.
_EMAIL_POLICY = email.policy.default.clone(max_line_length=998)


def send_email(settings: EmailSettings, subject: str, body: str) -> SendResult:
    """Send over SMTP (STARTTLS if configured, login only with user and password). Never raises."""
    message = EmailMessage(policy=_EMAIL_POLICY)
    message["Subject"] = subject
    message["From"] = settings.sender_email
    message["To"] = settings.recipient_email
    message.set_content(body)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                          timeout=settings.timeout) as smtp:
            if settings.smtp_use_tls:
                smtp.starttls(context=ssl.create_default_context(cafile=settings.ca_file))
            if settings.smtp_user and settings.smtp_password:
                smtp.login(settings.smtp_user, settings.smtp_password)
            smtp.send_message(message)
    except Exception as error:  # noqa: BLE001 - an alert never raises nor blocks archiving
        return _failed("email", _cause(error, settings.secrets()))
    return SendResult("email", True)


def _failed(channel: str, cause: str) -> SendResult:
    logger.warning("Alert not sent via %s: %s", channel, cause)
    return SendResult(channel, False, cause)


class Notifier:
    """Sends alerts to the enabled channels, Slack first then email (legacy order).

    Every ``notify_*`` returns one ``SendResult`` per enabled channel and never raises.
    ``host`` and ``clock`` are injectable for tests (defaults: ``socket.gethostname()``, local now).
    """

    def __init__(self, *, email: Optional[EmailSettings] = None,
                 slack: Optional[SlackSettings] = None, host: Optional[str] = None,
                 clock: Optional[Callable[[], datetime]] = None):
        self.email = email if email is not None and email.enabled else None
        self.slack = slack if slack is not None and slack.enabled else None
        self._host = host
        self._clock = clock or datetime.now

    @property
    def enabled(self) -> bool:
        return self.email is not None or self.slack is not None

    def _context(self) -> dict:
        host = self._host or socket.gethostname()
        mentions = self.slack.mentions() if self.slack else []
        return {"host": host, "time": self._clock().strftime(TIME_FORMAT), "mentions": mentions}

    def send(self, alert: Alert) -> list[SendResult]:
        results = []
        if self.slack is not None:
            results.append(send_slack(self.slack, alert.slack_text, alert.slack_blocks))
        if self.email is not None:
            results.append(send_email(self.email, alert.email_subject, alert.email_body))
        return results

    def notify_failures(self, stage: str, runs: Iterable[int], *,
                        reason: Optional[Mapping[int, str]] = None) -> list[SendResult]:
        """Failed runs of one batch of ``stage`` (``import`` / ``migration``); nothing if no runs."""
        ordered = sorted(set(int(r) for r in runs))
        if not ordered or not self.enabled:
            return []
        return self._safely(lambda: failure_alert(stage, ordered, reason=reason, **self._context()))

    def notify_check_failure(self, check_name: str, run: Optional[int],
                             message: str) -> list[SendResult]:
        """A failed asset check on ``run`` (None for an unpartitioned check)."""
        if not self.enabled:
            return []
        return self._safely(lambda: check_failure_alert(check_name, run, message,
                                                        **self._context()))

    def notify_batch_summary(self, stage: str, succeeded: Iterable[int],
                             failed: Iterable[int]) -> list[SendResult]:
        """Counts of one batch and its failed runs."""
        if not self.enabled:
            return []
        ok, bad = sorted(set(succeeded)), sorted(set(failed))
        return self._safely(lambda: batch_summary_alert(stage, ok, bad, **self._context()))

    def _safely(self, build: Callable[[], Alert]) -> list[SendResult]:
        try:
            return self.send(build())
        except Exception as error:  # noqa: BLE001 - a bad message must not break archiving
            secrets = (self.slack.secrets() if self.slack else ()) + \
                (self.email.secrets() if self.email else ())
            return [_failed("alert", _cause(error, secrets))]


# --- settings from the configuration's ``reporting`` section -----------------------------

def email_settings(config) -> Optional[EmailSettings]:
    """``reporting.email`` as notification settings, or None when disabled."""
    section = config.reporting.email
    if not section.enabled:
        return None
    return EmailSettings(recipient_email=section.recipient_email or "",
                         sender_email=section.sender_email or "",
                         smtp_host=section.smtp_host or "", smtp_port=section.smtp_port,
                         smtp_use_tls=section.smtp_use_tls, smtp_user=section.smtp_user,
                         smtp_password=section.smtp_password)


def slack_settings(config) -> Optional[SlackSettings]:
    """``reporting.slack`` as notification settings, or None when disabled."""
    section = config.reporting.slack
    if not section.enabled:
        return None
    return SlackSettings(channel=section.channel or "", bot_token=section.bot_token,
                         webhook_url=section.webhook_url,
                         mention_users=section.mention_users or "")


def alerts_enabled(config) -> bool:
    """True when at least one alert channel (email, Slack) is enabled."""
    return config.reporting.email.enabled or config.reporting.slack.enabled
