"""The artdaqDB interface (`ArtdaqDB`) and the logic every backend shares.

Shared here: configuration names and versions (exact matching), the document plan of a run (entity
per file, collection per entity, the ``hashes`` entity), artdaq_database document records, oids,
timestamps, and the public methods built on a few backend primitives.
"""

from __future__ import annotations

import os
import re
import uuid
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Optional
from archiver_resources.errors import (
    AlreadyArchivedError, AlreadyUpdatedError, ArtdaqDBError, NotArchivedError,
)
from archiver_resources.fhicl.record import format_timestamp  # the one artdaq_database time format
from archiver_resources.redaction import redact_uri

RUN_HISTORY = "RunHistory"
SYSTEM_LAYOUT = "SystemLayout"
SYSTEM_METADATA = "SystemMetadata"
SCHEMA_ENTITY = "schema"
HASHES_ENTITY = "hashes"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"  # parsing; written with milliseconds (format_timestamp)
INDEX_KEYS = ("version", "configurations.name", "entities.name", "aliases.active.name", "runs.name")

Clock = Callable[[], datetime]


def local_now() -> datetime:
    """The default clock: now, in local time, timezone-aware."""
    return datetime.now().astimezone()


# --------------------------------------------------------------------------------------------
# Names and versions
# --------------------------------------------------------------------------------------------

def configuration_name(run: int, config: str) -> str:
    """``<run>/<config>``, the configuration (and first version) name of an archived run."""
    if not isinstance(run, int) or isinstance(run, bool) or run < 0:
        raise ArtdaqDBError(f"invalid run number {run!r}")
    if not config or "/" in config or config != config.strip():
        raise ArtdaqDBError(f"invalid configuration name {config!r}", run=run)
    return f"{run}/{config}"


_RUN_NAME = re.compile(r"^\s*(\d+)/(.+)$")


def split_configuration_name(name: str) -> Optional[tuple[int, str]]:
    """``"1234/standard"`` → ``(1234, "standard")``; ``None`` for names that are not run history."""
    match = _RUN_NAME.match(name)
    if not match:
        return None
    return int(match.group(1)), match.group(2).strip()


def version_number(name: str, version: str) -> Optional[int]:
    """0 for the initial version ``name``, N for ``<name>v<N>``, ``None`` for anything else (exact)."""
    if version == name:
        return 0
    if not version.startswith(name):  # the common case in a scan of every version: no regex
        return None
    match = re.fullmatch(re.escape(name) + r"v(\d+)", version)
    return int(match.group(1)) if match else None


def sort_versions(name: str, versions: Iterable[str]) -> list[str]:
    """The exact versions of configuration ``name`` in numeric order (``v10`` after ``v9``)."""
    numbered = {v: version_number(name, v) for v in set(versions)}
    return sorted((v for v, n in numbered.items() if n is not None), key=lambda v: numbered[v])


def next_version(name: str, versions: Iterable[str]) -> str:
    """``<name>v<N+1>``, N the largest exact ``v<N>`` suffix among ``versions`` (0 if none)."""
    numbers = [version_number(name, v) for v in versions]
    return f"{name}v{max([n for n in numbers if n is not None] + [0]) + 1}"


# --------------------------------------------------------------------------------------------
# Timestamps, oids, URIs
# --------------------------------------------------------------------------------------------

def parse_timestamp(text: str) -> datetime:
    """Inverse of :func:`format_timestamp`; always timezone-aware."""
    try:
        return datetime.strptime(text.strip(), TIMESTAMP_FORMAT)
    except ValueError as exc:
        raise ArtdaqDBError(f"unreadable artdaqDB timestamp {text!r}: {exc}") from exc


def new_oid() -> str:
    """A filesystemdb oid: the first 24 hex digits of a version-4 UUID (13th character ``4``)."""
    return uuid.uuid4().hex[:24]


def archive_uri(uri: str, mode: str) -> str:
    """The database actually written: ``verbatim`` (legacy archiver default) or ``append``
    (conftool's rule: the database name plus ``_archive``)."""
    if mode == "verbatim":
        return uri
    if mode != "append":
        raise ArtdaqDBError(f"archive_suffix_mode must be 'verbatim' or 'append', not {mode!r}")
    match = re.match(r"^([a-z]+://[^/]*/)([^?]*)(.*)$", uri)
    if not match or not match.group(2):
        raise ArtdaqDBError(f"cannot derive the _archive database from {redact_uri(uri)}")
    head, name, tail = match.groups()
    name = name.rstrip("/")
    return f"{head}{name}_archive{tail}"


