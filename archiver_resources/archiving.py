"""The two stages of archiving one run, as plain functions over the stores: import (run record →
artdaqDB) and migration (artdaqDB → UconDB blob, MD5-verified).

Both Dagster assets and the plain benchmark loop call these, so the rules live in one place:
finished runs only, never a second version by accident, never an overwrite without the operator's
policy, and MD5 over the exact bytes sent and received.
"""

import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional

from archiver_resources.artdaqdb import hashes_text, parse_hashes
from archiver_resources.artdaqdb.base import entity_name
from archiver_resources.blob import (
    MetadataScan, MetadataVerdict, PackedFile, PackedOnComparator, pack, pack_to_file,
)
from archiver_resources.errors import (
    AlreadyArchivedError,
    AlreadyUpdatedError,
    DuplicateKeyError,
    FhiclSyntaxError,
    IntegrityError,
    NotArchivedError,
    RunRecordError,
)
from archiver_resources.fhicl import fhicl_equivalent, fhicl_extensions
from archiver_resources.fhiclize import entity_name as fhiclize_entity_name, prepare_run
from archiver_resources.printable import printable
from archiver_resources.runrecords import finished_state, read_run_record

ON_EXISTING_POLICIES = ("skip", "verify", "new_version", "fail")


@dataclass(frozen=True)
class ImportSettings:
    """What the import stage needs to know besides the run: the converter set and the rules."""

    enabled: frozenset
    schema_text: str
    finished_after_seconds: float = 3600.0
    max_file_bytes: int = 64 * 1024 * 1024


@dataclass
class ImportOutcome:
    """What happened to one run in the import stage (becomes materialization metadata)."""

    run: int
    configuration: str
    action: str  # "inserted" | "verified" | "updated"
    versions: list = field(default_factory=list)
    file_count: int = 0
    total_bytes: int = 0
    stored_files: int = 0
    finished_rule: str = ""
    finished_reason: str = ""
    fingerprint: str = ""
    warnings: list = field(default_factory=list)
    latin1_files: list = field(default_factory=list)
    #: stored files that artdaq_database's C++ reader refuses, with the extensions they needed
    beyond_cpp_files: dict = field(default_factory=dict)
    converter_repairs: int = 0  # lines the converters changed to write valid FHiCL (warnings)
    bom_removed_files: list = field(default_factory=list)  # text files with a byte-order mark
    duration_s: float = 0.0


@dataclass
class MigrateOutcome:
    """What happened to one run in the migration stage (becomes materialization metadata)."""

    run: int
    configuration: str
    # "uploaded" | "verified-existing" | "verified-legacy" | "replaced" | "skipped-existing"
    action: str
    version_id: Optional[int] = None
    data_key: Optional[str] = None
    size: int = 0
    md5: str = ""
    adler32: int = 0
    file_count: int = 0
    packed_on: str = ""
    replaced_version_id: Optional[int] = None
    # verified-legacy: the MD5 and Packed on time of the blob UconDB already held
    stored_md5: str = ""
    stored_packed_on: str = ""
    duration_s: float = 0.0
    # What the migration's last streamed download of the run's blob proved (the one download
    # the checks of the same Dagster run rely on): its MD5 and size, how it compared with the
    # blob packed from artdaqDB (``identical``, ``verified-legacy`` or ``mismatch`` with the
    # first difference), the MD5 packed from artdaqDB, and the legacy --validate verdict.
    served_md5: str = ""
    served_size: int = 0
    served_outcome: str = ""
    served_difference: str = ""
    packed_md5: str = ""
    legacy_metadata: Optional[MetadataVerdict] = None

    def action_text(self) -> str:
        """The action for a log line; ``verified-legacy`` with its evidence and both MD5s."""
        if self.action != "verified-legacy":
            return self.action
        return legacy_note(self.stored_packed_on, self.md5, self.stored_md5)


