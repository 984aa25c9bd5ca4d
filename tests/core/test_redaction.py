"""Tests of secret redaction in text, URIs and log records."""

import io
import logging

import pytest

from archiver_resources.redaction import RedactingFilter, redact, redact_uri


@pytest.mark.parametrize("uri, expected", [
    ("mongodb://user:pa55@host:27017/db_archive", "mongodb://user:***@host:27017/db_archive"),
    ("https://u:p@ucon.example.com:9443/x/app", "https://u:***@ucon.example.com:9443/x/app"),
    ("postgresql+psycopg://arch:s3cr@t@db/ucon", "postgresql+psycopg://arch:***@db/ucon"),
    ("mongodb://user@host/db", "mongodb://user@host/db"),
    ("filesystemdb:///data/db_archive", "filesystemdb:///data/db_archive"),
    ("see mongodb://a:b@h/x and https://c:d@e/f", "see mongodb://a:***@h/x and https://c:***@e/f"),
    ("https://host/path?q=a@b", "https://host/path?q=a@b"),
])
def test_redact_uri(uri, expected):
    assert redact_uri(uri) == expected


def test_redact_secret_and_url_encoded_forms():
    secret = "p@ss word/+"
    text = f"pw={secret} enc=p%40ss%20word%2F%2B plus=p%40ss+word%2F%2B"
    out = redact(text, [secret, "", None])
    assert secret not in out and "p%40ss" not in out
    assert out == "pw=*** enc=*** plus=***"


def test_redact_longest_first():
    assert redact("abcdef", ["abc", "abcdef"]) == "***"


def test_redacting_filter_rewrites_message_args_and_traceback():
    stream = io.StringIO()
    logger = logging.getLogger("test_redaction_filter")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(["hunter2"]))
    logger.addHandler(handler)
    try:
        logger.warning("login with %s to %s", "hunter2", "mongodb://u:other@h/db")
        try:
            raise RuntimeError("bad password hunter2")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "hunter2" not in out and "other" not in out
    assert "login with *** to mongodb://u:***@h/db" in out
    assert "RuntimeError: bad password ***" in out
