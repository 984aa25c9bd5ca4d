"""What the command line prints per run of a batch (archiver_assets.cli.workers._account):
warnings of an archived run next to its ✓, not only in Dagster's metadata."""

import logging

from archiver_assets.cli.workers import BatchResult, StageOutcome, _account
from archiver_assets.outcomes import RunFailure


def test_an_archived_run_with_warnings_prints_them_next_to_its_tick(caplog):
    warning = "run 6, file pipe.fcl: skipped (FIFO, not a regular file)"
    result = BatchResult(batch=0, runs=[5, 6, 7], run_id="abc", succeeded=[5, 6],
                         failed={7: RunFailure(7, "import", "",
                                               "run 7: esc.fcl:1:4: FHiCL syntax error")},
                         warnings={6: [warning]})
    outcome = StageOutcome(stage="import")
    log = logging.getLogger("tests.stage_report")
    with caplog.at_level(logging.INFO, logger=log.name):
        _account(outcome, result, "import", log, 3)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("INFO", "✓ Run 5 imported successfully") in lines
    tick = lines.index(("WARNING", "✓ Run 6 imported successfully, with 1 warning(s):"))
    assert lines[tick + 1] == ("WARNING", f"    ⚠ {warning}")
    assert ("ERROR", "✗ Run 7 failed: esc.fcl:1:4: FHiCL syntax error") in lines
    assert outcome.succeeded == [5, 6] and list(outcome.failed) == [7]


def test_a_failed_run_line_names_stage_and_error_type_when_known(caplog):
    """The worker answers a RunFailure per failed run; the line shows its stage and error type
    in parentheses, and keeps the legacy form when the type is unknown (a failed check, a
    worker that died)."""
    result = BatchResult(batch=0, runs=[12, 13, 14], run_id="abc", succeeded=[],
                         failed={12: RunFailure(12, "import", "FhiclSyntaxError",
                                                "run 12: esc.fcl:1:4: FHiCL syntax error"),
                                 13: RunFailure(13, "migration", "UconDBError",
                                                "HTTP 400: Simulated refusal"),
                                 14: RunFailure(14, "migration", "",
                                                "blocking check md5_round_trip failed: x")})
    outcome = StageOutcome(stage="migrate")
    log = logging.getLogger("tests.stage_report")
    with caplog.at_level(logging.INFO, logger=log.name):
        _account(outcome, result, "migrate", log, 3)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [
        "✗ Run 12 failed (import, FhiclSyntaxError): esc.fcl:1:4: FHiCL syntax error",
        "✗ Run 13 failed (migration, UconDBError): HTTP 400: Simulated refusal",
        "✗ Run 14 failed: blocking check md5_round_trip failed: x"]
    # The stage outcome (alerts, metrics) keeps the plain reason per run.
    assert outcome.failed == {12: "esc.fcl:1:4: FHiCL syntax error",
                              13: "HTTP 400: Simulated refusal",
                              14: "blocking check md5_round_trip failed: x"}


def test_the_worker_answer_carries_run_failure_records():
    """Worker → CLI protocol: ``failed`` maps each run to a RunFailure's JSON; the parent reads
    the typed records back."""
    import json

    from archiver_assets.cli.workers import _batch_result

    failure = RunFailure(12, "import", "FhiclSyntaxError", "run 12: bad")
    answer = json.loads(json.dumps({"run_id": "r", "succeeded": [11],
                                    "failed": {"12": failure.to_json()}}))
    result = _batch_result(0, [11, 12], answer, worker=None, stage="import")
    assert result.failed == {12: failure} and result.succeeded == [11]

    class Gone:  # a worker process that exited
        class proc:
            @staticmethod
            def poll():
                return -9

    result = _batch_result(1, [15], None, Gone(), stage="migrate")
    assert result.failed == {15: RunFailure(
        15, "migration", "", "worker process exited unexpectedly (exit code -9)")}
