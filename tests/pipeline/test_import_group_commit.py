"""A Dagster range step writes artdaqDB's filesystemdb indexes once for the whole range (group
commit, ``store.batch()``), commits before the step reports its partitions materialized, and
still commits the good runs of a range in which one run fails."""

import json

import dagster as dg

import archiver_resources.artdaqdb.filesystem as fs
from archiver_resources.artdaqdb.filesystem import JOURNAL_DIR, filesystem_root
from archiver_resources.samples import generate_run_records

TAGS = {"dagster/asset_partition_range_start": "5001",
        "dagster/asset_partition_range_end": "5004"}


def test_a_range_step_writes_each_index_once(archive_env, monkeypatch):
    generate_run_records(archive_env.run_records, [5001, 5002, 5003, 5004])
    (archive_env.run_records / "5003" / "broken.fcl").write_text("a: [1, 2\n")  # refused
    published = []
    original = fs.Collection.publish_index

    def counting(self, tmp, *, fsync):
        published.append(self.name)
        return original(self, tmp, fsync=fsync)

    monkeypatch.setattr(fs.Collection, "publish_index", counting)
    defs = archive_env.definitions()
    job = defs.resolve_job_def("archive_runs")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("runs", ["5001", "5002", "5003", "5004"])
        result = job.execute_in_process(instance=instance, tags=TAGS, raise_on_error=False)
        materialized = instance.get_materialized_partitions(dg.AssetKey("artdaqdb_config"))
    root = filesystem_root(archive_env.artdaqdb_uri)
    layout = json.loads((root / "SystemLayout" / "index.json").read_text())
    archived = sorted(name.split("/")[0] for name in layout["configurations.name"])
    assert not result.success  # run 5003's record is broken
    assert archived == sorted(materialized) == ["5001", "5002", "5004"]
    # one RunHistory and one SystemLayout index for the range (each run's insert and update
    # would have written both twice: 12 index files)
    assert sorted(published) == ["RunHistory", "SystemLayout"]
    assert not list((root / "SystemLayout" / JOURNAL_DIR).glob("*.journal"))
