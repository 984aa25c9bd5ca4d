"""Pure-Python FHiCL codec: FHiCL text ↔ the artdaq_database document record (spec
artdaq_database.md §3–§4): a data tree with raw-string leaves and a parallel metadata tree.

API
---
* ``fhicl_to_record(text, name, *, timestamp=None) -> dict`` — the record of spec §4.1
  (``document.data``/``document.metadata`` with ``prolog`` and ``main``, ``comments``, ``origin``,
  ``version: "notprovided"``, empty ``entities``/``configurations``). ``timestamp`` (datetime or
  preformatted string) makes ``origin.timestamp`` deterministic (``%FT%T.000%z``, local time).
* ``record_to_fhicl(record) -> str`` — deterministic FHiCL regenerated from data + metadata.
* ``parse_fhicl(text, name) -> ParsedFhicl(data, metadata, comments)``; ``write_fhicl(data,
  metadata)``; ``fhicl_equivalent(a_text, b_text) -> bool`` (equal data trees).
* ``iter_json(record)`` — ``json.dumps(record, ensure_ascii=False)`` in pieces (never the whole
  text at once); ``loads_record(text)`` — ``json.loads`` sharing equal leaf metadata (read-only).
* Syntax errors raise ``archiver_resources.errors.FhiclSyntaxError`` (file, 1-based line and
  column, the offending line); malformed records raise ``FhiclRecordError``.

Decisions (where the spec leaves room)
--------------------------------------
* **Leaves** are JSON strings holding the raw FHiCL text: numbers as written (``0xff``,
  ``1e-3``, ``+infinity``), ``true``/``false``, ``nil``/``@nil``. Quoted strings lose only their
  quotes; escape sequences inside stay as written (``"a\\"b"`` → ``a\\"b``), so writing back is
  exact. Complex numbers are normalised to ``(re,im)`` without blanks.
* **Types**: ``number``, ``bool``, ``nil``, ``complex``, ``string_unquoted``,
  ``string_singlequoted``, ``string_doublequoted``, ``table``, ``sequence``, and ``tableid`` for
  everything starting with ``@``: ``@local::``, ``@id::``, ``@db::``, ``@sequence::`` (a sequence
  splice is simply an element ``"@sequence::x"``), ``@table::`` and ``@erase``; ``@nil`` is ``nil``.
* **Table splices** ``@table::x`` inside a table become an item whose key and value are both the
  reference text (``"@table::x": "@table::x"``, type ``tableid``); the writer emits the bare
  reference. FHiCL keys never start with ``@``, so this cannot collide with a real key.
* **Dotted/indexed keys** (``a.b[2].c: 5``) are kept as one literal key ``"a.b[2].c"`` in the
  table where they appear; they are not merged into ``a`` (that would need reference resolution
  and would lose the text), and they are written back verbatim.
* **Protection markers** (``a @protect_ignore: 1``, ``@protect_error``, any ``@word`` before the
  colon) go to the node's ``protection`` field and are written back before the colon.
* **Duplicate keys**: last one wins, and the surviving item moves to the position of the last
  definition (so ``a: 1  @table::x  a: 2`` keeps its meaning when regenerated).
* **Includes**: ``#include "x.fcl"`` at the start of a line where a key may stand becomes
  ``fhicl_pound_include_<n>: "x.fcl"`` (type ``string_doublequoted``), numbered from 0 **per
  table** (prolog and main separately) so that regeneration and re-parsing give the same keys. A
  literal key ``fhicl_pound_include_<n>`` with a double-quoted value is renumbered the same way.
  The writer emits the leading include keys of ``main`` before ``BEGIN_PROLOG`` (their usual
  place) and every other include key where it stands.
* **Comments**: ``comments`` lists every comment-only line (``#…`` or ``//…``, indentation
  removed, 1-based ``linenum``); ``[]`` when there are none. A node's ``comment`` is the
  comment-only line directly above the line where the node starts, if the node is the first token
  on its line; its ``annotation`` is the comment trailing the line where the node ends, if nothing
  but commas follows the node on that line. Tables carry no annotation (a trailing comment after
  ``}`` is dropped), sequences take the one after ``]``. Several comment lines above a node: only
  the last is attached (the others stay in ``comments``), as in artdaq_database.
* **Prolog**: several ``BEGIN_PROLOG``/``END_PROLOG`` blocks merge into one ``prolog`` table;
  the writer emits one block before ``main``.
* **Leniency**: an unquoted atom may contain ``A-Za-z0-9_.+-`` (so ``1.``, ``v1_2_3`` and hex
  digests like ``0cc175b9`` parse as ``string_unquoted``/``number``); sequences accept a trailing
  comma. CRLF/CR become LF, a BOM is dropped, non-ASCII text is allowed in strings and comments.
* **Depth**: parser and writer are iterative; nesting deeper than ``MAX_DEPTH`` (200) levels is
  a syntax error, so a record always fits ``json.dumps`` under the default recursion limit.
* **Writer layout**: two-space indentation, one item per line, ``key: value``; sequences of plain
  atoms inline as ``[a, b, c]``, otherwise one element per line; empty containers ``{}``/``[]``;
  prolog block, a blank line, then ``main``; output ends with one newline (empty for an empty
  document). Quoting follows the metadata type; a value its type cannot hold is double-quoted
  (escaped when it is not valid raw string content). Records from other tools without metadata
  get inferred types. A key that is no FHiCL name raises ``FhiclRecordError`` rather than
  producing text that would not parse again.
* **Speed**: one compiled master regex (``lexer.TOKEN``) with a one-token fast path for the
  common ``key: atom # comment`` line; line numbers are counted lazily. About 6–8 MB/s parse on
  one core (``python bench/bench_fhicl.py``).
"""

from archiver_resources.fhicl.parser import MAX_DEPTH, ParsedFhicl, parse_fhicl
from archiver_resources.fhicl.record import (
    FhiclRecordError, fhicl_equivalent, fhicl_to_record, format_timestamp, record_to_fhicl,
)
from archiver_resources.fhicl.jsonio import iter_json, loads_record
from archiver_resources.fhicl.writer import write_fhicl

__all__ = [
    "MAX_DEPTH", "FhiclRecordError", "ParsedFhicl", "fhicl_equivalent", "fhicl_to_record",
    "format_timestamp", "iter_json", "loads_record", "parse_fhicl", "record_to_fhicl",
    "write_fhicl",
]
