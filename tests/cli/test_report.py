"""--report-status and --compare-state through the command line: the legacy layout (labels in
column 20, ranges, gaps, recommendations), what Dagster knows (failed partitions), the state
comparison from partition status and from legacy state files, and a store that is down (the
report stops at its ``query failed`` line, exit 0)."""

import json

from archiver_resources.samples import generate_run_records
from archiver_resources.statusreport import RULE_DASH, RULE_EQ


def report_lines(out: str) -> list:
    """Message parts of the log lines, leading blanks kept (the layout is part of the test)."""
    return [line.split(" - ", 3)[-1] for line in out.splitlines() if " - " in line]


def block(lines: list, first: str, length: int) -> list:
    start = lines.index(first)
    return lines[start:start + length]


def test_report_layout_dagster_state_comparison_and_store_down(cli_env):
    cli_env.write_config(batch_size=1, parallel_workers=1)
    generate_run_records(cli_env.run_records, [1001, 1002, 1003, 1005], profile="small")
    assert cli_env.main("--import-only")[0] == 0

    code, out = cli_env.main("--report-status")
    assert code == 0
    lines = report_lines(out)
    assert block(lines, "RUN RECORD ARCHIVER - STATUS REPORT", 6) == [
        "RUN RECORD ARCHIVER - STATUS REPORT", RULE_EQ, "Querying data sources...",
        "✓ Filesystem query complete", "✓ ArtdaqDB query complete", "✓ UconDB query complete"]
    assert block(lines, "FILESYSTEM (Source)", 7) == [
        "FILESYSTEM (Source)", RULE_DASH,
        f"  Location:        {cli_env.run_records}",
        "  Total Runs:      4",
        "  Range:           1001 to 1005",
        "  Contiguous:      1001-1003, 1005",
        "  Gaps:            1004"]
    assert block(lines, "ARTDAQDB (Intermediate Storage)", 4)[2:] == [
        f"  Database URI:    {cli_env.artdaqdb_uri}", "  Total Runs:      4"]
    assert block(lines, "UCONDB (Long-term Storage)", 6) == [
        "UCONDB (Long-term Storage)", RULE_DASH,
        f"  Server URL:      {cli_env.ucondb.base_url}",
        "  Folder/Object:   cli_runs/configuration",
        "  Total Runs:      0",
        "  Status:          No runs found"]
    assert "  Status:          No failed partitions" in lines
    assert block(lines, "RECOMMENDATIONS", 3)[2] == \
        "1. Run MIGRATOR: 4 run(s) in artdaqDB not in UconDB (range: 1001-1005)"
    assert lines[-3:] == [RULE_EQ, "END OF STATUS REPORT", RULE_EQ]
    assert "STATE COMPARISON" not in lines

    # One migration fails (HTTP 400): a failed ucondb_blob partition.
    cli_env.ucondb.faults.fail_next(1, status=400, body="refused", method="POST")
    assert cli_env.main("--migrate-only")[0] == 1
    work = cli_env.work_dir
    (work / "importer_state.json").write_text(json.dumps(
        {"last_contiguous_run": 1002, "last_attempted_run": 1005}))
    (work / "import_failures.log").write_text("1003\n")

    code, out = cli_env.main("--compare-state")
    assert code == 0
    lines = report_lines(out)
    assert block(lines, "IMPORT STAGE STATE", 5) == [
        "IMPORT STAGE STATE", RULE_DASH, "  Last Contiguous Run: 1003",
        "  Status:              All expected runs present in ArtdaqDB",
        "  New Runs Available:  1 run(s) since last state update (range: 1005-1005)"]
    assert block(lines, "MIGRATION STAGE STATE", 6) == [
        "MIGRATION STAGE STATE", RULE_DASH, "  Last Contiguous Run: 1003",
        "  Missing in UconDB:   1 run(s) before last contiguous (1001)",
        "  New Runs Available:  1 run(s) since last state update (range: 1005-1005)",
        "  Failed Runs:         1 run(s) logged as failed (1001)"]
    legacy = lines.index(f"STATE COMPARISON (legacy state files in {work})")
    assert lines[legacy + 3:legacy + 6] == ["IMPORT STAGE STATE", RULE_DASH,
                                            "  Last Contiguous Run: 1002"]
    assert "  Failed Runs:         1 run(s) logged as failed (1003)" in lines[legacy:]
    assert lines.index("DAGSTER") > legacy  # both comparisons before Dagster's section
    assert "  ucondb_blob: 1 partition(s) (1001)" in lines
    recommendations = lines[lines.index("RECOMMENDATIONS") + 2:]
    assert recommendations[0] == \
        "1. Run MIGRATOR: 1 run(s) in artdaqDB not in UconDB (range: 1001-1001)"
    assert recommendations[1].startswith("2. BACKFILL ucondb_blob: 1 failed partition(s)")

    cli_env.ucondb.stop()  # a store down: the report stops at its query line, exit 0
    code, out = cli_env.main("--report-status")
    assert code == 0
    lines = report_lines(out)
    assert lines[-4:-1] == ["Querying data sources...", "✓ Filesystem query complete",
                            "✓ ArtdaqDB query complete"]
    assert lines[-1].startswith("✗ UconDB query failed: ")
    assert "DATA SOURCE SUMMARY" not in lines
    assert cli_env.ucondb.password not in out
