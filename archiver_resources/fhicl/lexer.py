"""The FHiCL token scanner: one compiled master regex matched position by position, plus the
helpers that turn a text position into a ``FhiclSyntaxError`` with line, column and excerpt."""

import re

from archiver_resources.errors import FhiclSyntaxError

_NAME = r"[A-Za-z_][A-Za-z0-9_]*+"
#: a dotted/indexed key such as ``a.b[2].c`` (kept as one literal key, see the package docstring);
#: possessive quantifiers: a name never needs to give characters back, and backtracking into it
#: would cost time on every unquoted word that is not a key
KEY_PATTERN = _NAME + r"(?:\." + _NAME + r"|\[[0-9]++\])*+"
_NUMBER = (r"[+-]?(?:0[xX][0-9A-Fa-f]+|0[bB][01]+|0[oO][0-7]+|infinity"
           r"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
#: characters an unquoted atom (number, bool, nil, unquoted string) may contain
BARE_CHARS = r"A-Za-z0-9_.+\-"
_REF_KIND = r"(?:local|table|sequence|id|db)"

_ATOM_FAST = (r"(?:(?P<i_number>" + _NUMBER + r")|\"(?P<i_dq>(?:[^\"\\\n]|\\.)*)\""
              r"|'(?P<i_sq>[^'\n]*)'"
              r"|(?P<i_ref>@" + _REF_KIND + r"::" + KEY_PATTERN + r"|@erase|@nil)"
              r"|(?P<i_bare>[" + BARE_CHARS + r"]+))"
              r"(?![ \t\f\v]*:)(?=[\s}\],#/]|\Z)[ \t\f\v]*(?P<i_comment>(?:#|//)[^\n]*)?")

# One alternative per token kind, each one outer named group; inner groups close before their
# outer group, so ``match.lastindex`` is always the kind. ``item`` is the fast path for the most
# common line, ``key: atom # comment``: it matches exactly when the ``key`` token followed by one
# atom token would, so both paths give the same trees.
TOKEN = re.compile(
    r"[ \t\f\v\n]*(?:"
    r"(?P<include>#include[ \t]+\"(?P<include_file>[^\"\n]*)\")"
    r"|(?P<comment>(?:#|//)[^\n]*)"
    r"|(?P<item>(?P<i_key>" + KEY_PATTERN + r")[ \t]*(?:(?P<i_prot>@[A-Za-z_]+)[ \t]*)?:(?!:)"
    r"[ \t\f\v]*" + _ATOM_FAST + r")"
    r"|(?P<key>(?P<key_name>" + KEY_PATTERN + r")[ \t]*(?:(?P<key_prot>@[A-Za-z_]+)[ \t]*)?"
    r":(?!:))"
    r"|(?P<dqtok>\"(?P<dq>(?:[^\"\\\n]|\\.)*)\")"
    r"|(?P<sqtok>'(?P<sq>[^'\n]*)')"
    r"|(?P<complex>\([ \t]*(?P<re>" + _NUMBER + r")[ \t]*,[ \t]*(?P<im>" + _NUMBER
    + r")[ \t]*\))"
    r"|(?P<ref>@" + _REF_KIND + r"::" + KEY_PATTERN + r"|@erase(?![" + BARE_CHARS + r"])"
    r"|@nil(?![" + BARE_CHARS + r"]))"
    r"|(?P<number>" + _NUMBER + r")(?![" + BARE_CHARS + r"])"
    r"|(?P<bare>[" + BARE_CHARS + r"]+)"
    r"|(?P<punct>[{}\[\],])"
    r"|(?P<eof>\Z)"
    r")"
)
_G = TOKEN.groupindex
INCLUDE, COMMENT, ITEM, KEY = _G["include"], _G["comment"], _G["item"], _G["key"]
DQSTRING, SQSTRING, COMPLEX, REFERENCE = _G["dqtok"], _G["sqtok"], _G["complex"], _G["ref"]
DQ_CONTENT, SQ_CONTENT = _G["dq"], _G["sq"]
NUMBER, BARE, PUNCT, EOF = _G["number"], _G["bare"], _G["punct"], _G["eof"]
INCLUDE_FILE, KEY_NAME, KEY_PROTECTION = _G["include_file"], _G["key_name"], _G["key_prot"]
COMPLEX_RE, COMPLEX_IM = _G["re"], _G["im"]
#: the groups of an ``item`` token: key, protection, number, dq, sq, ref, bare, comment
ITEM_GROUPS = tuple(_G[n] for n in ("i_key", "i_prot", "i_number", "i_dq", "i_sq", "i_ref",
                                    "i_bare", "i_comment"))

#: after a node ends: the rest of its line is only commas/blanks and maybe one comment
TAIL = re.compile(r"[ \t\f\v,]*((?:#|//)[^\n]*)?(?=\n|\Z)")

NUMBER_RE = re.compile(_NUMBER + r"\Z")
BARE_RE = re.compile(r"[" + BARE_CHARS + r"]+\Z")
KEY_RE = re.compile(KEY_PATTERN + r"\Z")
PROTECTION_RE = re.compile(r"@[A-Za-z_]+\Z")
#: raw contents a quoted string may hold unchanged (CR excluded: input CRs become LFs)
DQ_CONTENT_RE = re.compile(r"(?:[^\"\\\n\r]|\\[^\n\r])*\Z")
SQ_CONTENT_RE = re.compile(r"[^'\n\r]*\Z")
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
