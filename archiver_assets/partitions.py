"""The `runs` partitions: one dynamic partition per DAQ run, keyed by the canonical decimal run number."""

import dagster as dg

RUNS_PARTITIONS_NAME = "runs"

runs_partitions = dg.DynamicPartitionsDefinition(name=RUNS_PARTITIONS_NAME)


def run_key(run: int) -> str:
    """The partition key of a run: its decimal number without zero padding (`00123` → `123`)."""
    return str(int(run))


def run_of(partition_key: str) -> int:
    """The run number of a partition key; rejects anything that is not a canonical run number."""
    if not partition_key.isascii() or not partition_key.isdigit() or run_key(int(partition_key)) != partition_key:
        raise ValueError(f"partition key {partition_key!r} is not a canonical run number")
    return int(partition_key)
