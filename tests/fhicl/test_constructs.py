"""Hand-written tests of the FHiCL codec, one construct at a time, checked against spec §4.1."""

from datetime import datetime, timedelta, timezone

import pytest

from archiver_resources.fhicl import (
    fhicl_equivalent, fhicl_to_record, parse_fhicl, record_to_fhicl,
)


def main_of(text):
    parsed = parse_fhicl(text, "t.fcl")
    return parsed.data["main"], parsed.metadata["main"]["children"]


def roundtrip(text):
    """parse → write → parse must give the same trees; returns the regenerated text."""
    first = parse_fhicl(text, "t.fcl")
    written = record_to_fhicl({"document": {"data": first.data, "metadata": first.metadata}})
    second = parse_fhicl(written, "t.fcl")
    assert second.data == first.data
    assert second.metadata == first.metadata
    return written


@pytest.mark.parametrize("raw, typ", [
    ("1", "number"), ("-12", "number"), ("+3", "number"), ("2.5", "number"),
    ("1e-3", "number"), ("6.02E+23", "number"), (".5", "number"), ("0xff", "number"),
    ("0XDEADbeef", "number"), ("0b101", "number"), ("infinity", "number"),
    ("-infinity", "number"), ("true", "bool"), ("false", "bool"), ("nil", "nil"),
    ("@nil", "nil"), ("TOY1", "string_unquoted"), ("v1_2_3", "string_unquoted"),
    ("@local::a.b[2].c", "tableid"), ("@id::x", "tableid"), ("@erase", "tableid"),
])
def test_atom_keeps_raw_text_and_type(raw, typ):
    data, meta = main_of(f"k: {raw}\n")
    assert data == {"k": raw}
    assert meta["k"] == {"type": typ, "comment": "", "annotation": ""}
    assert roundtrip(f"k: {raw}\n") == f"k: {raw}\n"


def test_complex_is_normalised():
    data, meta = main_of("c: ( 1.5 , -2 )")
    assert data == {"c": "(1.5,-2)"}
    assert meta["c"]["type"] == "complex"
    roundtrip("c: ( 1.5 , -2 )")


def test_quoted_strings_lose_quotes_and_type_remembers():
    data, meta = main_of('host: "evb01"\nsq: \'it # is\'\nesc: "a\\"b\\\\c"\nuni: "Grüße ∑"')
    assert data == {"host": "evb01", "sq": "it # is", "esc": 'a\\"b\\\\c', "uni": "Grüße ∑"}
    assert meta["host"]["type"] == "string_doublequoted"
    assert meta["sq"]["type"] == "string_singlequoted"
    written = roundtrip('host: "evb01"\nsq: \'it # is\'\nesc: "a\\"b\\\\c"\nuni: "Grüße ∑"')
    assert 'esc: "a\\"b\\\\c"' in written


def test_spec_example_annotation():
    text = "event_builder: {\n  max_incomplete_events: 75 # Same as boardreader sync interval\n}\n"
    data, meta = main_of(text)
    assert data == {"event_builder": {"max_incomplete_events": "75"}}
    assert meta["event_builder"]["children"]["max_incomplete_events"] == {
        "type": "number", "comment": "", "annotation": "# Same as boardreader sync interval"}
    assert "type" in meta["event_builder"] and "annotation" not in meta["event_builder"]
    assert roundtrip(text) == text


def test_tables_and_nested_sequences():
    text = "a: { b: { c: [1, [2, 3], { d: [] }] } e: {} }"
    data, meta = main_of(text)
    assert data == {"a": {"b": {"c": ["1", ["2", "3"], {"d": []}]}, "e": {}}}
    seq = meta["a"]["children"]["b"]["children"]["c"]
    assert seq["type"] == "sequence"
    assert set(seq["children"]) == {"0", "1", "2"}
    assert seq["children"]["1"]["children"]["1"]["type"] == "number"
    assert seq["children"]["2"]["type"] == "table"
    roundtrip(text)


def test_top_level_metadata_shape():
    parsed = parse_fhicl("a: 1", "t.fcl")
    assert parsed.metadata["prolog"] == {"type": "table", "comment": "#prolog", "children": {}}
    assert parsed.metadata["main"]["comment"] == "#main"
    assert parsed.metadata["main"]["type"] == "table"


