"""The character-level rules of artdaq_database's FHiCL reader (fhicl-cpp's grammar in
artdaq_database's "snippet mode"): token scanners, fhicl-cpp's canonical-number and
canonical-string checks, the text preparation artdaq_database does before parsing (``#include``
lines → keys, fhicl-cpp's line reader) and the separate comment scan that fills the record's
``comments`` list. Every rule here is written down in docs/formats.md §5.

**Non-ASCII characters.** fhicl-cpp's grammar is ASCII-only: the C++ refuses any byte ≥ 0x80,
even in a comment. This module treats every non-ASCII character exactly as the C++ treats the
letter ``x`` (a printable, alphanumeric character), so the record of a text holding ``é`` is the
C++ record of the same text with ``x`` in its place, with the ``é`` put back. Files that need this
are counted as using the ``non_ascii`` extension (see the parser).
"""

from __future__ import annotations

import re

from archiver_resources.errors import FhiclSyntaxError

# --- character classes (non-ASCII counts as the letter x: alphanumeric, printable) ----------

_NON_ASCII = "\x80-\U0010ffff"
ALNUM = "A-Za-z0-9" + _NON_ASCII
#: ASCII characters that are "graph" (printable, not blank); every non-ASCII character is too
_GRAPH_RE = re.compile("[!-~" + _NON_ASCII + "]")


def is_graph(char: str) -> bool:
    return _GRAPH_RE.match(char) is not None


def munched(char: str) -> bool:
    """fhicl-cpp's ``maximally_munched``: a character that may follow a bare token."""
    return not char or char in "#/,]}" or not is_graph(char)


def munched_number(char: str) -> bool:
    return not char or char in "#/,]})" or not is_graph(char)


def munched_ass(char: str) -> bool:
    return not char or char in "#/,]}.[:" or not is_graph(char)


def free_after(char: str, allowed: str = ",]}") -> bool:
    """``!(graph - char_(allowed))``: what may follow a quoted string, a bool or ``@nil``."""
    return not char or char in allowed or not is_graph(char)


# --- the skipper: blanks and comments between tokens ------------------------------------------

#: fhicl-cpp's skipper: whitespace, ``#…`` and ``//…`` comments (each ends with a newline; the
#: prepared text always ends with one)
SKIP = re.compile(r"(?:[ \t\n\v\f\r]++|#[^\n]*+\n|//[^\n]*+\n)*+")

# --- tokens ------------------------------------------------------------------------------------

#: alphanumeric/underscore run (ass, dss)
WORD = re.compile("[" + ALNUM + "_]*+")
DIGITS = re.compile("[0-9]++")
#: the characters fhicl-cpp's real-number scanner collects
REAL_CHARS = re.compile(r"[0-9.+\-eE]++")
HEX = re.compile("0[xX][0-9a-fA-F]*+")
BIN = re.compile("0[bB][01]*+")
INF = re.compile("[+-]?infinity")
#: snippet mode's catch-all scanner (references like ``@local::a.b`` come through it)
CATCHALL = re.compile("[" + ALNUM + "_:.@]*+")
SQUOTED = re.compile(r"'[^']*+'")
DQUOTED = re.compile(r'"(?:\\"|[^"])*+"')
#: a table key at top level: name, then ``.name`` / ``[digits]`` parts with blanks/comments
#: allowed around the delimiters (handled by the parser; this is the name alone)
KEY_START = re.compile("[A-Za-z_" + _NON_ASCII + "]")

# --- the fast path -----------------------------------------------------------------------------
# One regex for the most common token shapes, used before the exact (slow) scanners: it matches
# only where the grammar gives the same result (ASCII only, no escapes, no control characters,
# and followed by a character that ends the token unambiguously); anything else falls back.

