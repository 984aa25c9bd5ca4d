"""The writer's layout (docs/formats.md §5.4): byte for byte what artdaq_database exports. Every
expected text here was checked against the C++ converter; with ``ARCHIVER_ADB_ORACLE`` set,
``test_every_case_here_matches_the_cpp`` checks them again."""

import pytest

from archiver_resources.fhicl import MultiTable, fhicl_to_record, record_to_fhicl, write_fhicl
from tests.fhicl.oracle import MISSING, ORACLE, compare_with_cpp

CASES = []


def export(text):
    CASES.append(text)
    return record_to_fhicl(fhicl_to_record(text, "t", timestamp="T"))


def test_every_item_has_its_comment_line_and_every_leaf_a_trailing_blank():
    assert export("a: 1\n") == "\na: 1 \n"
    assert export("# c\na: 1 # t\nb: 2\n") == "# c\na: 1 # t\n# t\nb: 2 \n"


def test_quoting_follows_the_metadata_type():
    assert export("a: \"x y\"\nb: 'z'\nc: w\n") == "\na: \"x y\" \n\nb: 'z' \n\nc: w \n"


def test_tables_have_no_indentation_and_no_annotation():
    # no line end after a table's brace: the next item's comment line follows it directly
    assert export("t: { a: 1 u: { b: 2 } } # t\nx: 3\n") == (
        "\nt: {\n\na: 1 # t\n\nu: {\n\nb: 2 # t\n\n}\n}# t\nx: 3 \n")


def test_an_empty_table_and_an_empty_sequence():
    assert export("t: {}\ns: []\n") == "\nt: {\n\n}\ns: [] \n"


def test_sequences_are_inline_and_element_comments_are_dropped():
    assert export("s: [1, # one\n 2 # two\n]\n") == "\ns: [1, 2] # one\n"


def test_sequences_of_tables_and_nested_sequences():
    assert export("s: [{a: 1}, {b: 2}]\n") == "\ns: [{\n\na: 1 \n\n}, {\n\nb: 2 \n\n}] \n"
    assert export("n: [[1, missed], [3, V1720]]\n") == "\nn: [[1, missed] \n, [3, V1720] \n] \n"


def test_the_prolog_is_wrapped_and_comes_first():
    assert export("BEGIN_PROLOG\np: 1\nEND_PROLOG\nm: 2\n") == (
        "BEGIN_PROLOG\n\np: 1 \n\nEND_PROLOG\n\nm: 2 \n")


def test_an_include_stays_in_place_on_a_line_after_one_blank():
    assert export('a: 1\n#include "x.fcl"\nb: 2\n') == (
        '\na: 1 \n \n#include "x.fcl" \n\nb: 2 \n')


def test_protection_follows_the_key():
    assert export("a @protect_ignore: 1\n") == "\na @protect_ignore: 1 \n"


def test_a_sequence_element_of_a_non_string_type_is_quoted_when_it_needs_to_be():
    # artdaq_database quotes every element type but numbers and strings by the untyped rule
    assert export("s: [(1,2), @nil, true]\n") == '\ns: ["(1,2)", @nil, true] \n'


def test_a_repeated_key_is_written_twice_with_the_first_definitions_metadata():
    assert export("a: 1\na: \"x y\"\n") == "\na: 1 \n\na: x y \n"


def test_records_from_other_tools_without_metadata_are_still_written():
    text = write_fhicl({"prolog": {}, "main": {"a": "1", "b": {"c": True}, "d": [1, 2.5]}},
                       {})
    assert text == "\na: 1 \n\nb: {\n\nc: true \n\n}\nd: [1, 2.5] \n"


def test_a_multitable_without_repeated_metadata_uses_each_entrys_data():
    data = {"prolog": {}, "main": MultiTable([("a", "1"), ("a", "2")])}
    meta = {"main": {"type": "table", "comment": "#main",
                     "children": {"a": {"type": "number", "comment": "", "annotation": ""}}}}
    assert write_fhicl(data, meta) == "\na: 1 \n\na: 2 \n"


@pytest.mark.skipif(not ORACLE, reason=MISSING)
def test_every_case_here_matches_the_cpp():
    assert len(CASES) >= 10
    for text in CASES:
        assert compare_with_cpp(text) is None, text


def test_a_repeated_key_of_another_shape_is_written_whole():
    """Deliberate deviation: the C++ writer walks each definition of a repeated top-level key with
    the first definition's children (cutting ``[1, 2]`` to ``[1]``, emptying ``{y: 2}``); the
    archiver writes every definition whole, so nothing of the configuration is lost."""
    exported = record_to_fhicl(fhicl_to_record("b: [0]\nb: [1, 2]\nt: {x: 1}\nt: {y: 2}\n", "r"))
    assert exported == "\nb: [0] \n\nb: [1, 2] \n\nt: {\n\nx: 1 \n\n}\nt: {\n\ny: 2 \n\n}"
