"""Realistic artdaq boardreader/eventbuilder FHiCL: the record has the trees spec §4.1 describes,
and the regenerated text parses back to the same trees."""

import json
from pathlib import Path

import pytest

from archiver_resources.fhicl import fhicl_to_record, parse_fhicl, record_to_fhicl

DATA = Path(__file__).parent / "data"


def load(name):
    return (DATA / name).read_text(encoding="utf-8")


def test_boardreader_data_tree():
    record = fhicl_to_record(load("boardreader01.fcl"), "boardreader01", timestamp="T")
    data = record["document"]["data"]
    assert list(data["prolog"]) == ["toy_settings", "host_map"]
    assert data["prolog"]["host_map"][2] == {"rank": "2", "host": "evb01.fnal.gov"}
    assert data["main"]["fhicl_pound_include_0"] == "metrics_common.fcl"
    receiver = data["main"]["daq"]["fragment_receiver"]
    assert receiver["generator"] == "ToySimulator"
    assert receiver["@table::toy_settings"] == "@table::toy_settings"
    assert receiver["max_fragment_size_bytes"] == "0x100000"
    assert receiver["request_window_width"] == "2.5e-3"
    assert receiver["destinations"]["d1"]["host_map"] == "@local::host_map"
    assert receiver["channel_offsets"] == ["0", "4", "@sequence::extra_offsets"]
    assert receiver["gain"] == "(1.0,-0.5)"
    assert data["main"]["daq"]["metrics"]["brFile"]["fileName"] == \
        "/tmp/boardreader/br_%UID%_metrics.log"
    assert data["main"]["daq.fragment_receiver.board_id"] == "7"
    assert data["main"]["daq.metrics.brFile.level"] == "@erase"


def test_boardreader_metadata_tree():
    record = fhicl_to_record(load("boardreader01.fcl"), "boardreader01", timestamp="T")
    meta = record["document"]["metadata"]
    prolog = meta["prolog"]["children"]
    assert prolog["toy_settings"]["comment"] == "// shared by all toy boardreaders"
    assert prolog["host_map"]["children"]["1"]["comment"] == ""
    assert prolog["host_map"]["children"]["2"]["children"]["host"]["type"] == \
        "string_singlequoted"
    receiver = meta["main"]["children"]["daq"]["children"]["fragment_receiver"]["children"]
    assert receiver["generator"] == {
        "type": "string_unquoted", "annotation": "",
        "comment": "# Parameters defining and configuring the fragment generator to be used"}
    assert receiver["fragment_type"]["annotation"] == \
        "# Make sure downstream modules know about this fragment_type!"
    assert receiver["@table::toy_settings"]["type"] == "tableid"
    assert receiver["destinations"]["children"]["d1"]["children"]["host_map"]["type"] == "tableid"
    assert receiver["gain"]["type"] == "complex"
    assert meta["main"]["children"]["daq.fragment_receiver.board_id"]["protection"] == \
        "@protect_ignore"
    assert record["comments"][0] == {
        "linenum": 2, "value": "# Boardreader configuration for component01, processed by DAQInterface"}
    assert {"linenum": 4, "value": "// shared by all toy boardreaders"} in record["comments"]


def test_eventbuilder_spec_example():
    record = fhicl_to_record(load("eventbuilder01.fcl"), "eventbuilder01", timestamp="T")
    builder = record["document"]["data"]["main"]["daq"]["event_builder"]
    assert builder["max_incomplete_events"] == "75"
    assert record["document"]["metadata"]["main"]["children"]["daq"]["children"][
        "event_builder"]["children"]["max_incomplete_events"] == {
        "type": "number", "comment": "", "annotation": "# Same as boardreader sync interval"}
    assert record["document"]["data"]["prolog"] == {}


@pytest.mark.parametrize("name", ["boardreader01.fcl", "eventbuilder01.fcl"])
def test_regenerated_file_round_trips(name):
    record = fhicl_to_record(load(name), name, timestamp="T")
    record = json.loads(json.dumps(record))  # as a store would keep it
    text = record_to_fhicl(record)
    again = parse_fhicl(text, name)
    assert again.data == record["document"]["data"]
    assert again.metadata == record["document"]["metadata"]
    assert record_to_fhicl(fhicl_to_record(text, name, timestamp="T")) == text


def test_regenerated_boardreader_layout():
    text = record_to_fhicl(fhicl_to_record(load("boardreader01.fcl"), "br", timestamp="T"))
    lines = text.split("\n")
    assert lines[0] == '#include "metrics_common.fcl"'
    assert lines[1] == "BEGIN_PROLOG"
    assert "END_PROLOG" in lines
    assert "    fragment_type: TOY1 # Make sure downstream modules know about this fragment_type!" \
        in lines
    assert "    @table::toy_settings" in lines
    assert "    channel_offsets: [0, 4, @sequence::extra_offsets]" in lines
    assert "daq.fragment_receiver.board_id @protect_ignore: 7" in lines
    assert '      fileName: "/tmp/boardreader/br_%UID%_metrics.log"' in lines
    assert text.endswith("\n") and not text.endswith("\n\n")
