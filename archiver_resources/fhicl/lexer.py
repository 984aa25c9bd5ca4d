"""The FHiCL token scanner: one compiled master regex matched position by position, plus the
helpers that turn a text position into a ``FhiclSyntaxError`` with line, column and excerpt."""

import re

from archiver_resources.errors import FhiclSyntaxError

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
#: a dotted/indexed key such as ``a.b[2].c`` (kept as one literal key, see the package docstring)
KEY_PATTERN = _NAME + r"(?:\." + _NAME + r"|\[[0-9]+\])*"
_NUMBER = (r"[+-]?(?:0[xX][0-9A-Fa-f]+|0[bB][01]+|0[oO][0-7]+|infinity"
           r"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
#: characters an unquoted atom (number, bool, nil, unquoted string) may contain
BARE_CHARS = r"A-Za-z0-9_.+\-"
_REF_KIND = r"(?:local|table|sequence|id|db)"

# Token kinds are the indices of the outer capturing group of each alternative; inner groups
# close before their outer group, so ``match.lastindex`` is always the kind.
NEWLINE = 1
INCLUDE = 2          # group 3: the file name
COMMENT = 4
KEY = 5              # group 6: key, group 7: protection marker (or None)
DQSTRING = 8
SQSTRING = 9
COMPLEX = 10         # groups 11 and 12: real and imaginary parts
REFERENCE = 13
NUMBER = 14
BARE = 15
PUNCT = 16
EOF = 17

TOKEN = re.compile(
    r"[ \t\f\v]*(?:"
    r"(\n)"
    r"|(#include[ \t]+\"([^\"\n]*)\")"
    r"|((?:#|//)[^\n]*)"
    r"|((" + KEY_PATTERN + r")[ \t]*(?:(@[A-Za-z_]+)[ \t]*)?:(?!:))"
    r"|\"((?:[^\"\\\n]|\\.)*)\""
    r"|'([^'\n]*)'"
    r"|(\([ \t]*(" + _NUMBER + r")[ \t]*,[ \t]*(" + _NUMBER + r")[ \t]*\))"
    r"|(@" + _REF_KIND + r"::" + KEY_PATTERN + r"|@erase(?![" + BARE_CHARS + r"])"
    r"|@nil(?![" + BARE_CHARS + r"]))"
    r"|(" + _NUMBER + r")(?![" + BARE_CHARS + r"])"
    r"|([" + BARE_CHARS + r"]+)"
    r"|([{}\[\],])"
    r"|(\Z)"
    r")"
)

#: after a node ends: the rest of its line is only commas/blanks and maybe one comment
TAIL = re.compile(r"[ \t\f\v,]*((?:#|//)[^\n]*)?(?=\n|\Z)")

NUMBER_RE = re.compile(_NUMBER + r"\Z")
BARE_RE = re.compile(r"[" + BARE_CHARS + r"]+\Z")
KEY_RE = re.compile(KEY_PATTERN + r"\Z")
DQ_CONTENT_RE = re.compile(r"(?:[^\"\\\n]|\\.)*\Z", re.S)
SQ_CONTENT_RE = re.compile(r"[^'\n]*\Z")
INCLUDE_KEY_RE = re.compile(r"fhicl_pound_include_[0-9]+\Z")


def normalize_newlines(text: str) -> str:
    """CRLF and lone CR become LF; a leading byte-order mark is dropped."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def position(text: str, pos: int) -> tuple[int, int, str]:
    """1-based line and column of ``pos`` in ``text`` and the text of that line."""
    line = text.count("\n", 0, pos) + 1
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    if end < 0:
        end = len(text)
    return line, pos - start + 1, text[start:end]


def syntax_error(text: str, pos: int, reason: str, name: str) -> FhiclSyntaxError:
    """A ``FhiclSyntaxError`` for ``reason`` at text position ``pos``."""
    line, column, excerpt = position(text, pos)
    if len(excerpt) > 100:  # a window around the column, so the message shows the culprit
        left = max(0, column - 60)
        excerpt = ("…" if left else "") + excerpt[left:left + 100]
    return FhiclSyntaxError(reason, name=name, line=line, column=column, excerpt=excerpt)


def describe(text: str, pos: int) -> str:
    """A short, one-line description of what stands at ``pos`` (for error reasons)."""
    if pos >= len(text):
        return "end of file"
    snippet = text[pos:pos + 20].split("\n", 1)[0]
    return repr(snippet) if snippet else "end of line"


def scan_failure(text: str, pos: int, name: str) -> FhiclSyntaxError:
    """The error for a position where no token matches."""
    while pos < len(text) and text[pos] in " \t\f\v":
        pos += 1
    char = text[pos] if pos < len(text) else ""
    if char == '"' or char == "'":
        return syntax_error(text, pos, f"unterminated {char}-quoted string", name)
    if char == "(":
        return syntax_error(text, pos, "malformed complex number, expected (real, imag)", name)
    if char == "@":
        return syntax_error(text, pos, f"unknown or malformed reference {describe(text, pos)}",
                            name)
    if char == ":":
        return syntax_error(text, pos, "':' without a valid key before it", name)
    return syntax_error(text, pos, f"unexpected character {char!r}", name)
