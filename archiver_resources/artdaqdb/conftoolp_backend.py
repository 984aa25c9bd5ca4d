"""The conftoolp adapter: artdaq_database's SWIG module driven with the legacy archiver's query JSON.

conftoolp reads ``ARTDAQ_DATABASE_URI`` from the environment on every call and is not thread-safe,
so every call (and every multi-call write) runs under one process-wide lock that sets and restores
the variable.
"""

from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Optional

from archiver_resources.errors import ArtdaqDBError

from .base import (
    SYSTEM_LAYOUT, ArchiveResult, ArtdaqDB, Clock, PlannedDocument, split_configuration_name,
    version_number,
)

#: serialises every conftoolp call in this process (the module and os.environ are global)
CONFTOOLP_LOCK = threading.RLock()
URI_VARIABLE = "ARTDAQ_DATABASE_URI"


def import_conftoolp() -> Any:
    """The real SWIG module, or ArtdaqDBError naming what to set up."""
    try:
        import conftoolp  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ArtdaqDBError("cannot import 'conftoolp'; set up the artdaq_database environment "
                            f"(PYTHONPATH, LD_LIBRARY_PATH): {exc}") from exc
    return conftoolp


def conftoolp_available() -> bool:
    try:
        import_conftoolp()
    except ArtdaqDBError:
        return False
    return True


# The legacy tool's query JSON, unchanged (docs/stores.md, "conftoolp (legacy SWIG module)"):
# findconfigs (gui) lists configurations, findversions (csv, SystemLayout) lists versions, store
# (fhicl) writes one entity, buildfilter (gui) gives the queries that export a configuration.

def findconfigs_query(search: str = "*") -> dict:
    return {"operation": "findconfigs", "dataformat": "gui",
            "filter": {"configurations.name": search}}


def findversions_query() -> dict:
    return {"operation": "findversions", "dataformat": "csv", "collection": SYSTEM_LAYOUT,
            "filter": {"entities.name": "*"}}


def store_query(run: int, name: str, version: str, doc: PlannedDocument) -> dict:
    return {"operation": "store", "dataformat": "fhicl", "collection": doc.collection,
            "filter": {"configurations.name": name, "version": version,
                       "entities.name": doc.entity, "runs.name": str(run)}}


def composition_query(name: str) -> dict:
    return {"operation": "buildfilter", "dataformat": "gui",
            "filter": {"configurations.name": name}}


class ConftoolpArtdaqDB(ArtdaqDB):
    """artdaqDB through conftoolp on ``uri`` (set as ARTDAQ_DATABASE_URI around each call)."""

    def __init__(self, uri: str, *, module: Any = None, clock: Optional[Clock] = None):
        super().__init__(uri, clock=clock)
        self.module = module if module is not None else import_conftoolp()
        with self._environment():
            if hasattr(self.module, "set_default_locale"):
                self.module.set_default_locale()

    # ---- calls --------------------------------------------------------------------------------

    @contextmanager
    def _environment(self) -> Iterator[None]:
        with CONFTOOLP_LOCK:
            previous = os.environ.get(URI_VARIABLE)
            os.environ[URI_VARIABLE] = self.uri
            try:
                yield
            finally:
                if previous is None:
                    os.environ.pop(URI_VARIABLE, None)
                else:
                    os.environ[URI_VARIABLE] = previous

    def call(self, function: str, query: dict, *args: str) -> str:
        """``conftoolp.<function>(json(query), *args)``; ``(False, text)`` → ArtdaqDBError."""
        with self._environment():
            try:
                ok, payload = getattr(self.module, function)(json.dumps(query), *args)
            except Exception as exc:  # the SWIG layer raises plain RuntimeError etc.
                raise ArtdaqDBError(f"conftoolp {function} raised {type(exc).__name__}: {exc}") from exc
        if not ok:
            raise ArtdaqDBError(f"conftoolp {function} ({query.get('operation')}) failed: {payload}")
        return payload

    def _search(self, function: str, query: dict) -> list[dict]:
        payload = self.call(function, query)
        try:
            return list(json.loads(payload).get("search", []))
        except (ValueError, AttributeError) as exc:
            raise ArtdaqDBError(f"conftoolp {function} returned unreadable JSON: {exc}") from exc

    # ---- primitives ---------------------------------------------------------------------------

    def _configuration_names(self) -> Iterable[str]:
        return [str(e.get("name", "")).strip() for e in self._search("find_configurations",
                                                                     findconfigs_query())]

    def _has_configuration(self, name: str) -> bool:
        parsed = split_configuration_name(name)
        search = f"{parsed[0]}/*" if parsed else name
        return any(str(e.get("name", "")).strip() == name
                   for e in self._search("find_configurations", findconfigs_query(search)))

    def _versions(self, name: str) -> list[str]:
        payload = self.call("find_versions", findversions_query())
        return [v.strip() for v in payload.split(",") if version_number(name, v.strip()) is not None]

    def _compositions(self, name: str) -> list[dict]:
        return [e["query"] for e in self._search("configuration_composition", composition_query(name))
                if isinstance(e.get("query"), dict)]

    def _records(self, name: str) -> list[dict]:
        records = []
        for query in self._compositions(name):
            payload = self.call("read_document", dict(query, dataformat="db"))
            try:
                records.append(json.loads(payload))
            except ValueError as exc:
                raise ArtdaqDBError(f"conftoolp read_document (db) of {name} returned "
                                    f"unreadable JSON: {exc}") from exc
        return records

    def _store(self, run: int, name: str, docs: list[PlannedDocument], timestamp: str, *,
               initial: bool, once: bool = False) -> ArchiveResult:
        with CONFTOOLP_LOCK:  # check and writes form one step for this process
            version = self._version_for(run, name, initial=initial, once=once)
            for doc in docs:  # plan order: SystemLayout (what presence checks read) last
                self.call("write_document", store_query(run, name, version, doc), doc.text)
        return ArchiveResult(run=run, configuration=name, version=version,
                             entities=tuple(doc.entity for doc in docs),
                             assigned=self._assigned_of(name))

    # ---- reads in the legacy export form ------------------------------------------------------

    def export_run(self, run: int, config: Optional[str] = None) -> dict[str, str]:
        """Legacy export: composition, then each query read with ``dataformat: origin`` (conftoolp
        resolves several versions of an entity to the highest)."""
        name = self._require(run, config)
        files = {}
        for query in self._compositions(name):
            entity = query.get("filter", {}).get("entities.name", "")
            files[f"{entity}.fcl"] = self.call("read_document", dict(query, dataformat="origin"))
        return dict(sorted(files.items()))

    def read_hashes(self, run: int, config: str) -> Optional[str]:
        return self.export_run(run, config).get("hashes.fcl")
