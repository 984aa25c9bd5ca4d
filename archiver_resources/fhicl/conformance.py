"""Conformance runner: the project's FHiCL codec against artdaq_database's own converter tests.

artdaq_database tests its FHiCL↔JSON converter with the fixtures in
``test/DataFormats/Fhicl/fcl2dbjson`` (each ``testNNN/CMakeLists.txt`` registers cases for the
driver ``ConvertFhicl_t.cc``). This module runs every registered case the way that driver does,
with the project's codec in place of the C++:

* ``Convert_Fhicl2DBJson``: FHiCL → record (file name ``notprovided``, the C++ tests' fixed clock
  ``2017-07-18T12:48:10.123-0500``), compared with the expected JSON as
  ``compare_json_objects`` does: objects in order, types exact;
* ``Convert_DBJson2Fhicl``: record → FHiCL, compared byte for byte;
* ``RoundConvert_Fhicl2DBJson``: FHiCL → record → FHiCL, byte for byte with the input;
* ``RoundConvert_DBJson2Fhicl``: record → FHiCL → record, compared as JSON.

With ``--case-study DIR`` (artdaq_database's ``test/CaseStudy``) every ``.fcl`` below it is also
round-tripped: FHiCL → record → FHiCL → record gives the same ``document.data`` and
``document.metadata``, and exporting again gives the same text. With ``--oracle PATH`` (a build of
artdaq_database's own converter, see docs/formats.md §5.6) each case-study file is also compared
with the C++: same record, same export.

The fixture files are third-party: fetch artdaq_database into a scratch folder and point this
runner at it; never copy them into the repository. Usage::

    python -m archiver_resources.fhicl.conformance SNAPSHOT/test/DataFormats/Fhicl/fcl2dbjson \\
        [--case-study SNAPSHOT/test/CaseStudy] [--oracle /path/to/oracle] [-v]

Prints one line per case and a total; exits 1 when a case fails that is not a documented
contradiction (``KNOWN_CONTRADICTIONS``), 2 when the folder holds no registered case.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, NamedTuple

from archiver_resources.errors import ArchiverError
from archiver_resources.fhicl.record import fhicl_to_record, record_to_fhicl

#: artdaq_database's fake clock in its tests (``useFakeTime(true)``)
FAKE_TIME = "2017-07-18T12:48:10.123-0500"
FILE_NAME = "notprovided"

#: Cases that cannot pass because artdaq_database's fixtures contradict each other or its own
#: source at commit fb6aab8; each is explained in docs/formats.md §5.6 with the evidence.
#: ``(test name, source file)`` → reason.
KNOWN_CONTRADICTIONS: dict[tuple[str, str], str] = {}

#: Case-study files artdaq_database's own converter refuses (checked with it at fb6aab8): the
#: project's reader must refuse them too. Relative path → the C++ diagnostic in short.
CPP_REFUSES: dict[str, str] = {
    "Dune35t/seeddata/schema.fcl": 'a double-quoted regex with "\\d" (not representable as a '
                                   "canonical string)",
}


class Case(NamedTuple):
    test: str
    source: Path
    compare: Path

    def label(self, root: Path) -> str:
        return f"{self.test} {self.source.relative_to(root)}"


# --------------------------------------------------------------------------------------------
# Fixture discovery
# --------------------------------------------------------------------------------------------

_SET = re.compile(r'SET\s*\(\s*(TEST_NAME|TEST_NUMBER)\s+"([^"]*)"\s*\)', re.IGNORECASE)
_ARGS = re.compile(r"TEST_ARGS\s+-s\s+([^\s)]+)\s+-c\s+([^\s)]+)\s+-t\s+([^\s)]+)")


def registered_cases(root: Path) -> list[Case]:
    """Every case the fixture folder's CMakeLists register, in folder order."""
    cases = []
    for cmake in sorted(root.glob("*/CMakeLists.txt")):
        text = cmake.read_text(encoding="utf-8", errors="replace")
        variables: dict[str, str] = {}
        events = [(m.start(), "set", m) for m in _SET.finditer(text)]
        events += [(m.start(), "test", m) for m in re.finditer(r"cet_test\s*\(", text,
                                                               re.IGNORECASE)]
        for start, kind, match in sorted(events, key=lambda e: e[0]):
            if kind == "set":
                variables[match.group(1).upper()] = match.group(2)
                continue
            end = text.find(")", text.find("TEST_ARGS", start))
            args = _ARGS.search(text[start:end + 1])
            if args is None:
                continue

            def expand(value: str) -> str:
                return re.sub(r"\$\{(\w+)\}", lambda m: variables.get(m.group(1).upper(), ""),
                              value)

            cases.append(Case(expand(args.group(3)), cmake.parent / expand(args.group(1)),
                              cmake.parent / expand(args.group(2))))
    return cases


