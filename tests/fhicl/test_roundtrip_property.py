"""Property-based tests of the codec's own guarantees (what the C++ does is the differential
tests' business): any text parses or raises a typed error; a record survives being stored as
JSON; exports are deterministic; and for ordinary FHiCL the export reads back to the same data."""

import json
import re

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from archiver_resources.errors import FhiclSyntaxError
from archiver_resources.fhicl import (
    fhicl_to_record, loads_record, parse_fhicl, record_to_fhicl,
)
from archiver_resources.fhicl.tables import MultiTable, same_tree
from tests.fhicl import strategies

SETTINGS = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


@SETTINGS
@given(st.one_of(st.text(), strategies.documents(hostile=True)))
def test_any_text_parses_or_raises_a_typed_error(text):
    try:
        parse_fhicl(text, "any.fcl")
    except FhiclSyntaxError as error:
        assert error.name == "any.fcl" and error.line >= 1 and error.column >= 1
        assert "\n" not in str(error)


@SETTINGS
@given(strategies.documents())
def test_a_record_survives_json_and_exports_deterministically(text):
    try:
        record = fhicl_to_record(text, "gen", timestamp="T")
    except FhiclSyntaxError:
        assume(False)
    stored = loads_record(json.dumps(record, ensure_ascii=False))
    assert stored == record
    exported = record_to_fhicl(record)
    assert record_to_fhicl(stored) == exported
    assert record_to_fhicl(fhicl_to_record(text, "gen", timestamp="T")) == exported


def _plain(text):
    """Ordinary FHiCL: no comment that looks like an #include (artdaq_database rewrites those
    everywhere; ``#include<tab>"x"`` is one too, as its line becomes the next key's comment), and
    no key of its own named like an include key (the writer turns those into #include lines);
    keys repeated at top level with another type are excluded below. Made so by renaming (a
    filter would throw away nine generated documents in ten)."""
    kept = re.sub(r'(^|[\n\r])#include "', "\\1\x00", text)  # real directives stay
    kept = kept.replace("#include", "#inc").replace("fhicl_pound_include", "fhicl_pound_inc")
    return kept.replace("\x00", '#include "')


@SETTINGS
@given(strategies.documents().map(_plain))
def test_the_export_of_ordinary_fhicl_reads_back_to_the_same_data(text):
    try:
        parsed = parse_fhicl(text, "gen")
    except FhiclSyntaxError:
        assume(False)
    main = parsed.data["main"]
    if isinstance(main, MultiTable):
        types = {}
        for key, node in parsed.metadata["main"]["children"].items():
            types.setdefault(key, set()).add(node["type"])
        assume(all(len(t) == 1 for t in types.values()))
    exported = record_to_fhicl(fhicl_to_record(text, "gen", timestamp="T"))
    assert same_tree(parse_fhicl(exported, "gen").data, parsed.data), exported