_SKIP_PATTERN = r"(?:[ \t\n\v\f\r]++|#[^\n]*+\n|//[^\n]*+\n)*+"
_END_BOOL = r"(?=[ \t\n,\]}])"      # !(graph - ",]}") without \v/\f (they extend raw values)
_END_NUMBER = r"(?=[ \t\n#,\]})])"  # maximally_munched_number, '/' left to the slow path
_END_WORD = r"(?=[ \t\n#,\]}])"     # maximally_munched(_ass), '.', ':', '[', '/' left out
ATOM_FAST = (  # order matters where first characters overlap: bool before ass, num before dss
    r"(?P<num>(?:0[xX][0-9a-fA-F]++|0[bB][01]++"
    r"|[+-]?+(?:[0-9]++\.?+[0-9]*+|\.[0-9]++)(?:[eE][+-]?+[0-9]++)?+)"
    r"(?![0-9A-Za-z_.+\-]))" + _END_NUMBER
    + r"|(?P<open>[{\[])"  # a table or sequence: parsed by the exact parser from here
    + r'|"(?P<dq>[^"\\\x00-\x08\x0b-\x1f\x7f]*+)"' + _END_BOOL
    + r"|(?P<bool>true|false)" + _END_BOOL
    + r"|(?P<nil>@nil)" + _END_BOOL
    + r"|'(?P<sq>[^'\x00-\x08\x0b-\x1f\x7f]*+)'" + _END_BOOL
    + r"|(?P<dss>[0-9][A-Za-z0-9_]*+)" + _END_WORD
    + r"|(?!infinity[ \t\n,\]}])(?P<ass>[A-Za-z_][A-Za-z0-9_]*+)" + _END_WORD
)
#: ``key: atom`` at an item position (blanks and comments before it)
ITEM_FAST = re.compile(_SKIP_PATTERN + r"(?P<key>[A-Za-z_][A-Za-z0-9_]*+)[ \t]*+:[ \t]*+(?:"
                       + ATOM_FAST + ")")
#: an atom at a value position (blanks and comments before it)
VALUE_FAST = re.compile(_SKIP_PATTERN + "(?:" + ATOM_FAST + ")")
#: the group kinds in ``ATOM_FAST`` order (a quoted string's group holds its content only)
FAST_KINDS = ("num", "open", "dq", "bool", "nil", "sq", "dss", "ass")

# --- fhicl-cpp's canonical number and string checks ---------------------------------------------


def canonical_number_ok(value: str) -> bool:
    """Whether cetlib's ``canonical_number`` accepts ``value`` (the scanned token)."""
    n = len(value)
    if n > 2 and value[0] == "0" and value[1] in "xX":
        rest = value[2:]
        return all(c in "0123456789abcdefABCDEF" for c in rest)
    if n > 2 and value[0] == "0" and value[1] in "bB":
        rest = value[2:]
        return all(c in "01" for c in rest)
    i = 0
    if i < n and value[i] in "+-":
        i += 1
    digits = 0
    while i < n and value[i].isdigit() and value[i].isascii():
        i += 1
        digits += 1
    if i < n and value[i] == ".":
        i += 1
        while i < n and value[i].isdigit() and value[i].isascii():
            i += 1
            digits += 1
    if i < n and value[i] in "eE":
        i += 1
        if i == n:
            return False
        if value[i] in "+-":
            i += 1
            if i == n:
                return False
        while i < n and value[i].isdigit() and value[i].isascii():
            i += 1
    return i == n and digits > 0


def _printable(char: str) -> bool:
    return " " <= char <= "~" or char > "\x7f"


def canonical_string_problem(text: str, quote: str) -> str | None:
    """Why cetlib's ``canonical_string`` refuses the quoted string ``text`` (quotes included),
    or None when it accepts it: unknown backslash escapes in double quotes, or a character that
    is neither printable nor a newline or tab."""
    inner = text[1:-1]
    if quote == '"':
        i, n = 0, len(inner)
        out = []
        while i < n:
            char = inner[i]
            if char == "\\" and i != n - 1:
                i += 1
                nxt = inner[i]
                if nxt not in "\"'\\nt":
                    return (f"unsupported escape sequence '\\{nxt}' in a double-quoted string "
                            "(only \\\" \\' \\\\ \\n \\t are allowed; use single quotes for text "
                            "with backslashes)")
                char = {"n": "\n", "t": "\t"}.get(nxt, nxt)
            out.append(char)
            i += 1
        inner = "".join(out)
    for char in inner:
        if char not in "\n\t" and not _printable(char):
            return f"unprintable character {char!r} in a quoted string"
    return None


# --- text preparation ---------------------------------------------------------------------------

#: artdaq_database replaces ``#include`` + blank + anything up to the next quote character by a
#: key ``fhicl_pound_include_<n>:`` before parsing (anywhere in the text, comments included)
INCLUDE_RE = re.compile("#include[ \t\n\v\f\r][^'\"]*")
INCLUDE_KEY_PREFIX = "fhicl_pound_include_"


