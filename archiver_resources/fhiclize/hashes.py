"""The ``hashes`` entity the legacy conftoolp import adds to every initial insert (legacy §6.3 step 3,
artdaq_database.md §6.2): one MD5 line per entity and one over the whole configuration."""

from __future__ import annotations

import hashlib
from typing import Mapping

__all__ = ["HASHES_ENTITY", "entity_name", "hashes_text"]

HASHES_ENTITY = "hashes"
_SCHEMA_ENTITY = "schema"


def entity_name(relpath: str) -> str:
    """The artdaqDB entity of a stored file: its basename without ``.fcl`` (schema rule group 2)."""
    basename = relpath.rsplit("/", 1)[-1]
    return basename[: -len(".fcl")] if basename.endswith(".fcl") else basename


def hashes_text(files: Mapping[str, str]) -> str:
    """``<entity>:<md5>`` for every entity except ``schema`` (sorted by entity), then
    ``configuration:<md5 of those lines joined by ",">``; lines joined by newlines, no final one.

    ``files`` maps relative paths to FHiCL text; only ``*.fcl`` paths are entities (as in the legacy
    import) and, as there, when two paths give the same entity the later one in ``files`` counts.
    MD5s are over the UTF-8 encoding of the text.
    """
    by_entity: dict[str, str] = {}
    for relpath, text in files.items():
        if relpath.endswith(".fcl"):
            by_entity[entity_name(relpath)] = text
    lines = [
        f"{entity}:{hashlib.md5(text.encode('utf-8')).hexdigest()}"
        for entity, text in sorted(by_entity.items())
        if entity != _SCHEMA_ENTITY
    ]
    configuration = hashlib.md5(",".join(lines).encode("utf-8")).hexdigest()
    lines.append(f"configuration:{configuration}")
    return "\n".join(lines)
