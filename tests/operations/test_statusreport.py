"""Status report: legacy layout byte for byte (docs/alerts.md, "The status report"), range/gap
rules, recommendations, lag, markdown table and plot."""

import logging

import numpy as np
import pytest

from archiver_resources.statusreport import (
    DagsterStatus, StageState, StateComparison, build_report, contiguous_ranges, format_gaps,
    format_ranges, gap_count, gap_ranges, markdown_table, plot_png, recommendations, store_lag,
    summary_frame,
)

FS_EXAMPLE = set(range(1000, 1006)) | set(range(1008, 1012)) | {1013, 1015}
LOCATIONS = {"filesystem": "/daq/run_records", "artdaqdb": "<database_uri>",
             "ucondb": "<server_url>", "ucondb_folder": "<folder>", "ucondb_object": "<object>"}

SPEC_EXAMPLE = """\
======================================================================
RUN RECORD ARCHIVER - STATUS REPORT
======================================================================
Querying data sources...
✓ Filesystem query complete
✓ ArtdaqDB query complete
✓ UconDB query complete

======================================================================
DATA SOURCE SUMMARY
======================================================================

FILESYSTEM (Source)
----------------------------------------------------------------------
  Location:        /daq/run_records
  Total Runs:      12
  Range:           1000 to 1015
  Contiguous:      1000-1005, 1008-1011, 1013, 1015
  Gaps:            1006, 1007, 1012, 1014

ARTDAQDB (Intermediate Storage)
----------------------------------------------------------------------
  Database URI:    <database_uri>
  Total Runs:      0
  Status:          No runs found

UCONDB (Long-term Storage)
----------------------------------------------------------------------
  Server URL:      <server_url>
  Folder/Object:   <folder>/<object>
  Total Runs:      0
  Status:          No runs found

======================================================================
RECOMMENDATIONS
======================================================================
1. Run IMPORTER: 12 run(s) on filesystem not in artdaqDB (range: 1000-1015)

======================================================================
END OF STATUS REPORT
======================================================================
"""


def test_spec_example_byte_for_byte():
    report = build_report(FS_EXAMPLE, set(), set(), locations=LOCATIONS)
    assert report.text() == SPEC_EXAMPLE
    assert all(len(line) == 70 for line in report.lines() if set(line) in ({"="}, {"-"}))


def test_values_start_in_column_20():
    report = build_report(FS_EXAMPLE, {1000}, {1000}, locations=LOCATIONS)
    labelled = [line for line in report.lines() if line.startswith("  ") and ":" in line]
    assert labelled
    for line in labelled:
        assert line[19] != " " and line[18] == " ", line


def test_nonempty_store_sections():
    report = build_report(FS_EXAMPLE, {1000, 1001, 1003}, {1000}, locations=LOCATIONS)
    lines = report.lines()
    start = lines.index("ARTDAQDB (Intermediate Storage)")
    assert lines[start + 2:start + 7] == [
        "  Database URI:    <database_uri>",
        "  Total Runs:      3",
        "  Range:           1000 to 1003",
        "  Contiguous:      1000-1001, 1003",
        "  Gaps:            1002",
    ]
    ucon = lines.index("UCONDB (Long-term Storage)")
    assert lines[ucon + 4:ucon + 8] == ["  Total Runs:      1", "  Range:           1000 to 1000",
                                        "  Contiguous:      1000", "  Gaps:            None"]


def test_password_in_database_uri_is_masked():
    report = build_report({1}, {1}, {1}, locations={**LOCATIONS,
                          "artdaqdb": "mongodb://arch:s3cr3t@db:27017/x_archive"})
    text = report.text()
    assert "s3cr3t" not in text
    assert "mongodb://arch:***@db:27017/x_archive" in text


# ---------------------------------------------------------------------------------- ranges/gaps

def test_contiguous_ranges_basic():
    assert contiguous_ranges(FS_EXAMPLE) == [(1000, 1005), (1008, 1011), (1013, 1013), (1015, 1015)]
    assert contiguous_ranges([]) == []
    assert contiguous_ranges([7, 7, 7]) == [(7, 7)]
    assert gap_ranges([1, 5, 6, 9]) == [(2, 4), (7, 8)]


def test_format_ranges_ten_ranges_not_truncated():
    runs = list(range(0, 20, 2))  # 10 single-run ranges
    assert format_ranges(runs) == "0, 2, 4, 6, 8, 10, 12, 14, 16, 18"


def test_format_ranges_more_than_ten_truncated():
    runs = [r for start in range(0, 110, 10) for r in (start, start + 1)]  # 11 ranges
    assert format_ranges(runs) == ("0-1, 10-11, 20-21, 30-31, 40-41 ... 60-61, 70-71, 80-81, "
                                   "90-91, 100-101 (11 ranges total)")


