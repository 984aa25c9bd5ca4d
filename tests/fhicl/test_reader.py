"""The reader's rules, one at a time (docs/formats.md §5): what artdaq_database's C++ reader makes
of each construct. Every input here was checked against the C++ converter; with
``ARCHIVER_ADB_ORACLE`` set, ``test_every_case_here_matches_the_cpp`` checks them again."""

import pytest

from archiver_resources.errors import FhiclSyntaxError
from archiver_resources.fhicl import MultiTable, fhicl_to_record, parse_fhicl
from tests.fhicl.oracle import MISSING, ORACLE, compare_with_cpp

CASES = []  # every input text used below, for the oracle check


def case(text):
    CASES.append(text)
    return text


def main_of(text):
    parsed = parse_fhicl(case(text), "t.fcl")
    return parsed.data["main"], parsed.metadata["main"]["children"]


@pytest.mark.parametrize("raw, typ", [
    ("1", "number"), ("007", "number"), ("-12", "number"), ("+3", "number"), ("2.5", "number"),
    ("1.", "number"), (".5", "number"), ("1e-3", "number"), ("6.02E+23", "number"),
    ("0x1F", "number"), ("0b101", "number"), ("infinity", "number"), ("-infinity", "number"),
    ("true", "bool"), ("false", "bool"), ("@nil", "nil"),
    ("nil", "string_unquoted"), ("TOY1", "string_unquoted"), ("v1_2_3", "string_unquoted"),
    ("0cc175b9", "string_unquoted"), ("@local::a.b", "string_unquoted"),
    ("@id::x", "string_unquoted"), ("@erase", "string_unquoted"), (".", "string_unquoted"),
])
def test_a_leaf_keeps_its_text_as_written(raw, typ):
    data, meta = main_of(f"k: {raw}\n")
    assert data == {"k": raw}
    assert meta["k"] == {"type": typ, "comment": "", "annotation": ""}


def test_quoted_strings_lose_their_quotes_not_their_escapes_and_may_span_lines():
    data, meta = main_of('a: "x\\"y\\\\z"\nb: \'one\ntwo # no comment\'\nc: "l1\nl2"\n')
    assert data == {"a": 'x\\"y\\\\z', "b": "one\ntwo # no comment", "c": "l1\nl2"}
    assert [meta[k]["type"] for k in "abc"] == [
        "string_doublequoted", "string_singlequoted", "string_doublequoted"]


def test_a_complex_number_is_kept_whole_where_artdaq_database_would_cut_it():
    # artdaq_database keeps a complex number up to its first blank: "(1," and "(" here, which
    # loses data and does not parse again; the project keeps (real,imag) (extension
    # complex_whole); without blanks both agree
    parsed = parse_fhicl(case("a: (1, 2)\nb: (1,2)\nc: ( 3,4)\n"), "t.fcl")
    assert parsed.data["main"] == {"a": "(1,2)", "b": "(1,2)", "c": "(3,4)"}
    assert parsed.metadata["main"]["children"]["a"]["type"] == "complex"
    assert "complex_whole" in parsed.extensions
    assert "complex_whole" not in parse_fhicl("b: (1,2)\n", "t.fcl").extensions


def test_a_parameter_set_id_has_exactly_forty_hex_digits():
    """``!id::`` takes a SHA-1 digest in hex (40 digits), as fhicl-cpp's dbid token does."""
    good = "x: !id::0123456789abcdef0123456789abcdef01234567\n"
    record = fhicl_to_record(good, "a.fcl")
    assert record["document"]["metadata"]["main"]["children"]["x"]["type"] == "tableid"
    assert record["document"]["data"]["main"]["x"] == good[3:-1]
    for digits in (32, 39, 41):
        with pytest.raises(FhiclSyntaxError, match="40-digit parameter-set id"):
            parse_fhicl(f"x: !id::{'a' * digits}\n", "a.fcl")


def test_a_word_glued_to_a_comment_is_a_string_not_a_bool():
    data, meta = main_of("t: true#c\nn: 5#c\n")
    assert data == {"t": "true", "n": "5"}
    assert (meta["t"]["type"], meta["n"]["type"]) == ("string_unquoted", "number")
    assert meta["t"]["annotation"] == "#c"


def test_a_vertical_tab_or_form_feed_after_a_token_stays_in_its_value():
    data, _ = main_of("a: 5\v\nb: [x\f, y]\nc: \"s\"\v\n")
    assert data == {"a": "5\v", "b": ["x\f", "y"], "c": "s"}


def test_comments_list_every_comment_with_its_line():
    text = case("# head\na: 1 # trail \t\n\t  // indented\nb: 2\n#include \"x.fcl\"\n")
    record = fhicl_to_record(text, "t", timestamp="T")
    assert record["comments"] == [
        {"linenum": 1, "value": "# head"}, {"linenum": 2, "value": "# trail \t"},
        {"linenum": 3, "value": "// indented"}, {"linenum": 5, "value": '#include "x.fcl"'}]


def test_no_comment_gives_the_placeholder():
    record = fhicl_to_record(case("a: 1\n"), "t", timestamp="T")
    assert record["comments"] == [{"linenum": 0, "value": "No comments"}]


