"""The benchmark harness runs end to end in its tiny mode and writes a well-formed table; the
previous table is kept for comparison. No timing is asserted: figures belong to docs/performance.md."""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import run as harness  # noqa: E402
from bench.benchlib import BEGIN, END, PREV_BEGIN, PREV_END, Row, render_table, write_performance_md  # noqa: E402,E501

HEADER = "| # | measurement | figure | baseline (same invocation) | ratio | target | verdict |"

pytestmark = pytest.mark.slow


def _table_rows(text: str) -> list[list[str]]:
    latest = text.split(BEGIN, 1)[1].split(END, 1)[0]
    lines = [line for line in latest.splitlines() if line.startswith("|")]
    assert lines[0] == HEADER
    assert re.fullmatch(r"\|(---\|)+", lines[1])
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


def test_tiny_mode_writes_a_well_formed_table(tmp_path):
    out = tmp_path / "performance.md"
    assert harness.main(["--tiny", "--out", str(out), "--json", str(tmp_path / "raw.json")]) == 0
    text = out.read_text()
    assert text.startswith("# Performance")
    assert "Machine:" in text and "Dagster" in text and "Python" in text
    rows = _table_rows(text)
    assert all(len(row) == 7 for row in rows)
    keys = {row[0].rstrip("*") for row in rows}
    assert {"1", "2", "4", "5", "6"} <= keys  # steady state and scaling: full mode only
    assert not any(row[0] == "!" for row in rows), rows  # no measurement failed
    for row in rows:
        if row[0].rstrip("*") in {"1", "2"}:
            assert re.search(r"[\d.]+ .*runs/min", row[2]), row
        if row[4]:
            assert re.search(r"\d", row[4]), row


def test_rerun_keeps_the_previous_table(tmp_path):
    out = tmp_path / "performance.md"
    machine = {"date": "d", "cpu": "c", "cores": "2", "ram": "r", "disk": "k", "os": "o",
               "python": "p", "dagster": "g", "load": "l"}
    first = render_table([Row("1", "first", "1 runs/min")], machine, "tiny", 1)
    write_performance_md(out, first, "# Performance\n\nintro")
    (out.write_text(out.read_text() + "\n## Notes by hand\n\nkept\n"))
    second = render_table([Row("1", "second", "2 runs/min")], machine, "tiny", 1)
    write_performance_md(out, second, "# Performance\n\nintro")
    text = out.read_text()
    assert "second" in text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert "first" in text.split(PREV_BEGIN, 1)[1].split(PREV_END, 1)[0]
    assert "kept" in text and text.count("intro") == 1


def test_shortcut_cursor_is_the_one_the_sensor_reaches(tmp_path):
    """The harness times the steady tick at 100k from a constructed cursor instead of 200
    catch-up ticks; it must equal what plan_tick leaves after requesting every run."""
    from archiver_assets.archive.sensors import SensorCursor, plan_tick
    from bench.scale import caught_up_cursor, make_run_dirs

    root = make_run_dirs(tmp_path, 1100)
    cursor, requested = SensorCursor(), set()
    while True:
        plan = plan_tick(root, cursor, min_age_seconds=3600, known_partitions=lambda: requested)
        cursor = plan.cursor
        requested.update(str(r) for r in plan.new_runs)
        if not plan.new_runs:
            break
    assert cursor == caught_up_cursor(1100)
