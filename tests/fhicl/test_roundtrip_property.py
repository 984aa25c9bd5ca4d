"""Property-based tests: generated FHiCL documents (random layout, odd characters, comments,
includes, prolog, splices, duplicates) parse to the expected data tree, and parse → write → parse
gives the same data and metadata trees with deterministic, idempotent output."""

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver_resources.fhicl import fhicl_equivalent, parse_fhicl, write_fhicl

IDENT = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,6}\Z").filter(
    lambda s: not s.startswith("fhicl_pound_include_"))
KEYS = st.one_of(st.sampled_from(["a", "b", "key_1", "true", "nil", "BEGIN_PROLOG",
                                  "END_PROLOG"]), IDENT)
DOTTED_KEY = st.builds(lambda a, i, b: f"{a}[{i}].{b}", IDENT, st.integers(0, 12), IDENT)

# characters for quoted strings and comments: anything but line breaks and quotes/backslashes
ODD_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\"'\\")
COMMENT_TEXT = st.text(ODD_CHARS, max_size=12).filter(
    lambda s: not (s.startswith("include") and (len(s) == 7 or s[7] in " \t")))

# separators: whitespace, blank lines, line comments, trailing comments
SEP = st.one_of(
    st.sampled_from([" ", "\n", "  ", "\t", "\n\n  ", " \n"]),
    st.builds(lambda c: " #" + c + "\n", COMMENT_TEXT),
    st.builds(lambda c: "\n  // " + c + "\n", COMMENT_TEXT),
    st.builds(lambda c: "\n#" + c + "\n  ", COMMENT_TEXT),
)
OPT_SEP = st.one_of(st.just(""), SEP)


def _atom(source, raw=None, ):
    return (source, source if raw is None else raw)


def _number_text(draw):
    kind = draw(st.sampled_from(["int", "float", "hex", "exp", "inf"]))
    if kind == "int":
        return str(draw(st.integers(-10**12, 10**12)))
    if kind == "float":
        return repr(draw(st.floats(allow_nan=False, allow_infinity=False)))
    if kind == "hex":
        return draw(st.sampled_from(["0x", "0X"])) + format(draw(st.integers(0, 2**40)), "x")
    if kind == "exp":
        return f"{draw(st.integers(-99, 99))}.{draw(st.integers(0, 99))}e{draw(st.integers(-30, 30))}"
    return draw(st.sampled_from(["infinity", "+infinity", "-infinity"]))


@st.composite
def atoms(draw, in_sequence=False):
    """(source text, expected raw data string)."""
    kind = draw(st.sampled_from(["number", "bool", "nil", "complex", "dq", "sq", "unquoted",
                                 "ref", "erase"] + (["seqsplice"] if in_sequence else [])))
    if kind == "number":
        return _atom(_number_text(draw))
    if kind == "bool":
        return _atom(draw(st.sampled_from(["true", "false"])))
    if kind == "nil":
        return _atom(draw(st.sampled_from(["nil", "@nil"])))
    if kind == "complex":
        re_, im = _number_text(draw), _number_text(draw)
        return (f"({draw(OPT_SEP.filter(lambda s: chr(10) not in s))}{re_} , {im})",
                f"({re_},{im})")
    if kind == "dq":
        pieces = draw(st.lists(st.one_of(st.text(ODD_CHARS | st.just("'"), max_size=6),
                                         st.sampled_from(['\\"', "\\\\", "\\n", "#", "//", ":",
                                                          "{", "]", "@local::x"])),
                               max_size=5))
        content = "".join(pieces)
        return ('"' + content + '"', content)
    if kind == "sq":
        content = draw(st.text(ODD_CHARS | st.sampled_from(['"', "\\"]), max_size=10))
        return ("'" + content + "'", content)
    if kind == "unquoted":
        word = draw(IDENT.filter(lambda s: s not in ("true", "false", "nil", "infinity")))
        return _atom(word)
    if kind == "ref":
        prefix = draw(st.sampled_from(["@local::", "@id::", "@table::"]))
        path = draw(st.one_of(IDENT, DOTTED_KEY))
        return _atom(prefix + path)
    if kind == "seqsplice":
        return _atom("@sequence::" + draw(IDENT))
    return _atom("@erase")


def _set_last_wins(table: dict, key, value) -> None:
    table.pop(key, None)
    table[key] = value


@st.composite
def sequences(draw, depth):
    elements = draw(st.lists(values(depth - 1, in_sequence=True), max_size=5))
    parts = []
    for i, (text, _) in enumerate(elements):
        parts.append(draw(OPT_SEP) + text + draw(OPT_SEP))
        if i < len(elements) - 1:
            parts.append(",")
    trailing = "," if elements and draw(st.booleans()) else ""
    return "[" + "".join(parts) + trailing + draw(OPT_SEP) + "]", [e for _, e in elements]