# --------------------------------------------------------------------------------------------
# Hashes entity
# --------------------------------------------------------------------------------------------

def hashes_text(files: Mapping[str, str]) -> str:
    """The ``hashes`` entity text for prepared files (relative path → FHiCL text).

    One rule, ``archiver_resources.fhiclize.hashes.hashes_text`` (per entity except ``schema``,
    sorted, ``<entity>:<md5 of its text>``, then ``configuration:<md5 of those lines joined by
    ",">``), applied to the entities this store writes.
    """
    from archiver_resources.fhiclize.hashes import hashes_text as shared

    entity_texts = {entity: text for entity, (_, text) in plan_entities(files).items()}
    return shared({f"{entity}.fcl": text for entity, text in entity_texts.items()})


_HASH_LINE = re.compile(r'^\s*([^\s:#]+)\s*:\s*"?([0-9a-fA-F]{32})"?\s*(?:#.*)?$')


def parse_hashes(text: str) -> dict[str, str]:
    """``{entity: md5}`` from a hashes entity, raw (``boot:abc…``) or regenerated FHiCL
    (``boot: "abc…"``); ``configuration`` is included. Lines that are not hashes are skipped."""
    result = {}
    for line in text.splitlines():
        match = _HASH_LINE.match(line)
        if match:
            result[match.group(1)] = match.group(2).lower()
    return result


# --------------------------------------------------------------------------------------------
# Document plan and records
# --------------------------------------------------------------------------------------------

def entity_name(relpath: str) -> str:
    """The entity of a prepared file (``archiver_resources.fhiclize.hashes.entity_name``: its base
    name without ``.fcl``); only ``*.fcl`` files with a name are entities."""
    from archiver_resources.fhiclize.hashes import entity_name as shared

    entity = shared(relpath)
    if not relpath.endswith(".fcl") or not entity:
        raise ArtdaqDBError(f"file {relpath!r} is not a FHiCL file (*.fcl); cannot archive it")
    return entity


def collection_of(entity: str) -> str:
    """``schema`` → ``SystemLayout``; every other run-history entity → ``RunHistory``."""
    return SYSTEM_LAYOUT if entity == SCHEMA_ENTITY else RUN_HISTORY