def test_prolog_and_main():
    text = "BEGIN_PROLOG\nx: 1\nEND_PROLOG\nBEGIN_PROLOG y: 2 END_PROLOG\nz: @local::x\n"
    parsed = parse_fhicl(text, "t.fcl")
    assert parsed.data == {"prolog": {"x": "1", "y": "2"}, "main": {"z": "@local::x"}}
    written = roundtrip(text)
    assert written == "BEGIN_PROLOG\nx: 1\ny: 2\nEND_PROLOG\n\nz: @local::x\n"


def test_includes_become_numbered_keys_and_come_back():
    text = ('#include "a.fcl"\n#include "b.fcl"\nBEGIN_PROLOG\n#include "c.fcl"\np: 1\n'
            'END_PROLOG\nm: { #include "in_table_is_comment.fcl"\n}\n#include "d.fcl"\n')
    parsed = parse_fhicl(text, "t.fcl")
    assert parsed.data["main"] == {"fhicl_pound_include_0": "a.fcl",
                                   "fhicl_pound_include_1": "b.fcl", "m": {},
                                   "fhicl_pound_include_2": "d.fcl"}
    assert parsed.data["prolog"] == {"fhicl_pound_include_0": "c.fcl", "p": "1"}
    assert parsed.metadata["main"]["children"]["fhicl_pound_include_0"]["type"] == \
        "string_doublequoted"
    written = roundtrip(text)
    assert written.startswith('#include "a.fcl"\n#include "b.fcl"\nBEGIN_PROLOG\n'
                              '#include "c.fcl"\np: 1\nEND_PROLOG\n')
    assert written.endswith('#include "d.fcl"\n')


def test_include_in_nested_table_at_line_start():
    data, _ = main_of('t: {\n  #include "x.fcl"\n  a: 1\n}\n')
    assert data == {"t": {"fhicl_pound_include_0": "x.fcl", "a": "1"}}


def test_comments_list_and_attachment():
    text = "# first\n\n// second\na: 1 // trailing\n  # indented\nb: [1, 2] # seq\nc: 3\n"
    parsed = parse_fhicl(text, "t.fcl")
    assert parsed.comments == [{"linenum": 1, "value": "# first"},
                               {"linenum": 3, "value": "// second"},
                               {"linenum": 5, "value": "# indented"}]
    meta = parsed.metadata["main"]["children"]
    assert meta["a"]["comment"] == "// second"
    assert meta["a"]["annotation"] == "// trailing"
    assert meta["b"]["comment"] == "# indented"
    assert meta["b"]["annotation"] == "# seq"
    assert meta["b"]["children"]["1"]["annotation"] == ""  # ']' follows, not the comment
    assert meta["c"] == {"type": "number", "comment": "", "annotation": ""}
    written = roundtrip(text)
    assert written == "// second\na: 1 // trailing\n# indented\nb: [1, 2] # seq\nc: 3\n"


def test_no_comments_gives_empty_list():
    assert fhicl_to_record("a: 1", "t")["comments"] == []


def test_multiline_sequence_elements_keep_annotations():
    text = "s: [\n  1, # one\n  # about two\n  2\n] # end\n"
    _, meta = main_of(text)
    children = meta["s"]["children"]
    assert children["0"]["annotation"] == "# one"
    assert children["1"]["comment"] == "# about two"
    assert meta["s"]["annotation"] == "# end"
    assert roundtrip(text) == text


def test_dotted_and_indexed_keys_are_literal():
    data, _ = main_of("a: { b: [1, 2, { c: 0 }] }\na.b[2].c: 5\n")
    assert data["a.b[2].c"] == "5"
    roundtrip("a.b[2].c: 5")


def test_table_and_sequence_splices():
    text = "t: { @table::base x: 1 }\ns: [0, @sequence::more, 9]\n"
    data, meta = main_of(text)
    assert data["t"] == {"@table::base": "@table::base", "x": "1"}
    assert meta["t"]["children"]["@table::base"]["type"] == "tableid"
    assert data["s"] == ["0", "@sequence::more", "9"]
    assert roundtrip(text) == "t: {\n  @table::base\n  x: 1\n}\ns: [0, @sequence::more, 9]\n"


@pytest.mark.parametrize("marker", ["@protect_ignore", "@protect_error"])
def test_protection_markers(marker):
    text = f"a {marker}: 1\nt {marker}: {{ b: 2 }}\n"
    data, meta = main_of(text)
    assert data == {"a": "1", "t": {"b": "2"}}
    assert meta["a"]["protection"] == marker
    assert meta["t"]["protection"] == marker
    assert f"a {marker}: 1" in roundtrip(text)


def test_erase():
    data, meta = main_of("a: 1\na: @erase\n")
    assert data == {"a": "@erase"}
    roundtrip("a: @erase")


