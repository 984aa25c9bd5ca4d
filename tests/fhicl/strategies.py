"""Hypothesis strategies that write FHiCL text: every construct of fhicl-cpp's grammar (prologs,
tables, sequences, every atom kind, protections, includes, dotted keys, repeated keys), comments
everywhere (``#``, ``//``, trailing, include-looking, quote-holding), odd spacing and line ends,
plus near-misses the C++ refuses (bad escapes, missing separators, trailing commas...).

Used by the differential test against artdaq_database's own converter and by the property tests.
"""

from __future__ import annotations

from hypothesis import strategies as st

NAMES = st.one_of(
    st.sampled_from(["a", "b", "c", "x1", "_u", "key_1", "true", "false", "nil", "infinity",
                     "END_PROLOG_x", "physics", "daq", "fhicl_pound_include_7", "e5", "E", "inf",
                     "module_type", "T0", "my_fhicl_pound_include_x"]),
    st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,5}\Z").filter(
        lambda n: not n.startswith("BEGIN_PROLOG")),
)

# text of comments and strings: printable ASCII with the characters that matter most
_COMMENT_CHARS = st.one_of(
    st.sampled_from(list(" \t#/\"'\\:{}[],.@abc123") + ["//", "\"\"", "''", "\x0b", "\x0c",
                                                         "\x01", "\x7f"]),
    st.characters(min_codepoint=0x20, max_codepoint=0x7e),
)
COMMENT_BODY = st.lists(_COMMENT_CHARS, max_size=10).map("".join)


def comments():
    return st.one_of(
        st.builds(lambda b: "#" + b, COMMENT_BODY),
        st.builds(lambda b: "//" + b, COMMENT_BODY),
        st.builds(lambda b: "# x #include " + b + '"', COMMENT_BODY),
    )


def separators(newline: str = "\n"):
    """Blanks and comments between tokens (always usable where the grammar skips)."""
    comment = comments()
    return st.one_of(
        st.sampled_from([" ", "  ", "\t", newline, newline + newline, " " + newline + "  ",
                         "\v", "\f"]),
        st.builds(lambda c: " " + c + newline, comment),
        st.builds(lambda c: newline + c + newline, comment),
        st.builds(lambda c, d: newline + c + newline + d + newline, comment, comment),
    )


def _opt(strategy):
    return st.one_of(st.just(""), strategy)


NUMBERS = st.one_of(
    st.integers(-10**9, 10**12).map(str),
    st.sampled_from(["0", "007", "1.", ".5", "1e5", "1E-3", "+5", "-0.0", "1.5e+10", "0x1F",
                     "0XaB", "0b101", "0B1", "infinity", "+infinity", "-infinity", "00.100"]),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
#: number-like tokens the C++ treats specially or refuses
ODD_NUMBERS = st.sampled_from(["1e", "0x", "0b", "1.2.3", "--1", "1-2", "5e5e5", ".", "+", "-",
                               "1e+", "0x1g", "12abc", "1_000"])

_SQ_CHARS = st.one_of(st.sampled_from(list("ab \"#/\\\t") + ["//", "\n", "#x"]),
                      st.characters(min_codepoint=0x20, max_codepoint=0x7e).filter(
                          lambda c: c != "'"))
_DQ_CHARS = st.one_of(st.sampled_from(["a", " ", "'", "#", "//", "\\\"", "\\n", "\\t", "\\\\",
                                       "\\'", "\n", "\t", "x"]),
                      st.characters(min_codepoint=0x20, max_codepoint=0x7e).filter(
                          lambda c: c not in "\"\\"))

STRINGS = st.one_of(
    st.lists(_SQ_CHARS, max_size=8).map(lambda p: "'" + "".join(p) + "'"),
    st.lists(_DQ_CHARS, max_size=8).map(lambda p: '"' + "".join(p) + '"'),
    st.sampled_from(['""', "''", '"a\\"b"', '"x//y"', '"mongodb://h:1/db"', "'#'", '"#"']),
)
#: strings the C++ refuses (bad escapes, control characters, glued tokens)
ODD_STRINGS = st.sampled_from(['"\\d"', '"a\\"', "'it''s'", '"a" "b"', "'a'b", '"x"#c',
                               '"tab\x01"', "'\x7f'", '"unterminated', "'open"])

WORDS = st.one_of(
    st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,6}\Z"),
    st.from_regex(r"\A[0-9][A-Za-z0-9_]{0,5}\Z"),
    st.sampled_from(["true", "false", "nil", "@nil", "v1_2", "0cc175b9", "@local::a",
                     "@local::a.b", "@id::x", "@erase", "@sequence::s", "@db::x", ".",
                     "@protect_ignore", "@local::a.b[0]"]),
)
ODD_WORDS = st.sampled_from(["a.", "true.x", "a.b", "file.fcl", "a:b", "!local::a", "a-b", "@table::t",
                             "!id::0123456789abcdef0123456789abcdef", "!id::12", "$x",
                             "!id::0123456789abcdef0123456789abcdef01234567"])

