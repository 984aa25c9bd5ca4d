"""Preparation of a run's FHiCL file set in memory: what the legacy archiver built in its temporary
import and update directories, plus the ``schema.fcl`` it adds."""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

from ..errors import ConfigError
from ..runrecords import DEFAULT_CONFIG_NAME, config_name_from_metadata, strip_bom
from .converters import CONVERTERS
from .generators import run_history, run_history2
from .hashes import entity_name
from .repair import Repair

__all__ = [
    "GENERATORS",
    "PreparedRun",
    "SchemaNotFoundError",
    "default_schema_text",
    "load_schema_text",
    "prepare_run",
]

GENERATORS = frozenset({"RunHistory", "RunHistory2"})
"""Generator names of ``fhiclize_generate`` (the converter names are the keys of ``CONVERTERS``)."""

METADATA_TXT = "metadata.txt"
SCHEMA_FCL = "schema.fcl"
RUN_HISTORY_FCL = "RunHistory.fcl"
RUN_HISTORY2_FCL = "RunHistory2.fcl"


class SchemaNotFoundError(ConfigError):
    """``<artdaq_db.fcl_conf_dir>/schema.fcl`` does not exist (legacy message kept)."""

    def __init__(self, path: Path):
        super().__init__(f"Schema not found at {path}")
        self.path = str(path)


@functools.lru_cache(maxsize=1)
def default_schema_text() -> str:
    """The ``schema.fcl`` shipped in this package (run_history and system_layout rules)."""
    resource = importlib.resources.files(__package__).joinpath(SCHEMA_FCL)
    return resource.read_text(encoding="utf-8")


def load_schema_text(fcl_conf_dir: Optional[str]) -> str:
    """``<fcl_conf_dir>/schema.fcl`` when a directory is configured, else the shipped default."""
    if fcl_conf_dir is None:
        return default_schema_text()
    path = Path(fcl_conf_dir) / SCHEMA_FCL
    if not path.is_file():
        raise SchemaNotFoundError(path)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read schema.fcl: {error}", key="artdaq_db.fcl_conf_dir",
                          path=str(path)) from error


def _config_name(metadata_text: Optional[str]) -> str:
    """The configuration name rule (owned by runrecords); no metadata.txt → ``standard``."""
    if metadata_text is None:
        return DEFAULT_CONFIG_NAME
    return config_name_from_metadata(metadata_text)


@dataclass(frozen=True)
class PreparedRun:
    """A run's FHiCL file set, ready for artdaqDB.

    ``insert_files`` (relative path → FHiCL text) is the initial insert, ``schema.fcl`` included;
    ``update_files`` is the RunHistory2 update (``RunHistory2.fcl`` + ``schema.fcl``) or ``None``;
    ``skipped`` names each run-record file that is not stored, with the reason; ``repairs`` maps
    each run-record file to the repairs its conversion needed to be valid FHiCL (also in
    ``warnings``), and ``bom_removed`` lists the text files whose UTF-8 byte-order mark was
    removed.
    """

    run: int
    config_name: str
    insert_files: dict[str, str]
    update_files: Optional[dict[str, str]]
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    repairs: dict[str, list[Repair]] = field(default_factory=dict)
    bom_removed: list[str] = field(default_factory=list)

    @property
    def repair_count(self) -> int:
        return sum(len(found) for found in self.repairs.values())


def _stored_name(relpath: str, enabled: frozenset[str]) -> tuple[Optional[str], str]:
    """Where a run-record file goes: (stored path, "") or (None, why it is not stored)."""
    if relpath.endswith(".fcl"):
        return relpath, ""
    if relpath.endswith(".txt") and "/" not in relpath:
        stem = relpath[: -len(".txt")]
        if stem not in CONVERTERS:
            return None, "no converter for this .txt file; the legacy archiver never loaded it"
        if stem not in enabled:
            return None, f"converter '{stem}' disabled by fhiclize_generate; .txt files are never loaded"
        return f"{stem}.fcl", ""
    if relpath.endswith(".txt"):
        return None, "only top-level .txt files are converted; the legacy archiver never loaded it"
    return None, "not a FHiCL file; the legacy archiver copied it but never loaded it into artdaqDB"


def _add(files: dict[str, str], path: str, text: str, source: str, run: int,
         warnings: list[str]) -> None:
    """Add one stored file; a later source replaces an earlier one, as files did on disk."""
    if path in files:
        warnings.append(f"run {run}: {path} from the run record replaced by {source}")
    files[path] = text


