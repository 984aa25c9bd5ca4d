"""artdaq_database's own FHiCL↔JSON converter as a test oracle.

The C++ converter can be built into one command (``oracle fcl2json|json2fcl|roundfcl|cmpjson``,
see docs/formats.md §5.6); point ``ARCHIVER_ADB_ORACLE`` at it (or put it on PATH as
``adb-oracle``). Tests that need it skip, saying why, when it is not there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import NamedTuple

from archiver_resources.errors import FhiclSyntaxError
from archiver_resources.fhicl import MultiTable, fhicl_to_record, parse_fhicl, record_to_fhicl
from archiver_resources.fhicl.conformance import FAKE_TIME, json_differences

ORACLE = os.environ.get("ARCHIVER_ADB_ORACLE") or shutil.which("adb-oracle")
MISSING = ("artdaq_database's C++ converter is not built here: set ARCHIVER_ADB_ORACLE to it "
           "(docs/formats.md §5.6 says how to build it)")


class CppResult(NamedTuple):
    ok: bool
    output: str
    error: str


def cpp(mode: str, text: str) -> CppResult:
    run = subprocess.run([ORACLE, mode, "-", "-"], input=text.encode("utf-8"),
                         capture_output=True, timeout=60)
    return CppResult(run.returncode == 0, run.stdout.decode("utf-8", "surrogateescape"),
                     run.stderr.decode("utf-8", "replace").strip()[-300:])


def compare_with_cpp(text: str) -> str | None:
    """None when the project's codec and the C++ agree on ``text`` (both refuse it, or both give
    the same record and the same export), else a description of the difference. The project may
    accept what the C++ refuses only through a documented extension."""
    record_cpp = cpp("fcl2json", text)
    try:
        parsed = parse_fhicl(text, "notprovided")
        record = fhicl_to_record(text, "notprovided", timestamp=FAKE_TIME)
    except FhiclSyntaxError as error:
        if record_cpp.ok:
            return f"we refuse what the C++ accepts: {error}"
        return None
    if not record_cpp.ok:
        if parsed.extensions:
            return None
        return f"we accept what the C++ refuses ({record_cpp.error.splitlines()[-1:]})"
    expected = record_cpp.output
    if "complex_whole" in parsed.extensions:
        # the one deliberate difference: the C++ cuts a complex number at its first blank
        expected = _with_our_complex_values(record, expected)
    found = json_differences(json.dumps(record, ensure_ascii=False), expected)
    if found:
        return f"records differ: {found}"
    if "complex_whole" in parsed.extensions:
        return None  # the C++ export of a cut complex number does not parse: nothing to compare
    export_cpp = cpp("roundfcl", text)
    ours = record_to_fhicl(record)
    if not export_cpp.ok:
        # The C++ writer throws on its own record (a repeated key whose first definition has
        # another type: it looks up the first metadata for every definition). The project's
        # writer still exports it (docs/formats.md §5.4); nothing to compare with.
        if "bad_get" in export_cpp.error:
            return None
        return f"the C++ cannot export its own record: {export_cpp.error}"
    if ours != export_cpp.output and _repeated_key_with_another_shape(record):
        # The C++ writer walks every definition of a repeated key with the FIRST definition's
        # children metadata: a longer sequence is cut, a table's other keys are dropped. The
        # project writes each definition whole (docs/formats.md §5.4); nothing to compare.
        return None
    if ours != export_cpp.output:
        i = next((k for k, (x, y) in enumerate(zip(ours, export_cpp.output)) if x != y),
                 min(len(ours), len(export_cpp.output)))
        return (f"exports differ at byte {i}: ours {ours[max(0, i - 30):i + 30]!r} vs C++ "
                f"{export_cpp.output[max(0, i - 30):i + 30]!r}")
    return None


_NON_ASCII = re.compile("[^\x00-\x7f]")


def as_ascii(text: str) -> str:
    """``text`` with every non-ASCII character replaced by ``x``."""
    return _NON_ASCII.sub("x", text)


def compare_non_ascii_with_cpp(text: str) -> str | None:
    """The ``non_ascii`` extension's contract: the record and export of ``text`` are the C++
    record and export of the same text with ``x`` for every non-ASCII character, with the
    characters put back."""
    record = fhicl_to_record(text, "notprovided", timestamp=FAKE_TIME)
    record_cpp = cpp("fcl2json", as_ascii(text))
    if not record_cpp.ok:
        return f"the C++ refuses the ASCII form: {record_cpp.error.splitlines()[-1:]}"
    found = json_differences(as_ascii(json.dumps(record, ensure_ascii=False)), record_cpp.output)
    if found:
        return f"records differ: {found}"
    export_cpp = cpp("roundfcl", as_ascii(text))
    ours = record_to_fhicl(record)
    if export_cpp.ok and as_ascii(ours) != export_cpp.output:
        return f"exports differ: ours {as_ascii(ours)!r} vs C++ {export_cpp.output!r}"
    return None


def _with_our_complex_values(record: dict, cpp_json: str) -> str:
    """The C++ record with each complex-number value replaced by the project's (positions
    follow the project's record: both hold the same keys in the same order)."""
    cpp_tree = json.loads(cpp_json, object_pairs_hook=lambda pairs: _Obj(list(p) for p in pairs),
                          strict=False)
    document = dict(cpp_tree)["document"]
    data_cpp = dict(document)["data"]
    for section in ("prolog", "main"):
        meta = record["document"]["metadata"][section]
        _patch(record["document"]["data"][section], meta, dict(data_cpp)[section])
    return json.dumps(_as_object(cpp_tree), ensure_ascii=False)


def _patch(ours, meta, cpp_pairs):
    if isinstance(ours, dict):
        children = meta.get("children", {})
        metas = children.items() if isinstance(children, dict) else []
        own = [m for _, m in metas] if len(metas) == len(ours) else None
        for i, (key, value) in enumerate(ours.items()):
            child_meta = own[i] if own else children.get(key, {})
            if isinstance(value, (dict, list)):
                _patch(value, child_meta, cpp_pairs[i][1])
            elif child_meta.get("type") == "complex":
                cpp_pairs[i][1] = value
    elif isinstance(ours, list):
        children = meta.get("children", {})
        for i, value in enumerate(ours):
            child_meta = children.get(str(i), {})
            if isinstance(value, (dict, list)):
                _patch(value, child_meta, cpp_pairs[i])
            elif child_meta.get("type") == "complex":
                cpp_pairs[i] = value


class _Obj(list):
    """A JSON object read as its list of [key, value] pairs."""


def _as_object(tree):
    """Back from the pairs form: objects as ordered pairs (json keeps repeated keys through
    ``MultiTable``)."""
    from archiver_resources.fhicl import MultiTable
    if isinstance(tree, _Obj):
        return MultiTable([(k, _as_object(v)) for k, v in tree])
    if isinstance(tree, list):
        return [_as_object(v) for v in tree]
    return tree


def _repeated_key_with_another_shape(record: dict) -> bool:
    """True when a key repeated at top level has a later definition whose metadata children
    differ from the first definition's (the case where the C++ writer loses data)."""
    for section in ("prolog", "main"):
        children = record["document"]["metadata"][section]["children"]
        if not isinstance(children, MultiTable):
            continue
        first: dict = {}
        for key, node in children.items():
            if key in first and node.get("children") != first[key].get("children"):
                return True
            first.setdefault(key, node)
    return False
