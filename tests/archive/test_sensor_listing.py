"""The sensor's directory listing at scale: `list_runs` keeps names and builds a run's path only
when it is looked up, and a tick with nothing new builds no path, sorts nothing and reads no run.
Dagster-free; timings live in bench/scale.py."""

import time

import pytest

import archiver_assets.archive.sensors as sensors
from archiver_assets.archive.sensors import SensorCursor, plan_tick
from archiver_resources.runrecords import RunPaths, list_runs
from archiver_resources.samples import generate_run_record, mark_finished

AGE = 3600.0


class WatchedRuns(RunPaths):
    """RunPaths that records which runs got a path and whether the full run list was sorted."""

    __slots__ = ("looked_up", "iterated")

    def __init__(self, runs: RunPaths):
        super().__init__(runs._root, runs._names)
        self.looked_up = []
        self.iterated = 0

    def __getitem__(self, run):
        self.looked_up.append(run)
        return super().__getitem__(run)

    def __iter__(self):
        self.iterated += 1
        return super().__iter__()


@pytest.fixture
def watched(monkeypatch):
    """Every listing plan_tick takes, wrapped so a test can see what the tick touched."""
    listings = []

    def listing_spy(root):
        listing = list_runs(root)
        runs = WatchedRuns(listing.runs)
        listings.append(runs)
        return type(listing)(runs=runs, errors=listing.errors)

    monkeypatch.setattr(sensors, "list_runs", listing_spy)
    return listings


def make_dirs(tmp_path, runs):
    for run in runs:
        (tmp_path / str(run)).mkdir()


def test_listing_is_a_mapping_in_ascending_order_with_paths_on_demand(tmp_path):
    for name in ["30", "007", "1000", "2", "abc", "12x"]:
        (tmp_path / name).mkdir()
    (tmp_path / "5").write_text("a file, not a run directory")
    runs = list_runs(tmp_path).runs
    assert list(runs) == [2, 7, 30, 1000]
    assert runs == {2: tmp_path / "2", 7: tmp_path / "007", 30: tmp_path / "30",
                    1000: tmp_path / "1000"}
    assert runs[7] == tmp_path / "007" and runs.name(7) == "007"
    assert 5 not in runs and "30" not in runs and len(runs) == 4
    with pytest.raises(KeyError):
        runs[5]
    assert runs.highest == 1000
    assert sorted(runs.runs_above(7)) == [30, 1000] and runs.runs_above(1000) == []
    assert runs.count_up_to(30) == 3 and runs.count_up_to(1) == 0 and runs.count_up_to(10**6) == 4
    assert sorted(runs.unordered()) == [2, 7, 30, 1000]


def test_empty_listing_has_no_highest_run(tmp_path):
    runs = list_runs(tmp_path).runs
    assert runs.highest == -1 and list(runs) == [] and runs.runs_above(-1) == []
    assert runs.count_up_to(0) == 0


def test_three_directories_naming_one_run_are_one_error_listing_all(tmp_path):
    for name in ["9", "09", "009", "10"]:
        (tmp_path / name).mkdir()
    listing = list_runs(tmp_path)
    assert dict(listing.runs) == {10: tmp_path / "10"}
    assert "(009, 09, 9)" in str(listing.errors[9]) and listing.errors[9].run == 9


def test_steady_tick_builds_no_path_sorts_nothing_and_reads_no_run(tmp_path, watched):
    make_dirs(tmp_path, range(1, 201))
    cursor = SensorCursor(highest=200, directories=200)
    plan = plan_tick(tmp_path, cursor, min_age_seconds=AGE, known_partitions=lambda: 1 / 0)
    assert plan.new_runs == [] and not plan.full_scan and plan.errors == {}
    assert plan.cursor == cursor
    assert watched[-1].looked_up == [] and watched[-1].iterated == 0


def test_new_run_tick_builds_the_path_of_the_new_run_only(tmp_path, watched):
    make_dirs(tmp_path, range(1, 201))
    generate_run_record(tmp_path, 201)
    cursor = SensorCursor(highest=200, directories=200)
    plan = plan_tick(tmp_path, cursor, min_age_seconds=AGE, known_partitions=lambda: 1 / 0)
    assert plan.new_runs == [201] and plan.cursor.highest == 201
    assert plan.cursor.directories == 201
    assert watched[-1].looked_up == [201] and watched[-1].iterated == 0


def test_pending_run_is_the_only_one_rechecked(tmp_path, watched):
    make_dirs(tmp_path, range(1, 101))
    running = generate_run_record(tmp_path, 150, finished=False, mtime=time.time())
    cursor = SensorCursor(highest=150, pending=[150], directories=101)
    plan = plan_tick(tmp_path, cursor, min_age_seconds=AGE, known_partitions=lambda: 1 / 0)
    assert plan.new_runs == [] and 150 in plan.skipped and plan.cursor.pending == [150]
    assert watched[-1].looked_up == [150]
    mark_finished(running)
    plan = plan_tick(tmp_path, plan.cursor, min_age_seconds=AGE, known_partitions=lambda: 1 / 0)
    assert plan.new_runs == [150] and plan.cursor.pending == []


def test_directory_vanishing_below_the_highest_run_is_noticed_without_a_sort(tmp_path, watched):
    make_dirs(tmp_path, range(1, 11))
    cursor = SensorCursor(highest=10, directories=10)
    (tmp_path / "4").rmdir()
    plan = plan_tick(tmp_path, cursor, min_age_seconds=AGE,
                     known_partitions=lambda: [str(r) for r in range(1, 11)])
    assert plan.full_scan and plan.new_runs == []
    assert plan.cursor.highest == 10 and plan.cursor.directories == 9
    steady = plan_tick(tmp_path, plan.cursor, min_age_seconds=AGE, known_partitions=lambda: 1 / 0)
    assert not steady.full_scan and watched[-1].looked_up == []


def test_directory_count_stops_at_the_highest_run_taken_when_the_cap_is_hit(tmp_path):
    for run in range(1, 8):
        generate_run_record(tmp_path, run)
    plan = plan_tick(tmp_path, SensorCursor(), min_age_seconds=AGE, known_partitions=lambda: [],
                     max_new_runs=3)
    assert plan.new_runs == [1, 2, 3]
    assert plan.cursor.highest == 3 and plan.cursor.directories == 3
    plan = plan_tick(tmp_path, plan.cursor, min_age_seconds=AGE, known_partitions=lambda: 1 / 0,
                     max_new_runs=3)
    assert plan.new_runs == [4, 5, 6] and not plan.full_scan and plan.cursor.directories == 6
