"""Per-run failure records: what the archive assets attach to their ``dg.Failure``, read back by
the alert sensors and the command line without parsing text; failures an instance stored before
the records existed (text only) are read through the legacy path."""

from types import SimpleNamespace

import dagster as dg

from archiver_assets.operations.alerts import _failure_details, stage_outcomes
from archiver_assets.outcomes import (
    RUN_FAILURES_KEY, RunFailure, failure_description, failures_from_metadata,
    failures_metadata, legacy_failures_from_text, step_run_failures,
)
from archiver_assets.cli.workers import archive_outcome
from archiver_resources.errors import IntegrityError
from archiver_resources.samples import generate_run_records
from tests.operations.conftest import merged_definitions
from tests.operations.test_alerts import batch_run


def _event(description, metadata):
    user = SimpleNamespace(description=description, metadata=metadata)
    return SimpleNamespace(step_failure_data=SimpleNamespace(user_failure_data=user, error=None),
                           message="step failed")


def test_record_of_an_error_is_one_printable_line_and_round_trips_through_json():
    failure = RunFailure.of_error(12, "migration",
                                  IntegrityError("blob differs\x1b[2J\nforged line", run=12))
    assert failure.error_type == "IntegrityError"
    assert "\n" not in failure.message and "\x1b" not in failure.message
    assert failure.message.startswith("run 12: blob differs\\x1b[2J")
    assert RunFailure.from_json(failure.to_json()) == failure


def test_records_travel_as_metadata_and_the_description_stays_for_people():
    failures = [RunFailure(8, "import", "RunRecordError", "run 8: file x: bad"),
                RunFailure(7, "import", "RecursionError", "run 7: unexpected RecursionError")]
    metadata = failures_metadata(failures)
    assert metadata["failed_runs"].value == [7, 8]
    assert failures_from_metadata(metadata) == sorted(failures, key=lambda f: f.run)
    description = failure_description(failures, 5, "imported")
    assert description == ("2 of 5 run(s) could not be imported:\n"
                           "- run 7: run 7: unexpected RecursionError\n- run 8: run 8: file x: bad")
    # The records win over the text: a message that looks like another run's line stays data.
    tricky = [RunFailure(9, "import", "RunRecordError", "x\\n- run 1: forged")]
    named, records = step_run_failures(
        SimpleNamespace(description=failure_description(tricky, 1, "imported"),
                        metadata=failures_metadata(tricky)), "import")
    assert named == [9] and records == tricky


def test_legacy_failures_stored_as_text_only_are_read_through_the_legacy_path():
    description = ("2 of 3 run(s) could not be migrated and verified:\n"
                   "- run 5: run 5: UconDB unreachable\n- run 6: run 6: IntegrityError x")
    old_metadata = {"failed_runs": dg.MetadataValue.json([5, 6])}
    assert failures_from_metadata(old_metadata) is None
    assert legacy_failures_from_text(description, "migration") == [
        RunFailure(5, "migration", "", "run 5: UconDB unreachable"),
        RunFailure(6, "migration", "", "run 6: IntegrityError x")]
    named, records = step_run_failures(SimpleNamespace(description=description,
                                                       metadata=old_metadata), "migration")
    assert named == [5, 6] and [r.run for r in records] == [5, 6]
    # The alerts read an old event the same way.
    assert _failure_details(_event(description, old_metadata), [4, 5, 6], "migration") == {
        5: "run 5: UconDB unreachable", 6: "run 6: IntegrityError x"}
    # A failure that names no runs (not an archive asset's) fails every run of the step.
    assert _failure_details(_event("boom\nmore", {}), [4, 5], "verification") == {
        4: "boom more", 5: "boom more"}


def test_a_failed_batch_stores_records_that_alerts_and_the_cli_read(archive_env):
    runs = [5301, 5302, 5303]
    keys = [str(r) for r in runs]
    generate_run_records(archive_env.run_records, runs)
    defs = merged_definitions(archive_env, alerts=False)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("runs", keys)
        archive_env.ucondb.stop()  # every migration fails, imports succeed
        result = batch_run(defs, instance, keys)
        assert not result.success
        [event] = [e for e in result.get_step_failure_events() if e.step_key == "ucondb_blob"]
        metadata = event.step_failure_data.user_failure_data.metadata
        records = failures_from_metadata(metadata)
        assert [(r.run, r.stage) for r in records] == [(r, "migration") for r in runs]
        assert all(r.error_type and f"run {r.run}:" in r.message for r in records)
        assert RUN_FAILURES_KEY in metadata
        # The CLI's reading of the result and the alerts' reading of the stored events agree.
        _, failed, _ = archive_outcome(result, "ucondb_blob", runs)
        by_stage = {o.stage: o for o in stage_outcomes(instance, result.dagster_run, runs)}
        assert failed == {r.run: r for r in records}  # the records themselves, typed
        assert {run: f.message for run, f in failed.items()} == by_stage["migration"].failed \
            == {r.run: r.message for r in records}
        assert by_stage["import"].failed == {} and by_stage["import"].succeeded == runs
