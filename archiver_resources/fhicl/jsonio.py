"""JSON text of document records without the peaks of ``json.dumps``/``json.loads`` on big trees.

A 25 MB FHiCL file becomes a ~135 MB JSON document; ``json.dumps(record).encode()`` holds the
tree, that text and its bytes at once, and ``json.loads`` gives every leaf its own metadata dict.

* :func:`iter_json` yields the text of ``json.dumps(value, ensure_ascii=False)`` (default
  separators) in pieces of a few hundred kB, byte for byte the same: big containers are walked
  here, everything small is encoded by the C encoder. Write the pieces to a file one after the
  other (``handle.writelines(p.encode("utf-8") for p in iter_json(record))``).
* :func:`loads_record` is ``json.loads`` that shares equal leaf-metadata objects (``{"type":
  ..., "comment": ..., "annotation": ...}``) and short values: an equal value, about 60 % less
  memory for a big document (25 MB of FHiCL: ~630 -> ~240 MB), as fast. The result must be treated as read-only (as the FHiCL writer does).
* :func:`load_record_file` is :func:`loads_record` of a file's text, read in pieces of 1 MB:
  the document's text (~135 MB for 25 MB of FHiCL) is never whole in memory beside its tree.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Iterator

from archiver_resources.fhicl.tables import MultiTable

#: About how many tree nodes one piece of :func:`iter_json` covers (~60 bytes of JSON each).
PIECE_NODES = 4096

_dumps = json.JSONEncoder(ensure_ascii=False).encode  # the C encoder, json.dumps' defaults


def _small(value: Any, budget: int) -> int:
    """The node count of ``value`` if it is at most ``budget``, else -1 (walks ≤ budget nodes)."""
    stack = [value]
    count = 0
    while stack:
        item = stack.pop()
        count += 1
        if count > budget:
            return -1
        cls = item.__class__
        if cls is dict:
            stack.extend(item.values())
        elif cls is list or cls is tuple:
            stack.extend(item)
    return count


def iter_json(value: Any, *, piece_nodes: int = PIECE_NODES) -> Iterator[str]:
    """Pieces whose concatenation is ``json.dumps(value, ensure_ascii=False)``."""
    if _small(value, piece_nodes) >= 0:
        yield _dumps(value)
        return
    cls = value.__class__
    if cls is dict and all(k.__class__ is str for k in value):
        yield from _iter_items(value, piece_nodes)
    elif cls is list or cls is tuple:
        yield from _iter_elements(value, piece_nodes)
    else:  # a subclass or non-str keys: whatever json.dumps does with it, in one piece
        yield _dumps(value)


def _iter_items(table: dict, piece_nodes: int) -> Iterator[str]:
    batch: dict = {}
    weight = 0
    sep = ""
    yield "{"
    for key, item in table.items():
        size = _small(item, piece_nodes)
        if size >= 0:
            batch[key] = item
            weight += size
            if weight < piece_nodes:
                continue
        if batch:
            yield sep + _dumps(batch)[1:-1]
            sep = ", "
            batch, weight = {}, 0
        if size < 0:
            yield sep + _dumps(key) + ": "
            sep = ", "
            yield from iter_json(item, piece_nodes=piece_nodes)
    if batch:
        yield sep + _dumps(batch)[1:-1]
    yield "}"


def _iter_elements(sequence, piece_nodes: int) -> Iterator[str]:
    batch: list = []
    weight = 0
    sep = ""
    yield "["
    for item in sequence:
        size = _small(item, piece_nodes)
        if size >= 0:
            batch.append(item)
            weight += size
            if weight < piece_nodes:
                continue
        if batch:
            yield sep + _dumps(batch)[1:-1]
            sep = ", "
            batch, weight = [], 0
        if size < 0:
            yield sep
            sep = ", "
            yield from iter_json(item, piece_nodes=piece_nodes)
    if batch:
        yield sep + _dumps(batch)[1:-1]
    yield "]"


_SHARED_TABLE = 32  # tables with at most this many members are shared when equal


def _record_hook(keys: dict | None = None):
    """The ``object_pairs_hook`` of :func:`loads_record` (sharing within one document);
    ``keys``: also one object per key name of a table (the C scanner's memo does that only
    within one scan, and :func:`load_record_file` scans member by member)."""
    shared: dict = {}
    get = shared.get
    short = {}.setdefault  # one object per short value text (true, 0, 64, ...) in tables
    name = keys.setdefault if keys is not None else None
    nodes = {}.setdefault  # equal small tables of strings and shared tables, as one object

    def hook(pairs: list) -> dict:
        if 3 <= len(pairs) <= 4 and pairs[0][0] == "type":
            key = tuple(pairs)
            try:
                found = get(key)
            except TypeError:  # a list or dict value: not a leaf
                return dict(pairs)
            if found is None:
                found = shared[key] = dict(pairs)
            return found
        if name is None:
            table = {k: (short(v, v) if v.__class__ is str and len(v) <= 6 else v)
                     for k, v in pairs}
        else:
            table = {name(k, k): (short(v, v) if v.__class__ is str and len(v) <= 6 else v)
                     for k, v in pairs}
        if len(table) != len(pairs):  # a repeated key (artdaq_database keeps both definitions)
            return MultiTable(pairs)
        if len(table) <= _SHARED_TABLE:
            # metadata ``children`` of a table or sequence (key -> shared node) and the node
            # holding them repeat for every element of a list of like tables: one object each
            # (equal key and value objects; a dict compared by identity, so by what it holds
            # once its own members were shared)
            signature = []
            tables = 0
            for k, v in table.items():
                cls = v.__class__
                if cls is dict:
                    signature.append((k, id(v)))
                    tables += 1
                elif cls is str:
                    signature.append((k, "", v))
                else:
                    return table
            if tables:  # (tables of strings only are data: rarely equal, not worth a signature)
                return nodes(tuple(signature), table)
        return table

    return hook


def loads_record(text: str | bytes) -> Any:
    """``json.loads(text)`` with equal leaf-metadata dicts (first key ``type``, every value a
    string, no ``children``) shared as one object, and short string values of objects shared:
    equal to ``json.loads(text)``, about half the memory for a big document. An object whose key
    repeats becomes a :class:`MultiTable` (``json.loads`` would keep only the last); control
    characters inside strings are accepted, as artdaq_database writes them raw. Treat the result
    as read-only."""
    return json.loads(text, object_pairs_hook=_record_hook(), strict=False)


def _loads_small(text: str) -> Any:
    """:func:`loads_record` of ``text``, about 3× faster for the texts this archiver writes.

    Plain ``json.loads`` (no Python call per object) keeps only the last of a repeated key, so
    its value is taken only when ``json.dumps`` of it gives ``text`` back byte for byte: an
    encoded dict never repeats a key, so the text had no repeated key and nothing was lost.
    That holds for every document written by :func:`iter_json` (the same encoder and
    separators); a text written otherwise (other spacing, escapes, raw control characters,
    number spellings), a repeated key or malformed JSON goes through :func:`loads_record`,
    which gives the exact value or the error. Small documents need no memory sharing."""
    try:
        value = json.loads(text, strict=False)
    except ValueError:
        return loads_record(text)  # the same error, raised there
    if _dumps(value) == text:
        return value
    return loads_record(text)


#: characters read at a time by :func:`load_record_file`
READ_CHARS = 1 << 20
_WS = re.compile(r"[ \t\n\r]*")


class _Text:
    """A window on a text file: :meth:`more` drops the characters before ``keep`` and appends
    the next piece (``eof`` once the file is exhausted)."""

    def __init__(self, handle, piece: int):
        self.handle, self.piece = handle, piece
        self.buf, self.eof = "", False

    def more(self, keep: int) -> int:
        """Read on; returns where ``keep`` now is (0)."""
        data = self.handle.read(self.piece)
        if not data:
            self.eof = True
        self.buf = self.buf[keep:] + data
        return 0

    def skip(self, pos: int) -> int:
        """The first non-whitespace position from ``pos`` (reading on as needed)."""
        while True:
            pos = _WS.match(self.buf, pos).end()
            if pos < len(self.buf) or self.eof:
                return pos
            pos = self.more(pos)


def load_record_file(path, *, piece: int = READ_CHARS) -> Any:
    """:func:`loads_record` of the UTF-8 text of ``path`` (the same value), reading it in pieces.

    A value that fits in the window is decoded by the C scanner, exactly as ``json.loads`` does;
    an object or array bigger than a window is entered here and its members decoded one by one,
    each object's pairs going through the same hook. Only the window and the tree are held,
    never the document's whole text beside its tree. Malformed JSON raises ``ValueError``
    (``json.JSONDecodeError``; its position counts in the window).

    A document that fits in one window (nearly every document of a run) is read whole and
    decoded by :func:`_loads_small`."""
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size <= piece:
            return _loads_small(handle.read().decode("utf-8"))
    keys: dict = {}  # one object per key name (the scanner's memo does this within one scan)
    hook = _record_hook(keys)
    scan = json.JSONDecoder(object_pairs_hook=hook, strict=False).scan_once
    stack: list = []  # entered containers: (members, is_object)
    pending: list = []  # the key of each entered object's member being read
    with open(path, encoding="utf-8") as handle:
        src = _Text(handle, piece)
        pos = src.skip(src.more(0))

        def key_at(pos: int) -> int:
            while True:
                if src.buf[pos:pos + 1] != '"':
                    if pos + 1 > len(src.buf) and not src.eof:
                        pos = src.more(pos)
                        continue
                    raise json.JSONDecodeError(
                        "Expecting property name enclosed in double quotes", src.buf, pos)
                try:
                    name, end = _scanstring(src.buf, pos + 1, False)
                except json.JSONDecodeError:
                    if src.eof:
                        raise
                    pos = src.more(pos)
                    continue
                break
            pending.append(keys.setdefault(name, name))
            pos = src.skip(end)
            if src.buf[pos:pos + 1] != ":":
                raise json.JSONDecodeError("Expecting ':' delimiter", src.buf, pos)
            return src.skip(pos + 1)

        while True:
            # a value starts at pos
            while True:
                try:
                    value, end = scan(src.buf, pos)
                except (StopIteration, ValueError):
                    end = -1
                # (a number must not end at most 2 characters before the window does: "1." or
                # "1e+" may be the start of "1.5" or "1e+5" cut off by the window)
                if end >= 0 and (src.eof or end < len(src.buf) and (
                        value.__class__ not in (int, float) or len(src.buf) - end > 2)):
                    entered = False
                    break
                if src.eof:
                    raise json.JSONDecodeError("Expecting value", src.buf, pos)
                if src.buf[pos] in "{[" and len(src.buf) - pos >= piece:
                    entered = True  # bigger than a window: its members one by one
                    break
                pos = src.more(pos)  # a value that ends beyond the window: read on
            if entered:
                is_object = src.buf[pos] == "{"
                closer = "}" if is_object else "]"
                pos = src.skip(pos + 1)
                if src.buf[pos:pos + 1] == closer:
                    pos += 1
                    value = hook([]) if is_object else []
                else:
                    stack.append(([], is_object))
                    if is_object:
                        pos = key_at(pos)
                    continue
            else:
                pos = end
            # a complete value: into its container; then "," or the container's end
            while True:
                if not stack:
                    pos = src.skip(pos)
                    if pos != len(src.buf):
                        raise json.JSONDecodeError("Extra data", src.buf, pos)
                    return value
                members, is_object = stack[-1]
                members.append((pending.pop(), value) if is_object else value)
                pos = src.skip(pos)
                char = src.buf[pos:pos + 1]
                if char == ",":
                    pos = src.skip(pos + 1)
                    if is_object:
                        pos = key_at(pos)
                    break
                if char != ("}" if is_object else "]"):
                    raise json.JSONDecodeError("Expecting ',' delimiter", src.buf, pos)
                pos += 1
                stack.pop()
                value = hook(members) if is_object else members


_scanstring = json.decoder.scanstring