def legacy_note(stored_packed_on: str, md5: str, stored_md5: str) -> str:
    """``verified-legacy (…)``: what an operator reads for a taken-over legacy blob."""
    when = f", packed on {stored_packed_on} UTC" if stored_packed_on else ""
    return (f"verified-legacy (UconDB holds the legacy tool's blob{when}: the same archive, "
            f"only its 'Packed on' lines differ; MD5 ours {md5}, stored {stored_md5})")


@dataclass(frozen=True)
class StoredBlobCheck:
    """How the blob UconDB holds for a run compares with the blob packed from artdaqDB now.

    ``outcome``: ``identical`` (same bytes), ``verified-legacy`` (the same archive: only the two
    ``Packed on`` times differ, as in a blob the legacy tool packed with the wall clock) or
    ``mismatch`` (``difference`` says where).
    """

    run: int
    outcome: str
    packed_md5: str
    packed_size: int
    packed_on: str
    stored_md5: str
    stored_size: int
    stored_packed_on: Optional[str]
    difference: Optional[str]
    meta: Optional[object] = None

    @property
    def verified(self) -> bool:
        return self.outcome != "mismatch"


def prepare_from_disk(run: int, run_dir: Path, settings: ImportSettings, *, force: bool = False):
    """Read a finished run record and fhiclize it; returns a ``PreparedRecord``.

    Raises RunRecordError for an unfinished run (unless forced), unreadable input or a record
    that changed while it was read (retryable), so nothing reaches a store.
    """
    finished = finished_state(run, run_dir, min_age_seconds=settings.finished_after_seconds,
                              force=force)
    if not finished.finished:
        raise RunRecordError(f"run is not finished yet: {finished.reason}", run=run,
                             retryable=True)
    record = read_run_record(run, run_dir, max_file_bytes=settings.max_file_bytes)
    texts = {f.relpath: record.read_text(f.relpath) for f in record.files}
    # Fingerprint before (the listing) and after (a second listing): a record that changed while
    # it was read is not archived in this attempt (retryable RunRecordError naming the file).
    record.confirm_unchanged()
    prepared = prepare_run(run, texts, enabled=settings.enabled, schema_text=settings.schema_text)
    return PreparedRecord(record, finished, texts, prepared)


@dataclass
class PreparedRecord:
    """A run record read from disk and fhiclized, ready for artdaqDB."""

    record: object
    finished: object
    texts: dict
    prepared: object


_APPENDED_STOP_TIME = re.compile(r"\nDAQInterface stop time:[^\n]*\n?\Z")


def without_appended_stop_time(texts: Mapping[str, str]) -> Optional[dict]:
    """The run record as it was before DAQInterface appended the stop time, or None if it has
    none: the one change a run record may see after it was archived (by the age rule)."""
    metadata = texts.get("metadata.txt")
    if metadata is None or not _APPENDED_STOP_TIME.search(metadata):
        return None
    return {**texts, "metadata.txt": _APPENDED_STOP_TIME.sub("\n", metadata, count=1)}


def verify_archived(run: int, source: PreparedRecord, settings: ImportSettings, artdaqdb) -> dict:
    """Check that artdaqDB's ``hashes`` entity matches this run record, allowing for a stop time
    appended after archiving. Returns the matching hashes; raises IntegrityError otherwise."""
    config = source.prepared.config_name
    try:
        return verify_import_hashes(run, config, source.prepared.insert_files, artdaqdb)
    except IntegrityError as mismatch:
        earlier = without_appended_stop_time(source.texts)
        if earlier is None:
            raise
        before = prepare_run(run, earlier, enabled=settings.enabled,
                             schema_text=settings.schema_text)
        try:
            return verify_import_hashes(run, config, before.insert_files, artdaqdb)
        except IntegrityError:
            raise mismatch from None


#: Entities the archiver writes itself, named by what an operator can fix.
GENERATED_FROM_METADATA = "(generated from metadata.txt)"
CONFIGURED_SCHEMA = "schema.fcl (the configured schema: <artdaq_db.fcl_conf_dir>/schema.fcl)"


