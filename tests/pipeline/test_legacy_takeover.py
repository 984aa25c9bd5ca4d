"""Taking over from the legacy tool through the Dagster jobs: UconDB already holds
the legacy tool's blobs, packed from the same artdaqDB export with the wall-clock `Packed on`
time. The migration accepts such a blob as `verified-legacy` (both MD5s in the metadata), the MD5
check passes (in the run and as an audit), the status counts no mismatch; one other changed byte
fails the partition, alerts, and the stored blob stays as it was."""

from datetime import timedelta

import dagster as dg

from archiver_assets.operations.status import dagster_status
from archiver_resources.archiving import build_blob
from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.blob import format_packed_on, md5_hex, pack
from archiver_resources.samples import generate_run_records
from tests.operations.conftest import (  # noqa: F401 (webhook_server: a fixture)
    enable_alerts, merged_definitions, webhook_server,
)
from tests.operations.test_alerts import Ticker, hooks
from tests.pipeline.test_end_to_end import (
    MD5_CHECK, MIGRATE, check_results, client_for, failed_partitions, run_partitions,
)

LEGACY_SHIFT = timedelta(days=41, hours=2, minutes=33)


def legacy_blob(env, run: int, *, flip_byte: bool = False) -> tuple:
    """(our blob, the legacy tool's blob): the project's own export of the run, packed once with
    its deterministic time and once with another time; ``flip_byte`` also changes one byte in
    the middle."""
    with open_artdaqdb(env.artdaqdb_uri) as store:
        _, files, packed_at, ours = build_blob(run, store)
    legacy = pack(run, files, packed_at - LEGACY_SHIFT)
    if flip_byte:
        middle = len(legacy) // 2
        legacy = legacy[:middle] + bytes([legacy[middle] ^ 0x20]) + legacy[middle + 1:]
    return ours, legacy, format_packed_on(packed_at - LEGACY_SHIFT)


def metadata_of(result) -> dict:
    [materialization] = result.asset_materializations_for_node("ucondb_blob")
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def test_legacy_blobs_already_in_ucondb_are_taken_over_and_a_changed_byte_alerts(
        archive_env, webhook_server, monkeypatch):  # noqa: F811
    runs = [7001, 7002, 7003]
    keys = [str(r) for r in runs]
    generate_run_records(archive_env.run_records, runs)
    enable_alerts(archive_env, monkeypatch, webhook=webhook_server)
    defs = merged_definitions(archive_env)
    with dg.instance_for_test() as instance:
        tick = Ticker(defs, instance)
        tick.baseline("archive_run_failure_alerts", "check_failure_alerts")
        instance.add_dynamic_partitions("runs", keys)
        assert all(r.success for r in run_partitions(defs, instance, keys, "import_runs").values())
        ours, legacy, legacy_time = legacy_blob(archive_env, 7001)
        _, changed, _ = legacy_blob(archive_env, 7002, flip_byte=True)
        assert md5_hex(ours) != md5_hex(legacy) and len(ours) == len(legacy)
        with client_for(archive_env) as client:  # the legacy tool was here first
            client.put_blob(7001, legacy)
            client.put_blob(7002, changed)

        results = run_partitions(defs, instance, keys, "migrate_runs")

        taken = results["7001"]
        assert taken.success
        meta = metadata_of(taken)
        assert meta["action"] == "verified-legacy"
        assert (meta["md5"], meta["stored_md5"]) == (md5_hex(ours), md5_hex(legacy))
        assert meta["stored_packed_on"] == legacy_time
        assert check_results(taken)[("ucondb_blob", "md5_round_trip")] is True
        [evaluation] = [e for e in taken.get_asset_check_evaluations()
                        if e.check_name == "md5_round_trip"]
        check_meta = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
        assert check_meta["outcome"] == "verified-legacy"
        assert (check_meta["expected_md5"], check_meta["served_md5"]) == (md5_hex(ours),
                                                                         md5_hex(legacy))
        assert check_meta["expected_from"] == "this run's upload"
        assert metadata_of(results["7003"])["action"] == "uploaded"

        assert not results["7002"].success
        assert failed_partitions(defs, instance, MIGRATE) == ["7002"]
        with client_for(archive_env) as client:
            assert client.get_blob(7001).data == legacy  # taken over as it is
            assert client.get_blob(7002).data == changed  # a mismatch: never overwritten

        # The failure alert names 7002 and the cause; 7001 is not a failure.
        tick("archive_run_failure_alerts")
        [hook] = hooks(webhook_server)
        assert "1 runs failed" in hook["text"]
        assert "*Run Numbers:*\n7002" == hook["blocks"][2]["text"]["text"]

        # Audited alone (as from the UI), the check packs from artdaqDB again: still verified.
        audit = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection=set(), asset_check_selection={MD5_CHECK})
        alone = audit.execute_in_process(instance=instance, partition_key="7001",
                                         raise_on_error=False)
        [evaluation] = alone.get_asset_check_evaluations()
        assert evaluation.passed
        assert evaluation.metadata["expected_from"].value == "packed again from artdaqDB"
        assert evaluation.metadata["outcome"].value == "verified-legacy"
        assert evaluation.metadata["served_packed_on"].value == legacy_time
        tick("check_failure_alerts")
        assert len(hooks(webhook_server)) == 1  # no check alert for the legacy blob

        # The status report counts no mismatch for 7001: only 7002's partition failed.
        status = dagster_status(instance)
        assert status.failed_partitions["ucondb_blob"] == ["7002"]
        assert all(not k for k in status.failed_checks.values()), status.failed_checks
