"""The `runs` partitions and the run ↔ partition vocabulary: one dynamic partition per DAQ run,
keyed by the canonical decimal run number, and which runs a Dagster run targets (its partition tag,
or the two tags of a partition range). Every module that turns runs into partition keys, keys or
run tags into runs, or writes range tags uses these functions (docs/architecture.md, "Orchestration
rules shared by every path").
"""

from typing import Callable, Iterable, Sequence

import dagster as dg

RUNS_PARTITIONS_NAME = "runs"

runs_partitions = dg.DynamicPartitionsDefinition(name=RUNS_PARTITIONS_NAME)

# The tags by which a Dagster run names its partitions: one partition, or a range (a backfill with
# a multi-run policy, a command-line batch). A range covers the keys from start to end in the
# partitions' insertion order, not in numeric order.
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def run_key(run: int) -> str:
    """The partition key of a run: its decimal number without zero padding (`00123` → `123`)."""
    return str(int(run))


def is_run_key(partition_key: str) -> bool:
    """Whether ``partition_key`` is a canonical run number (ASCII digits, no zero padding)."""
    return (partition_key.isascii() and partition_key.isdigit()
            and run_key(int(partition_key)) == partition_key)


def run_of(partition_key: str) -> int:
    """The run number of a partition key; rejects anything that is not a canonical run number."""
    if not is_run_key(partition_key):
        raise ValueError(f"partition key {partition_key!r} is not a canonical run number")
    return int(partition_key)


def canonical_runs(keys: Iterable[str]) -> list:
    """The run numbers of ``keys`` in their order, leaving out keys that are not canonical run
    numbers (a foreign partition, ``007``)."""
    return [int(key) for key in keys if is_run_key(key)]


def range_tags(runs: Sequence[int]) -> dict:
    """The tags of a Dagster run over the partition range from ``runs[0]`` to ``runs[-1]``."""
    return {RANGE_START_TAG: run_key(runs[0]), RANGE_END_TAG: run_key(runs[-1])}


def targeted_key_list(tags: dict, key_order: Callable[[], Sequence[str]]) -> list:
    """The partition keys a Dagster run targets, from its tags, in partition order. ``key_order``
    lists the partitions in Dagster's (insertion) order and is only called for a range; when an
    end of the range is no longer a partition, only the two end points are known."""
    if tags.get(PARTITION_TAG):
        return [tags[PARTITION_TAG]]
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if not (start and end):
        return []
    order = list(key_order())
    try:
        first, last = order.index(start), order.index(end)
    except ValueError:  # a partition of the range was deleted: fall back to the end points
        return [start] if start == end else [start, end]
    return order[first:last + 1]


def targeted_keys(tags: dict, key_order: Callable[[], Sequence[str]]) -> set:
    """:func:`targeted_key_list` as a set."""
    return set(targeted_key_list(tags, key_order))


def targeted_runs(tags: dict, key_order: Callable[[], Sequence[str]]) -> list:
    """The run numbers a Dagster run targets (:func:`targeted_key_list`, canonical keys only)."""
    return canonical_runs(targeted_key_list(tags, key_order))
