"""Run records on disk: discovering run directories, deciding whether a run is finished, and reading
a run record into bounded-memory structures (file list, sizes, content fingerprint, decode rule).

Nothing here holds file contents longer than one call: :class:`RunRecord` lists files and their
fingerprint; :meth:`RunRecord.read_text` / :meth:`RunRecord.read_bytes` read one file on demand.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
import time
from collections.abc import Iterator, KeysView, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Optional

from archiver_resources.errors import RunRecordError
from archiver_resources.printable import printable

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
# Opening run-record paths: the one rule of the sensor, the command line and the assets
# ---------------------------------------------------------------------------------------------

#: How deep directories may nest below a run directory (DAQInterface writes none at all).
MAX_DIRECTORY_DEPTH = 32
# Every open of a run-record file: never blocks (a FIFO opens at once instead of waiting for a
# writer; a device opens without side effects on a terminal), never follows a symlink (links
# are resolved and checked before), closed in child processes. fstat then says what was opened.
_OPEN_FLAGS = (os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_NOFOLLOW", 0))
_SHOWN_PATH_CHARS = 160


def _open_regular(path: Path, *, run: int, relpath: str) -> tuple[BinaryIO, os.stat_result]:
    """``path`` opened for reading, with its fstat; only a regular file is kept open.

    Raises OSError as ``os.open`` does (``ELOOP`` for a symlink) and RunRecordError naming run
    and file for anything that is not a regular file (FIFO, socket, device, directory).
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RunRecordError(f"{_kind(st.st_mode)}, not a regular file; refused (run records "
                                 "are read from regular files only)", run=run, file=relpath)
        os.set_blocking(fd, True)  # no effect on a regular file; plain reads from here on
        return os.fdopen(fd, "rb"), st
    except BaseException:
        os.close(fd)
        raise


def _link_target(run: int, path: Path, relpath: str, root: Path) -> Path:
    """Where the symlink ``path`` leads: a real path inside ``root`` (the run directory's real
    path). A broken, looping or escaping link is refused, naming run and file."""
    try:
        target = path.resolve(strict=True)
    except RuntimeError as exc:  # Python < 3.13 reports loops this way
        raise RunRecordError("symlink loop", run=run, file=relpath) from exc
    except OSError as exc:
        reason = ("symlink loop" if exc.errno == errno.ELOOP
                  else f"broken symlink ({exc.strerror or exc})")
        raise RunRecordError(reason, run=run, file=relpath) from exc
    if target != root and root not in target.parents:
        raise RunRecordError(f"symlink points outside the run directory (to {target}); "
                             "refused", run=run, file=relpath)
    return target


def _run_directory_stat(run: int, directory: Path) -> os.stat_result:
    """The run directory's stat. A run directory that is a symlink is followed only when it
    leads inside the run records directory (the directory that lists it); anywhere else it is
    refused, so no directory elsewhere on the machine is ever archived as a run."""
    try:
        st = os.lstat(directory)
        if stat.S_ISLNK(st.st_mode):
            _check_run_directory_link(run, directory)
            st = os.stat(directory)
    except FileNotFoundError as exc:
        raise RunRecordError(f"run directory {directory} does not exist", run=run) from exc
    except OSError as exc:
        raise RunRecordError(f"cannot stat run directory {directory}: {exc.strerror or exc}",
                             run=run, retryable=True) from exc
    if not stat.S_ISDIR(st.st_mode):
        raise RunRecordError(f"{directory} is not a directory", run=run)
    return st


def _check_run_directory_link(run: int, directory: Path) -> None:
    try:
        target = directory.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise RunRecordError(f"run directory {directory} is a broken or looping symlink",
                             run=run) from exc
    records = directory.parent.resolve()
    if records not in target.parents:
        raise RunRecordError(
            f"run directory {directory} is a symlink to {target}, outside the run records "
            f"directory {records}; refused (a run directory that is a symlink must lead to a "
            "directory inside it)", run=run)


