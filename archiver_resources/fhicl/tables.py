"""A FHiCL table that holds one key more than once, as artdaq_database's records do.

artdaq_database parses FHiCL with fhicl-cpp in "snippet mode", where the top-level table is an
ordered list: a key defined twice at top level (``a: 1 … a: 2``) stays twice in ``document.data``
and twice in ``document.metadata`` (the JSON object then repeats the key). A Python ``dict``
cannot hold that, so such a table is a :class:`MultiTable`: a ``dict`` whose own entries are the
**first** definition of each key (what artdaq_database's writer looks up, ``metadata.at(key)``)
and whose :meth:`items` are every definition in order. Plain tables stay plain ``dict``s.

``json.dumps`` writes a ``MultiTable`` with its repeated keys (the C encoder asks a ``dict``
subclass for ``items()``), and :func:`archiver_resources.fhicl.jsonio.loads_record` reads a JSON
object with a repeated key back into one.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator


class MultiTable(dict):
    """An ordered table whose keys may repeat. ``dict`` access sees each key's first value;
    iteration, ``items()``, ``values()``, ``keys()`` and ``len()`` see every entry."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: Iterable[tuple[str, Any]]):
        pairs = list(pairs)
        super().__init__()
        for key, value in pairs:
            if not dict.__contains__(self, key):
                dict.__setitem__(self, key, value)
        self.pairs = pairs

    # every entry, in order
    def items(self):  # type: ignore[override]
        return list(self.pairs)

    def keys(self):  # type: ignore[override]
        return [key for key, _ in self.pairs]

    def values(self):  # type: ignore[override]
        return [value for _, value in self.pairs]

    def __iter__(self) -> Iterator[str]:
        return iter([key for key, _ in self.pairs])

    def __len__(self) -> int:
        return len(self.pairs)

    def __eq__(self, other) -> bool:
        if isinstance(other, MultiTable):
            return self.pairs == other.pairs
        return NotImplemented if not isinstance(other, dict) else False

    def __ne__(self, other) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MultiTable({self.pairs!r})"

    def __reduce__(self):
        return (MultiTable, (self.pairs,))

    def _readonly(self, *args, **kwargs):
        raise TypeError("a MultiTable is read-only")

    __setitem__ = __delitem__ = update = setdefault = pop = popitem = clear = _readonly  # type: ignore


def table_of(pairs: list[tuple[str, Any]]) -> dict:
    """A plain ``dict`` for ``pairs`` when every key is distinct, else a :class:`MultiTable`."""
    table = dict(pairs)
    if len(table) == len(pairs):
        return table
    return MultiTable(pairs)


def same_tree(a: Any, b: Any) -> bool:
    """Structural equality of two data trees, repeated keys and their order included."""
    if isinstance(a, MultiTable) or isinstance(b, MultiTable):
        if not (isinstance(a, dict) and isinstance(b, dict)):
            return False
        pa, pb = list(a.items()), list(b.items())
        return len(pa) == len(pb) and all(
            ka == kb and same_tree(va, vb) for (ka, va), (kb, vb) in zip(pa, pb))
    if isinstance(a, dict):
        if not isinstance(b, dict) or len(a) != len(b):
            return False
        return all(key in b and same_tree(value, b[key]) for key, value in a.items())
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return False
        return all(same_tree(x, y) for x, y in zip(a, b))
    return a == b
