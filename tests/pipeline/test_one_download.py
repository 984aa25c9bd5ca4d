"""One streamed download of a run's blob serves all of ucondb_blob's checks: in the Dagster run
that uploaded it, the upload's own verifying download (recorded in the materialization) and no
other; run alone as an audit, one download per run for md5_round_trip and legacy_metadata
together. Downloads are counted at the local UconDB server; the verdicts (identical,
verified-legacy, mismatch, metadata problems) are those of the checks that downloaded on their
own."""

import dagster as dg
import pytest

from archiver_assets.archive.checks import ucondb_blob_checks
from archiver_resources.archiving import build_blob
from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.blob import md5_hex, pack, split_blob, validate_metadata
from archiver_resources.samples import generate_run_records
from tests.pipeline.test_end_to_end import MIGRATE, client_for, run_partitions
from tests.pipeline.test_legacy_takeover import legacy_blob

MD5 = dg.AssetCheckKey(MIGRATE, "md5_round_trip")
LEGACY = dg.AssetCheckKey(MIGRATE, "legacy_metadata")


def downloads(env) -> dict:
    """``{run: number of blob downloads}`` the local UconDB server answered so far."""
    counts: dict = {}
    for method, path in env.ucondb.faults.requests:
        if method == "GET" and "/key=" in path:
            run = int(path.rsplit("/key=", 1)[1])
            counts[run] = counts.get(run, 0) + 1
    return counts


def evaluations(result) -> dict:
    """``{(check, run): (passed, metadata)}`` of a single-partition result."""
    out = {}
    for evaluation in result.get_asset_check_evaluations():
        meta = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
        out[evaluation.check_name] = (evaluation.passed, meta, evaluation)
    return out


def recorded_evaluations(instance, run_id) -> dict:
    """``{(check, partition): evaluation}`` recorded per partition by a batched Dagster run."""
    out = {}
    for key in (MD5, LEGACY):
        for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=100):
            if record.run_id == run_id and record.partition:
                out[(key.name, record.partition)] = record.event.dagster_event.event_specific_data
    return out


def audit(defs, instance, checks, **kwargs):
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(), asset_check_selection=set(checks))
    return job.execute_in_process(instance=instance, raise_on_error=False, **kwargs)


def legacy_verdict(env, run) -> list:
    """What the legacy rule says about the blob UconDB serves, over the whole blob."""
    with client_for(env) as client:
        return validate_metadata(split_blob(client.get_blob(run).data.decode("utf-8", "replace")))


def test_the_checks_share_one_step_and_keep_their_names_and_flags():
    specs = {spec.name: spec for spec in ucondb_blob_checks.check_specs}
    assert set(specs) == {"md5_round_trip", "legacy_metadata"}
    assert specs["md5_round_trip"].blocking and not specs["legacy_metadata"].blocking
    assert all(spec.partitions_def is not None for spec in specs.values())
    assert "`--validate`" in specs["legacy_metadata"].description


@pytest.mark.parametrize("batched", [False, True], ids=["one-partition", "range"])
def test_one_download_per_run_in_the_uploading_run_and_in_an_audit(archive_env, batched):
    runs = [5001, 5002, 5003]
    keys = [str(r) for r in runs]
    generate_run_records(archive_env.run_records, runs)
    defs = archive_env.definitions()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("runs", keys)
        archive_env.ucondb.faults.reset()
        if batched:
            job = defs.resolve_job_def("archive_runs")
            result = job.execute_in_process(instance=instance, raise_on_error=False, tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1]})
            assert result.success
            recorded = recorded_evaluations(instance, result.run_id)
            md5s = {k: recorded[("md5_round_trip", k)] for k in keys}
            legacy = {k: recorded[("legacy_metadata", k)] for k in keys}
        else:
            results = run_partitions(defs, instance, keys)
            assert all(r.success for r in results.values())
            md5s = {k: evaluations(r)["md5_round_trip"][2] for k, r in results.items()}
            legacy = {k: evaluations(r)["legacy_metadata"][2] for k, r in results.items()}
        assert downloads(archive_env) == {r: 1 for r in runs}  # the upload's verification only
        for key in keys:
            assert md5s[key].passed and legacy[key].passed is (not legacy_verdict(
                archive_env, int(key)))
            assert md5s[key].metadata["outcome"].value == "identical"
            assert md5s[key].metadata["expected_from"].value == "this run's upload"

        # Audited alone (as from the UI): one streamed download per run for both checks.
        archive_env.ucondb.faults.reset()
        for key in keys:
            checked = evaluations(audit(defs, instance, [MD5, LEGACY], partition_key=key))
            assert checked["md5_round_trip"][0] is True
            assert checked["md5_round_trip"][1]["expected_from"] == "packed again from artdaqDB"
            assert checked["legacy_metadata"][1]["errors"] == \
                legacy[key].metadata["errors"].value
        assert downloads(archive_env) == {r: 1 for r in runs}
        # Each check alone downloads once too.
        for only in (MD5, LEGACY):
            archive_env.ucondb.faults.reset()
            result = audit(defs, instance, [only], partition_key=keys[0])
            assert [e.check_name for e in result.get_asset_check_evaluations()] == [only.name]
            assert downloads(archive_env) == {runs[0]: 1}