def plan_entities(files: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """``{entity: (relpath, text)}``; when two files give one entity the later one counts, as in
    the legacy import (``prepare_run`` already warned about it)."""
    plan: dict[str, tuple[str, str]] = {}
    for relpath, text in files.items():
        plan[entity_name(relpath)] = (relpath, text)
    return plan


@dataclass(frozen=True)
class PlannedDocument:
    """One document to store: entity, collection and FHiCL text."""

    entity: str
    collection: str
    text: str
    relpath: str  # the prepared file's relative path (``hashes.fcl`` for the hashes entity)


def plan_documents(run: int, files: Mapping[str, str], *, with_hashes: bool) -> list[PlannedDocument]:
    """Documents of one insert or update, ordered RunHistory entities, ``hashes``, then ``schema``
    (the SystemLayout document is the commit marker of the native stores, so it comes last)."""
    plan = plan_entities(files)
    if SCHEMA_ENTITY not in plan:
        raise ArtdaqDBError("prepared files lack schema.fcl", run=run)
    if with_hashes and HASHES_ENTITY in plan:
        raise ArtdaqDBError("prepared files already contain a hashes.fcl entity", run=run)
    docs = [PlannedDocument(e, collection_of(e), t, p) for e, (p, t) in sorted(plan.items())
            if e != SCHEMA_ENTITY]
    if with_hashes:
        docs.append(PlannedDocument(HASHES_ENTITY, RUN_HISTORY, hashes_text(files), "hashes.fcl"))
    schema_path, schema = plan[SCHEMA_ENTITY]
    docs.append(PlannedDocument(SCHEMA_ENTITY, SYSTEM_LAYOUT, schema, schema_path))
    return docs


def build_record(doc: PlannedDocument, *, run: int, name: str, version: str, timestamp: str,
                 oid: str) -> dict:
    """The complete artdaq_database document record of one planned document: the FHiCL
    conversion (:func:`archiver_resources.fhicl.fhicl_to_record`) in :func:`record_envelope`."""
    from archiver_resources.fhicl import fhicl_to_record

    converted = fhicl_to_record(doc.text, doc.entity, timestamp=timestamp)
    return record_envelope(converted, entity=doc.entity, collection=doc.collection, run=run,
                           name=name, version=version, timestamp=timestamp, oid=oid)


#: the bookkeeping events of a stored document, in the order the C++ ``write_document`` posts them
BOOKKEEPING_EVENTS = ("addConfiguration", "setVersion", "setCollection", "addEntity", "addRun")


def record_envelope(converted: Mapping, *, entity: str, collection: str, run: int, name: str,
                    version: str, timestamp: str, oid: str) -> dict:
    """What artdaq_database's ``write_document`` (dataformat ``fhicl``) stores around a converted
    FHiCL record: field for field what its C++ writes, with one clock reading per write.

    ``converted`` is ``fhicl_to_record``'s result; its ``document.data``/``metadata``,
    ``comments`` and ``origin`` format/name/source/timestamp are kept as they are. Added:

    * ``document.search: []`` and ``origin.created`` / ``origin.rawdata: []`` (the C++ record
      overlay creates them when the record is built);
    * ``version``, ``entities``, ``configurations``, ``runs``, ``collection`` and ``_id``;
    * ``bookkeeping``: ``isdeleted``/``isreadonly`` false, ``updates`` = one event per
      :data:`BOOKKEEPING_EVENTS` entry in that order, each ``{"event", "timestamp", "value":
      {"name", "assigned"}}`` (setVersion and setCollection carry an ``assigned`` too), and
      ``created``;
    * ``changelog``, ``configtype`` ``"notprovided"``, empty ``aliases`` and ``attachments``.

    Every time in it is ``timestamp``. The C++ reads its clock anew for each of them, so its
    times differ by a millisecond or two within a document and by a few milliseconds between
    the documents of one archive; one time per write keeps ``archived_at`` equal to the
    write's time and its index entry single (see docs/stores.md).
    """
    assigned = lambda value: {"name": value, "assigned": timestamp}  # noqa: E731
    values = {"addConfiguration": name, "setVersion": version, "setCollection": collection,
              "addEntity": entity, "addRun": str(run)}
    document = dict(converted.get("document") or {})
    document.setdefault("search", [])
    origin = dict(converted.get("origin") or {})
    origin.setdefault("created", timestamp)
    origin.setdefault("rawdata", [])
    record = dict(converted)
    record.update({
        "document": document,
        "origin": origin,
        "version": version,
        "entities": [assigned(entity)],
        "configurations": [assigned(name)],
        "changelog": "notprovided",
        "bookkeeping": {
            "isdeleted": False, "isreadonly": False,
            "updates": [{"event": event, "timestamp": timestamp, "value": assigned(values[event])}
                        for event in BOOKKEEPING_EVENTS],
            "created": timestamp,
        },
        "_id": {"$oid": oid},
        "collection": collection,
        "aliases": {"active": [], "history": []},
        "runs": [assigned(str(run))],
        "attachments": [],
        "configtype": "notprovided",
    })
    return record


def system_metadata_document(uri: str, create_time: str) -> dict:
    """The ``document`` of the database-information record (``SystemMetadata``) written once
    per database, as the C++ providers write it: ``create_user`` is ``$USER`` (empty when it is
    unset) and ``uname`` the five fields of uname(2). ``uri`` is the caller's: the filesystemdb
    URI, or the MongoDB URI without its password (the C++ stores the password too)."""
    system = os.uname()
    return {
        "name": "artdaq", "uri": uri, "locale": "en_US.UTF-8", "create_time": create_time,
        "create_user": os.environ.get("USER", ""),
        "uname": {"sysname": system.sysname, "nodename": system.nodename,
                  "release": system.release, "version": system.version,
                  "machine": system.machine},
        "database_format": 3,
    }


def record_entity(record: Mapping) -> str:
    """The entity name of a stored record (skipping ``notprovided`` placeholders)."""
    names = [e.get("name") for e in record.get("entities", []) if e.get("name") != "notprovided"]
    if names:
        return names[0]
    return record.get("origin", {}).get("name", "")


def record_assigned(record: Mapping, name: str) -> Optional[datetime]:
    """The ``assigned`` time of configuration ``name`` on a record, if any."""
    for entry in record.get("configurations", []):
        if entry.get("name") == name and entry.get("assigned"):
            return parse_timestamp(entry["assigned"])
    return None


def newest_per_entity(name: str, records: Iterable[Mapping]) -> dict[str, Mapping]:
    """``{entity: record}`` keeping the record of the highest version of ``name`` per entity."""
    best: dict[str, tuple[int, Mapping]] = {}
    for record in records:
        number = version_number(name, record.get("version", ""))
        if number is None:
            number = -1
        entity = record_entity(record)
        if entity not in best or number >= best[entity][0]:
            best[entity] = (number, record)
    return {entity: record for entity, (_, record) in best.items()}


#: exported texts from this size on wait in a spool file (smaller ones stay in memory: a
#: file created per text cost more than the export of a typical run's text on this VM's ext4)
SPOOL_FROM_CHARS = 256 * 1024


class SpooledFiles(Mapping):
    """``{<entity>.fcl: text}`` whose big texts wait in files of a scratch directory and are
    read back on each access (exactly: no newline translation, lone surrogates kept); texts
    under :data:`SPOOL_FROM_CHARS` are held as they are."""

    def __init__(self, paths: Mapping[str, object]):
        self._paths = dict(paths)  # a Path (spooled) or the text itself

    def __getitem__(self, key: str) -> str:
        found = self._paths[key]
        if isinstance(found, str):
            return found
        with open(found, encoding="utf-8", errors="surrogatepass", newline="") as f:
            return f.read()

    def __iter__(self):
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)


