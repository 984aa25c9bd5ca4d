"""Text that is safe to print: control characters that come from run records (file names, file
content, metadata values) escaped before they reach a terminal, a log file, Dagster metadata or
an alert.

An escape sequence in a file could otherwise repaint the line an operator reads (``\\x1b[2K\\r``
turns "✗ Run 5 failed" into anything), a carriage return or a line separator could forge a log
line, and a NUL byte makes ``grep`` call the log file binary. Every such character is written as
its Python escape (``\\x1b``, ``\\r``, ``\\u202e``) instead, so the text stays readable and says
exactly what the file holds.
"""

from __future__ import annotations

import logging
import re

# C0 controls except TAB (LF separately), DEL and the C1 controls (U+0085 NEL, U+009B CSI);
# the invisible format characters that reorder or hide text (soft hyphen, Arabic letter mark,
# zero-width and bidirectional controls, word joiners, BOM, interlinear annotations, tag
# characters); the line and paragraph separators (str.splitlines breaks lines there); lone
# surrogates (undecodable bytes of a file name).
_CONTROLS = ("\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
             "\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff\U000e0000-\U000e007f")
_UNPRINTABLE_LINE = re.compile(f"[\n{_CONTROLS}]")
_UNPRINTABLE_TEXT = re.compile(f"[{_CONTROLS}]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: object) -> str:
    """``text`` as one printable line: every control character, newlines included, escaped
    (tabs are kept). For file names, excerpts and error messages."""
    text = str(text)
    if _UNPRINTABLE_LINE.search(text) is None:  # the common case: nothing to do
        return text
    return _UNPRINTABLE_LINE.sub(_escape, text)


def printable_lines(text: object) -> str:
    """``text`` with its line breaks kept and every other control character escaped. For
    messages the archiver builds over several lines itself (a failure summary, a traceback)."""
    text = str(text)
    if _UNPRINTABLE_TEXT.search(text) is None:
        return text
    return _UNPRINTABLE_TEXT.sub(_escape, text)


class PrintableFilter(logging.Filter):
    """A logging filter that escapes control characters in each record's message (arguments
    merged in) and traceback, keeping line breaks: the last guard before a terminal or log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: still escape what we have
            message = f"{record.msg} {record.args}"
        record.msg = printable_lines(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = printable_lines(record.exc_text)
        if record.stack_info:
            record.stack_info = printable_lines(record.stack_info)
        return True
