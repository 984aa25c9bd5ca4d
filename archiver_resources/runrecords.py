"""Run records on disk: discovering run directories, deciding whether a run is finished, and reading
a run record into bounded-memory structures (file list, sizes, content fingerprint, decode rule).

Nothing here holds file contents longer than one call: :class:`RunRecord` lists files and their
fingerprint; :meth:`RunRecord.read_text` / :meth:`RunRecord.read_bytes` read one file on demand.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from collections.abc import Iterator, KeysView, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional

from archiver_resources.errors import RunRecordError

METADATA_FILE = "metadata.txt"
DEFAULT_CONFIG_NAME = "standard"
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
# metadata.txt is 1-5 kB; reading more than this for the finished check would be a broken file.
_METADATA_READ_LIMIT = 4 * 1024 * 1024
_CHUNK = 1024 * 1024

# The legacy tool's patterns, applied line by line.
CONFIG_NAME_RE = re.compile(r"^Config name:\s+(.*)")
STOP_TIME_RE = re.compile(r"^DAQInterface stop time:\s+(.*)")
START_TIME_RE = re.compile(r"^DAQInterface start time:\s+(.*)")


# ---------------------------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------------------------

class RunPaths(Mapping[int, Path]):
    """Run number → run directory, held as directory names: a :class:`Path` is built only for a
    run that is looked up, and the run numbers are sorted only when iterated (in ascending order).

    A sensor tick over 10^5 run directories looks up a handful of runs; building every Path and
    sorting every run number was nearly all of its cost.
    """

    __slots__ = ("_root", "_names", "_child", "_ordered", "_highest")

    def __init__(self, root: Path, names: dict[int, str]):
        self._root = root
        self._names = names
        # CPython's cheap child constructor when present; same paths as root / name.
        self._child = getattr(root, "_make_child_relpath", root.joinpath)
        self._ordered: Optional[list[int]] = None
        self._highest: Optional[int] = None

    def __getitem__(self, run: int) -> Path:
        return self._child(self._names[run])

    def __contains__(self, run: object) -> bool:
        return run in self._names

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[int]:
        if self._ordered is None:
            self._ordered = sorted(self._names)
        return iter(self._ordered)

    def __repr__(self) -> str:
        return f"RunPaths({self._root}, {len(self._names)} runs)"

    def name(self, run: int) -> str:
        """The directory name of ``run`` (``00123`` for a zero-padded run 123)."""
        return self._names[run]

    def unordered(self) -> KeysView[int]:
        """The run numbers in no particular order (no sort; for set-like work)."""
        return self._names.keys()

    @property
    def highest(self) -> int:
        """The highest run number, or -1 when there is no run."""
        if self._highest is None:
            self._highest = max(self._names, default=-1)
        return self._highest

    def runs_above(self, run: int) -> list[int]:
        """The runs numbered higher than ``run``, unsorted (none without a scan when ``run`` is
        at least the highest)."""
        if run >= self.highest:
            return []
        return [r for r in self._names if r > run]

    def count_up_to(self, run: int) -> int:
        """How many runs are numbered ``run`` or lower."""
        if run >= self.highest:
            return len(self._names)
        return sum(1 for r in self._names if r <= run)


@dataclass(frozen=True)
class RunListing:
    """The runs found under ``run_records_dir``; runs named by several directories are errors."""

    runs: Mapping[int, Path]
    errors: dict[int, RunRecordError]


# Run numbers are 64-bit integers in every DAQ database; a longer all-digit name is no run.
MAX_RUN_NUMBER = 2**63 - 1
_MAX_RUN_NAME_LENGTH = 32  # generous for zero padding, short enough to bound int() parsing


def is_run_directory_name(name: str) -> bool:
    """All ASCII digits (``str.isdigit`` alone would accept Unicode digits such as ``١٢٣``) and a
    run number that fits the DAQ's 64-bit run numbers."""
    return (bool(name) and len(name) <= _MAX_RUN_NAME_LENGTH and name.isascii()
            and name.isdigit() and int(name) <= MAX_RUN_NUMBER)


def list_runs(run_records_dir: str | os.PathLike) -> RunListing:
    """Every sub-directory of ``run_records_dir`` whose name is all ASCII digits, by run number.

    A zero-padded name (``00123``) is run 123 and keeps its own path. Two directories naming the
    same run (``123`` and ``0123``) put an error for that run in ``.errors`` instead of ``.runs``.
    ``.runs`` is a :class:`RunPaths`: one directory scan keeps names only, and paths are built
    for the runs looked up.
    """
    root = Path(run_records_dir)
    names, clashes = _scan_run_names(root)
    errors: dict[int, RunRecordError] = {}
    for run in sorted(clashes):
        listed = ", ".join(sorted(clashes[run]))
        errors[run] = RunRecordError(
            f"several directories name this run ({listed}); keep exactly one", run=run)
    return RunListing(runs=RunPaths(root, names), errors=errors)