# --------------------------------------------------------------------------------------------
# The four tests of ConvertFhicl_t.cc
# --------------------------------------------------------------------------------------------

def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="surrogateescape")


def _to_json(fcl: str) -> str:
    return json.dumps(fhicl_to_record(fcl, FILE_NAME, timestamp=FAKE_TIME), ensure_ascii=False)


def _to_fcl(json_text: str) -> str:
    from archiver_resources.fhicl.jsonio import loads_record
    return record_to_fhicl(loads_record(json_text))


def json_differences(a: str, b: str) -> str | None:
    """None when the two JSON texts are equal as artdaq_database's ``compare_json_objects`` sees
    them (object members in order, value types exact), else the first difference."""
    pa = json.loads(a, object_pairs_hook=lambda pairs: ("{}", pairs), strict=False)
    pb = json.loads(b, object_pairs_hook=lambda pairs: ("{}", pairs), strict=False)
    return _first_difference(pa, pb, "")


def _first_difference(a: Any, b: Any, where: str) -> str | None:
    if type(a) is not type(b):
        return f"{where or '/'}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, tuple):  # an object: ("{}", pairs)
        pa, pb = a[1], b[1]
        for i, ((ka, va), (kb, vb)) in enumerate(zip(pa, pb)):
            if ka != kb:
                return f"{where}/: member {i} is {ka!r} vs {kb!r}"
            found = _first_difference(va, vb, f"{where}/{ka}")
            if found:
                return found
        if len(pa) != len(pb):
            extra = pa[len(pb):] or pb[len(pa):]
            return f"{where}/: {len(pa)} vs {len(pb)} members (first extra {extra[0][0]!r})"
        return None
    if isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{where}/{i}")
            if found:
                return found
        if len(a) != len(b):
            return f"{where}: {len(a)} vs {len(b)} elements"
        return None
    if a != b:
        return f"{where}: {a!r} vs {b!r}"
    return None


def _text_difference(ours: str, expected: str) -> str | None:
    if ours == expected:
        return None
    i = next((k for k, (x, y) in enumerate(zip(ours, expected)) if x != y),
             min(len(ours), len(expected)))
    line = expected.count("\n", 0, i) + 1
    return (f"text differs at byte {i} (line {line}): ours {ours[max(0, i - 20):i + 20]!r}, "
            f"expected {expected[max(0, i - 20):i + 20]!r}; sizes {len(ours)} vs {len(expected)}")


def run_case(case: Case) -> str | None:
    """None when the case passes, else why it fails."""
    source, compare = _read(case.source), _read(case.compare)
    if case.test == "Convert_Fhicl2DBJson":
        return json_differences(_to_json(source), compare)
    if case.test == "Convert_DBJson2Fhicl":
        return _text_difference(_to_fcl(source), compare)
    if case.test == "RoundConvert_Fhicl2DBJson":
        return _text_difference(_to_fcl(_to_json(source)), compare)
    if case.test == "RoundConvert_DBJson2Fhicl":
        return json_differences(_to_json(_to_fcl(source)), compare)
    return f"unknown test name {case.test!r}"


# --------------------------------------------------------------------------------------------
# Case-study round trips (and the C++ oracle)
# --------------------------------------------------------------------------------------------