def test_format_gaps_rules():
    assert format_gaps([1, 2, 3]) == "None"
    assert format_gaps([5]) == "None"
    assert format_gaps([]) == "None"
    assert format_gaps([1, 22]) == ", ".join(str(r) for r in range(2, 22))  # exactly 20
    assert format_gaps([1, 23]) == ", ".join(str(r) for r in range(2, 22)) + " ... (21 gaps total)"
    assert format_gaps([1, 4, 8], limit=3) == "2, 3, 5 ... (5 gaps total)"


def test_huge_sparse_range_does_not_enumerate():
    runs = [1, 500, 10**9]
    assert gap_count(runs) == 10**9 - 3
    expected = ", ".join(str(r) for r in range(2, 22)) + f" ... ({10**9 - 3} gaps total)"
    assert format_gaps(runs) == expected


def test_100k_runs_correct():
    rng = np.random.default_rng(7)
    runs = set(rng.choice(300_000, 100_000, replace=False).tolist())
    ranges = contiguous_ranges(runs)
    assert sum(b - a + 1 for a, b in ranges) == 100_000
    assert all(ranges[i][1] + 1 < ranges[i + 1][0] for i in range(len(ranges) - 1))
    assert gap_count(runs) == max(runs) - min(runs) + 1 - 100_000
    half = set(list(runs)[:50_000])
    report = build_report(runs, half, set(), locations=LOCATIONS)
    assert store_lag(report)["artdaqdb_behind_filesystem"] == 50_000
    assert "(%d ranges total)" % len(ranges) in "\n".join(report.lines())
    png = plot_png(report)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------ recommendations

def _recs(fs, adb, ucon, **kw):
    report = build_report(fs, adb, ucon, locations=LOCATIONS, **kw)
    lines = report.lines()
    start = lines.index("RECOMMENDATIONS") + 2
    return lines[start:lines.index("END OF STATUS REPORT") - 2]


def test_recommendations_order_all_four():
    assert _recs({1, 2, 3}, {2, 3, 4, 5}, {5, 6}) == [
        "1. Run IMPORTER: 1 run(s) on filesystem not in artdaqDB (range: 1-1)",
        "2. Run MIGRATOR: 3 run(s) in artdaqDB not in UconDB (range: 2-4)",
        "3. WARNING: 2 run(s) in artdaqDB but not on filesystem (may have been deleted)",
        "4. INFO: 1 run(s) in UconDB but not in artdaqDB "
        "(may have been cleaned up from intermediate storage)",
    ]


def test_recommendations_synchronized():
    assert _recs({1, 2}, {1, 2}, {1, 2}) == ["1. All systems are synchronized - no action needed"]
    assert _recs(set(), set(), set()) == ["1. All systems are synchronized - no action needed"]


def test_recommendation_levels():
    report = build_report({1}, {2}, set(), locations=LOCATIONS)
    levels = [level for _, level in recommendations(report)]
    assert levels == [logging.INFO, logging.INFO, logging.WARNING]


# ------------------------------------------------------------------------------- query failure

def test_query_failure_stops_report():
    report = build_report(FS_EXAMPLE, None, set(), locations=LOCATIONS,
                          errors={"artdaqdb": "connection refused"})
    assert not report.complete
    assert report.lines() == [
        "=" * 70, "RUN RECORD ARCHIVER - STATUS REPORT", "=" * 70, "Querying data sources...",
        "✓ Filesystem query complete", "✗ ArtdaqDB query failed: connection refused",
    ]


def test_query_failure_message_hides_uri_password():
    report = build_report({1}, None, None, locations=LOCATIONS,
                          errors={"artdaqdb": "cannot reach mongodb://arch:s3cr3t@db:27017/x"})
    assert report.lines()[-1] == "✗ ArtdaqDB query failed: cannot reach mongodb://arch:***@db:27017/x"


def test_query_failure_first_store():
    report = build_report(None, None, None, locations=LOCATIONS, errors={"filesystem": "gone"})
    assert report.lines()[-1] == "✗ Filesystem query failed: gone"


def test_log_writes_each_line(caplog):
    report = build_report({1}, {1}, {1}, locations=LOCATIONS)
    logger = logging.getLogger("test.statusreport")
    with caplog.at_level(logging.INFO, logger="test.statusreport"):
        report.log(logger)
    assert [r.getMessage() for r in caplog.records] == report.lines()


# ----------------------------------------------------------------------------- state comparison

def _section(lines, title):
    start = lines.index(title) + 2
    end = next(i for i in range(start, len(lines)) if lines[i] == "")
    return lines[start:end]


