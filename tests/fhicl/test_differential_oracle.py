"""Differential tests: generated FHiCL through the project's codec and through artdaq_database's
own C++ converter must give the same record (compared as ``compare_json_objects`` does) and the
same export, byte for byte — or be refused by both.

Skipped, saying why, where the C++ converter is not built (``ARCHIVER_ADB_ORACLE``). By default
the generated examples are derandomized (the same every run: no flaky CI); a long random run::

    ARCHIVER_ADB_ORACLE=... ARCHIVER_DIFFERENTIAL_EXAMPLES=10000 ARCHIVER_DIFFERENTIAL_RANDOM=1 \\
        .venv/bin/python -m pytest tests/fhicl/test_differential_oracle.py
"""

import os

import pytest
from hypothesis import HealthCheck, given, settings

from archiver_resources.fhiclize.converters import CONVERTERS
from archiver_resources.samples import generate_run_record
from tests.fhicl import strategies
from tests.fhicl.oracle import MISSING, ORACLE, compare_with_cpp

pytestmark = pytest.mark.skipif(not ORACLE, reason=MISSING)

EXAMPLES = int(os.environ.get("ARCHIVER_DIFFERENTIAL_EXAMPLES", "300"))
RANDOM = os.environ.get("ARCHIVER_DIFFERENTIAL_RANDOM") == "1"

_settings = settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM,
                     suppress_health_check=list(HealthCheck), database=None)


@_settings
@given(strategies.documents())
def test_generated_documents_match_the_cpp(text):
    difference = compare_with_cpp(text)
    assert difference is None, f"{difference}\ninput: {text!r}"


@_settings
@given(strategies.documents(hostile=True))
def test_generated_near_misses_match_the_cpp(text):
    """Documents with the constructs the C++ refuses mixed in: both must refuse, or agree."""
    difference = compare_with_cpp(text)
    assert difference is None, f"{difference}\ninput: {text!r}"


@_settings
@given(strategies.values())
def test_generated_values_match_the_cpp(value):
    text = "x: " + value + "\n"
    difference = compare_with_cpp(text)
    assert difference is None, f"{difference}\ninput: {text!r}"


def test_sample_run_records_match_the_cpp(tmp_path):
    """Every process file the project's sample generator writes, and the converter output of
    every run-record text file, gives the C++ record and export."""
    checked = 0
    for seed, profile in enumerate(["small", "typical", "typical"]):
        run_dir = generate_run_record(tmp_path, 1000 + seed, seed=seed, profile=profile)
        for path in sorted(run_dir.iterdir()):
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".txt":
                converter = CONVERTERS.get(path.stem)
                if converter is None:
                    continue
                text = converter(text)
            elif path.suffix != ".fcl":
                continue
            difference = compare_with_cpp(text)
            assert difference is None, f"{path.name}: {difference}"
            checked += 1
    assert checked >= 20
