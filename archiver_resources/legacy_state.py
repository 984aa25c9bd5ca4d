"""The legacy archiver's state files and failure logs (docs/migration-from-legacy.md §3.1 states
their format and rules): reading them as the legacy tool did, interpreting them against the stores
for the one-shot import into Dagster, the update and recovery rules as pure functions, and atomic
writers (temporary file in the same directory, renamed into place, so no reader sees a partial
file) for anyone who keeps the files.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import AbstractSet, Iterable, Optional, Union

import numpy as np

from archiver_resources.errors import ArchiverError

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

IMPORT_STATE_FILE = "importer_state.json"
MIGRATE_STATE_FILE = "migrator_state.json"
IMPORT_FAILURE_LOG = "import_failures.log"
MIGRATE_FAILURE_LOG = "migrate_failures.log"


class LegacyStateError(ArchiverError):
    """A legacy state file or failure log could not be written."""

    def __init__(self, reason: str, *, path: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}", retryable=True)


@dataclass(frozen=True)
class LegacyState:
    """``{"last_contiguous_run": L, "last_attempted_run": A}``; missing keys count as 0."""

    last_contiguous_run: int = 0
    last_attempted_run: int = 0

    @property
    def high_water(self) -> int:
        """Incremental candidates are runs above this."""
        return max(self.last_contiguous_run, self.last_attempted_run)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

def read_state_document(path: PathLike) -> dict:
    """The raw JSON object, or ``{}`` with a warning if the file is missing or unparsable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        logger.warning("State file %s not found; starting from an empty state", path)
        return {}
    except (OSError, UnicodeDecodeError) as error:
        logger.warning("State file %s unreadable (%s); starting from an empty state",
                       path, type(error).__name__)
        return {}
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        logger.warning("State file %s is not valid JSON (%s); starting from an empty state",
                       path, error.msg)
        return {}
    if not isinstance(document, dict):
        logger.warning("State file %s is not a JSON object; starting from an empty state", path)
        return {}
    return document


def _as_run(document: dict, key: str, path: PathLike) -> int:
    value = document.get(key, 0)
    if isinstance(value, bool):
        value = int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        logger.warning("State file %s: %s=%r is not a run number; using 0", path, key, value)
        return 0


def read_state(path: PathLike) -> LegacyState:
    """Read ``importer_state.json`` / ``migrator_state.json`` like the legacy tool."""
    document = read_state_document(path)
    return LegacyState(_as_run(document, "last_contiguous_run", path),
                       _as_run(document, "last_attempted_run", path))


def parse_failure_log(text: str) -> frozenset[int]:
    """Runs of a failure log: lines that are all digits after stripping; duplicates merged."""
    runs = set()
    for line in text.splitlines():
        item = line.strip()
        if item.isdigit() and item.isascii():
            runs.add(int(item))
    return frozenset(runs)


