"""Golden-file tests: every ``golden/<converter>/<case>.txt`` must convert to ``<case>.fcl`` byte for byte.

The expected files were written by hand from legacy_archiver.md §5 (the worked examples of §5.4
and §5.5 verbatim); files are compared as raw bytes, so a stray ``\\r`` or a missing final newline
fails the test.
"""

from pathlib import Path

import pytest

from archiver_resources.fhiclize import CONVERTERS, run_history, run_history2

GOLDEN = Path(__file__).parent / "golden"
RUN_HISTORY_RUN = 12345  # run number used by every golden/RunHistory case


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")  # no newline translation


def _cases(kind: str) -> list[str]:
    return sorted(p.stem for p in (GOLDEN / kind).glob("*.txt"))


def _converter_cases() -> list[tuple[str, str]]:
    return [(name, case) for name in CONVERTERS for case in _cases(name)]


def test_every_converter_has_several_golden_cases():
    for name in [*CONVERTERS, "RunHistory", "RunHistory2"]:
        assert len(_cases(name)) >= 3, name


@pytest.mark.parametrize("converter,case", _converter_cases())
def test_converter_golden(converter, case):
    source = _read(GOLDEN / converter / f"{case}.txt")
    expected = _read(GOLDEN / converter / f"{case}.fcl")
    assert CONVERTERS[converter](source) == expected


@pytest.mark.parametrize("case", _cases("RunHistory"))
def test_run_history_golden(case):
    source = _read(GOLDEN / "RunHistory" / f"{case}.txt")
    expected = _read(GOLDEN / "RunHistory" / f"{case}.fcl")
    assert run_history(RUN_HISTORY_RUN, source) == expected


@pytest.mark.parametrize("case", _cases("RunHistory2"))
def test_run_history2_golden(case):
    source = _read(GOLDEN / "RunHistory2" / f"{case}.txt")
    expected_path = GOLDEN / "RunHistory2" / f"{case}.fcl"
    expected = _read(expected_path) if expected_path.exists() else None  # no .fcl: no update
    assert run_history2(source) == expected