def _spool(directory: Path, number: int, text: str) -> Path:
    path = Path(directory) / f"{number}.fcl.txt"
    with open(path, "w", encoding="utf-8", errors="surrogatepass", newline="") as f:
        f.write(text)
    return path


def records_to_files(name: str, records: Iterable[Mapping], *,
                     spool_dir: Optional[Path] = None) -> Mapping[str, str]:
    """``{<entity>.fcl: regenerated FHiCL}`` from a configuration's records (highest version wins).

    Each record is turned into FHiCL text as it arrives, so a lazy ``records`` holds one
    document tree at a time (a tree is ~25× its FHiCL text); a record's error is raised only if
    that record wins, as when choosing first. ``spool_dir``: each big text goes to a file there
    at once and a :class:`SpooledFiles` is returned (a big run's exported texts are not all
    held; a run of small texts is kept in memory).
    """
    from archiver_resources.fhicl import record_to_fhicl

    best: dict[str, tuple[int, object]] = {}
    spooled = 0
    for record in records:
        number = version_number(name, record.get("version", ""))
        if number is None:
            number = -1
        entity = record_entity(record)
        if entity not in best or number >= best[entity][0]:
            try:
                text: object = record_to_fhicl(dict(record))
            except Exception as error:  # noqa: BLE001 - raised below if this record wins
                text = error
            record = None  # the tree goes before the text is spooled
            if spool_dir is not None and isinstance(text, str) and len(text) >= SPOOL_FROM_CHARS:
                spooled += 1
                text = _spool(spool_dir, spooled, text)
            best[entity] = (number, text)
        record = None  # not alive while the next record is read
    files = {}
    for entity, (_, text) in sorted(best.items()):
        if isinstance(text, Exception):
            raise text
        files[f"{entity}.fcl"] = text
    return SpooledFiles(files) if spool_dir is not None else files


# --------------------------------------------------------------------------------------------
# The interface
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ArchiveResult:
    """What one insert or update stored."""

    run: int
    configuration: str
    version: str
    entities: tuple[str, ...]
    document_ids: tuple[str, ...] = ()
    assigned: Optional[datetime] = None
    extra: dict = field(default_factory=dict)