def replace_includes(text: str, extensions: set | None = None) -> str:
    """The text fhicl-cpp is given: each ``#include`` directive turned into an include key,
    numbered from 0 in order, exactly as artdaq_database's reader does it (including where its
    search resumes after a replacement: the old match length further on, in the new text).

    When that resume point falls beyond the end of the new text (a directive whose match ran
    to the end of the text) the C++ reads past its string and crashes; here the scan simply
    ends, and ``include_overrun`` is added to ``extensions``."""
    if "#include" not in text:
        return text
    # The C++ edits its string in place and resumes its search at the old match's end, in the
    # edited text. Built here from pieces of the original (one copy, not one per directive):
    # that resume point, in the original's coordinates, is the match end plus the match length
    # minus the key length. An include key holds no '#', so a resume point inside the key just
    # written is the same as its end.
    pieces = []
    base = position = index = 0
    size = len(text)
    search = INCLUDE_RE.search
    while True:
        match = search(text, position)
        if match is None:
            break
        start, end = match.span()
        key = f"{INCLUDE_KEY_PREFIX}{index}:"
        pieces.append(text[base:start])
        pieces.append(key)
        index += 1
        base = end
        resume = end + (end - start) - len(key)
        if resume > size:
            if extensions is not None:
                extensions.add("include_overrun")
            break
        position = max(end, resume)
    pieces.append(text[base:])
    return "".join(pieces)


def reader_lines(text: str) -> str:
    """fhicl-cpp's line reader (cetlib's includer): lines split at ``\\n`` and at every ``\\r``,
    each line followed by one ``\\n`` (so the text ends with a newline unless it is empty)."""
    if "\r" not in text:
        if not text or text.endswith("\n"):
            return text
        return text + "\n"
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out = []
    for line in lines:
        if "\r" in line:
            parts = line.split("\r")
            if parts[-1] == "":
                parts.pop()
            out.extend(parts)
        else:
            out.append(line)
    return "".join(line + "\n" for line in out)


# --- the comment scan (artdaq_database's fhicl_comments_parser_grammar) -----------------------

_BLANKS = re.compile(r"[ \t]*+")
#: everything before the first comment of a stretch, skipping over quoted strings (a quoted
#: string needs at least one character; an empty one ends the skipping)
_PADDED = re.compile(r"""[^"'#/]*+(?:/(?!/)[^"'#/]*+)*+"""
                     r"""(?:(?:"[^"]++"|'[^']++')[^"'#/]*+(?:/(?!/)[^"'#/]*+)*+)*+""")
_TO_COMMENT = re.compile(r"[^#/]*+(?:/(?!/)[^#/]*+)*+")
_COMMENT_TEXT = re.compile(r"[^\n\r]++")
#: one element of the comment list: the stretch before the comment, the comment, its line end
_COMMENT_ELEMENT = re.compile(r"[ \t]*+" + _PADDED.pattern + r"[ \t]*+" + _TO_COMMENT.pattern
                              + r"[ \t]*+([^\n\r]++)([ \t]*+(?:\r\n|\r|\n))?")


def scan_comments(text: str) -> dict[int, str]:
    """``{line: comment}`` as artdaq_database's comment grammar finds them in ``text`` (the
    original text): each stretch up to a ``#`` or ``//`` outside a quoted string is skipped, the
    comment runs to the end of its line, and the scan stops at the first stretch without one.
    Lines are counted like Boost's line_pos_iterator (``\\r\\n``, ``\\n\\r``, ``\\r`` and ``\\n``
    each end one line). Empty when the text has no comment."""
    comments: dict[int, str] = {}
    if "#" not in text and "//" not in text:
        return comments
    pos = 0
    line = 1
    counted = 0  # ``line`` is the line number at text position ``counted``
    element = _COMMENT_ELEMENT.match
    has_cr = "\r" in text
    while True:
        m = element(text, pos)
        if m is None:
            break
        p = m.start(1)
        if has_cr:
            line += _count_breaks(text, counted, p)
        else:
            line += text.count("\n", counted, p)
        counted = p
        comments[line] = m.group(1)
        if m.group(2) is None:  # no line end after it: the list ends
            break
        pos = m.end()
    return comments


def _count_breaks(text: str, start: int, end: int) -> int:
    breaks = 0
    prev = text[start - 1] if start > 0 else ""
    for i in range(start, end):
        char = text[i]
        if char == "\r":
            if prev != "\n":
                breaks += 1
        elif char == "\n":
            if prev != "\r":
                breaks += 1
        prev = char
    return breaks


# --- error helpers --------------------------------------------------------------------------


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