def test_a_node_takes_the_comment_of_the_line_above_even_another_items_annotation():
    _, meta = main_of("# c2\na: 1 # t\nb: 2\n// s\nc: 3\n")
    assert (meta["a"]["comment"], meta["a"]["annotation"]) == ("# c2", "# t")
    assert meta["b"]["comment"] == "# t"
    assert meta["c"]["comment"] == ""  # a comment starting with '/' is never a node's comment


def test_every_node_on_a_line_takes_its_annotation():
    _, meta = main_of("s: [1, {x: 2}, [3]] # all\n")
    node = meta["s"]
    assert node["annotation"] == "# all"
    assert node["children"]["0"]["annotation"] == "# all"
    assert node["children"]["1"]["children"]["x"]["annotation"] == "# all"
    assert "annotation" not in node["children"]["1"]  # tables carry none
    assert node["children"]["2"]["children"]["0"]["annotation"] == "# all"


def test_a_value_below_its_key_takes_comments_by_its_own_line():
    _, meta = main_of("a:\n# c\n5\n")
    assert meta["a"]["comment"] == "# c"


def test_quoted_strings_hide_comment_marks_until_an_empty_string_on_the_same_stretch():
    _, meta = main_of('a: "x//y" # z\nb: "u//v"\n')
    assert meta["a"]["annotation"] == "# z"
    assert meta["b"]["annotation"] == ""
    data, meta = main_of('a: "" b: "mongodb://h/db"\n')
    assert data == {"a": "", "b": "mongodb://h/db"}
    assert meta["b"]["annotation"] == '//h/db"'  # the C++ comment scan sees "//h/db\""


def test_includes_become_numbered_keys_even_inside_strings():
    data, meta = main_of('#include "a.fcl"\nx: "#include y"\n')
    assert data == {"fhicl_pound_include_0": "a.fcl", "x": "fhicl_pound_include_1:"}
    assert meta["fhicl_pound_include_0"] == {
        "type": "string_doublequoted", "comment": "", "annotation": ""}


def test_a_key_defined_twice_at_top_level_is_kept_twice():
    data, meta = main_of("a: 1\nb: 2\na: \"x\"\n")
    assert isinstance(data, MultiTable) and isinstance(meta, MultiTable)
    assert data.items() == [("a", "1"), ("b", "2"), ("a", "x")]
    assert [m["type"] for _, m in meta.items()] == [
        "number", "number", "string_doublequoted"]


def test_a_key_defined_twice_in_a_table_keeps_its_place_and_the_last_value():
    data, meta = main_of("t: { a: 1 b: 2 a: 3 }\n")
    assert list(data["t"].items()) == [("a", "3"), ("b", "2")]


def test_protect_ignore_keeps_the_first_definition_and_protect_error_refuses_another():
    data, meta = main_of("t: { a @protect_ignore: 1 a: 2 }\n")
    assert data["t"] == {"a": "1"}
    assert meta["t"]["children"]["a"]["protection"] == "@protect_ignore"
    with pytest.raises(FhiclSyntaxError, match="protected"):
        parse_fhicl(case("t: { a @protect_error: 1 a: 2 }\n"), "t.fcl")


def test_protection_is_recorded_before_children():
    _, meta = main_of("a @protect_ignore: { b: 1 }\nd @protect_error: 5\n")
    assert list(meta["a"]) == ["type", "comment", "protection", "children"]
    assert list(meta["d"]) == ["type", "comment", "annotation", "protection"]


def test_a_main_definition_removes_the_prolog_one():
    parsed = parse_fhicl(case("BEGIN_PROLOG\na: 1\nb: 2\nEND_PROLOG\na: 5\n"), "t.fcl")
    assert parsed.data == {"prolog": {"b": "2"}, "main": {"a": "5"}}


def test_dotted_keys_stay_literal_and_blanks_around_dots_go():
    data, _ = main_of("a.b: 1\nc . d: 2\n")
    assert data == {"a.b": "1", "c.d": "2"}


def test_a_sequence_may_start_with_a_comma_but_not_end_with_one():
    data, _ = main_of("a: [, 1, 2]\n")
    assert data == {"a": ["1", "2"]}
    with pytest.raises(FhiclSyntaxError):
        parse_fhicl(case("a: [1, 2,]\n"), "t.fcl")


@pytest.mark.parametrize("text", ['a: "\\d"\n', 'a: "x"#c\n', "a: b.c\n", "a: 1.2.3\n",
                                  "t: { a.b: 1 }\n", "x: 1\nBEGIN_PROLOG\nEND_PROLOG\n"])
def test_the_cpp_refuses_these_and_so_does_the_reader(text):
    with pytest.raises(FhiclSyntaxError):
        parse_fhicl(case(text), "t.fcl")


def test_line_ends_cr_lf_and_crlf_count_one_line_each():
    for newline in ("\r\n", "\r"):
        _, meta = main_of(f"a: 1{newline}# c{newline}b: 2{newline}")
        assert meta["b"]["comment"] == "# c"


@pytest.mark.skipif(not ORACLE, reason=MISSING)
def test_every_case_here_matches_the_cpp():
    assert len(CASES) > 20
    for text in CASES:
        assert compare_with_cpp(text) is None, text
