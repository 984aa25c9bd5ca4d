"""artdaqDB access: the `ArtdaqDB` interface and `open_artdaqdb`, which picks a backend from the
legacy configuration (``artdaq_db.database_uri``, ``use_tools``, ``remote_host``)."""

from __future__ import annotations

from typing import Any, Optional

from archiver_resources.errors import ArtdaqDBError

from .base import (
    ArchiveResult, ArtdaqDB, archive_uri, configuration_name, hashes_text, parse_hashes, redact_uri,
)

__all__ = ["ArchiveResult", "ArtdaqDB", "open_artdaqdb", "configuration_name", "hashes_text",
           "parse_hashes", "redact_uri"]

BACKENDS = ("auto", "filesystem", "mongo", "conftoolp", "bulktools")


def open_artdaqdb(database_uri: str, *, use_tools: bool = False, remote_host: Optional[str] = None,
                  tool_timeout: float = 300.0, archive_suffix_mode: str = "verbatim",
                  backend: str = "auto", clock=None, mongo_client: Any = None,
                  conftoolp_module: Any = None, fsync: bool = True,
                  tool_path: Optional[str] = None) -> ArtdaqDB:
    """Open the run-history database.

    ``database_uri`` is used verbatim as the archive database (legacy behaviour: operators give
    ``…/db_archive``); ``archive_suffix_mode="append"`` instead appends ``_archive`` to the database
    name as conftool.py does. Backend choice (``backend="auto"``): ``use_tools`` → bulkloader /
    bulkdownloader adapter; otherwise ``mongodb://`` → native MongoDB, anything else → native
    filesystemdb. ``backend="conftoolp"`` selects the legacy SWIG module (``ArtdaqDBError`` if it
    cannot be imported). ``tool_path`` is put first on the bulk tools' PATH (legacy ``<project>/lib``).
    """
    if backend not in BACKENDS:
        raise ArtdaqDBError(f"unknown artdaqDB backend {backend!r}; choose one of {BACKENDS}")
    uri = archive_uri(database_uri, archive_suffix_mode)
    if backend == "auto":
        backend = "bulktools" if use_tools else native_backend_name(uri)
    if backend == "bulktools":
        from .bulktools import BulkToolsArtdaqDB

        return BulkToolsArtdaqDB(uri, remote_host=remote_host, timeout=tool_timeout, clock=clock,
                                 conftoolp_module=conftoolp_module, mongo_client=mongo_client,
                                 tool_path=tool_path)
    if backend == "conftoolp":
        from .conftoolp_backend import ConftoolpArtdaqDB

        return ConftoolpArtdaqDB(uri, module=conftoolp_module, clock=clock)
    return open_native(uri, clock=clock, mongo_client=mongo_client, fsync=fsync)


def native_backend_name(uri: str) -> str:
    """``mongo`` for URIs starting with ``mongo`` (artdaq_database's provider rule), else ``filesystem``."""
    return "mongo" if uri.startswith("mongo") else "filesystem"


def open_native(uri: str, *, clock=None, mongo_client: Any = None, fsync: bool = True) -> ArtdaqDB:
    """The pure-Python backend for ``uri`` (filesystemdb or MongoDB)."""
    if native_backend_name(uri) == "mongo":
        from .mongo import MongoArtdaqDB

        return MongoArtdaqDB(uri, clock=clock, client=mongo_client)
    from .filesystem import FilesystemArtdaqDB

    return FilesystemArtdaqDB(uri, clock=clock, fsync=fsync)
