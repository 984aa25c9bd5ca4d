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
"""

from __future__ import annotations

import json
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


def loads_record(text: str | bytes) -> Any:
    """``json.loads(text)`` with equal leaf-metadata dicts (first key ``type``, every value a
    string, no ``children``) shared as one object, and short string values of objects shared:
    equal to ``json.loads(text)``, about half the memory for a big document. An object whose key
    repeats becomes a :class:`MultiTable` (``json.loads`` would keep only the last); control
    characters inside strings are accepted, as artdaq_database writes them raw. Treat the result
    as read-only."""
    shared: dict = {}
    get = shared.get
    short = {}.setdefault  # one object per short value text (true, 0, 64, ...) in tables

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
        table = {k: (short(v, v) if v.__class__ is str and len(v) <= 6 else v) for k, v in pairs}
        if len(table) != len(pairs):  # a repeated key (artdaq_database keeps both definitions)
            return MultiTable(pairs)
        return table

    return json.loads(text, object_pairs_hook=hook, strict=False)