@st.composite
def tables(draw, depth):
    body, expected = draw(table_bodies(depth - 1))
    return "{" + draw(SEP) + body + draw(SEP) + "}", expected


def values(depth, in_sequence=False):
    if depth <= 0:
        return atoms(in_sequence)
    return st.one_of(atoms(in_sequence), sequences(depth), tables(depth))


@st.composite
def table_bodies(draw, depth):
    """(FHiCL text of table items, expected data dict) with FHiCL last-one-wins semantics."""
    kinds = draw(st.lists(st.sampled_from(["kv", "kv", "kv", "dotted", "splice", "include",
                                           "protected"]), max_size=6))
    parts = []
    expected: dict = {}
    n_includes = 0
    for kind in kinds:
        if kind == "include":
            name = draw(st.text(ODD_CHARS, max_size=10)) + ".fcl"
            parts.append('\n#include "' + name + '"' + draw(st.sampled_from(["", " # why"]))
                         + "\n")
            _set_last_wins(expected, f"fhicl_pound_include_{n_includes}", name)
            n_includes += 1
        elif kind == "splice":
            ref = "@table::" + draw(st.one_of(IDENT, DOTTED_KEY))
            parts.append(ref)
            _set_last_wins(expected, ref, ref)
        else:
            key = draw(DOTTED_KEY if kind == "dotted" else KEYS)
            marker = ""
            if kind == "protected":
                marker = draw(st.sampled_from([" @protect_ignore", "@protect_error "]))
            text, value = draw(values(depth))
            parts.append(key + marker + draw(st.sampled_from(["", " "])) + ":" + draw(OPT_SEP)
                         + text)
            _set_last_wins(expected, key, value)
        parts.append(draw(SEP))
    return "".join(parts), expected


@st.composite
def documents(draw):
    """(FHiCL text, expected document.data)."""
    prolog_text, prolog = draw(st.one_of(st.just((None, {})), table_bodies(2)))
    main_text, main = draw(table_bodies(3))
    text = draw(OPT_SEP)
    if prolog_text is not None:
        text += "BEGIN_PROLOG" + draw(SEP) + prolog_text + draw(SEP) + "END_PROLOG" + draw(SEP)
    text += main_text
    return text, {"prolog": prolog, "main": main}


def _write(parsed):
    return write_fhicl(parsed.data, parsed.metadata)


COMMON = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(COMMON, max_examples=60)
@given(documents())
def test_generated_document_parses_to_expected_data(doc):
    text, expected = doc
    assert parse_fhicl(text, "gen.fcl").data == expected


@COMMON
@given(documents())
def test_parse_write_parse_keeps_data_and_metadata(doc):
    text, _ = doc
    first = parse_fhicl(text, "gen.fcl")
    written = _write(first)
    second = parse_fhicl(written, "gen.fcl")
    assert second.data == first.data
    assert second.metadata == first.metadata
    assert _write(second) == written  # deterministic and idempotent
    assert fhicl_equivalent(text, written)


@settings(COMMON, max_examples=40)
@given(documents(), st.sampled_from(["\r\n", "\r"]))
def test_line_endings_do_not_matter(doc, newline):
    text, _ = doc
    assert parse_fhicl(text.replace("\n", newline), "gen.fcl") == parse_fhicl(text, "gen.fcl")


@settings(max_examples=150, deadline=None)
@given(st.text(string.printable + "äé∑{}[]@:#/\"'", max_size=40))
def test_arbitrary_text_parses_or_raises_typed_error(text):
    from archiver_resources.errors import FhiclSyntaxError
    try:
        parsed = parse_fhicl(text, "junk.fcl")
    except FhiclSyntaxError as error:
        message = str(error)
        assert "\n" not in message
        assert message.startswith(f"junk.fcl:{error.line}:{error.column}: FHiCL syntax error")
        assert error.line >= 1 and error.column >= 1
    else:
        again = parse_fhicl(_write(parsed), "junk.fcl")
        assert again.data == parsed.data and again.metadata == parsed.metadata


JSON_LEAVES = st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
                        st.integers(), st.booleans(), st.none(),
                        st.floats(allow_nan=False, allow_infinity=False))
JSON_TREES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(IDENT, inner, max_size=4)),
    max_leaves=25)


@settings(COMMON, max_examples=60)
@given(st.dictionaries(IDENT, JSON_TREES, max_size=5), st.dictionaries(IDENT, JSON_TREES,
                                                                          max_size=3))
def test_records_without_metadata_write_parsable_idempotent_text(main, prolog):
    """A record from another tool (plain JSON values, no metadata) still exports valid FHiCL."""
    written = write_fhicl({"prolog": prolog, "main": main})
    parsed = parse_fhicl(written, "foreign.fcl")
    assert list(parsed.data["main"]) == list(main)
    assert list(parsed.data["prolog"]) == list(prolog)
    assert _write(parsed) == written
