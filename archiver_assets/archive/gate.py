"""The migration gate: a run goes to UconDB only when its import (`artdaqdb_config`) is
materialized in Dagster — its latest attempt succeeded — and no blocking check of that import
failed for it.

Every path that migrates goes through this one rule: the `ucondb_blob` asset refuses a held run
(so the daemon's runs, UI backfills and the command line's `migrate_runs` runs all obey it), and
the command line's planner leaves held runs out and says why. The daemon's `archive_automation`
sensor adds Dagster's own `all_deps_blocking_checks_passed` on top, which is stricter (it also
waits for a check that never ran).

Reading it costs three queries for any number of runs (plus one per held run for the check's
description): the latest import materialization and the latest import attempt per partition, and
the blocking checks' latest evaluation per partition.
"""

from dataclasses import dataclass
from typing import Iterable, Mapping, Optional

import dagster as dg

from archiver_assets import dagster_internals as internals
from archiver_assets.partitions import run_key, run_of
from archiver_resources.errors import ArchiverError

IMPORT_ASSET = dg.AssetKey("artdaqdb_config")
#: The blocking checks of `artdaqdb_config` (a test keeps this in step with the definitions).
BLOCKING_IMPORT_CHECKS = (dg.AssetCheckKey(IMPORT_ASSET, "hashes_match"),)


class MigrationHeldError(ArchiverError):
    """The gate holds the run back: its import is not materialized or a blocking check failed."""

    retryable = False

    def __init__(self, run: int, reason: str):
        self.run = run
        self.reason = reason
        super().__init__(f"run {run}: not migrated: {reason}")


@dataclass(frozen=True)
class Hold:
    """Why one run is held back from migration."""

    run: int
    reason: str
    check_failed: bool = False  # a blocking check failed (as opposed to: import not materialized)


def _failed_evaluation(storage, check_key: dg.AssetCheckKey, key: str):
    """The latest evaluation of ``check_key`` for partition ``key`` (None if unreadable)."""
    history = internals.check_history(storage, check_key, limit=1, partition=key)
    return history[0].evaluation if history else None


CHUNK = 5000  # partition keys per query (SQLite binds each one)


def _chunks(keys: list) -> Iterable[list]:
    for start in range(0, len(keys), CHUNK):
        yield keys[start:start + CHUNK]


def _latest_ids(storage, event_type, keys: list) -> dict:
    found: dict = {}
    for chunk in _chunks(keys):
        found.update(storage.get_latest_storage_id_by_partition(IMPORT_ASSET, event_type,
                                                                partitions=set(chunk)))
    return found


def failed_checks(instance, runs: Optional[Iterable[int]] = None,
                  checks: Iterable[dg.AssetCheckKey] = BLOCKING_IMPORT_CHECKS) -> dict:
    """``{run: reason}``: runs whose blocking import check failed (ERROR) on their current
    import. ``runs`` None: every run partition (``--retry-failed-import``)."""
    storage = instance.event_log_storage
    checks = list(checks)
    if runs is None:
        infos = storage.get_asset_check_partition_info(checks)
    else:
        infos = [info for chunk in _chunks([run_key(r) for r in runs])
                 for info in storage.get_asset_check_partition_info(checks, partition_keys=chunk)]
    found: dict = {}
    for info in infos:
        if (internals.status_value(info.latest_execution_status) != internals.FAILED
                or not info.is_current or not info.partition_key):
            continue
        try:
            run = run_of(info.partition_key)
        except ValueError:  # not a run partition
            continue
        if run in found:
            continue
        evaluation = _failed_evaluation(storage, info.check_key, info.partition_key)
        if evaluation is not None and evaluation.severity != dg.AssetCheckSeverity.ERROR:
            continue  # a warning (e.g. the run record is gone) does not hold the run
        detail = (evaluation.description if evaluation is not None else None) or "check failed"
        found[run] = (f"blocking check {info.check_key.name} of its import failed "
                      f"({detail.removeprefix(f'run {run}: ')})")
    return found


def holds(instance, runs: Iterable[int],
          checks: Iterable[dg.AssetCheckKey] = BLOCKING_IMPORT_CHECKS) -> Mapping[int, Hold]:
    """``{run: Hold}`` for the ``runs`` the gate holds back from migration (module docstring)."""
    keys = {run_key(run): run for run in runs}
    if not keys:
        return {}
    storage = instance.event_log_storage
    materialized = _latest_ids(storage, dg.DagsterEventType.ASSET_MATERIALIZATION, list(keys))
    attempted = _latest_ids(storage, dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
                            list(keys))
    held: dict = {}
    for key, run in keys.items():
        if key not in materialized:
            held[run] = Hold(run, "not imported: artdaqdb_config has no materialization for it")
        elif attempted.get(key, 0) > materialized[key]:
            held[run] = Hold(run, "its latest import attempt did not succeed (artdaqdb_config "
                                  "failed or is in progress); re-import it first")
    for run, reason in failed_checks(instance, [r for r in keys.values() if r not in held],
                                     checks).items():
        held[run] = Hold(run, f"{reason}; fix the cause and re-import the run "
                              f"(--retry-failed-import, or re-materialize artdaqdb_config)",
                         check_failed=True)
    return held
