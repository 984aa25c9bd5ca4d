"""Golden-file tests: every ``golden/<converter>/<case>.txt`` converts to ``<case>.fcl`` byte for
byte.

The expected files were written by hand from the legacy converters' rules (the metadata and boot
worked examples of the legacy documentation verbatim); files are compared as raw bytes, so a stray ``\\r`` or a missing final newline
fails the test. Every expected file is valid FHiCL (the project's reader, and artdaq_database's C++
reader when it is built). The cases in ``REPAIRED`` are those where the legacy rule writes invalid
FHiCL: their expected files hold the converters' repairs, and only they may record repairs, so
every other case is the legacy output unchanged.
"""

from pathlib import Path

import pytest

from archiver_resources.fhiclize import CONVERTERS, run_history, run_history2
from tests.fhiclize.adb_oracle import assert_valid_fhicl

GOLDEN = Path(__file__).parent / "golden"
RUN_HISTORY_RUN = 12345  # run number used by every golden/RunHistory case

REPAIRED = {
    ("metadata", "quoted_tokens"): 1,  # a component written with its own quotes
    ("metadata", "pmt_logfiles_2018"): 1,  # the 2018 key "pmt logfile(s)"
    ("metadata", "commit_buildinfo_own_line"): 1,  # BuildInfo fields on a line of their own
    ("known_boardreaders_list", "quoted_tokens"): 4,  # stray quotes, a quoted label
    ("settings", "odd_lists"): 2,  # an empty and a broken list element
    ("RunHistory2", "raw_values"): 1,  # a stop time holding quotes
}


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")  # no newline translation


def _cases(kind: str) -> list[str]:
    return sorted(p.stem for p in (GOLDEN / kind).glob("*.txt"))


def _converter_cases() -> list[tuple[str, str]]:
    return [(name, case) for name in CONVERTERS for case in _cases(name)]


def _check(kind: str, case: str, output, repairs: list) -> None:
    assert len(repairs) == REPAIRED.get((kind, case), 0), [r.describe() for r in repairs]
    if output:
        assert_valid_fhicl(output, f"{kind}/{case}")


def test_every_converter_has_several_golden_cases():
    for name in [*CONVERTERS, "RunHistory", "RunHistory2"]:
        assert len(_cases(name)) >= 3, name
    for kind, case in REPAIRED:
        assert case in _cases(kind), (kind, case)


@pytest.mark.parametrize("converter,case", _converter_cases())
def test_converter_golden(converter, case):
    source = _read(GOLDEN / converter / f"{case}.txt")
    expected = _read(GOLDEN / converter / f"{case}.fcl")
    repairs: list = []
    output = CONVERTERS[converter](source, repairs=repairs)
    assert output == expected
    _check(converter, case, output, repairs)


@pytest.mark.parametrize("case", _cases("RunHistory"))
def test_run_history_golden(case):
    source = _read(GOLDEN / "RunHistory" / f"{case}.txt")
    expected = _read(GOLDEN / "RunHistory" / f"{case}.fcl")
    repairs: list = []
    assert run_history(RUN_HISTORY_RUN, source, repairs=repairs) == expected
    _check("RunHistory", case, expected, repairs)


@pytest.mark.parametrize("case", _cases("RunHistory2"))
def test_run_history2_golden(case):
    source = _read(GOLDEN / "RunHistory2" / f"{case}.txt")
    expected_path = GOLDEN / "RunHistory2" / f"{case}.fcl"
    expected = _read(expected_path) if expected_path.exists() else None  # no .fcl: no update
    repairs: list = []
    assert run_history2(source, repairs=repairs) == expected
    _check("RunHistory2", case, expected, repairs)
