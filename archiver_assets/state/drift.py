"""Store drift: runs Dagster records as archived that a store no longer holds (UconDB restored
from an older backup, artdaqDB's database wiped). Left alone, nothing would ever redo them: every
mode and the sensor take only runs Dagster does not know as archived.

``find_drift`` compares partition status with the store listings: a run whose partition is
MATERIALIZED (its latest attempt succeeded, nothing in progress) but that the store's listing
lacks has drifted. ``repair_drift`` turns those partitions back to FAILED, one marker run per
asset (job ``store_drift_repair``) whose failure message names the store and the runs, so the
partitions say why; ``--incremental`` then takes them although they are below its mark
(``PartitionStatus.lost``), the ``new_run_records`` sensor requests them once
(:func:`repairs_after`), and "failed" backfills include them. Re-archiving verifies what a store
still holds and re-uploads what it lost; nothing is stored twice.

Read the status **before** listing the stores: a run archived between the two reads is then
neither materialized in the status read nor missing from the listing, never drift by mistake.
"""

import time
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional

import dagster as dg

from archiver_assets.partitions import run_key, run_of
from archiver_assets.state import events
from archiver_assets.state.partition_status import (
    STAGE_ASSETS, PartitionStatus, latest_attempt_runs,
)

STORE_NAMES = {"import": "artdaqDB", "migrate": "UconDB"}
SHOWN_RUNS = 20


@dataclass
class Drift:
    """Per stage, the runs Dagster records as archived that the stage's store lacks."""

    lost: dict = field(default_factory=dict)  # stage → sorted runs
    markers: dict = field(default_factory=dict)  # stage → marker run id, once repaired

    def __bool__(self) -> bool:
        return any(self.lost.values())

    def lines(self) -> list:
        out = []
        for stage, runs in self.lost.items():
            if runs:
                out.append(f"{STORE_NAMES[stage]} no longer holds {len(runs)} run(s) that "
                           f"Dagster recorded as archived ({_shown(runs)})"
                           + ("; marked failed, they are archived again"
                              if stage in self.markers else ""))
        return out


def _shown(runs) -> str:
    text = ", ".join(str(r) for r in runs[:SHOWN_RUNS])
    return text + (f" … ({len(runs)} in all)" if len(runs) > SHOWN_RUNS else "")


def find_drift(status: Mapping[str, PartitionStatus], *, artdaqdb_runs: Optional[Iterable[int]],
               ucondb_runs: Optional[Iterable[int]]) -> Drift:
    """Compare ``status`` (``read_stage_status``, read before the listings) with the stores'
    listings; a store whose listing is None (not queried, or the query failed) is skipped."""
    drift = Drift()
    for stage, listing in (("import", artdaqdb_runs), ("migrate", ucondb_runs)):
        if listing is None or stage not in status:
            continue
        drift.lost[stage] = sorted(set(status[stage].materialized) - set(listing))
    return drift


def repair_drift(instance, drift: Drift, *, where: Mapping[str, str], found_by: str) -> Drift:
    """Mark each stage's lost runs FAILED with a message naming the store (``where``: stage →
    redacted location) and who found them; records the marker run ids in ``drift.markers``."""
    for stage, runs in drift.lost.items():
        if not runs:
            continue
        message = (f"Store drift: {STORE_NAMES[stage]} ({where.get(stage, '?')}) no longer "
                   f"holds {len(runs)} run(s) that Dagster recorded as archived "
                   f"({_shown(runs)}); found by {found_by} at "
                   f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}. Their partitions are marked "
                   f"failed so they are archived again (--incremental, the new_run_records "
                   f"sensor, or a backfill of failed partitions).")
        drift.markers[stage] = events.mark_partitions_failed(
            instance, STAGE_ASSETS[stage], [run_key(r) for r in runs], message=message,
            tags={**events.DRIFT_TAGS, "archiver/found_by": found_by},
            job_name=events.DRIFT_JOB_NAME)
    return drift


@dataclass(frozen=True)
class Repair:
    """One drift marker run the sensor has not requested yet: its runs and their assets."""

    created: float
    run_id: str
    asset_key: dg.AssetKey
    runs: tuple


def repairs_after(instance, created_after: float, limit: int = 20) -> list:
    """Drift marker runs created after ``created_after`` (a POSIX time), oldest first, with the
    runs each still holds failed (those redone meanwhile are left out)."""
    # (RunsFilter(created_after=…) fails its own type check in Dagster 1.13.27 when dagster is
    # imported first; marker runs are few, so the newest ones are filtered here.)
    newest = instance.get_run_records(
        filters=dg.RunsFilter(job_name=events.DRIFT_JOB_NAME,
                              statuses=[dg.DagsterRunStatus.FAILURE]), limit=10 * limit)
    records = sorted((r for r in newest if r.create_timestamp.timestamp() > created_after),
                     key=lambda r: r.create_timestamp)[:limit]
    found = []
    attempts: dict = {}
    for record in records:
        run = record.dagster_run
        planned = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
        for asset_key in run.asset_selection or ():
            if asset_key not in attempts:
                attempts[asset_key] = latest_attempt_runs(instance, asset_key)
            keys = {event.partition_key for event in planned if event.partition_key}
            runs = sorted(run_of(key) for key in keys
                          if attempts[asset_key].get(key) == run.run_id)
            found.append(Repair(record.create_timestamp.timestamp(), run.run_id, asset_key,
                                tuple(runs)))
    return found


def requests_for(repairs: Iterable[Repair]) -> dict:
    """``{run: set of asset keys}`` to archive again (a run both stores lost: both assets)."""
    wanted: dict = {}
    for repair in repairs:
        for run in repair.runs:
            wanted.setdefault(run, set()).add(repair.asset_key)
    return wanted
