"""The conformance runner (``python -m archiver_resources.fhicl.conformance``): it finds the cases
a fixture folder registers the way artdaq_database's CMakeLists do, runs them as its test driver
does, prints one line per case and a total, and fails on a failing case. The real fixtures are
third-party: ``ARCHIVER_ADB_FIXTURES`` may point at artdaq_database's
``test/DataFormats/Fhicl/fcl2dbjson`` (and ``ARCHIVER_ADB_CASE_STUDY`` at ``test/CaseStudy``)."""

import io
import json
import os
from pathlib import Path

import pytest

from archiver_resources.fhicl import fhicl_to_record
from archiver_resources.fhicl.conformance import (
    FAKE_TIME, json_differences, main, registered_cases, run,
)

CMAKE = """SET ( TEST_NAME "Convert_Fhicl2DBJson" )
SET ( TEST_NUMBER "001" )
cet_test(${TEST_NAME}_${TEST_NUMBER}_t HANDBUILT  TEST_EXEC ConvertFhicl_t
  DATAFILES ${CMAKE_CURRENT_SOURCE_DIR}/test${TEST_NUMBER}.fcl
  TEST_ARGS -s test${TEST_NUMBER}.fcl -c test${TEST_NUMBER}.json -t ${TEST_NAME})
SET ( TEST_NAME "RoundConvert_Fhicl2DBJson" )
cet_test(${TEST_NAME}_${TEST_NUMBER}_t HANDBUILT  TEST_EXEC ConvertFhicl_t
  TEST_ARGS -s test${TEST_NUMBER}.fcl -c test${TEST_NUMBER}.fcl -t ${TEST_NAME})
SET ( TEST_NAME "Convert_DBJson2Fhicl" )
cet_test(${TEST_NAME}_${TEST_NUMBER}_t HANDBUILT  TEST_EXEC ConvertFhicl_t
  TEST_ARGS -s test${TEST_NUMBER}.json -c test${TEST_NUMBER}.out -t ${TEST_NAME})
"""


def fixture_folder(tmp_path, fcl, record=None, out=None):
    folder = tmp_path / "fcl2dbjson" / "test001"
    folder.mkdir(parents=True)
    (folder / "CMakeLists.txt").write_text(CMAKE)
    (folder / "test001.fcl").write_text(fcl)
    record = record if record is not None else json.dumps(
        fhicl_to_record(fcl, "notprovided", timestamp=FAKE_TIME))
    (folder / "test001.json").write_text(record)
    (folder / "test001.out").write_text(out if out is not None else fcl)
    return folder.parent


WRITER_OUTPUT = "\na: 1 # one\n"  # what artdaq_database's writer makes of itself


def test_the_registered_cases_are_found_with_their_variables_expanded(tmp_path):
    root = fixture_folder(tmp_path, WRITER_OUTPUT)
    cases = registered_cases(root)
    assert [(c.test, c.source.name, c.compare.name) for c in cases] == [
        ("Convert_Fhicl2DBJson", "test001.fcl", "test001.json"),
        ("RoundConvert_Fhicl2DBJson", "test001.fcl", "test001.fcl"),
        ("Convert_DBJson2Fhicl", "test001.json", "test001.out"),
    ]


def test_passing_cases_print_a_line_each_and_exit_0(tmp_path):
    out = io.StringIO()
    assert run(fixture_folder(tmp_path, WRITER_OUTPUT), out=out) == 0
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["PASS"] * 3
    assert lines[-1] == ("fcl2dbjson: 3/3 passed, 0 documented contradiction(s), 0 failed")


def test_a_wrong_expectation_fails_the_run_and_says_where(tmp_path):
    record = fhicl_to_record(WRITER_OUTPUT, "notprovided", timestamp=FAKE_TIME)
    record["document"]["metadata"]["main"]["children"]["a"]["type"] = "string_unquoted"
    out = io.StringIO()
    root = fixture_folder(tmp_path, WRITER_OUTPUT, record=json.dumps(record),
                          out=WRITER_OUTPUT.replace("1", "2"))
    assert run(root, out=out) == 1
    text = out.getvalue()
    assert "FAIL  Convert_Fhicl2DBJson test001/test001.fcl" in text
    assert "/document/metadata/main/children/a/type: 'number' vs 'string_unquoted'" in text
    assert "FAIL  Convert_DBJson2Fhicl test001/test001.json: text differs at byte 4" in text
    assert text.splitlines()[-1].endswith("2 failed")


def test_a_folder_without_cases_is_an_error(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no registered cases" in capsys.readouterr().out


def test_json_comparison_is_ordered_and_typed():
    assert json_differences('{"a": 1, "b": [1]}', '{"a": 1, "b": [1]}') is None
    assert json_differences('{"a": 1, "b": 2}', '{"b": 2, "a": 1}') is not None
    assert json_differences('{"a": 1}', '{"a": 1.0}') == "/a: int vs float"
    assert json_differences('{"a": "1"}', '{"a": 1}') == "/a: str vs int"


def test_case_study_files_round_trip(tmp_path):
    study = tmp_path / "CaseStudy" / "demo"
    study.mkdir(parents=True)
    (study / "ok.fcl").write_text("a: 1 # c\nt: { b: [1, 2] }\n")
    out = io.StringIO()
    assert run(fixture_folder(tmp_path, WRITER_OUTPUT), case_study=study.parent, out=out) == 0
    assert "case study: 1/1 round-tripped" in out.getvalue()


@pytest.mark.skipif(not os.environ.get("ARCHIVER_ADB_FIXTURES"),
                    reason="set ARCHIVER_ADB_FIXTURES to artdaq_database's "
                           "test/DataFormats/Fhicl/fcl2dbjson (a fetched snapshot) to run them")
def test_artdaq_databases_own_fixtures_all_pass():
    out = io.StringIO()
    study = os.environ.get("ARCHIVER_ADB_CASE_STUDY")
    code = run(Path(os.environ["ARCHIVER_ADB_FIXTURES"]),
               case_study=Path(study) if study else None, out=out)
    assert code == 0, out.getvalue()
    assert "29/29 passed" in out.getvalue() or "failed" not in out.getvalue()