def in_run_record(error: FhiclSyntaxError, record, *, insert_files: Optional[Mapping] = None,
                  generated: frozenset = frozenset()) -> FhiclSyntaxError:
    """``error`` (which names the artdaqDB entity, e.g. ``settings``) naming the file an operator
    can fix: ``tpc01.fcl``, ``settings.txt (converted to FHiCL entity settings)`` — the line and
    column then count in the converted text — and for the entities the archiver generates,
    where they come from: ``RunHistory.fcl (generated from metadata.txt)``, the configured
    ``schema.fcl``, and ``hashes`` with the run-record file its line stands for.
    ``generated``: the entities of this write that were generated (``RunHistory``,
    ``RunHistory2``); ``insert_files``: the files the ``hashes`` entity was computed from."""
    entity = error.name
    if entity in generated:
        name = f"{entity}.fcl {GENERATED_FROM_METADATA}"
    elif entity == "schema":
        name = CONFIGURED_SCHEMA
    elif entity == "hashes":
        name = _hashes_source(error.line, record, insert_files)
    else:
        sources = _record_files_of(entity, record)
        fcl = [s for s in sources if s.endswith(".fcl")]
        if fcl:
            name = fcl[0]
        elif sources:
            name = f"{sources[0]} (converted to FHiCL entity {entity})"
        else:
            return error
    named = FhiclSyntaxError(error.reason, name=name, line=error.line, column=error.column,
                             excerpt=error.excerpt)
    named.retryable = error.retryable
    return named


def _hashes_source(line: int, record, insert_files: Optional[Mapping]) -> str:
    """``hashes`` holds one ``<entity>:<md5>`` line per stored file: name the run-record file
    whose name made line ``line`` (e.g. a file name with a blank is no FHiCL key)."""
    name = "hashes (generated from the names and contents of the run record's files)"
    if not insert_files:
        return name
    lines = hashes_text(insert_files).split("\n")
    if not 0 < line <= len(lines):
        return name
    entity = lines[line - 1].rsplit(":", 1)[0]
    sources = _record_files_of(entity, record)
    return f"{name[:-1]}; line {line} is for {sources[0]})" if sources else name


def _record_files_of(entity: str, record) -> list:
    """The run-record files (sorted) that become ``entity`` (``fhiclize.entity_name``)."""
    return sorted(f.relpath for f in record.files if fhiclize_entity_name(f.relpath) == entity)


def import_run(run: int, run_dir: Path, artdaqdb, settings: ImportSettings, *,
               force: bool = False) -> ImportOutcome:
    """Archive one run record into artdaqDB as ``<run>/<config>`` (idempotent).

    A run already archived is verified against its stored ``hashes`` entity instead of being
    inserted again; the RunHistory2 update is added once the stop time is known.
    """
    started = time.monotonic()
    source = prepare_from_disk(run, run_dir, settings, force=force)
    record, finished, prepared = source.record, source.finished, source.prepared
    texts = source.texts
    config = prepared.config_name
    outcome = ImportOutcome(
        run=run, configuration=f"{run}/{config}", action="inserted",
        file_count=len(record.files), total_bytes=record.total_bytes,
        stored_files=len(prepared.insert_files), finished_rule=finished.rule,
        finished_reason=finished.reason, fingerprint=record.fingerprint,
        warnings=[printable(w) for w in list(record.warnings) + list(prepared.warnings)],
        latin1_files=[printable(f) for f in getattr(record, "latin1_files", [])],
        converter_repairs=prepared.repair_count,
        bom_removed_files=list(prepared.bom_removed),
    )
    for relpath, text in sorted(prepared.insert_files.items()):
        needed = fhicl_extensions(text)
        if needed:
            outcome.beyond_cpp_files[printable(relpath)] = sorted(needed)
            outcome.warnings.append(printable(
                f"{relpath}: archived with {', '.join(sorted(needed))} (FHiCL that "
                "artdaq_database's C++ reader refuses; C++ tools still read the stored record)"))
    generated = frozenset({"RunHistory"} if "RunHistory" in settings.enabled
                          and "metadata.txt" in texts else ())
    try:
        artdaqdb.archive_run(run, config, prepared.insert_files)
    except FhiclSyntaxError as error:  # parsed inside the store's write (rolled back)
        raise in_run_record(error, record, insert_files=prepared.insert_files,
                            generated=generated) from None
    except AlreadyArchivedError:
        verify_archived(run, source, settings, artdaqdb)
        outcome.action = "verified"
    # RunHistory2 goes in once, when the stop time is known (a start time alone would freeze an
    # update without it, the legacy defect); a run archived earlier gets it when it appears.
    if prepared.update_files and finished.stop_time:
        versions = artdaqdb.versions(run, config)
        if not any(v != f"{run}/{config}" for v in versions):
            try:  # once: a concurrent import of the same run may have added it meanwhile
                artdaqdb.update_run(run, config, prepared.update_files, once=True)
            except AlreadyUpdatedError:
                pass
            except FhiclSyntaxError as error:
                raise in_run_record(error, record, generated=frozenset({"RunHistory2"})) \
                    from None
            else:
                if outcome.action == "verified":
                    outcome.action = "updated"
    outcome.versions = artdaqdb.versions(run, config)
    outcome.duration_s = time.monotonic() - started
    return outcome