class ArtdaqDB(ABC):
    """One artdaqDB run-history database. Public methods are shared; backends implement the
    underscore primitives. Names are matched exactly (never by prefix)."""

    #: whether archive_run stores the ``hashes`` entity (bulkloader does not)
    writes_hashes = True

    def __init__(self, uri: str, *, clock: Optional[Clock] = None):
        self.uri = uri
        self._clock: Clock = clock or local_now

    # ---- primitives -------------------------------------------------------------------------

    @abstractmethod
    def _configuration_names(self) -> Iterable[str]:
        """Every committed configuration name (from indexes only, no document reads)."""

    @abstractmethod
    def _has_configuration(self, name: str) -> bool:
        """Whether configuration ``name`` is committed (exact)."""

    @abstractmethod
    def _versions(self, name: str) -> list[str]:
        """Committed versions of configuration ``name`` (any order)."""

    @abstractmethod
    def _records(self, name: str) -> list[dict]:
        """Every document record of configuration ``name`` (all versions)."""

    def _iter_records(self, name: str) -> Iterable[dict]:
        """The records of :meth:`_records`, lazily where the backend can (one tree at a time)."""
        return iter(self._records(name))

    def _iter_entity_records(self, name: str, entity: str) -> Iterable[dict]:
        """The records of :meth:`_iter_records` whose :func:`record_entity` is ``entity``;
        backends with an index by entity read only those documents."""
        return (r for r in self._iter_records(name) if record_entity(r) == entity)

    @abstractmethod
    def _store(self, run: int, name: str, docs: list[PlannedDocument], timestamp: str, *,
               initial: bool, once: bool = False) -> ArchiveResult:
        """Store ``docs`` as version :meth:`_version_for` (computed under the backend's guard);
        for ``initial``, refuse with AlreadyArchivedError if the configuration exists; for an
        update with ``once``, refuse with AlreadyUpdatedError if an update version exists."""

    def _version_for(self, run: int, name: str, *, initial: bool, once: bool = False) -> str:
        """The version a store writes: checks existence, ``<name>`` or ``<name>v<N+1>``."""
        exists = self._has_configuration(name)
        if initial:
            if exists:
                raise AlreadyArchivedError(f"configuration {name} is already archived", run=run)
            return name
        if not exists:
            raise NotArchivedError(f"configuration {name} not found for update", run=run)
        versions = self._versions(name)
        if once and any(version_number(name, v) for v in versions):
            raise AlreadyUpdatedError(f"configuration {name} already has its update", run=run)
        return next_version(name, versions)

    def _assigned_of(self, name: str) -> Optional[datetime]:
        """Newest assigned time of ``name``; backends may answer from an index."""
        times = [t for t in (record_assigned(r, name) for r in self._iter_records(name)) if t]
        return max(times) if times else None

    # ---- public API ---------------------------------------------------------------------------

    def archive_run(self, run: int, config: str, files: Mapping[str, str]) -> ArchiveResult:
        """Initial insert of version ``<run>/<config>`` (plus ``hashes`` when the backend writes it)."""
        name = configuration_name(run, config)
        docs = plan_documents(run, files, with_hashes=self.writes_hashes)
        self._version_for(run, name, initial=True)
        return self._store(run, name, docs, self._timestamp(), initial=True)

    def update_run(self, run: int, config: str, files: Mapping[str, str], *,
                   once: bool = False) -> str:
        """Add ``files`` (RunHistory2 + schema) as version ``<run>/<config>v<N+1>``.

        ``once``: only if the configuration has no update yet, decided under the store's write
        guard (AlreadyUpdatedError otherwise), so two concurrent imports add one update."""
        name = configuration_name(run, config)
        docs = plan_documents(run, files, with_hashes=False)
        self._version_for(run, name, initial=False, once=once)
        return self._store(run, name, docs, self._timestamp(), initial=False, once=once).version

    def archived_runs(self) -> dict[int, str]:
        """``{run: "<run>/<config>"}``; a run with several configurations maps to its newest."""
        return self._runs_of(self._configuration_names())

    def _runs_of(self, names: Iterable[str]) -> dict[int, str]:
        by_run: dict[int, str] = {}
        several: dict[int, list[str]] = {}
        for name in names:  # hot loop over up to 10^5 names: no regex
            head, slash, config = name.partition("/")
            head = head.strip()
            if not slash or not config.strip() or not (head.isascii() and head.isdigit()):
                continue
            run = int(head)
            if run in by_run:
                several.setdefault(run, [by_run[run]]).append(name.strip())
            else:
                by_run[run] = name.strip()
        for run, names in several.items():
            by_run[run] = self._newest(names)
        return by_run

    def find_configuration(self, run: int) -> Optional[str]:
        """The configuration name archived for ``run`` (newest if several), or ``None``."""
        # Only names whose run part contains the run's digits can name it (zero padding and
        # spaces included): a substring test per name instead of parsing 10^5 names per run.
        digits = str(int(run))
        return self._runs_of(n for n in self._configuration_names()
                             if digits in n.partition("/")[0]).get(run)

    def is_archived(self, run: int, config: str) -> bool:
        """Whether configuration ``<run>/<config>`` exists (exact match, never a prefix)."""
        return self._has_configuration(configuration_name(run, config))

    def versions(self, run: int, config: str) -> list[str]:
        """Versions of ``<run>/<config>`` in order: ``<run>/<config>``, ``…v1``, ``…v2``, …"""
        name = configuration_name(run, config)
        return sort_versions(name, self._versions(name))

    def export_run(self, run: int, config: Optional[str] = None) -> dict[str, str]:
        """``{<entity>.fcl: regenerated FHiCL}`` over every version of the configuration, the
        highest version winning per entity (so RunHistory2 and the newer schema are included)."""
        name = self._require(run, config)
        return records_to_files(name, self._iter_records(name))

    def export_run_spooled(self, run: int, config: Optional[str], directory: Path) -> Mapping[str, str]:
        """:meth:`export_run` with each regenerated text kept in a file under ``directory`` until
        it is read (:class:`SpooledFiles`), so packing a big run never holds all its texts. A
        backend with its own ``export_run`` (tools, conftoolp) returns that."""
        if type(self).export_run is not ArtdaqDB.export_run:
            return self.export_run(run, config)
        name = self._require(run, config)
        return records_to_files(name, self._iter_records(name), spool_dir=directory)

    def read_hashes(self, run: int, config: str) -> Optional[str]:
        """The ``hashes`` entity as regenerated FHiCL (compare with :func:`parse_hashes`)."""
        name = self._require(run, config)
        records = newest_per_entity(name, self._iter_entity_records(name, HASHES_ENTITY))
        if HASHES_ENTITY not in records:
            return None
        from archiver_resources.fhicl import record_to_fhicl

        return record_to_fhicl(dict(records[HASHES_ENTITY]))

    def archived_at(self, run: int, config: str) -> datetime:
        """Newest ``assigned`` time of the configuration's documents (timezone-aware)."""
        name = self._require(run, config)
        moment = self._assigned_of(name)
        if moment is None:
            raise ArtdaqDBError(f"configuration {name} has no assigned time", run=run)
        return moment

    @contextmanager
    def batch(self, *, flush_seconds: Optional[float] = None) -> Iterator["ArtdaqDB"]:
        """Group commit of the writes made inside the block (one Dagster range step).

        A backend that rewrites whole index files per write (filesystemdb) may defer them to
        the end of the block, where they are written once; every run written inside is
        complete or absent for every reader at every moment, and the stored bytes are the same
        as without the block. ``flush_seconds``: also write the deferred indexes when that much
        time has passed since the last flush. The default does nothing (each write commits on
        its own); blocks nest (only the outermost one flushes)."""
        yield self

    def describe(self) -> str:
        """The database URI without its password."""
        return redact_uri(self.uri)

    def close(self) -> None:
        """Release connections; the default holds none."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r})"

    # ---- helpers ------------------------------------------------------------------------------

    def _timestamp(self) -> str:
        return format_timestamp(self._clock())

    def _require(self, run: int, config: Optional[str]) -> str:
        name = configuration_name(run, config) if config is not None else self.find_configuration(run)
        if name is None or not self._has_configuration(name):
            raise NotArchivedError(
                f"no configuration {name or f'{run}/*'} in artdaqDB {self.describe()}", run=run)
        return name

    def _newest(self, names: list[str]) -> str:
        if len(names) == 1:
            return names[0]
        epoch = datetime.min.replace(tzinfo=local_now().tzinfo)
        return max(sorted(names), key=lambda n: self._assigned_of(n) or epoch)
