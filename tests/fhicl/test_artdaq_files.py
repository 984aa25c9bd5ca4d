"""Realistic artdaq FHiCL files (tests/fhicl/data, written for this project): an eventbuilder
file as DAQInterface saves it and a boardreader file "as configured" (an ``#include`` before its
prolog, a ``@table::`` splice, references, protection, a complex number). Their records follow the
C++ reader's rules, the refused constructs are archived through the documented extensions, and
the regenerated text reads back to the same records."""

import json
from pathlib import Path

import pytest

from archiver_resources.fhicl import (
    fhicl_equivalent, fhicl_to_record, loads_record, parse_fhicl, record_to_fhicl,
)
from tests.fhicl.oracle import MISSING, ORACLE, compare_with_cpp

DATA = Path(__file__).parent / "data"


def load(name):
    return (DATA / name).read_text(encoding="utf-8")


def test_boardreader_data_tree():
    found = set()
    record = fhicl_to_record(load("boardreader01.fcl"), "boardreader01", timestamp="T",
                             extensions=found)
    assert found == {"include_before_prolog", "table_splice", "complex_whole"}
    data = record["document"]["data"]
    assert list(data["prolog"]) == ["toy_settings", "host_map"]
    assert data["prolog"]["host_map"][2] == {"rank": "2", "host": "evb01.fnal.gov"}
    assert data["main"]["fhicl_pound_include_0_before_prolog"] == "metrics_common.fcl"
    receiver = data["main"]["daq"]["fragment_receiver"]
    assert receiver["generator"] == "ToySimulator"
    assert receiver["fhicl_table_splice_0"] == "@table::toy_settings"
    assert receiver["max_fragment_size_bytes"] == "0x100000"
    assert receiver["request_window_width"] == "2.5e-3"
    assert receiver["destinations"]["d1"]["host_map"] == "@local::host_map"
    assert receiver["channel_offsets"] == ["0", "4", "@sequence::extra_offsets"]
    assert receiver["gain"] == "(1.0,-0.5)"  # kept whole (artdaq_database keeps "(1.0,")
    assert data["main"]["daq.fragment_receiver.board_id"] == "7"
    assert data["main"]["daq.metrics.brFile.level"] == "@erase"


def test_boardreader_metadata_tree():
    record = fhicl_to_record(load("boardreader01.fcl"), "boardreader01", timestamp="T")
    meta = record["document"]["metadata"]
    prolog = meta["prolog"]["children"]
    assert prolog["toy_settings"]["comment"] == ""  # a '//' comment is never a node's comment
    assert prolog["host_map"]["children"]["1"]["children"]["rank"]["annotation"] == \
        "# the eventbuilder"
    assert prolog["host_map"]["children"]["2"]["children"]["host"]["type"] == \
        "string_singlequoted"
    receiver = meta["main"]["children"]["daq"]["children"]["fragment_receiver"]["children"]
    assert receiver["generator"] == {
        "type": "string_unquoted", "annotation": "",
        "comment": "# Parameters defining and configuring the fragment generator to be used"}
    assert receiver["fragment_type"]["annotation"] == \
        "# Make sure downstream modules know about this fragment_type!"
    assert receiver["destinations"]["children"]["d1"]["children"]["host_map"]["type"] == \
        "string_unquoted"
    assert receiver["gain"]["type"] == "complex"
    assert meta["main"]["children"]["daq.fragment_receiver.board_id"]["protection"] == \
        "@protect_ignore"
    assert record["comments"][:2] == [
        {"linenum": 1, "value": '#include "metrics_common.fcl"'},
        {"linenum": 2,
         "value": "# Boardreader configuration for component01, processed by DAQInterface"}]


def test_eventbuilder_example():
    record = fhicl_to_record(load("eventbuilder01.fcl"), "eventbuilder01", timestamp="T")
    builder = record["document"]["data"]["main"]["daq"]["event_builder"]
    assert builder["max_incomplete_events"] == "75"
    assert record["document"]["metadata"]["main"]["children"]["daq"]["children"][
        "event_builder"]["children"]["max_incomplete_events"] == {
        "type": "number", "comment": "", "annotation": "# Same as boardreader sync interval"}
    assert record["document"]["data"]["prolog"] == {}


@pytest.mark.parametrize("name", ["boardreader01.fcl", "eventbuilder01.fcl"])
def test_regenerated_file_reads_back_to_the_same_record(name):
    record = fhicl_to_record(load(name), name, timestamp="T")
    record = loads_record(json.dumps(record))  # as a store keeps it
    text = record_to_fhicl(record)
    assert fhicl_equivalent(load(name), text)
    again = parse_fhicl(text, name)
    assert again.data == record["document"]["data"]
    assert record_to_fhicl(fhicl_to_record(text, name, timestamp="T")) == text


@pytest.mark.skipif(not ORACLE, reason=MISSING)
def test_eventbuilder_matches_the_cpp():
    assert compare_with_cpp(load("eventbuilder01.fcl")) is None
