"""The ``hashes`` entity the legacy conftoolp import adds to every initial insert, and the
entity-name rule (docs/formats.md §2): one MD5 line per entity and one over the whole
configuration."""

from __future__ import annotations

import hashlib
from typing import Mapping

__all__ = ["HASHES_ENTITY", "entity_name", "hashes_text"]

HASHES_ENTITY = "hashes"
_SCHEMA_ENTITY = "schema"


def entity_name(relpath: str) -> str:
    r"""The artdaqDB entity a file becomes, the one rule every module uses: its base name (after
    the last ``/`` or ``\``) without its last extension. ``sub/tpc01.fcl`` → ``tpc01`` (group 2
    of the default schema's pattern ``(.*/)(.*)(\.fcl$)``), ``x.fcl.fcl`` → ``x.fcl``, and a
    run-record ``settings.txt``, stored converted as ``settings.fcl``, → ``settings``."""
    base = relpath.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


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
