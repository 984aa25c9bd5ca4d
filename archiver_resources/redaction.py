"""Keeping secrets out of text: passwords in URIs, known secret values, and a logging filter that
applies both to every record before it is written anywhere."""

from __future__ import annotations

import logging
import re
from typing import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"

# scheme://userinfo@ — the greedy userinfo stops at the last '@' before the path.
_URI_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)([^\s/?#]*)@")


def redact_uri(uri: str) -> str:
    """``scheme://user:password@host…`` → ``scheme://user:***@host…`` (any scheme, also in text)."""
    def mask(match: re.Match) -> str:
        scheme, userinfo = match.group(1), match.group(2)
        if ":" not in userinfo:
            return match.group(0)
        return f"{scheme}{userinfo.split(':', 1)[0]}:{MASK}@"
    return _URI_USERINFO_RE.sub(mask, uri)


def _forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)}


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret (and its URL-encoded forms) by ``***``; also mask URI passwords."""
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms |= _forms(str(secret))
    for form in sorted(forms, key=len, reverse=True):  # longest first: no partial leftovers
        text = text.replace(form, MASK)
    return redact_uri(text)


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites each record's message (args merged in) and traceback text."""

    def __init__(self, secrets: Iterable[str] = (), name: str = ""):
        super().__init__(name)
        self.secrets = [s for s in secrets if s]

    def add(self, *secrets: str) -> None:
        self.secrets.extend(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: still redact what we have
            message = f"{record.msg} {record.args}"
        record.msg = redact(message, self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True