def read_failure_log(path: PathLike) -> frozenset[int]:
    """Runs listed in ``import_failures.log`` / ``migrate_failures.log``; missing file → empty."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return frozenset()
    except OSError as error:
        logger.warning("Failure log %s unreadable (%s); treating it as empty",
                       path, type(error).__name__)
        return frozenset()
    return parse_failure_log(data.decode("utf-8", errors="replace"))


@dataclass(frozen=True)
class LegacyStage:
    """State and failure log of one legacy stage as read from disk."""

    stage: str  # "import" | "migration"
    state: LegacyState
    failures: frozenset[int]


def read_legacy_work_dir(work_dir: PathLike, *, import_state_file: Optional[PathLike] = None,
                         import_failure_log: Optional[PathLike] = None,
                         migrate_state_file: Optional[PathLike] = None,
                         migrate_failure_log: Optional[PathLike] = None) -> dict[str, LegacyStage]:
    """Both stages from the legacy ``work_dir`` (file names overridable as in ``app``)."""
    base = Path(work_dir)
    return {
        "import": LegacyStage("import", read_state(import_state_file or base / IMPORT_STATE_FILE),
                              read_failure_log(import_failure_log or base / IMPORT_FAILURE_LOG)),
        "migration": LegacyStage("migration",
                                 read_state(migrate_state_file or base / MIGRATE_STATE_FILE),
                                 read_failure_log(migrate_failure_log or base / MIGRATE_FAILURE_LOG)),
    }


# ---------------------------------------------------------------------------------------------
# Interpretation for the import into Dagster
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LegacyImportPlan:
    """What the legacy files say about one stage, reconciled with the stores.

    * ``failed``: logged as failed, not in the target, present in the source → mark failed
      (ready for "backfill failed and missing").
    * ``failed_without_source``: logged as failed, in neither store → cannot be retried; report.
    * ``recovered``: logged as failed but now in the target (the log is stale) → nothing to do.
    * ``done``: in the target and in the source → mark done.
    * ``done_without_source``: in the target only (e.g. run record deleted) → done, no source.
    * ``skipped``: source runs at or below the state's high-water mark that are neither in the
      target nor logged as failed: the legacy tool never looks at them again incrementally, so
      they are missing partitions too.
    """

    stage: str
    state: LegacyState
    failed: tuple[int, ...]
    failed_without_source: tuple[int, ...]
    recovered: tuple[int, ...]
    done: tuple[int, ...]
    done_without_source: tuple[int, ...]
    skipped: tuple[int, ...]

    @property
    def to_backfill(self) -> tuple[int, ...]:
        """Failed and skipped runs, sorted: the partitions a backfill should run."""
        return tuple(sorted(set(self.failed) | set(self.skipped)))


def _sorted(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted(values))


def interpret(state: LegacyState, failures: AbstractSet[int], target_runs: AbstractSet[int],
              source_runs: AbstractSet[int], *, stage: str = "import") -> LegacyImportPlan:
    """Reconcile one stage's legacy state + failure log with the stores' run sets
    (import: source = filesystem, target = artdaqDB; migration: source = artdaqDB, target = UconDB)."""
    failures, target, source = set(failures), set(target_runs), set(source_runs)
    outstanding = failures - target
    high = state.high_water
    skipped = {r for r in source - target - failures if r <= high}
    return LegacyImportPlan(
        stage=stage, state=state,
        failed=_sorted(outstanding & source),
        failed_without_source=_sorted(outstanding - source),
        recovered=_sorted(failures & target),
        done=_sorted(target & source),
        done_without_source=_sorted(target - source),
        skipped=_sorted(skipped),
    )


# ---------------------------------------------------------------------------------------------
# State rules (docs/migration-from-legacy.md §3.1)
# ---------------------------------------------------------------------------------------------

def _contiguous_end(sorted_runs: np.ndarray) -> int:
    """Last run of the consecutive stretch starting at the first element."""
    breaks = np.flatnonzero(np.diff(sorted_runs) != 1)
    return int(sorted_runs[breaks[0]] if breaks.size else sorted_runs[-1])


def recover_state(source_runs: Iterable[int],
                  target_runs: Iterable[int]) -> tuple[int, int, tuple[int, ...]]:
    """State recovery: ``(last_contiguous, last_attempted, failed_runs)`` from the stores alone.

    Target empty → ``(0, 0, ())``. Else last_attempted = max(target); last_contiguous = end of the
    consecutive stretch starting at min(target); failed = source runs ``<= last_attempted`` not
    in the target, sorted.
    """
    target = np.unique(np.fromiter((int(r) for r in target_runs), dtype=np.int64))
    if target.size == 0:
        return 0, 0, ()
    source = np.unique(np.fromiter((int(r) for r in source_runs), dtype=np.int64))
    last_attempted = int(target[-1])
    missing = np.setdiff1d(source[source <= last_attempted], target, assume_unique=True)
    return _contiguous_end(target), last_attempted, tuple(missing.tolist())


def advance_contiguous(last_contiguous: int, successes: Iterable[int],
                       failures: Iterable[int] = ()) -> int:
    """The contiguous update after a batch, without the legacy fresh-state defect.

    Legacy: from L, walk the sorted successes; a run equal to L+1 advances L, the first run > L+1
    stops. With real run numbers and L = 0 that never advances. Fix: a fresh state (L = 0) starts
    just below the lowest run attempted in this batch (successes and failures), so a first batch
    1000 ✓ 1001 ✓ 1002 ✗ gives L = 1001, and a failure at the bottom (999 ✗ 1000 ✓) keeps L at
    998 rather than claiming 999. Returns the new L (never lower than the old one).
    """
    done = sorted(set(int(r) for r in successes))
    attempted = set(done) | set(int(r) for r in failures)
    current = last_contiguous
    if current == 0 and attempted:
        current = max(0, min(attempted) - 1)
    for run in done:
        if run == current + 1:
            current = run
        elif run > current + 1:
            break
    return max(current, last_contiguous)


def advance_attempted(last_attempted: int, attempted: Iterable[int]) -> int:
    """The attempted update: ``max(old, max(attempted))``."""
    runs = [int(r) for r in attempted]
    return max([last_attempted, *runs])


def update_state(state: LegacyState, successes: Iterable[int],
                 failures: Iterable[int]) -> LegacyState:
    """Both updates (contiguous, attempted) for one batch."""
    ok, bad = list(successes), list(failures)
    return LegacyState(advance_contiguous(state.last_contiguous_run, ok, bad),
                       advance_attempted(state.last_attempted_run, ok + bad))


# ---------------------------------------------------------------------------------------------
# Atomic writers: temporary file in the same directory, fsync, rename into place
# ---------------------------------------------------------------------------------------------

def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to a temporary file in the same directory, fsync, rename over ``path``."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
        fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                         suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp_name, mode)
            os.replace(temp_name, target)
        except BaseException:
            try:
                os.unlink(temp_name)
            except FileNotFoundError:
                pass
            raise
        _fsync_directory(target.parent)
    except OSError as error:
        raise LegacyStateError(f"cannot write ({type(error).__name__}: {error.strerror})",
                               path=str(target)) from error


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_state(path: PathLike, last_contiguous: int, last_attempted: int) -> None:
    """The legacy state file (2-space JSON), written atomically."""
    document = {"last_contiguous_run": int(last_contiguous),
                "last_attempted_run": int(last_attempted)}
    atomic_write_text(path, json.dumps(document, indent=2))


def write_failure_log(path: PathLike, runs: Iterable[int]) -> None:
    """Rewrite a failure log: one decimal run per line, sorted, de-duplicated; atomically."""
    atomic_write_text(path, "".join(f"{r}\n" for r in sorted(set(int(r) for r in runs))))


def append_failure_log(path: PathLike, runs: Iterable[int]) -> None:
    """Legacy append (existing lines kept, the batch's failures sorted after them), but atomic:
    the file is read, extended and replaced."""
    try:
        existing = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        existing = ""
    if existing and not existing.endswith("\n"):
        existing += "\n"
    atomic_write_text(path, existing + "".join(f"{r}\n" for r in sorted(set(int(r) for r in runs))))