def _scan_run_names(root: Path) -> tuple[dict[int, str], dict[int, list[str]]]:
    """(run → its one directory name, run → the names of a run named by several directories)."""
    names: dict[int, str] = {}
    clashes: dict[int, list[str]] = {}
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                name = entry.name
                # is_run_directory_name and the is_dir check, inlined: this loop runs once per
                # directory per sensor tick, and a call per entry was a fifth of its cost.
                # An entry whose type cannot be read (is_dir raises) is no run directory.
                if not (name.isdigit() and name.isascii() and len(name) <= _MAX_RUN_NAME_LENGTH):
                    continue
                try:
                    if not entry.is_dir():
                        continue
                except OSError:
                    continue
                run = int(name)
                if run > MAX_RUN_NUMBER:
                    continue
                if run in clashes:
                    clashes[run].append(name)
                elif run in names:
                    clashes[run] = [names.pop(run), name]
                else:
                    names[run] = name
    except FileNotFoundError as exc:
        raise RunRecordError(f"run records directory {root} does not exist") from exc
    except NotADirectoryError as exc:
        raise RunRecordError(f"run records directory {root} is not a directory") from exc
    except OSError as exc:
        raise RunRecordError(f"cannot list run records directory {root}: {exc.strerror or exc}",
                             retryable=True) from exc
    return names, clashes


# ---------------------------------------------------------------------------------------------
# Finished runs
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FinishedState:
    """Whether a run is finished, by which rule (stop_time|age|forced|running) and why."""

    finished: bool
    rule: str
    reason: str
    stop_time: Optional[str] = None
    start_time: Optional[str] = None
    age_seconds: Optional[float] = None


def finished_state(run: int, run_dir: str | os.PathLike, *, min_age_seconds: float,
                   force: bool = False, now: float | datetime | None = None) -> FinishedState:
    """Decide whether a run is finished (only finished runs are archived), cheaply: reads only
    ``metadata.txt``.

    Rules, first match wins: ``stop_time`` (metadata.txt has a ``DAQInterface stop time:`` line),
    ``age`` (neither the run directory nor its metadata.txt was modified for more than
    ``min_age_seconds``: DAQInterface writes every other file before the run starts and later only
    appends to metadata.txt, so these two mtimes are the run's last activity), ``forced`` (an
    operator said so), else ``running``. :func:`newest_mtime` gives a stricter, full-walk age.
    """
    directory = Path(run_dir)
    dir_mtime = _mtime_of_run_dir(run, directory)
    text, meta_mtime = _read_metadata_for_state(run, directory)
    stop_time = _last_match(STOP_TIME_RE, text)
    start_time = _last_match(START_TIME_RE, text)
    newest = max(dir_mtime, meta_mtime) if meta_mtime is not None else dir_mtime
    age = _now_seconds(now) - newest
    common = dict(stop_time=stop_time, start_time=start_time, age_seconds=age)
    if stop_time is not None:
        return FinishedState(True, "stop_time", f"run {run} has a stop time ({stop_time})",
                             **common)
    what = "run directory and metadata.txt" if meta_mtime is not None else \
        "run directory (no metadata.txt)"
    if age > min_age_seconds:
        return FinishedState(True, "age", f"run {run} has no stop time, but its {what} "
                             f"unchanged for {age:.0f} s (> {min_age_seconds:g} s)", **common)
    if force:
        return FinishedState(True, "forced", f"run {run} has no stop time and changed "
                             f"{age:.0f} s ago, but an operator forced it", **common)
    return FinishedState(False, "running", f"run {run} has no stop time and its {what} changed "
                         f"{age:.0f} s ago (<= {min_age_seconds:g} s); waiting", **common)


def _mtime_of_run_dir(run: int, directory: Path) -> float:
    try:
        st = directory.stat()
    except FileNotFoundError as exc:
        raise RunRecordError(f"run directory {directory} does not exist", run=run) from exc
    except OSError as exc:
        raise RunRecordError(f"cannot stat run directory {directory}: {exc.strerror or exc}",
                             run=run, retryable=True) from exc
    if not stat.S_ISDIR(st.st_mode):
        raise RunRecordError(f"{directory} is not a directory", run=run)
    return st.st_mtime


