"""What the command line prints per run of a batch (archiver_assets.cli.workers._account):
warnings of an archived run next to its ✓, not only in Dagster's metadata."""

import logging

from archiver_assets.cli.workers import BatchResult, StageOutcome, _account


def test_an_archived_run_with_warnings_prints_them_next_to_its_tick(caplog):
    warning = "run 6, file pipe.fcl: skipped (FIFO, not a regular file)"
    result = BatchResult(batch=0, runs=[5, 6, 7], run_id="abc", succeeded=[5, 6],
                         failed={7: "run 7: esc.fcl:1:4: FHiCL syntax error"},
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