def _shown(relpath: str) -> str:
    """A relative path short enough for a one-line message (the middle elided)."""
    if len(relpath) <= _SHOWN_PATH_CHARS:
        return relpath
    return f"{relpath[:40]}…{relpath[-(_SHOWN_PATH_CHARS - 41):]}"


def _changed(run: int, relpath: str, what: str) -> RunRecordError:
    return RunRecordError(f"the run record changed while it was being read ({what}); not "
                          "archived in this attempt, it is tried again later", run=run,
                          file=relpath, retryable=True)


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

    The reading rule is :func:`read_run_record`'s: a run directory that is a symlink must lead
    inside the run records directory, and metadata.txt must be a regular file (opened without
    blocking; a symlink must stay inside the run directory); otherwise RunRecordError.
    """
    directory = Path(run_dir)
    dir_mtime = _run_directory_stat(run, directory).st_mtime
    text, meta_mtime = _read_metadata_for_state(run, directory)
    stop_time = _last_match(STOP_TIME_RE, text)
    start_time = _last_match(START_TIME_RE, text)
    newest = max(dir_mtime, meta_mtime) if meta_mtime is not None else dir_mtime
    age = _now_seconds(now) - newest
    common = dict(stop_time=stop_time, start_time=start_time, age_seconds=age)
    if stop_time is not None:
        return FinishedState(True, "stop_time",
                             f"run {run} has a stop time ({printable(stop_time)})", **common)
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


def _read_metadata_for_state(run: int, directory: Path) -> tuple[str, Optional[float]]:
    path = directory / METADATA_FILE
    try:
        try:
            handle, st = _open_regular(path, run=run, relpath=METADATA_FILE)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            target = _link_target(run, path, METADATA_FILE, directory.resolve())
            handle, st = _open_regular(target, run=run, relpath=METADATA_FILE)
        with handle:
            data = handle.read(_METADATA_READ_LIMIT + 1)
    except FileNotFoundError:
        return "", None
    except OSError as exc:
        raise RunRecordError(f"cannot read: {exc.strerror or exc}", run=run,
                             file=METADATA_FILE, retryable=True) from exc
    if len(data) > _METADATA_READ_LIMIT:
        raise RunRecordError(f"larger than {_METADATA_READ_LIMIT} bytes; not a DAQInterface "
                             "metadata file", run=run, file=METADATA_FILE)
    return strip_bom(decode_text(data)[0])[0], st.st_mtime


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
    """Newest mtime of the run directory and everything under it (lstat: links not followed),
    walked without recursion; directories nested deeper than :data:`MAX_DIRECTORY_DEPTH` raise
    RunRecordError naming the path."""
    root = Path(run_dir)
    newest = root.stat().st_mtime
    stack = [(root, "", 0)]
    while stack:
        directory, prefix, depth = stack.pop()
        try:
            with os.scandir(directory) as scan:
                entries = list(scan)
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            newest = max(newest, st.st_mtime)
            if stat.S_ISDIR(st.st_mode):
                if depth >= MAX_DIRECTORY_DEPTH:
                    raise RunRecordError(f"directories nested more than {MAX_DIRECTORY_DEPTH} "
                                         f"levels deep below {root}; refused",
                                         file=_shown(prefix + entry.name))
                stack.append((Path(entry.path), f"{prefix}{entry.name}/", depth + 1))
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
    """One regular file of a run record; ``relpath`` is posix, relative to the run directory.
    ``identity`` (device, inode, size, mtime and ctime in ns) is what the listing saw: a file
    read later must still match it, or the run record changed while it was being read."""

    relpath: str
    size: int
    mtime: float
    source: Path = field(repr=False, compare=False)
    identity: tuple = field(default=(), repr=False, compare=False)


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
        """The file's bytes, exactly as listed (else a retryable RunRecordError: it changed)."""
        run_file = self.file(relpath)
        with _listed_file(self.run, run_file) as handle:
            data = handle.read(run_file.size + 1)
        if len(data) != run_file.size:
            raise _changed(self.run, relpath, f"{run_file.size} bytes listed, {len(data)} read")
        return data

    def read_text(self, relpath: str) -> str:
        """The file decoded by the decode rule; a Latin-1 fallback is recorded as a warning."""
        text, latin1 = decode_text(self.read_bytes(relpath))
        if latin1 and relpath not in self.latin1_files:
            self.latin1_files.append(relpath)
            self.warnings.append(f"run {self.run}, file {printable(relpath)}: not valid UTF-8; "
                                 "decoded as Latin-1 (every byte kept, line endings unchanged)")
        return text

    def read_all_text(self) -> dict[str, str]:
        """Every file as text, relative path → decoded content (what the converters take)."""
        return {f.relpath: self.read_text(f.relpath) for f in self.files}

    def confirm_unchanged(self) -> None:
        """The second half of "fingerprint before and after": list the run directory again and
        raise a retryable RunRecordError naming the first file added, removed or modified since
        this record was listed. Call it after the files were read; together with the per-file
        checks of every read it proves that what was read is the record as listed."""
        again = _list_files(self.run, self.directory, max_file_bytes=None).files
        before = {f.relpath: f.identity for f in self.files}
        after = {f.relpath: f.identity for f in again}
        if before == after:
            return
        for relpath in sorted(before.keys() | after.keys()):
            if relpath not in after:
                raise _changed(self.run, relpath, "removed")
            if relpath not in before:
                raise _changed(self.run, relpath, "added")
            if before[relpath] != after[relpath]:
                raise _changed(self.run, relpath, "modified")


