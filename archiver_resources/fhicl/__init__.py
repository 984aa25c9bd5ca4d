"""Pure-Python FHiCL codec: FHiCL text ↔ the artdaq_database document record, exactly as
artdaq_database's C++ converter makes them (fhicl-cpp's grammar in artdaq_database's "snippet
mode", ``FhiclReader``/``FhiclWriter``). C++ tools and sites that ran the legacy archiver read the
same stores, and every UconDB blob is built from the export text, so records and exports are
reproduced byte for byte; ``python -m archiver_resources.fhicl.conformance`` checks this against
artdaq_database's own fixtures. docs/formats.md §5 states every rule.

API
---
* ``fhicl_to_record(text, name, *, timestamp=None, extensions=None) -> dict`` — the record
  (``document.data``/``document.metadata`` with ``prolog`` and ``main``, ``comments``, ``origin``,
  ``version: "notprovided"``, empty ``entities``/``configurations``).
* ``record_to_fhicl(record) -> str`` — the FHiCL text artdaq_database exports for a record.
* ``parse_fhicl(text, name) -> ParsedFhicl(data, metadata, comments, extensions)``;
  ``write_fhicl(data, metadata)``; ``fhicl_equivalent(a_text, b_text) -> bool`` (same data tree).
* ``MultiTable`` — a table whose key repeats (the top level keeps every definition of a key).
* ``iter_json(record)`` — ``json.dumps(record, ensure_ascii=False)`` in pieces; ``loads_record``
  — ``json.loads`` sharing equal leaf metadata, repeated keys kept.
* Syntax errors raise ``archiver_resources.errors.FhiclSyntaxError`` (file, 1-based line and
  column, the offending line, a reason); malformed records raise ``FhiclRecordError``.

What the C++ refuses and the project still archives (``ParsedFhicl.extensions``)
-------------------------------------------------------------------------------
``non_ascii`` (the C++ grammar is ASCII-only: here a non-ASCII character is treated like the
letter ``x``), ``table_splice`` (``@table::name`` items, stored as
``fhicl_table_splice_<n>: "@table::name"``), ``indexed_reference``/``indexed_key``
(``@local::a[0]``, ``a[1]: 5``) and ``bom`` (a leading byte-order mark, skipped).
"""

from archiver_resources.fhicl.jsonio import iter_json, loads_record
from archiver_resources.fhicl.parser import MAX_DEPTH, ParsedFhicl, parse_fhicl
from archiver_resources.fhicl.record import (
    FhiclRecordError, fhicl_equivalent, fhicl_to_record, format_timestamp, record_to_fhicl,
)
from archiver_resources.fhicl.tables import MultiTable
from archiver_resources.fhicl.writer import write_fhicl

__all__ = [
    "MAX_DEPTH", "FhiclRecordError", "MultiTable", "ParsedFhicl", "fhicl_equivalent",
    "fhicl_to_record", "format_timestamp", "iter_json", "loads_record", "parse_fhicl",
    "record_to_fhicl", "write_fhicl",
]