def verify_import_hashes(run: int, config: str, insert_files: Mapping[str, str], artdaqdb) -> dict:
    """Compare artdaqDB's stored ``hashes`` entity with the hashes of the prepared files.

    Returns the expected mapping; raises IntegrityError naming the entities that differ.
    """
    expected = parse_hashes(hashes_text(insert_files))
    stored_text = artdaqdb.read_hashes(run, config)
    if stored_text is None:
        # bulkloader stores no hashes entity: compare what artdaqDB exports instead.
        verify_by_export(run, config, insert_files, artdaqdb)
        return expected
    stored = parse_hashes(stored_text)
    if stored != expected:
        differing = sorted(k for k in set(stored) | set(expected) if stored.get(k) != expected.get(k))
        raise IntegrityError(
            "the run record differs from what artdaqDB holds (entities: "
            + ", ".join(differing[:10]) + (" ..." if len(differing) > 10 else "") + ")",
            run=run, expected=expected.get("configuration", ""),
            actual=stored.get("configuration", ""))
    return expected


def verify_by_export(run: int, config: str, insert_files: Mapping[str, str], artdaqdb) -> None:
    """Every prepared file must come back from artdaqDB with the same FHiCL data (the export is
    regenerated text, so layout and comments may differ); raises IntegrityError naming the
    entities that are missing or differ."""
    exported = artdaqdb.export_run(run, config)
    differing = []
    for relpath, text in sorted(insert_files.items()):
        name = f"{entity_name(relpath)}.fcl"
        stored = exported.get(name)
        if stored is None or not fhicl_equivalent(text, stored, a_name=relpath, b_name=name):
            differing.append(entity_name(relpath))
    if differing:
        raise IntegrityError(
            "the run record differs from what artdaqDB exports (entities: "
            + ", ".join(differing[:10]) + (" ..." if len(differing) > 10 else "") + ")", run=run)


def _export(run: int, artdaqdb, configuration: Optional[str], spool_dir: Optional[Path] = None):
    config_full = configuration or artdaqdb.find_configuration(run)
    if not config_full:
        raise NotArchivedError("no configuration found in artdaqDB", run=run)
    config = config_full.split("/", 1)[1] if "/" in config_full else config_full
    spooled = getattr(artdaqdb, "export_run_spooled", None) if spool_dir is not None else None
    if spooled is not None:  # each text in a scratch file until packed
        files = spooled(run, config, spool_dir)
    else:
        files = artdaqdb.export_run(run, config)
    packed_at = artdaqdb.archived_at(run, config)
    return f"{run}/{config}", files, packed_at


def build_blob(run: int, artdaqdb, configuration: Optional[str] = None):
    """Export the run from artdaqDB and pack it; returns (config name, files, packed_at, bytes).

    The ``Packed on`` time is the configuration's own time in artdaqDB, so re-packing the same
    content gives the same bytes and the same MD5.
    """
    name, files, packed_at = _export(run, artdaqdb, configuration)
    return name, files, packed_at, pack(run, files, packed_at)