COMPLEX = st.one_of(
    st.builds(lambda a, s1, s2, b: f"({a}{s1},{s2}{b})", NUMBERS, st.sampled_from(["", " "]),
              st.sampled_from(["", " ", "\t"]), NUMBERS),
    st.sampled_from(["(1,2)", "( 1 , 2 )", "(1,2)#c"]),
)
ODD_COMPLEX = st.sampled_from(["(1,)", "(a,b)", "(1 2)", "(1,2", "(1,2)x"])


def atoms(hostile: bool):
    good = st.one_of(NUMBERS, STRINGS, WORDS, COMPLEX)
    if not hostile:
        return good
    return st.one_of(good, good, ODD_NUMBERS, ODD_STRINGS, ODD_WORDS, ODD_COMPLEX)


def _after_value(newline: str, hostile: bool):
    """What follows a value: a blank or line end first (a comment glued to a quoted string is
    refused), then maybe comments."""
    if hostile:
        return separators(newline)
    return st.builds(lambda lead, rest: lead + rest, st.sampled_from([" ", newline, "\t"]),
                     _opt(separators(newline)))


@st.composite
def values(draw, depth: int = 0, newline: str = "\n", hostile: bool = False):
    """A value: an atom, or (up to depth 3) a sequence or table."""
    kinds = ["atom", "atom", "atom"] + (["sequence", "table"] if depth < 3 else [])
    kind = draw(st.sampled_from(kinds))
    sep = separators(newline)
    if kind == "atom":
        return draw(atoms(hostile))
    if kind == "sequence":
        items = draw(st.lists(values(depth + 1, newline, hostile), max_size=4))
        parts = [draw(_opt(sep)) + item + draw(_opt(_after_value(newline, hostile)))
                 for item in items]
        # fhicl-cpp takes a leading comma before a first element
        head = draw(st.sampled_from(["", "", "", "", ","])) if items or hostile else ""
        tail = draw(st.sampled_from(["", ",", ", ,"])) if hostile else ""
        return "[" + head + ",".join(parts) + tail + draw(_opt(sep)) + "]"
    items = draw(st.lists(items_(depth + 1, nested=True, newline=newline, hostile=hostile),
                          max_size=4))
    return "{" + draw(_opt(sep)) + "".join(items) + draw(_opt(sep)) + "}"


def bindings(hostile: bool):
    good = [":", ":", ":", " :", ": ", " @protect_ignore:", "\t@protect_error:"]
    return st.sampled_from(good + (["@protect_ignore:", " @protect_ignore :", "::", ""]
                                   if hostile else []))


@st.composite
def items_(draw, depth: int = 0, nested: bool = False, newline: str = "\n",
           hostile: bool = False):
    key = draw(NAMES)
    if not nested and draw(st.integers(0, 7)) == 0:
        key += draw(st.sampled_from([".b", ".c.d", " . b", ".b .c"] + (["[0]", "[2].x"]
                                                                       if hostile else [])))
    if nested and hostile and draw(st.integers(0, 19)) == 0:
        key += ".b"  # refused: dotted keys only at top level
    value = draw(values(depth, newline, hostile))
    return (draw(_opt(separators(newline))) + key + draw(bindings(hostile))
            + draw(st.sampled_from(["", " ", "  ", newline])) + value
            + draw(_after_value(newline, hostile)))


@st.composite
def documents(draw, hostile: bool = False):
    """A whole FHiCL text: mostly valid; ``hostile`` adds the near-misses the C++ refuses."""
    newline = draw(st.sampled_from(["\n"] * 8 + ["\r\n", "\r"]))
    sep = separators(newline)
    parts = [draw(_opt(sep))]
    if draw(st.integers(0, 3)) == 0:
        parts.append(draw(st.sampled_from(['#include "x.fcl"', '#include "a/b.fcl" # c',
                                           '#include\t"y.fcl"'] + (["#include", "#includex"]
                                                                   if hostile else [])))
                     + newline)
    for _ in range(draw(st.integers(0, 2))):
        parts.append("BEGIN_PROLOG" + draw(sep))
        parts.extend(draw(st.lists(items_(newline=newline, hostile=hostile), max_size=3)))
        parts.append("END_PROLOG" + draw(sep))
    keys = draw(st.lists(items_(newline=newline, hostile=hostile), max_size=6))
    parts.extend(keys)
    if keys and draw(st.integers(0, 3)) == 0:
        parts.append(keys[0])  # a repeated top-level key
    if hostile and draw(st.integers(0, 5)) == 0:
        parts.append(draw(st.sampled_from(["BEGIN_PROLOG\nEND_PROLOG\n", "}", "a: 1 b",
                                           "@table::t\n", "a[1]: 2\n"])))
    text = "".join(parts)
    if draw(st.integers(0, 5)) == 0:
        text = text.rstrip("\n\r")  # no final line end
    return text
