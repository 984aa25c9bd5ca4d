"""The batched writes and the marker run on the production storage (PostgreSQL, the deploy/
template): PostgreSQL has its own ``store_event_batch`` (one INSERT per batch), so the same
status checks as on SQLite, against a real server (tests/deploy starts one per session)."""

import dagster as dg
import pytest

from archiver_assets import dagster_internals as internals
from archiver_assets.partitions import runs_partitions
from archiver_assets.state import events
from archiver_assets.state.partition_status import read_partition_status
from tests.deploy.conftest import postgres_db, postgres_server  # noqa: F401 (fixtures)
from tests.deploy.instance import DEPLOY, render_home

pytestmark = pytest.mark.postgres
ASSET = dg.AssetKey("ucondb_blob")


def test_batched_materializations_and_marker_run_on_postgres(tmp_path, postgres_server,
                                                             postgres_db, monkeypatch):
    for key, value in postgres_server.env(postgres_db).items():
        monkeypatch.setenv(key, value)
    home = render_home(tmp_path / "home", DEPLOY / "dagster.postgres.yaml")
    keys = [str(r) for r in range(5000, 7500)]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert internals.has_own_batch_store(instance.event_log_storage)
        instance.add_dynamic_partitions("runs", keys)
        events.record_materializations(instance, ASSET,
                                       {k: {"source": "test"} for k in keys[:-10]})
        events.mark_partitions_failed(instance, ASSET, keys[-10:-5], message="legacy failure")
        found = instance.get_status_by_partition(ASSET, keys, runs_partitions)
        values = [None if s is None else s.value for s in (found[k] for k in keys)]
        assert values == ["MATERIALIZED"] * 2490 + ["FAILED"] * 5 + [None] * 5
        status = read_partition_status(instance, ASSET)
        assert status.failed == set(range(7490, 7495)) and len(status.materialized) == 2490
        assert instance.get_latest_materialization_event(ASSET).asset_materialization.partition \
            == keys[-11]