def _read_metadata_for_state(run: int, directory: Path) -> tuple[str, Optional[float]]:
    path = directory / METADATA_FILE
    try:
        with open(path, "rb") as handle:
            mtime = os.fstat(handle.fileno()).st_mtime
            data = handle.read(_METADATA_READ_LIMIT + 1)
    except FileNotFoundError:
        return "", None
    except OSError as exc:
        raise RunRecordError(f"cannot read: {exc.strerror or exc}", run=run,
                             file=METADATA_FILE, retryable=True) from exc
    if len(data) > _METADATA_READ_LIMIT:
        raise RunRecordError(f"larger than {_METADATA_READ_LIMIT} bytes; not a DAQInterface "
                             "metadata file", run=run, file=METADATA_FILE)
    return strip_bom(decode_text(data)[0])[0], mtime


def _last_match(pattern: re.Pattern, text: str) -> Optional[str]:
    value = None
    for line in text.split("\n"):
        match = pattern.match(line)
        if match:
            value = match.group(1).strip()
    return value


def _now_seconds(now: float | datetime | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        return now.timestamp()  # naive datetimes are taken as local time, like time.time()
    return float(now)


def newest_mtime(run_dir: str | os.PathLike) -> float:
    """Newest mtime of the run directory and everything under it (lstat: links not followed)."""
    root = Path(run_dir)
    newest = root.stat().st_mtime
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            try:
                newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
            except OSError:
                continue
    return newest


# ---------------------------------------------------------------------------------------------
# Decode rule, configuration name
# ---------------------------------------------------------------------------------------------

def decode_text(data: bytes) -> tuple[str, bool]:
    """(text, is_latin1): UTF-8 with universal newlines, else Latin-1 verbatim (every byte kept,
    line endings unchanged), so a file that is not UTF-8 loses nothing."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1"), True
    return text.replace("\r\n", "\n").replace("\r", "\n"), False


_BOM = "\ufeff"
_BOM_AS_LATIN1 = "\xef\xbb\xbf"  # the mark's bytes in a file read as Latin-1 (not valid UTF-8)


def strip_bom(text: str) -> tuple[str, bool]:
    """(``text`` without a leading UTF-8 byte-order mark, whether it had one): removed before
    conversion, as the mark would otherwise stick to the first key (``Config name:`` no longer
    recognised, the run stored as ``<run>/standard``)."""
    for mark in (_BOM, _BOM_AS_LATIN1):
        if text.startswith(mark):
            return text[len(mark):], True
    return text, False


def config_name_from_metadata(text: str) -> str:
    """The legacy rule: first ``Config name:`` line (column 0, then at least one blank) with a
    non-empty value, stripped, ``/`` → ``_``; ``standard`` when there is none
    (a leading byte-order mark does not hide the first line)."""
    for line in strip_bom(text)[0].splitlines():
        match = CONFIG_NAME_RE.match(line)
        if match and match.group(1).strip():
            return match.group(1).strip().replace("/", "_")
    return DEFAULT_CONFIG_NAME


# ---------------------------------------------------------------------------------------------
# Reading a run record
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunFile:
    """One regular file of a run record; ``relpath`` is posix, relative to the run directory."""

    relpath: str
    size: int
    mtime: float
    source: Path = field(repr=False, compare=False)


@dataclass
class RunRecord:
    """A run record as a file list plus fingerprint; contents are read on demand."""

    run: int
    directory: Path
    files: list[RunFile]
    fingerprint: str
    config_name: str = DEFAULT_CONFIG_NAME
    warnings: list[str] = field(default_factory=list)
    latin1_files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def relpaths(self) -> list[str]:
        return [f.relpath for f in self.files]

    def file(self, relpath: str) -> RunFile:
        for run_file in self.files:
            if run_file.relpath == relpath:
                return run_file
        raise RunRecordError("not part of this run record", run=self.run, file=relpath)

    def read_bytes(self, relpath: str) -> bytes:
        run_file = self.file(relpath)
        try:
            with open(run_file.source, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise RunRecordError(f"cannot read: {exc.strerror or exc}", run=self.run,
                                 file=relpath) from exc

    def read_text(self, relpath: str) -> str:
        """The file decoded by the decode rule; a Latin-1 fallback is recorded as a warning."""
        text, latin1 = decode_text(self.read_bytes(relpath))
        if latin1 and relpath not in self.latin1_files:
            self.latin1_files.append(relpath)
            self.warnings.append(f"run {self.run}, file {relpath}: not valid UTF-8; decoded as "
                                 "Latin-1 (every byte kept, line endings unchanged)")
        return text

    def read_all_text(self) -> dict[str, str]:
        """Every file as text, relative path → decoded content (what the converters take)."""
        return {f.relpath: self.read_text(f.relpath) for f in self.files}


def read_run_record(run: int, run_dir: str | os.PathLike, *,
                    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> RunRecord:
    """List a run's files recursively (sorted by relpath) and fingerprint them.

    Symlinks resolving inside the run directory are followed; links escaping it or looping raise
    RunRecordError. FIFOs, devices and sockets are skipped with a warning. An empty run, a file
    over ``max_file_bytes`` or an unreadable file raise RunRecordError naming run and file.
    """
    directory = Path(run_dir)
    try:
        root = directory.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise RunRecordError(f"run directory {directory} cannot be opened: {exc}", run=run) from exc
    if not root.is_dir():
        raise RunRecordError(f"{directory} is not a directory", run=run)
    walker = _Walker(run, root, max_file_bytes)
    files = sorted(walker.walk(root, "", frozenset({_dir_id(root)})), key=lambda f: f.relpath)
    if not files:
        raise RunRecordError(f"run directory {directory} holds no files", run=run)
    record = RunRecord(run=run, directory=directory, files=files,
                       fingerprint=_fingerprint(run, files), warnings=list(walker.warnings),
                       skipped=list(walker.skipped))
    if any(f.relpath == METADATA_FILE for f in files):
        record.config_name = config_name_from_metadata(record.read_text(METADATA_FILE))
    return record


def _dir_id(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


class _Walker:
    """Recursive listing with the symlink, special-file and size rules of read_run_record."""

    def __init__(self, run: int, root: Path, max_file_bytes: int):
        self.run = run
        self.root = root
        self.max_file_bytes = max_file_bytes
        self.warnings: list[str] = []
        self.skipped: list[str] = []

    def walk(self, directory: Path, prefix: str, ancestors: frozenset) -> Iterator[RunFile]:
        try:
            names = sorted(os.listdir(directory))
        except OSError as exc:
            raise RunRecordError(f"cannot list directory: {exc.strerror or exc}", run=self.run,
                                 file=prefix or ".") from exc
        for name in names:
            relpath = f"{prefix}{name}"
            self._check_name(relpath)
            path, st = self._resolve(directory / name, relpath)
            if stat.S_ISDIR(st.st_mode):
                ident = (st.st_dev, st.st_ino)
                if ident in ancestors:
                    raise RunRecordError("symlink loop: the link points back to a directory "
                                         "that contains it", run=self.run, file=relpath)
                yield from self.walk(path, relpath + "/", ancestors | {ident})
            elif stat.S_ISREG(st.st_mode):
                yield self._regular(path, relpath, st)
            else:
                self.skipped.append(relpath)
                self.warnings.append(f"run {self.run}, file {relpath}: skipped "
                                     f"({_kind(st.st_mode)}, not a regular file)")

    def _check_name(self, relpath: str) -> None:
        try:
            relpath.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise RunRecordError("file name is not valid UTF-8; rename it", run=self.run,
                                 file=relpath.encode("utf-8", "backslashreplace").decode()) from exc

    def _resolve(self, path: Path, relpath: str) -> tuple[Path, os.stat_result]:
        try:
            st = os.lstat(path)
        except OSError as exc:
            raise RunRecordError(f"cannot stat: {exc.strerror or exc}", run=self.run,
                                 file=relpath) from exc
        if not stat.S_ISLNK(st.st_mode):
            return path, st
        try:
            target = path.resolve(strict=True)
        except RuntimeError as exc:  # Python < 3.13 reports loops this way
            raise RunRecordError("symlink loop", run=self.run, file=relpath) from exc
        except OSError as exc:
            reason = "symlink loop" if exc.errno == 40 else f"broken symlink ({exc.strerror or exc})"
            raise RunRecordError(reason, run=self.run, file=relpath) from exc
        if target != self.root and self.root not in target.parents:
            raise RunRecordError(f"symlink points outside the run directory (to {target}); "
                                 "refused", run=self.run, file=relpath)
        return target, target.stat()

    def _regular(self, path: Path, relpath: str, st: os.stat_result) -> RunFile:
        if st.st_size > self.max_file_bytes:
            raise RunRecordError(f"{st.st_size} bytes, over the limit of {self.max_file_bytes} "
                                 "bytes (source_files.max_file_bytes)", run=self.run, file=relpath)
        return RunFile(relpath=relpath, size=st.st_size, mtime=st.st_mtime, source=path)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def _fingerprint(run: int, files: list[RunFile]) -> str:
    """sha256 over, per file in relpath order: relpath, NUL, decimal size, NUL, bytes."""
    digest = hashlib.sha256()
    for run_file in files:
        digest.update(run_file.relpath.encode("utf-8") + b"\0" + str(run_file.size).encode()
                      + b"\0")
        read = 0
        try:
            with open(run_file.source, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                    read += len(chunk)
        except OSError as exc:
            raise RunRecordError(f"cannot read: {exc.strerror or exc}", run=run,
                                 file=run_file.relpath) from exc
        if read != run_file.size:
            raise RunRecordError(f"changed while being read ({run_file.size} bytes listed, "
                                 f"{read} read); try again", run=run, file=run_file.relpath,
                                 retryable=True)
    return digest.hexdigest()
