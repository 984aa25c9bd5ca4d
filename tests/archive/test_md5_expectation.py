"""Which MD5 the md5_round_trip check expects: the one this Dagster run packed, or artdaqDB's."""

import dagster as dg

from archiver_assets.archive.checks import md5_packed_by_run


class Latest:
    def __init__(self, run_id, action, md5="a" * 32, size=10, **extra):
        self.run_id = run_id
        self.asset_materialization = dg.AssetMaterialization(
            asset_key="ucondb_blob", partition="7",
            metadata={"action": action, "md5": md5, "size_bytes": dg.MetadataValue.int(size),
                      **extra})


def test_the_upload_of_this_run_is_the_expectation():
    for action in ("uploaded", "replaced", "verified-existing"):
        assert md5_packed_by_run(Latest("me", action), "me") == ("a" * 32, 10, "")


def test_a_legacy_blob_taken_over_by_this_run_is_expected_with_its_stored_md5():
    latest = Latest("me", "verified-legacy", stored_md5="b" * 32, stored_packed_on="Oct 15 16:05")
    recorded = md5_packed_by_run(latest, "me")
    assert (recorded.md5, recorded.size, recorded.stored_md5) == ("a" * 32, 10, "b" * 32)


def test_another_runs_upload_or_none_means_packing_again():
    assert md5_packed_by_run(Latest("other", "uploaded"), "me") is None
    assert md5_packed_by_run(None, "me") is None


def test_a_skipped_existing_blob_is_compared_with_artdaqdb_not_with_itself():
    # skip records the MD5 UconDB already held: trusting it would make the check pass blindly.
    assert md5_packed_by_run(Latest("me", "skipped-existing"), "me") is None