def read_run_record(run: int, run_dir: str | os.PathLike, *,
                    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> RunRecord:
    """List a run's files (every level below the run directory, sorted by relpath) and
    fingerprint them.

    The reading rule: a run directory that is a symlink is followed only into the run records
    directory; symlinks resolving inside the run directory are followed, links escaping it,
    looping or broken raise RunRecordError; FIFOs, devices and sockets are skipped with a
    warning; every file is opened without blocking and read only when fstat says it is a
    regular file, the one that was listed. An empty run, a file over ``max_file_bytes``,
    directories nested deeper than :data:`MAX_DIRECTORY_DEPTH` or an unreadable file raise
    RunRecordError naming run and file; a file that changes while it is read raises a
    retryable one.
    """
    directory = Path(run_dir)
    walker = _list_files(run, directory, max_file_bytes=max_file_bytes)
    files = walker.files
    if not files:
        raise RunRecordError(f"run directory {directory} holds no files", run=run)
    record = RunRecord(run=run, directory=directory, files=files,
                       fingerprint=_fingerprint(run, files), warnings=list(walker.warnings),
                       skipped=list(walker.skipped))
    if any(f.relpath == METADATA_FILE for f in files):
        record.config_name = config_name_from_metadata(record.read_text(METADATA_FILE))
    return record


def _list_files(run: int, directory: Path, *, max_file_bytes: Optional[int]) -> "_Walker":
    """The run directory walked (see :class:`_Walker`); ``.files`` sorted by relative path."""
    _run_directory_stat(run, directory)
    try:
        root = directory.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise RunRecordError(f"run directory {directory} cannot be opened: {exc}", run=run) from exc
    walker = _Walker(run, root, max_file_bytes)
    walker.walk()
    walker.files.sort(key=lambda f: f.relpath)
    return walker


def _dir_id(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def _identity(st: os.stat_result) -> tuple:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class _Walker:
    """The listing of read_run_record: symlink, special-file, depth and size rules; iterative
    (a run directory nested 1500 levels deep is refused by name, not a RecursionError)."""

    def __init__(self, run: int, root: Path, max_file_bytes: Optional[int]):
        self.run = run
        self.root = root
        self.max_file_bytes = max_file_bytes
        self.files: list[RunFile] = []
        self.warnings: list[str] = []
        self.skipped: list[str] = []

    def walk(self) -> None:
        # (directory, its relative path + "/", the (device, inode) of it and every directory
        # above it up to the run directory: a link back to one of them is a loop)
        stack = [(self.root, "", (_dir_id(self.root),))]
        while stack:
            directory, prefix, ancestors = stack.pop()
            for name in self._names(directory, prefix):
                relpath = f"{prefix}{name}"
                self._check_name(relpath)
                path, st = self._resolve(directory / name, relpath)
                if stat.S_ISDIR(st.st_mode):
                    ident = (st.st_dev, st.st_ino)
                    if ident in ancestors:
                        raise RunRecordError("symlink loop: the link points back to a directory "
                                             "that contains it", run=self.run, file=relpath)
                    if len(ancestors) > MAX_DIRECTORY_DEPTH:
                        raise RunRecordError(
                            f"directories nested more than {MAX_DIRECTORY_DEPTH} levels deep "
                            "below the run directory; refused", run=self.run,
                            file=_shown(relpath))
                    stack.append((path, relpath + "/", ancestors + (ident,)))
                elif stat.S_ISREG(st.st_mode):
                    self.files.append(self._regular(path, relpath, st))
                else:
                    self.skipped.append(relpath)
                    self.warnings.append(f"run {self.run}, file {printable(relpath)}: skipped "
                                         f"({_kind(st.st_mode)}, not a regular file)")

    def _names(self, directory: Path, prefix: str) -> list[str]:
        try:
            return sorted(os.listdir(directory))
        except OSError as exc:
            raise RunRecordError(f"cannot list directory: {exc.strerror or exc}", run=self.run,
                                 file=_shown(prefix) or ".") from exc

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
                                 file=_shown(relpath)) from exc
        if not stat.S_ISLNK(st.st_mode):
            return path, st
        target = _link_target(self.run, path, relpath, self.root)
        return target, target.stat()

    def _regular(self, path: Path, relpath: str, st: os.stat_result) -> RunFile:
        if self.max_file_bytes is not None and st.st_size > self.max_file_bytes:
            raise RunRecordError(f"{st.st_size} bytes, over the limit of {self.max_file_bytes} "
                                 "bytes (source_files.max_file_bytes)", run=self.run, file=relpath)
        return RunFile(relpath=relpath, size=st.st_size, mtime=st.st_mtime, source=path,
                       identity=_identity(st))


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISDIR(mode):
        return "directory"
    return "special file"


@contextlib.contextmanager
def _listed_file(run: int, run_file: RunFile) -> Iterator[BinaryIO]:
    """A listed file opened for reading by the one rule (non-blocking, no symlink followed,
    regular files only), which must still be the file the listing saw, before and after the
    caller reads it; otherwise a retryable RunRecordError says the record changed."""
    relpath = run_file.relpath
    try:
        handle, st = _open_regular(run_file.source, run=run, relpath=relpath)
    except FileNotFoundError as exc:
        raise _changed(run, relpath, "removed") from exc
    except RunRecordError as exc:
        raise _changed(run, relpath, "replaced by a file that is not a regular one") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _changed(run, relpath, "replaced by a symlink") from exc
        raise RunRecordError(f"cannot read: {exc.strerror or exc}", run=run,
                             file=relpath) from exc
    with handle:
        if _identity(st) != run_file.identity:
            raise _changed(run, relpath, "modified")
        try:
            yield handle
            after = os.fstat(handle.fileno())
        except OSError as exc:
            raise RunRecordError(f"cannot read: {exc.strerror or exc}", run=run,
                                 file=relpath) from exc
        if _identity(after) != run_file.identity:
            raise _changed(run, relpath, "modified")


def _fingerprint(run: int, files: list[RunFile]) -> str:
    """sha256 over, per file in relpath order: relpath, NUL, decimal size, NUL, bytes."""
    digest = hashlib.sha256()
    for run_file in files:
        digest.update(run_file.relpath.encode("utf-8") + b"\0" + str(run_file.size).encode()
                      + b"\0")
        read = 0
        with _listed_file(run, run_file) as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                read += len(chunk)
        if read != run_file.size:
            raise _changed(run, run_file.relpath, f"{run_file.size} bytes listed, {read} read")
    return digest.hexdigest()