def _metadata_problem_blob(env, run) -> bytes:
    """Our export of the run with metadata.fcl missing its config_name and with two
    components lines: the MD5 differs (a mismatch) and the legacy rule finds two problems."""
    with open_artdaqdb(env.artdaqdb_uri) as store:
        _, files, packed_at, _ = build_blob(run, store)
    name = next(n for n in files if n.endswith("metadata.fcl"))
    files[name] = "components: [a]\ncomponents: [b]\nsbndaq_commit_or_version: v1\n"
    return pack(run, files, packed_at)


def test_verdicts_in_the_uploading_run_and_in_one_download_audits(archive_env):
    runs = [6001, 6002, 6003, 6004]
    keys = [str(r) for r in runs]
    generate_run_records(archive_env.run_records, runs)
    defs = archive_env.definitions()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("runs", keys)
        assert all(r.success for r in run_partitions(defs, instance, keys, "import_runs").values())
        ours, legacy, _ = legacy_blob(archive_env, 6001)
        with client_for(archive_env) as client:  # the legacy tool was here first for 6001
            client.put_blob(6001, legacy)
        archive_env.ucondb.faults.reset()
        migrated = run_partitions(defs, instance, keys, "migrate_runs")
        assert all(r.success for r in migrated.values())
        assert downloads(archive_env) == {r: 1 for r in runs}
        taken = evaluations(migrated["6001"])
        assert taken["md5_round_trip"][1]["outcome"] == "verified-legacy"
        assert (taken["md5_round_trip"][1]["expected_md5"],
                taken["md5_round_trip"][1]["served_md5"]) == (md5_hex(ours), md5_hex(legacy))

        with client_for(archive_env) as client:  # faults after archiving
            client.put_blob(6002, _metadata_problem_blob(archive_env, 6002), override=True)
            client.put_blob(6003, b"corrupted by a test", override=True)
        archive_env.ucondb.faults.reset()
        checked = {key: evaluations(audit(defs, instance, [MD5, LEGACY], partition_key=key))
                   for key in keys}
        assert downloads(archive_env) == {r: 1 for r in runs}

        assert checked["6001"]["md5_round_trip"][1]["outcome"] == "verified-legacy"
        assert checked["6004"]["md5_round_trip"][1]["outcome"] == "identical"
        assert checked["6002"]["md5_round_trip"][0] is False
        assert checked["6002"]["md5_round_trip"][1]["outcome"] == "mismatch"
        passed, meta, evaluation = checked["6002"]["legacy_metadata"]
        assert not passed and evaluation.severity == dg.AssetCheckSeverity.WARN
        assert meta["errors"] == legacy_verdict(archive_env, 6002) == [
            "components: multiple matches for parameter 'components'",
            "configuration: no matches for parameter 'config_name'"]
        assert checked["6003"]["md5_round_trip"][1]["outcome"] == "mismatch"
        passed, meta, evaluation = checked["6003"]["legacy_metadata"]  # the splitter's error
        assert not passed and meta["error"] == "BlobError"
        assert "No file markers found in blob" in evaluation.description

        # The same verdicts from a batched audit, still one download per run.
        archive_env.ucondb.faults.reset()
        result = audit(defs, instance, [MD5, LEGACY], tags={
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1]})
        assert downloads(archive_env) == {r: 1 for r in runs}
        recorded = recorded_evaluations(instance, result.run_id)
        assert {k: recorded[("md5_round_trip", k)].passed for k in keys} == {
            "6001": True, "6002": False, "6003": False, "6004": True}
        assert {k: recorded[("legacy_metadata", k)].description for k in keys} == {
            k: checked[k]["legacy_metadata"][2].description for k in keys}


def test_the_skip_policy_keeps_a_different_blob_and_the_check_reports_it_without_downloading(
        archive_env):
    from tests.pipeline.conftest import write_config

    write_config(archive_env.root, archive_env.ucondb, run_records=archive_env.run_records,
                 artdaqdb_uri=archive_env.artdaqdb_uri, extra_app="  on_existing: skip")
    generate_run_records(archive_env.run_records, [6101])
    defs = archive_env.definitions()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("runs", ["6101"])
        assert run_partitions(defs, instance, ["6101"], "import_runs")["6101"].success
        changed = _metadata_problem_blob(archive_env, 6101)
        with client_for(archive_env) as client:
            client.put_blob(6101, changed)
        archive_env.ucondb.faults.reset()
        result = run_partitions(defs, instance, ["6101"], "migrate_runs")["6101"]
        assert downloads(archive_env) == {6101: 1}
        [materialization] = result.asset_materializations_for_node("ucondb_blob")
        assert materialization.metadata["action"].value == "skipped-existing"
        checked = evaluations(result)
        assert checked["md5_round_trip"][0] is False  # blocking: the run fails
        assert checked["md5_round_trip"][1]["outcome"] == "mismatch"
        assert checked["md5_round_trip"][1]["served_md5"] == md5_hex(changed)
        assert checked["legacy_metadata"][1]["errors"] == legacy_verdict(archive_env, 6101)
        # An audit agrees, with one download.
        archive_env.ucondb.faults.reset()
        alone = evaluations(audit(defs, instance, [MD5, LEGACY], partition_key="6101"))
        assert downloads(archive_env) == {6101: 1}
        assert alone["md5_round_trip"][1]["outcome"] == "mismatch"
        assert alone["md5_round_trip"][1]["expected_md5"] == \
            checked["md5_round_trip"][1]["expected_md5"]