def _entity_clash_warnings(run: int, files: Mapping[str, str]) -> list[str]:
    seen: dict[str, str] = {}
    warnings = []
    for path in files:
        entity = entity_name(path)
        if entity in seen:
            warnings.append(f"run {run}: {seen[entity]} and {path} are both entity '{entity}'; "
                            "artdaqDB keeps only one of them")
        seen[entity] = path
    return warnings


class _Conversion:
    """The text files of one run on their way to the converters: the byte-order-mark rule
    applied once per file, and the repairs each conversion needed to write valid FHiCL collected
    as warnings naming run, file and line."""

    def __init__(self, run: int, files: Mapping[str, str]):
        self.run = run
        self.files = files
        self.texts: dict[str, str] = {}
        self.warnings: list[str] = []
        self.repairs: dict[str, list[Repair]] = {}
        self.bom_removed: list[str] = []

    def text(self, relpath: str) -> str:
        """The file's text without a leading UTF-8 byte-order mark (removed with a warning)."""
        if relpath not in self.texts:
            text, had_bom = strip_bom(self.files[relpath])
            if had_bom:
                self.bom_removed.append(relpath)
                self.warnings.append(f"run {self.run}, file {relpath}: UTF-8 byte-order mark "
                                     "removed before conversion")
            self.texts[relpath] = text
        return self.texts[relpath]

    def convert(self, relpath: str, written: str, convert, *args) -> Optional[str]:
        """``convert(*args, text)``, which writes ``written``, with its repairs recorded
        against ``relpath``."""
        found: list[Repair] = []
        output = convert(*args, self.text(relpath), repairs=found)
        if found:
            self.repairs.setdefault(relpath, []).extend(found)
            self.warnings.extend(f"run {self.run}, file {relpath}, {repair.describe()} "
                                 f"(in {written})" for repair in found)
        return output


def prepare_run(run: int, files: Mapping[str, str], *, enabled: frozenset[str], schema_text: str,
                config_name: Optional[str] = None) -> PreparedRun:
    """The initial-insert and update file sets of run ``run``, in memory.

    ``files`` maps the run record's relative posix paths to decoded text; ``enabled`` holds the
    ``fhiclize_generate`` names. Top-level ``<stem>.txt`` with an enabled converter become
    ``<stem>.fcl`` (a leading UTF-8 byte-order mark removed first, with a warning); other
    ``*.fcl`` files pass unchanged; ``RunHistory.fcl`` and ``schema.fcl`` are added.
    ``RunHistory2.fcl`` (with ``schema.fcl``) is the update when metadata.txt holds a start or
    stop time. ``config_name`` overrides the configuration-name rule applied to ``metadata.txt``.
    """
    insert: dict[str, str] = {}
    warnings: list[str] = []
    skipped: list[str] = []
    converted: list[tuple[str, str, str]] = []
    conversion = _Conversion(run, files)
    for relpath, text in files.items():
        stored, reason = _stored_name(relpath, enabled)
        if stored is None:
            skipped.append(f"{relpath}: {reason}")
        elif stored == relpath:
            insert[relpath] = text
        else:
            converter = CONVERTERS[stored[: -len(".fcl")]]
            converted.append((relpath, stored, conversion.convert(relpath, stored, converter)))
    for relpath, stored, text in converted:
        _add(insert, stored, text, f"the conversion of {relpath}", run, warnings)

    metadata = conversion.text(METADATA_TXT) if METADATA_TXT in files else None
    if "RunHistory" in enabled:
        if metadata is None:
            warnings.append(f"run {run}: cannot generate {RUN_HISTORY_FCL}: "
                            f"{METADATA_TXT} not found in the run record")
        else:
            _add(insert, RUN_HISTORY_FCL,
                 conversion.convert(METADATA_TXT, RUN_HISTORY_FCL, run_history, run),
                 f"the generated {RUN_HISTORY_FCL}", run, warnings)
    _add(insert, SCHEMA_FCL, schema_text, "the configured schema.fcl", run, warnings)
    warnings.extend(_entity_clash_warnings(run, insert))

    update = None
    if "RunHistory2" in enabled and metadata is not None:
        run_history2_text = conversion.convert(METADATA_TXT, RUN_HISTORY2_FCL, run_history2)
        if run_history2_text is not None:
            update = {RUN_HISTORY2_FCL: run_history2_text, SCHEMA_FCL: schema_text}

    return PreparedRun(
        run=run,
        config_name=config_name if config_name is not None else _config_name(metadata),
        insert_files=insert,
        update_files=update,
        warnings=conversion.warnings + warnings,
        skipped=skipped,
        repairs=conversion.repairs,
        bom_removed=conversion.bom_removed,
    )
