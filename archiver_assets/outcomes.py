"""What archiving did to runs, as data: one :class:`RunFailure` per run an archive step could not
archive, and one :class:`StageOutcome` per stage (import, migration…) of a command-line
invocation or of a Dagster run.

The archive assets fail a step with ``dg.Failure`` whose metadata holds the records under
``run_failures`` (a JSON list), next to ``failed_runs`` (their run numbers). The alert sensors and
the command line read the records from the step-failure event; nothing parses the failure's text.
The description stays for people: ``<n> of <m> run(s) could not be <done>:`` and one
``- run N: <message>`` line per run (docs/architecture.md, "Orchestration rules shared by every
path").

Failures recorded before the records existed (older Dagster runs kept in an instance) carry only
the text: :func:`legacy_failures_from_text` reads those, and nothing else does.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Iterable, Mapping, Optional

from archiver_resources.printable import printable

RUN_FAILURES_KEY = "run_failures"
FAILED_RUNS_KEY = "failed_runs"
# The stage of each archive asset, as alerts and reports name it.
STAGE_OF_ASSET = {"artdaqdb_config": "import", "ucondb_blob": "migration"}


@dataclass(frozen=True)
class RunFailure:
    """One run an archive step could not archive: the run, the stage (``import`` or
    ``migration``), the error's type (``IntegrityError``, ``RecursionError``…; empty when not
    known) and its message, one printable line (control characters escaped)."""

    run: int
    stage: str
    error_type: str
    message: str

    @classmethod
    def of_error(cls, run: int, stage: str, error: BaseException,
                 message: Optional[str] = None) -> "RunFailure":
        """The record of ``error``; ``message`` replaces ``str(error)`` (e.g. with secrets masked)."""
        return cls(int(run), stage, type(error).__name__,
                   printable(str(error) if message is None else message))

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping) -> "RunFailure":
        return cls(int(data["run"]), str(data.get("stage") or ""),
                   str(data.get("error_type") or ""), printable(data.get("message") or ""))


def _value(entry):
    """A metadata entry's plain value (``MetadataValue`` objects carry it in ``.value``)."""
    return getattr(entry, "value", entry)


def failures_metadata(failures: Iterable[RunFailure]) -> dict:
    """The ``dg.Failure`` metadata naming ``failures``: ``failed_runs`` and ``run_failures``."""
    import dagster as dg

    ordered = sorted(failures, key=lambda f: f.run)
    return {FAILED_RUNS_KEY: dg.MetadataValue.json([f.run for f in ordered]),
            RUN_FAILURES_KEY: dg.MetadataValue.json([f.to_json() for f in ordered])}


def failure_description(failures: Iterable[RunFailure], total: int, done: str) -> str:
    """The human-readable text of the step failure (the UI shows it): a count, then one
    ``- run N: <message>`` line per run."""
    ordered = sorted(failures, key=lambda f: f.run)
    lines = "\n".join(f"- run {f.run}: {f.message}" for f in ordered)
    return f"{len(ordered)} of {total} run(s) could not be {done}:\n{lines}"


def failures_from_metadata(metadata: Optional[Mapping]) -> Optional[list]:
    """The :class:`RunFailure` records of a step failure's metadata, or None when it has none
    (a failure recorded before the records existed, or not by an archive asset)."""
    if not metadata or RUN_FAILURES_KEY not in metadata:
        return None
    entries = _value(metadata[RUN_FAILURES_KEY]) or []
    return [RunFailure.from_json(entry) for entry in entries if isinstance(entry, Mapping)]


def failed_runs_from_metadata(metadata: Optional[Mapping]) -> Optional[list]:
    """The ``failed_runs`` of a step failure's metadata (sorted), or None when absent."""
    if not metadata or FAILED_RUNS_KEY not in metadata:
        return None
    return sorted(int(run) for run in _value(metadata[FAILED_RUNS_KEY]) or [])


_LEGACY_RUN_LINE = re.compile(r"^- run (\d+): (.*)$")


def legacy_failures_from_text(description: str, stage: str) -> list:
    """Legacy path, only for step failures recorded before ``run_failures`` metadata existed:
    the records recovered from the description's ``- run N: <message>`` lines (error type
    unknown, so empty)."""
    found = []
    for line in (description or "").splitlines():
        match = _LEGACY_RUN_LINE.match(line.strip())
        if match:
            found.append(RunFailure(int(match.group(1)), stage, "", match.group(2)))
    return found


def step_run_failures(user_failure_data, stage: str) -> tuple:
    """``(failed runs or None, [RunFailure])`` of a step failure's user data (``dg.Failure``):
    from its ``run_failures`` metadata, else through the legacy text path. ``failed runs`` is
    None when the failure does not name runs (not an archive asset's failure)."""
    if user_failure_data is None:
        return None, []
    metadata = dict(user_failure_data.metadata or {})
    named = failed_runs_from_metadata(metadata)
    records = failures_from_metadata(metadata)
    if records is None:
        records = legacy_failures_from_text(user_failure_data.description or "", stage)
    if named is None and records and RUN_FAILURES_KEY in metadata:
        named = sorted({f.run for f in records})
    return named, records


@dataclass
class StageOutcome:
    """What one stage did to its runs: archived (``succeeded``), failed (``failed``: run → one-line
    reason), and, for the command line, the runs a shutdown left out, the ``legacy_metadata``
    results, the Dagster runs used and the notes of runs taken over (``verified-legacy``)."""

    stage: str
    succeeded: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)  # run → reason
    not_processed: list = field(default_factory=list)
    interrupted: bool = False
    validation: dict = field(default_factory=dict)
    dagster_runs: list = field(default_factory=list)
    notes: dict = field(default_factory=dict)  # run → note (verified-legacy)

    @property
    def failed_runs(self) -> list:
        return sorted(self.failed)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.interrupted else 0
