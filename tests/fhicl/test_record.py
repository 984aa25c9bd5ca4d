"""The record around the trees (origin, timestamp), deep and long texts, memory sharing, data
equivalence, and records that other tools wrote."""

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from archiver_resources.errors import FhiclSyntaxError
from archiver_resources.fhicl import (
    MAX_DEPTH, fhicl_equivalent, fhicl_to_record, loads_record, parse_fhicl, record_to_fhicl,
)


def test_record_shape_and_timestamp():
    moment = datetime(2024, 10, 15, 14, 2, 11, 42_999, tzinfo=timezone(timedelta(hours=-5)))
    record = fhicl_to_record("a: 1", "boot", timestamp=moment)
    assert list(record) == ["document", "comments", "origin", "version", "entities",
                            "configurations"]
    assert record["origin"] == {"format": "fhicl", "name": "boot", "source": "fhicl_to_json",
                                "timestamp": record["origin"]["timestamp"]}
    stamp = record["origin"]["timestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.042[+-]\d{4}", stamp)  # ms truncated
    assert datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z") == moment.replace(microsecond=42000)
    assert record["version"] == "notprovided"
    assert record["entities"] == [] and record["configurations"] == []
    assert fhicl_to_record("a: 1", "boot", timestamp="X")["origin"]["timestamp"] == "X"


def test_deep_nesting_up_to_the_limit_and_a_clear_error_beyond():
    text = "a: " + "{ b: " * MAX_DEPTH + "1" + " }" * MAX_DEPTH
    record = fhicl_to_record(text, "deep", timestamp="T")
    again = json.loads(json.dumps(record))  # a record always fits json's recursion limit
    assert parse_fhicl(record_to_fhicl(again), "deep").data == record["document"]["data"]
    with pytest.raises(FhiclSyntaxError, match="deeper than"):
        parse_fhicl("s: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "deep")


def test_a_long_file():
    text = "".join(f"k{i}: {{ v: {i} s: \"x{i}\" l: [{i}, {i + 1}] }} # c{i}\n"
                   for i in range(20000))
    parsed = parse_fhicl(text, "long")
    data, meta = parsed.data["main"], parsed.metadata["main"]["children"]
    assert len(data) == 20000 and data["k19999"]["l"] == ["19999", "20000"]
    assert meta["k5"]["children"]["l"]["annotation"] == "# c5"
    assert meta["k6"]["comment"] == "# c5"


def test_equal_leaf_metadata_is_one_object_and_encodes_like_separate_dicts():
    """Memory: a leaf's metadata dict is shared with every leaf of the same type, comment and
    annotation (and repeated keys and short atoms are one string), without changing the JSON."""
    text = ("t: [{a: 1 b: true}, {a: 1 b: true},\n {a: 2 b: true} # note\n]\n"
            "u @protect_ignore: 1\n")
    parsed = parse_fhicl(text, "t.fcl")
    seq = parsed.metadata["main"]["children"]["t"]["children"]
    first, second, third = (seq[i]["children"] for i in ("0", "1", "2"))
    assert first["a"] is second["a"]  # number, no comment, no annotation
    assert third["b"]["annotation"] == "# note" and first["b"] is not third["b"]
    assert parsed.data["main"]["t"][0]["a"] is parsed.data["main"]["t"][1]["a"]
    assert parsed.metadata["main"]["children"]["u"] == {
        "type": "number", "comment": "", "annotation": "", "protection": "@protect_ignore"}
    separate = json.loads(json.dumps(parsed.metadata))
    assert json.dumps(separate) == json.dumps(parsed.metadata) and separate == parsed.metadata


def test_fhicl_equivalent_ignores_layout_and_comments_but_not_values_or_repeats():
    assert fhicl_equivalent("a: {b: 1 c: [1,2]}", "# x\na: {\n  b: 1 # y\n  c: [1, 2]\n}\n")
    assert not fhicl_equivalent("a: 1", "a: 2")
    assert not fhicl_equivalent("a: 1\na: 2\n", "a: 2\n")


def test_the_hashes_entity_text_parses():
    # "<entity>:<md5>" lines; a digest may start with a digit
    text = ("boardreader01:0cc175b9c0f1b6a831c399e269772661\n"
            "boot:d41d8cd98f00b204e9800998ecf8427e\n"
            "configuration:900150983cd24fb0d6963f7d28e17f72")
    parsed = parse_fhicl(text, "hashes")
    assert parsed.data["main"]["boot"] == "d41d8cd98f00b204e9800998ecf8427e"
    assert {m["type"] for m in parsed.metadata["main"]["children"].values()} == {
        "string_unquoted"}


def test_a_record_with_repeated_keys_survives_json():
    record = fhicl_to_record("a: 1\nb: 2\na: 3\n", "t", timestamp="T")
    text = json.dumps(record)
    assert text.count('"a": "') == 2
    again = loads_record(text)
    assert again == record
    assert record_to_fhicl(again) == record_to_fhicl(record) == "\na: 1 \n\nb: 2 \n\na: 3 \n"


def test_records_with_numbers_bools_and_no_metadata_from_other_tools():
    record = {"document": {"data": {"prolog": {}, "main": {
        "n": 12, "f": 2.5, "big": 1.5e12, "b": False, "s": "two words", "t": {"l": ["1", "x y"]},
        "none": None}}}}
    text = record_to_fhicl(record)
    assert text == ('\nn: 12 \n\nf: 2.5 \n\nbig: 1.5e12 \n\nb: false \n\ns: "two words" \n\n'
                    't: {\n\nl: [1, "x y"] \n\n}\nnone: nil \n')
    assert parse_fhicl(text, "t").data["main"]["t"] == {"l": ["1", "x y"]}