def build_blob_file(run: int, artdaqdb, directory: Path,
                    configuration: Optional[str] = None) -> tuple[str, int, object, PackedFile]:
    """:func:`build_blob` into ``directory/<run>.blob`` instead of memory (the same bytes);
    returns (config name, file count, packed_at, the packed file with its MD5 and Adler-32).
    The exported texts wait in scratch files under ``directory`` (removed before this returns)
    and are read back one at a time by the packer: neither the blob nor the run's texts are
    ever whole in memory."""
    spool = Path(tempfile.mkdtemp(prefix=f".export-{run}-", dir=directory))
    try:
        name, files, packed_at = _export(run, artdaqdb, configuration, spool_dir=spool)
        packed = pack_to_file(Path(directory) / f"{run}.blob", run, files, packed_at,
                              fsync=False)
        return name, len(files), packed_at, packed
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def migrate_run(run: int, artdaqdb, ucondb, *, on_existing: str = "verify") -> MigrateOutcome:
    """Upload one run's blob to UconDB keyed by run number and prove the stored bytes match.

    A duplicate key counts as archived when the stored blob is ours byte for byte
    (``verified-existing``) or differs only in its two ``Packed on`` times
    (``verified-legacy``: a blob the legacy tool packed from the same content, whatever the
    policy); otherwise the policy decides (verify/fail: IntegrityError; skip: report;
    new_version: override and record the replaced version id). Raises IntegrityError on any MD5
    mismatch after upload.

    The blob goes through a scratch file (packed, streamed up, streamed down and hashed or
    compared), so neither it nor its downloaded copy is ever whole in memory.
    """
    if on_existing not in ON_EXISTING_POLICIES:
        raise ValueError(f"on_existing must be one of {ON_EXISTING_POLICIES}, not {on_existing!r}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"archiver-blob-{run}-") as scratch:
        configuration, file_count, packed_at, packed = build_blob_file(run, artdaqdb,
                                                                       Path(scratch))
        outcome = _upload(run, packed, ucondb, on_existing, MigrateOutcome(
            run=run, configuration=configuration, action="uploaded", size=packed.size,
            md5=packed.md5, adler32=packed.adler32, file_count=file_count,
            packed_on=packed_at.isoformat()))
    outcome.duration_s = time.monotonic() - started
    return outcome


def _upload(run: int, packed: PackedFile, ucondb, on_existing: str,
            outcome: MigrateOutcome) -> MigrateOutcome:
    want = packed.md5
    outcome.packed_md5 = want
    try:
        with open(packed.path, "rb") as body:
            meta = ucondb.put_blob(run, body)
        outcome.version_id, outcome.data_key = meta.id, meta.data_key
    except DuplicateKeyError:
        scan = MetadataScan()
        existing = compare_stored(run, packed, ucondb, on_chunk=scan.update)
        _record_served(outcome, existing.outcome, existing.stored_md5, existing.stored_size,
                       scan, existing.difference)
        if existing.verified:
            outcome.action = ("verified-existing" if existing.outcome == "identical"
                              else "verified-legacy")
            if existing.outcome == "verified-legacy":
                outcome.stored_md5 = existing.stored_md5
                outcome.stored_packed_on = existing.stored_packed_on or ""
            if existing.meta is not None:
                outcome.version_id, outcome.data_key = existing.meta.id, existing.meta.data_key
            return outcome
        if on_existing == "skip":
            outcome.action = "skipped-existing"
            if existing.meta is not None:
                outcome.version_id = existing.meta.id
            outcome.md5 = existing.stored_md5
            return outcome
        if on_existing in ("verify", "fail"):
            raise IntegrityError(
                "UconDB already holds a different blob for this run, not only in its "
                f"'Packed on' lines ({existing.difference}; not overwritten; set on_existing: "
                "new_version to replace it deliberately)",
                run=run, expected=want, actual=existing.stored_md5)
        with open(packed.path, "rb") as body:
            meta = ucondb.put_blob(run, body, override=True)
        outcome.action = "replaced"
        outcome.replaced_version_id = existing.meta.id if existing.meta is not None else None
        outcome.version_id, outcome.data_key = meta.id, meta.data_key
    scan = MetadataScan()
    verify_uploaded(run, ucondb, want, packed.size, on_chunk=scan.update)
    _record_served(outcome, "identical", want, packed.size, scan)
    return outcome


def _record_served(outcome: MigrateOutcome, verdict: str, md5: str, size: int,
                   scan: MetadataScan, difference: Optional[str] = None) -> None:
    """What the download just made proved, for the checks of the same Dagster run."""
    outcome.served_md5, outcome.served_size = md5, size
    outcome.served_outcome, outcome.served_difference = verdict, difference or ""
    outcome.legacy_metadata = scan.result()


def compare_stored(run: int, packed: PackedFile, ucondb,
                   on_chunk: Optional[Callable[[bytes], None]] = None) -> StoredBlobCheck:
    """Download the run's blob by key (streamed) and compare it with the packed file as it
    arrives: the same bytes, the same but for the ``Packed on`` times, or a mismatch.
    ``on_chunk`` also gets every downloaded chunk (e.g. a :class:`MetadataScan`)."""
    with open(packed.path, "rb") as ours:
        comparator = PackedOnComparator(run, ours, packed.size)
        digest = ucondb.blob_digest(run, on_chunk=_both(comparator.update, on_chunk))
    verdict = comparator.result()
    if digest.md5 == packed.md5:
        outcome = "identical"
    elif verdict.only_packed_on:
        outcome = "verified-legacy"
    else:
        outcome = "mismatch"
    return StoredBlobCheck(
        run=run, outcome=outcome, packed_md5=packed.md5, packed_size=packed.size,
        packed_on=verdict.packed_on, stored_md5=digest.md5, stored_size=digest.size,
        stored_packed_on=verdict.stored_packed_on,
        difference=None if outcome != "mismatch" else (verdict.difference or "MD5 differs"),
        meta=digest.meta)


def _both(first: Callable[[bytes], None],
          second: Optional[Callable[[bytes], None]]) -> Callable[[bytes], None]:
    if second is None:
        return first

    def both(chunk: bytes) -> None:
        first(chunk)
        second(chunk)
    return both


def check_stored_blob(run: int, artdaqdb, ucondb, configuration: Optional[str] = None, *,
                      on_chunk: Optional[Callable[[bytes], None]] = None) -> StoredBlobCheck:
    """Pack the run from artdaqDB into a scratch file and compare UconDB's blob with it
    (:func:`compare_stored`, one streamed download; ``on_chunk`` sees its chunks too): the audit
    of the MD5 check and of a verifying reconcile."""
    with tempfile.TemporaryDirectory(prefix=f"archiver-check-{run}-") as scratch:
        _, _, _, packed = build_blob_file(run, artdaqdb, Path(scratch), configuration)
        return compare_stored(run, packed, ucondb, on_chunk=on_chunk)


def verify_uploaded(run: int, ucondb, want_md5: str, want_size: Optional[int] = None, *,
                    on_chunk: Optional[Callable[[bytes], None]] = None) -> str:
    """Download the run's blob by key (streamed) and compare the MD5 of the raw bytes; returns
    the MD5. ``on_chunk`` also gets every downloaded chunk."""
    blob = (ucondb.blob_digest(run) if on_chunk is None
            else ucondb.blob_digest(run, on_chunk=on_chunk))
    got = blob.md5
    if got != want_md5:
        raise IntegrityError("MD5 of the blob UconDB serves differs from the blob we packed",
                             run=run, expected=want_md5, actual=got)
    if want_size is not None and blob.size != want_size:
        raise IntegrityError("size of the blob UconDB serves differs", run=run,
                             expected=str(want_size), actual=str(blob.size))
    return got