def test_duplicate_keys_last_wins_and_moves_to_end():
    data, _ = main_of("a: 1 b: 2 a: { x: 3 }")
    assert list(data.items()) == [("b", "2"), ("a", {"x": "3"})]
    roundtrip("a: 1 b: 2 a: { x: 3 }")


def test_empty_and_comment_only_files():
    for text in ("", "\n\n", "# only\n// comments\n"):
        record = fhicl_to_record(text, "e.fcl")
        assert record["document"]["data"] == {"prolog": {}, "main": {}}
        assert record_to_fhicl(record) == ""
    assert len(fhicl_to_record("# only\n// comments\n", "e")["comments"]) == 2


def test_crlf_input_equals_lf_input():
    lf = "a: 1 # x\n# c\nb: [1,\n 2]\n"
    crlf = lf.replace("\n", "\r\n")
    assert parse_fhicl(crlf, "t") == parse_fhicl(lf, "t")


def test_keyword_looking_keys_and_key_value_without_blank():
    data, _ = main_of("true: 1\nBEGIN_PROLOG: x\nk:v")
    assert data == {"true": "1", "BEGIN_PROLOG": "x", "k": "v"}


def test_deep_nesting_is_iterative():
    depth = 150
    text = "a: " + "{ b: " * depth + "1" + " }" * depth
    written = roundtrip(text)
    assert written.count("{") == depth
    assert written.split("\n")[depth] == "  " * depth + "b: 1"
    seq = "s: " + "[" * 190 + "1" + "]" * 190
    lines = roundtrip(seq).split("\n")
    assert lines[0] == "s: [" and lines[1] == "  ["
    assert lines[189] == "  " * 189 + "[1]"  # the innermost sequence is written inline
    assert lines[190] == "  " * 188 + "]" and lines[-2:] == ["]", ""]


def test_record_shape_and_timestamp():
    moment = datetime(2024, 10, 15, 14, 2, 11, tzinfo=timezone(timedelta(hours=-5)))
    record = fhicl_to_record("a: 1", "boot", timestamp=moment)
    assert record["origin"]["format"] == "fhicl"
    assert record["origin"]["name"] == "boot"
    assert record["origin"]["source"] == "fhicl_to_json"
    stamp = record["origin"]["timestamp"]
    assert stamp.endswith(".000" + moment.astimezone().strftime("%z"))
    assert datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.000%z") == moment
    assert record["version"] == "notprovided"
    assert record["entities"] == [] and record["configurations"] == []
    assert fhicl_to_record("a: 1", "boot", timestamp="X")["origin"]["timestamp"] == "X"


def test_writer_is_deterministic():
    text = "b: 2\na: { z: 1 y: [1, 2] }\n"
    record = fhicl_to_record(text, "t")
    assert record_to_fhicl(record) == record_to_fhicl(fhicl_to_record(text, "t"))


def test_fhicl_equivalent_ignores_layout_and_comments():
    assert fhicl_equivalent("a: {b: 1 c: [1,2]}", "# x\na: {\n  b: 1 # y\n  c: [1, 2]\n}\n")
    assert not fhicl_equivalent("a: 1", "a: 2")


def test_record_without_metadata_is_written_with_inferred_quoting():
    record = {"document": {"data": {"main": {
        "n": "12", "b": "true", "s": "two words", "h": "0x1f", "t": {"l": ["1", "x y"]},
        "native": 3, "flag": False, "none": None}}}}
    text = record_to_fhicl(record)
    assert text == ('n: 12\nb: true\ns: "two words"\nh: 0x1f\nt: {\n  l: [1, "x y"]\n}\n'
                    'native: 3\nflag: false\nnone: nil\n')
    assert parse_fhicl(text, "t").data["main"]["t"] == {"l": ["1", "x y"]}


def test_values_their_type_cannot_hold_are_quoted_safely():
    meta = {"main": {"type": "table", "comment": "#main", "children": {
        "a": {"type": "string_unquoted", "comment": "", "annotation": ""},
        "b": {"type": "string_doublequoted", "comment": "no hash", "annotation": "no hash"},
        "c": {"type": "string_singlequoted", "comment": "", "annotation": ""}}}}
    data = {"main": {"a": "has space", "b": 'say "hi"\\', "c": "it's"}}
    text = record_to_fhicl({"document": {"data": data, "metadata": meta}})
    parsed = parse_fhicl(text, "t")
    assert parsed.data["main"] == {"a": "has space", "b": 'say \\"hi\\"\\\\', "c": "it's"}
    assert parsed.metadata["main"]["children"]["b"]["comment"] == "# no hash"