def case_study_difference(path: Path, oracle: str | None) -> str | None:
    text = _read(path)
    record = fhicl_to_record(text, FILE_NAME, timestamp=FAKE_TIME)
    exported = record_to_fhicl(record)
    again = fhicl_to_record(exported, FILE_NAME, timestamp=FAKE_TIME)
    for part in ("data", "metadata"):
        found = json_differences(json.dumps(record["document"][part]),
                                 json.dumps(again["document"][part]))
        if found:
            return f"document.{part} changes on a round trip: {found}"
    found = _text_difference(record_to_fhicl(again), exported)
    if found:
        return f"export is not stable: {found}"
    if oracle:
        run = subprocess.run([oracle, "fcl2json", str(path), "-"], capture_output=True)
        if run.returncode != 0:
            return None  # the C++ refuses it (e.g. @table::, non-ASCII): nothing to compare
        found = json_differences(json.dumps(record, ensure_ascii=False),
                                 run.stdout.decode("utf-8", errors="surrogateescape"))
        if found:
            return f"record differs from the C++: {found}"
        run = subprocess.run([oracle, "roundfcl", str(path), "-"], capture_output=True)
        found = _text_difference(exported,
                                 run.stdout.decode("utf-8", errors="surrogateescape"))
        if found:
            return f"export differs from the C++: {found}"
    return None


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def _guarded(check: Callable[[], str | None]) -> str | None:
    try:
        return check()
    except (ArchiverError, ValueError, KeyError, TypeError) as error:
        return f"{type(error).__name__}: {error}"


def run(fixtures: Path, case_study: Path | None = None, oracle: str | None = None,
        verbose: bool = False, out=None) -> int:
    out = out if out is not None else sys.stdout
    cases = registered_cases(fixtures)
    if not cases:
        print(f"no registered cases under {fixtures} (expected testNNN/CMakeLists.txt)",
              file=out)
        return 2
    counts = {"pass": 0, "fail": 0, "contradiction": 0}
    for case in cases:
        problem = _guarded(lambda: run_case(case))
        key = (case.test, str(case.source.relative_to(fixtures)))
        if problem is None:
            counts["pass"] += 1
            print(f"PASS  {case.label(fixtures)}", file=out)
        elif key in KNOWN_CONTRADICTIONS:
            counts["contradiction"] += 1
            print(f"KNOWN {case.label(fixtures)}: {KNOWN_CONTRADICTIONS[key]}", file=out)
            if verbose:
                print(f"      {problem}", file=out)
        else:
            counts["fail"] += 1
            print(f"FAIL  {case.label(fixtures)}: {problem}", file=out)
    total = len(cases)
    print(f"fcl2dbjson: {counts['pass']}/{total} passed, {counts['contradiction']} documented "
          f"contradiction(s), {counts['fail']} failed", file=out)
    failed = counts["fail"]
    if case_study is not None:
        files = sorted(p for p in case_study.rglob("*.fcl") if p.is_file())
        ok = 0
        for path in files:
            problem = _guarded(lambda: case_study_difference(path, oracle))
            relative = str(path.relative_to(case_study))
            if relative in CPP_REFUSES and problem and problem.startswith("FhiclSyntaxError"):
                ok += 1
                print(f"REFUSED {relative}, as by the C++: {CPP_REFUSES[relative]}", file=out)
                continue
            if problem is None:
                ok += 1
                if verbose:
                    print(f"PASS  {path.relative_to(case_study)}", file=out)
            else:
                failed += 1
                print(f"FAIL  {path.relative_to(case_study)}: {problem}", file=out)
        print(f"case study: {ok}/{len(files)} round-tripped"
              + (" and equal to the C++" if oracle else "") + " or refused as by the C++",
              file=out)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m archiver_resources.fhicl.conformance",
        description="Run artdaq_database's own FHiCL converter fixtures (fcl2dbjson) against "
                    "the project's codec; one line per case, then a total. Exit 1 on an "
                    "unexpected failure.")
    parser.add_argument("fixtures", type=Path,
                        help="artdaq_database's test/DataFormats/Fhicl/fcl2dbjson folder")
    parser.add_argument("--case-study", type=Path, default=None,
                        help="artdaq_database's test/CaseStudy folder: round-trip every .fcl")
    parser.add_argument("--oracle", default=None,
                        help="artdaq_database's converter built as a command (fcl2json, "
                             "roundfcl): compare the case-study files with it too")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print passing case-study files and contradiction details")
    args = parser.parse_args(argv)
    if not args.fixtures.is_dir():
        parser.error(f"{args.fixtures} is not a folder")
    return run(args.fixtures, args.case_study, args.oracle, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
