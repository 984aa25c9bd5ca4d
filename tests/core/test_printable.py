"""Control characters from run records are escaped before they reach a terminal, a log, Dagster
metadata or an alert (archiver_resources.printable and the errors built on it)."""

import logging
import sys

import pytest

from archiver_resources.errors import FhiclSyntaxError, RunRecordError
from archiver_resources.notifications import failure_alert
from archiver_resources.printable import PrintableFilter, printable, printable_lines


@pytest.mark.parametrize("raw,shown", [
    ("\x1b[2K\rRun 5 OK", "\\x1b[2K\\rRun 5 OK"),
    ("a\x00b", "a\\x00b"),
    ("a\nb", "a\\nb"),
    ("del\x7f csi\x9b nel\x85", "del\\x7f csi\\x9b nel\\x85"),
    ("abc\u202edcba", "abc\\u202edcba"),          # right-to-left override
    ("one\u2028two", "one\\u2028two"),           # a line break for str.splitlines
    ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
    ("caf\udce9.fcl", "caf\\udce9.fcl"),         # an undecodable byte of a file name
    ("tag\U000e0041", "tag\\U000e0041"),
], ids=["escape-sequence", "nul", "newline", "del-c1", "bidi", "line-separator", "zero-width",
        "surrogate", "tag-character"])
def test_printable_escapes_every_control_character(raw, shown):
    assert printable(raw) == shown
    assert printable(shown) == shown  # nothing left to escape


def test_printable_keeps_ordinary_text_and_tabs():
    text = "café µs → 日本 ✓ ✗ ⚠ 😀\tcolumn"
    assert printable(text) == text and printable_lines(text) == text


def test_printable_lines_keeps_line_breaks_only():
    assert printable_lines("a\nb\r\nc\x1b") == "a\nb\\r\nc\\x1b"


def test_logging_filter_escapes_message_arguments_and_traceback():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "✗ Run %d failed: %s",
                               (5, "a\x1b[2K\rRun 5 OK\x00"), None)
    try:
        raise ValueError("bad\x1b]0;title\x07")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert PrintableFilter().filter(record)
    assert record.getMessage() == "✗ Run 5 failed: a\\x1b[2K\\rRun 5 OK\\x00"
    assert "bad\\x1b]0;title\\x07" in record.exc_text and "\x1b" not in record.exc_text
    assert "\n" in record.exc_text  # a traceback keeps its lines


def test_errors_are_one_printable_line():
    error = RunRecordError("broken symlink", run=5, file="a\x1b[2K\rRun 5 OK\n.fcl")
    assert str(error) == "run 5, file a\\x1b[2K\\rRun 5 OK\\n.fcl: broken symlink"
    syntax = FhiclSyntaxError("unexpected character", name="esc.fcl", line=1, column=4,
                              excerpt="a: \x1b[1A\x00")
    assert str(syntax).endswith("| a: \\x1b[1A\\x00")
    assert syntax.excerpt == "a: \x1b[1A\x00"  # the attribute keeps what the file holds


def test_alert_reasons_are_escaped():
    alert = failure_alert("import", [5], host="h", time="t",
                          reason={5: "esc.fcl:1:1: \x1b[2KRun 5 OK\x00"})
    assert "\\x1b[2KRun 5 OK\\x00" in alert.email_body
    assert "\x1b" not in alert.email_body and "\x1b" not in str(alert.slack_blocks)