def test_hashes_entity_text_parses():
    # the hashes entity of legacy §6.3: "<entity>:<md5>" lines, digests may start with a digit
    text = ("boardreader01:0cc175b9c0f1b6a831c399e269772661\n"
            "boot:d41d8cd98f00b204e9800998ecf8427e\n"
            "configuration:900150983cd24fb0d6963f7d28e17f72")
    data, meta = main_of(text)
    assert data == {"boardreader01": "0cc175b9c0f1b6a831c399e269772661",
                    "boot": "d41d8cd98f00b204e9800998ecf8427e",
                    "configuration": "900150983cd24fb0d6963f7d28e17f72"}
    assert {m["type"] for m in meta.values()} == {"string_unquoted"}
    roundtrip(text)


def test_include_after_main_items_stays_in_place():
    text = 'a: 1\n#include "late.fcl"\nBEGIN_PROLOG\np: 1\nEND_PROLOG\n'
    written = roundtrip(text)
    assert written == 'BEGIN_PROLOG\np: 1\nEND_PROLOG\n\na: 1\n#include "late.fcl"\n'


def test_top_level_table_splice_and_literal_include_key():
    text = '@table::defaults\nfhicl_pound_include_7: "x.fcl"\n'
    data, _ = main_of(text)
    assert data == {"@table::defaults": "@table::defaults", "fhicl_pound_include_0": "x.fcl"}
    assert roundtrip(text) == '@table::defaults\n#include "x.fcl"\n'


def test_record_at_max_depth_survives_json():
    import json
    from archiver_resources.fhicl import MAX_DEPTH
    text = "x: " + "{a:" * (MAX_DEPTH - 1) + "[1]" + "}" * (MAX_DEPTH - 1)
    record = fhicl_to_record(text, "deep", timestamp="T")
    again = json.loads(json.dumps(record))
    assert again == record
    assert parse_fhicl(record_to_fhicl(again), "deep").data == record["document"]["data"]


def test_writer_refuses_keys_that_are_no_fhicl_names():
    from archiver_resources.fhicl import FhiclRecordError
    with pytest.raises(FhiclRecordError) as caught:
        record_to_fhicl({"document": {"data": {"main": {"two words": "1"}}},
                         "origin": {"name": "boot"}})
    assert "boot" in str(caught.value) and "'two words'" in str(caught.value)


def test_default_timestamp_format():
    import re
    stamp = fhicl_to_record("", "e")["origin"]["timestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000[+-]\d{4}", stamp)


def test_long_file():
    text = "".join(f"k{i}: {{ v: {i} s: \"x{i}\" l: [{i}, {i + 1}] }} # c{i}\n"
                   for i in range(20000))
    data, meta = main_of(text)
    assert len(data) == 20000 and data["k19999"]["l"] == ["19999", "20000"]
    assert meta["k5"]["children"]["l"]["annotation"] == ""
    assert meta["k5"]["children"]["s"]["annotation"] == ""


def test_equal_leaf_metadata_is_one_object_and_encodes_like_separate_dicts():
    """Memory: a leaf's metadata dict is shared with every leaf of the same type, comment and
    annotation (and repeated keys and short atoms are one string), without changing the JSON."""
    import json

    text = ("t: [{a: 1 b: true}, {a: 1 b: true # note\n}, {a: 2 b: false}]\n"
            "u @protect_ignore: 1\n")
    parsed = parse_fhicl(text, "t.fcl")
    seq = parsed.metadata["main"]["children"]["t"]["children"]
    first, second, third = (seq[i]["children"] for i in ("0", "1", "2"))
    assert first["a"] is second["a"] is third["a"]  # number, no comment, no annotation
    assert first["b"] is not second["b"] and second["b"]["annotation"] == "# note"
    assert parsed.data["main"]["t"][0]["a"] is parsed.data["main"]["t"][1]["a"]
    tables = parsed.data["main"]["t"]
    assert [next(iter(t)) for t in tables][0] is [next(iter(t)) for t in tables][2]
    # protection never goes into a shared dict
    assert parsed.metadata["main"]["children"]["u"] == {
        "type": "number", "comment": "", "annotation": "", "protection": "@protect_ignore"}
    assert first["a"] == {"type": "number", "comment": "", "annotation": ""}
    separate = json.loads(json.dumps(parsed.metadata))
    assert json.dumps(separate) == json.dumps(parsed.metadata) and separate == parsed.metadata
