"""What makes converter output valid FHiCL, and the smallest repairs when the legacy rule would
write an invalid line: the checks the converters apply to each key and string they write, the
repaired forms, and the record of each repair. (The converters write valid FHiCL for any input;
the legacy tool failed a run with an invalid line at every attempt, forever.)

"Valid" means what artdaq_database's C++ reader (fhicl-cpp's grammar in snippet mode) accepts:

* a key is a name ``[A-Za-z_][A-Za-z0-9_]*``; at the top level also dotted (``a.b``), but never
  starting with ``BEGIN_PROLOG`` (read as the prolog keyword) and never indexed (``a[0]`` makes
  the C++ abort);
* inside ``"…"`` fhicl-cpp takes ``\\"`` as an escaped quote wherever it sees one, so content
  ending in a backslash swallows its own closing quote; the escapes are ``\\"``, ``\\'``,
  ``\\\\``, ``\\n``, ``\\t``; control characters other than tab, newline and carriage return
  are refused;
* inside ``'…'`` there are no escapes; the content cannot hold ``'`` nor control characters.

Non-ASCII characters are kept in strings and comments (a documented extension of the project's
reader; the C++ refuses them anywhere). Anything the converters write bare (a ``[…]`` value kept
as written, a boot ``port``, ``settings.txt`` list elements) and every converter output as a
whole is checked with the project's FHiCL reader, :func:`archiver_resources.fhicl.parse_fhicl`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ..errors import FhiclSyntaxError
from ..fhicl import parse_fhicl

__all__ = [
    "Repair",
    "describe_string_repair",
    "dquoted_ok",
    "fhicl_name",
    "fhicl_string",
    "is_fhicl_key",
    "is_fhicl_name",
    "comment_line_ok",
    "comment_text",
    "include_free",
    "parses",
    "squoted_ok",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_NOT_NAME_CHARS = re.compile(r"[^A-Za-z0-9_]")
_PROLOG_KEYWORD = "BEGIN_PROLOG"
_INCLUDE_DIRECTIVE = "#include"
_WELL_FORMED_INCLUDE = re.compile(r"#include\s+(\"[^\"\n]*\"|'[^'\n]*')\s*\Z")
# artdaq_database's reader replaces "#include", a blank and everything up to the next quote
# character by an include key wherever it stands, in comments and strings too (in a line, the
# line end counts as the blank); and fhicl-cpp takes a line that starts with "#include" (also
# inside a string spanning lines: it splits lines at every \n and \r) for an include directive.
_INCLUDE_REWRITE = re.compile(r"#include(?=[ \t\n\v\f\r]|\Z)|[\n\r]#include")
_QUOTE_LATER = re.compile(r"[^'\"]*['\"]")
# Content read escape by escape, as fhicl-cpp unescapes it: only \" \' \\ \n \t are known.
_ESCAPES = re.compile(r"(?:\\[\"'\\nt]|[^\\])*\Z")
_BARE_QUOTE = re.compile(r'(?<!\\)"')
# Control characters fhicl-cpp refuses inside a string (it reads a carriage return as a newline).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Content with no quote, backslash or such control character: valid as it is (the common case).
_PLAIN = re.compile(r'[^"\\\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*\Z')


@dataclass(frozen=True)
class Repair:
    """One change to what the legacy rule would have written, at ``line`` (1-based) of the input
    (0: not tied to one line). ``detail`` names the key and the rule, never the value: values of
    run-record files (environment.txt above all) may hold secrets."""

    line: int
    detail: str

    def describe(self) -> str:
        return f"line {self.line}: {self.detail}" if self.line else self.detail


def is_fhicl_name(text: str) -> bool:
    """A FHiCL name, as a key inside a table must be."""
    return _NAME.match(text) is not None and not text.startswith(_PROLOG_KEYWORD)


def is_fhicl_key(text: str) -> bool:
    """A key the C++ reader accepts at the top level of a document: a name or dotted names."""
    return _KEY.match(text) is not None and not text.startswith(_PROLOG_KEYWORD)


def fhicl_name(text: str) -> Optional[str]:
    """``text`` as a FHiCL name: every character a name cannot hold becomes ``_``, and a leading
    ``_`` is added when it would start with a digit or with ``BEGIN_PROLOG``. ``None`` for the
    empty text (nothing to name)."""
    if not text:
        return None
    name = _NOT_NAME_CHARS.sub("_", text)
    if name[0].isdigit() or name.startswith(_PROLOG_KEYWORD):
        name = "_" + name
    return name


def dquoted_ok(content: str) -> bool:
    """Whether ``"`` + ``content`` + ``"`` is a valid FHiCL string, read as fhicl-cpp does: it
    ends the string at the first ``"`` not preceded by a backslash (so a final backslash turns
    the closing quote into an escaped one), then requires every escape to be a known one."""
    if _PLAIN.match(content):
        return _INCLUDE_DIRECTIVE not in content or include_free(content + '"')
    return not (content.endswith("\\") or _CONTROL.search(content) or not include_free(content + '"')
                or _BARE_QUOTE.search(content) or not _ESCAPES.match(content))


def squoted_ok(content: str) -> bool:
    """Whether ``'`` + ``content`` + ``'`` is a valid FHiCL string (no escapes in single quotes)."""
    return ("'" not in content and _CONTROL.search(content) is None
            and include_free(content + "'"))


def include_free(text: str) -> bool:
    """Whether ``text`` (a line, or a string with its closing quote) holds no ``#include`` that
    artdaq_database's reader would rewrite into an include key or that would start a line: text
    the C++ (and the project's reader, its exact port) would change or refuse, which no string
    can hold otherwise."""
    return _INCLUDE_DIRECTIVE not in text or _INCLUDE_REWRITE.search(text) is None


def comment_text(text: str) -> str:
    """``# `` + ``text`` as a comment line that the reader keeps as it is: ``#include`` followed
    by a blank (or ending the line) is written ``#include\\`` so that it is no directive."""
    if _INCLUDE_DIRECTIVE in text:  # a line: no \n or \r in it
        text = _INCLUDE_REWRITE.sub(lambda _: "#include\\", text)
    return f"# {text}"


def fhicl_string(text: str) -> Optional[str]:
    """A FHiCL string whose value is exactly ``text``: double-quoted with ``\\`` and ``"``
    escaped; single-quoted (verbatim) when that cannot be (``text`` ends in a backslash); ``None``
    when neither can hold it (control characters, or a final backslash together with ``'``)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    if dquoted_ok(escaped):
        return f'"{escaped}"'
    if squoted_ok(text):
        return f"'{text}'"
    return None


def describe_string_repair(written: str) -> str:
    """How :func:`fhicl_string` wrote a value (for the warning)."""
    if written.startswith("'"):
        return "written in single quotes"
    return 'written with \\ and " escaped'


def comment_line_ok(line: str) -> bool:
    """Whether a ``#`` line of metadata.txt can be written as it is. It is a comment unless it
    holds ``#include``: a line starting with ``#include`` is an include directive for fhicl-cpp,
    refused unless it names a quoted file; anywhere else, ``#include`` and a blank are rewritten
    into an include key together with everything up to the next quote, which must then stand on
    the same line (else the following lines are swallowed) and leave a line the reader accepts."""
    if _INCLUDE_DIRECTIVE not in line:
        return True
    if line.startswith(_INCLUDE_DIRECTIVE) and _WELL_FORMED_INCLUDE.match(line) is None:
        return False
    rewrites = list(_INCLUDE_REWRITE.finditer(line))
    if any(_QUOTE_LATER.match(line, match.end()) is None for match in rewrites):
        return False
    return parses(line + "\n")


def parses(text: str) -> bool:
    """Whether the project's FHiCL reader accepts ``text``."""
    try:
        parse_fhicl(text, "converter output")
    except FhiclSyntaxError:
        return False
    return True