def test_state_comparison_section():
    fs = set(range(1, 31))
    adb = set(range(1, 21)) - {3, 4}
    ucon = set(range(1, 6))
    comparison = StateComparison(StageState(10, frozenset({3, 4, 3})),
                                 StageState(0, frozenset(range(100, 112))))
    report = build_report(fs, adb, ucon, locations=LOCATIONS, state_comparison=comparison)
    lines = report.lines()
    assert lines[lines.index("STATE COMPARISON") - 1] == "=" * 70
    assert _section(lines, "IMPORT STAGE STATE") == [
        "  Last Contiguous Run: 10",
        "  Missing in ArtdaqDB:  2 run(s) before last contiguous (3, 4)",
        "  New Runs Available:  20 run(s) since last state update (range: 11-30)",
        "  Failed Runs:         2 run(s) logged as failed (3, 4)",
    ]
    assert _section(lines, "MIGRATION STAGE STATE") == [
        "  Last Contiguous Run: 0",
        "  Status:              No migration state recorded",
        "  Failed Runs:         12 run(s) logged as failed "
        "(100, 101, 102, 103, 104, 105, 106, 107, 108, 109 ... (12 gaps total))",
    ]
    levels = {r.text: r.level for r in report.records()}
    assert levels["  Missing in ArtdaqDB:  2 run(s) before last contiguous (3, 4)"] == logging.WARNING


def test_state_comparison_all_present():
    comparison = StateComparison(StageState(2), StageState(2))
    report = build_report({1, 2}, {1, 2}, {1, 2}, locations=LOCATIONS, state_comparison=comparison)
    lines = report.lines()
    assert _section(lines, "IMPORT STAGE STATE") == [
        "  Last Contiguous Run: 2", "  Status:              All expected runs present in ArtdaqDB"]
    assert _section(lines, "MIGRATION STAGE STATE") == [
        "  Last Contiguous Run: 2", "  Status:              All expected runs present in UconDB"]


def test_no_state_comparison_by_default():
    assert "STATE COMPARISON" not in build_report({1}, {1}, {1}, locations=LOCATIONS).lines()


# ----------------------------------------------------------------------------------- dagster

def test_dagster_section_and_backfill_recommendation():
    status = DagsterStatus(failed_partitions={"run_record_ucondb": ["12", "3"], "other": []},
                           failed_checks={"blob_md5_matches": ["7"]})
    report = build_report({1}, {1}, {1}, locations=LOCATIONS, dagster=status)
    lines = report.lines()
    assert "DAGSTER" in lines
    assert "  run_record_ucondb: 2 partition(s) (3, 12)" in lines
    assert "  blob_md5_matches: 1 failure(s) (7)" in lines
    assert not any(line.startswith("  other:") for line in lines)
    assert _recs({1}, {1}, {1}, dagster=status) == [
        "1. BACKFILL run_record_ucondb: 2 failed partition(s) (Materialize failed and missing)"]
    assert "DAGSTER" not in build_report({1}, {1}, {1}, locations=LOCATIONS).lines()


def test_dagster_section_nothing_failed():
    report = build_report({1}, {1}, {1}, locations=LOCATIONS, dagster=DagsterStatus())
    lines = report.lines()
    assert _section(lines, "FAILED PARTITIONS") == ["  Status:          No failed partitions"]
    assert _section(lines, "FAILED CHECKS") == ["  Status:          No failed checks"]


# ------------------------------------------------------------------------- lag, table, plot

def test_store_lag_and_table():
    report = build_report(set(range(1, 11)), set(range(1, 8)), {1, 2}, locations=LOCATIONS)
    assert store_lag(report) == {"artdaqdb_behind_filesystem": 3, "ucondb_behind_artdaqdb": 5,
                                 "artdaqdb_max_run_behind": 3, "ucondb_max_run_behind": 5}
    assert markdown_table(report) == (
        "| Store | Total | Min | Max | Ranges | Gaps | Lag |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n"
        "| Filesystem | 10 | 1 | 10 | 1 | 0 | - |\n"
        "| ArtdaqDB | 7 | 1 | 7 | 1 | 0 | 3 |\n"
        "| UconDB | 2 | 1 | 2 | 1 | 0 | 5 |\n")
    frame = summary_frame(report)
    assert list(frame["total"]) == [10, 7, 2]


def test_table_with_empty_store():
    table = markdown_table(build_report(FS_EXAMPLE, set(), set(), locations=LOCATIONS))
    assert "| ArtdaqDB | 0 | - | - | 0 | 0 | 12 |" in table
    assert "| Filesystem | 12 | 1000 | 1015 | 4 | 4 | - |" in table


@pytest.mark.parametrize("ucon", [set(), {5, 10**9}])
def test_plot_png_small_and_sparse(ucon):
    png = plot_png(build_report(FS_EXAMPLE, {1000, 1001}, ucon, locations=LOCATIONS))
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
