"""The sensor's tick planning (`plan_tick`), Dagster-free: ascending order, unfinished runs
explained and re-checked, late finishers, directories appearing below the highest run, bad
directories, the per-tick cap, the stop-time re-request for RunHistory2, and the grouping of a
tick's new runs into partition-range runs."""

import os
import time

from archiver_assets.archive.sensors import (
    SensorCursor, batch_request, batch_run_key, group_ranges, plan_tick,
)
from archiver_resources.samples import generate_run_record, mark_finished

AGE = 3600.0


def make(tmp_path, run, finished=True, fresh=False, name=None):
    path = generate_run_record(tmp_path, run, finished=finished,
                               mtime=time.time() if fresh else None)
    if name:
        path.rename(tmp_path / name)
        path = tmp_path / name
    return path


def test_first_tick_takes_finished_runs_in_ascending_order_and_explains_the_rest(tmp_path):
    for run in (12, 3, 100):
        make(tmp_path, run)
    make(tmp_path, 101, finished=False, fresh=True)
    plan = plan_tick(tmp_path, SensorCursor(), min_age_seconds=AGE, known_partitions=lambda: [])
    assert plan.new_runs == [3, 12, 100]
    assert set(plan.skipped) == {101} and "no stop time" in plan.skipped[101]
    assert plan.cursor.highest == 101 and plan.cursor.pending == [101]
    assert plan.full_scan


def test_unchanged_directories_are_not_reread_and_late_finisher_is_noticed(tmp_path):
    make(tmp_path, 1)
    make(tmp_path, 2, finished=False, fresh=True)
    first = plan_tick(tmp_path, SensorCursor(), min_age_seconds=AGE, known_partitions=lambda: [])
    calls = []

    def known():
        calls.append(1)
        return ["1"]

    second = plan_tick(tmp_path, first.cursor, min_age_seconds=AGE, known_partitions=known)
    assert second.new_runs == [] and not second.full_scan and calls == []
    mark_finished(tmp_path / "2")
    third = plan_tick(tmp_path, second.cursor, min_age_seconds=AGE, known_partitions=known)
    assert third.new_runs == [2] and third.cursor.pending == []
    make(tmp_path, 3)
    fourth = plan_tick(tmp_path, third.cursor, min_age_seconds=AGE, known_partitions=known)
    assert fourth.new_runs == [3] and not fourth.full_scan


def test_directory_appearing_below_the_highest_run_triggers_one_full_comparison(tmp_path):
    make(tmp_path, 10)
    make(tmp_path, 20)
    first = plan_tick(tmp_path, SensorCursor(), min_age_seconds=AGE, known_partitions=lambda: [])
    assert first.new_runs == [10, 20]
    make(tmp_path, 15)  # copied in late, below the highest run seen
    second = plan_tick(tmp_path, first.cursor, min_age_seconds=AGE,
                       known_partitions=lambda: ["10", "20"])
    assert second.full_scan and second.new_runs == [15]
    third = plan_tick(tmp_path, second.cursor, min_age_seconds=AGE,
                      known_partitions=lambda: ["10", "15", "20"])
    assert not third.full_scan and third.new_runs == []


def test_existing_partitions_are_not_requested_again_on_a_fresh_cursor(tmp_path):
    for run in (1, 2, 3):
        make(tmp_path, run)
    plan = plan_tick(tmp_path, SensorCursor(), min_age_seconds=AGE,
                     known_partitions=lambda: ["1", "2"])
    assert plan.new_runs == [3]


def test_zero_padded_and_duplicate_directories(tmp_path):
    make(tmp_path, 7, name="0007")
    make(tmp_path, 8)
    make(tmp_path, 9, name="09")
    (tmp_path / "8").rename(tmp_path / "008")
    make(tmp_path, 8)  # now both "008" and "8": one run named twice
    plan = plan_tick(tmp_path, SensorCursor(), min_age_seconds=AGE, known_partitions=lambda: [])
    assert plan.new_runs == [7, 9]
    assert 8 in plan.errors and "8" in plan.errors[8]


def test_per_tick_cap_continues_next_tick_without_losing_runs(tmp_path):
    for run in range(1, 8):
        make(tmp_path, run)
    cursor = SensorCursor()
    seen = []
    for _ in range(4):
        plan = plan_tick(tmp_path, cursor, min_age_seconds=AGE, known_partitions=lambda: [str(r) for r in seen],
                         max_new_runs=3)
        seen += plan.new_runs
        cursor = plan.cursor
    assert seen == list(range(1, 8))


def test_run_archived_by_age_is_requested_again_when_its_stop_time_appears(tmp_path):
    path = make(tmp_path, 42, finished=False)  # old mtimes: finished by the age rule
    first = plan_tick(tmp_path, SensorCursor(), min_age_seconds=AGE, known_partitions=lambda: [])
    assert first.new_runs == [42] and first.cursor.awaiting_stop == [42]
    second = plan_tick(tmp_path, first.cursor, min_age_seconds=AGE, known_partitions=lambda: ["42"])
    assert second.stop_time_updates == [] and second.cursor.awaiting_stop == [42]
    mark_finished(path)
    os.utime(path / "metadata.txt", (1, 1))
    third = plan_tick(tmp_path, second.cursor, min_age_seconds=AGE, known_partitions=lambda: ["42"])
    assert third.stop_time_updates == [42] and third.cursor.awaiting_stop == []


def test_cursor_round_trips_and_survives_garbage():
    cursor = SensorCursor(highest=5, pending=[3], awaiting_stop=[1], directories=4)
    assert SensorCursor.parse(cursor.dump()) == cursor
    assert SensorCursor.parse("not json") == SensorCursor()
    assert SensorCursor.parse(None) == SensorCursor()


def test_fresh_cursor_over_an_archive_with_nothing_new_compares_in_full_only_once(tmp_path):
    for run in (1, 2, 3):
        make(tmp_path, run)
    known = lambda: ["1", "2", "3"]  # noqa: E731 - every run is a partition already
    first = plan_tick(tmp_path, SensorCursor(), min_age_seconds=AGE, known_partitions=known)
    assert first.full_scan and first.new_runs == [] and first.cursor.highest == 3
    second = plan_tick(tmp_path, first.cursor, min_age_seconds=AGE, known_partitions=known)
    assert not second.full_scan and second.new_runs == []
    make(tmp_path, 4)
    third = plan_tick(tmp_path, second.cursor, min_age_seconds=AGE, known_partitions=known)
    assert not third.full_scan and third.new_runs == [4]


def test_a_run_numbered_far_above_the_rest_does_not_hide_later_runs(tmp_path):
    absurd = 9223372036854775807
    for run in (1, 2):
        make(tmp_path, run)
    make(tmp_path, 999, name=str(absurd))
    first = plan_tick(tmp_path, SensorCursor(), min_age_seconds=AGE, known_partitions=lambda: [])
    assert first.new_runs == [1, 2, absurd]
    make(tmp_path, 3)  # below the highest run seen: found by the directory count
    known = [str(r) for r in first.new_runs]
    second = plan_tick(tmp_path, first.cursor, min_age_seconds=AGE,
                       known_partitions=lambda: known)
    assert second.new_runs == [3]
    assert plan_tick(tmp_path, second.cursor, min_age_seconds=AGE,
                     known_partitions=lambda: known + ["3"]).new_runs == []


def test_the_cursor_keeps_the_time_of_the_newest_drift_repair(tmp_path):
    make(tmp_path, 1)
    cursor = SensorCursor(repairs_after=1234.5)
    plan = plan_tick(tmp_path, cursor, min_age_seconds=AGE, known_partitions=lambda: [])
    assert SensorCursor.parse(plan.cursor.dump()).repairs_after == 1234.5
    assert SensorCursor.parse('{"highest": 3}').repairs_after == 0.0  # an older cursor


# ---- grouping a tick's new runs into partition-range runs --------------------------------------

def test_new_runs_are_grouped_in_ascending_ranges_of_at_most_the_batch_size(tmp_path):
    for run in (7, 3, 1, 5, 2, 4, 6):  # created out of order
        make(tmp_path, run)
    plan = plan_tick(tmp_path, SensorCursor(), min_age_seconds=AGE, known_partitions=lambda: [],
                     max_range_size=3)
    assert plan.new_runs == [1, 2, 3, 4, 5, 6, 7]  # the order the partitions are added in
    assert plan.batches == [[1, 2, 3], [4, 5, 6], [7]]  # ceil(7 / 3) Dagster runs
    assert [batch_run_key(b) for b in plan.batches] == ["runs-1-3", "runs-4-6", "run-7"]


def test_a_tick_with_one_new_run_requests_a_single_partition_run(tmp_path):
    make(tmp_path, 1)
    first = plan_tick(tmp_path, SensorCursor(), min_age_seconds=AGE, known_partitions=lambda: [],
                      max_range_size=25)
    assert first.batches == [[1]]
    make(tmp_path, 2)
    calls = []
    second = plan_tick(tmp_path, first.cursor, min_age_seconds=AGE, max_range_size=25,
                       known_partitions=lambda: calls.append(1) or ["1"])
    assert second.batches == [[2]] and calls == []  # one run: no partition query either
    request = batch_request(second.batches[0])
    assert request.partition_key == "2" and request.run_key == "run-2"
    assert "dagster/asset_partition_range_start" not in request.tags


def test_batch_size_one_keeps_one_dagster_run_per_partition(tmp_path):
    for run in (1, 2, 3):
        make(tmp_path, run)
    plan = plan_tick(tmp_path, SensorCursor(), min_age_seconds=AGE, known_partitions=lambda: [])
    assert plan.batches == [[1], [2], [3]]  # the default, and app.batch_size: 1
    assert [batch_run_key(b) for b in plan.batches] == ["run-1", "run-2", "run-3"]


def test_a_range_request_names_its_first_and_last_run():
    request = batch_request([11, 12, 14])  # 13 unfinished: 14's partition follows 12's
    assert request.partition_key is None and request.run_key == "runs-11-14"
    assert request.tags == {"dagster/asset_partition_range_start": "11",
                            "dagster/asset_partition_range_end": "14"}


def test_ranges_hold_only_partitions_adjacent_in_insertion_order():
    # 4 is a partition already (added by the command line, say): it is not added again, so its
    # partition sits elsewhere in the order; it is requested alone and ends the range before it.
    assert group_ranges([1, 2, 3, 4, 5, 6], 10, existing={"4"}) == [[1, 2, 3], [4], [5, 6]]
    assert group_ranges([1, 2], 10, existing={"1", "2"}) == [[1], [2]]
    # Gaps in the numbers do not break a range: the tick adds 10 and 20 next to each other.
    assert group_ranges([10, 20, 30], 10) == [[10, 20, 30]]


def test_grouping_is_deterministic_and_requests_each_run_once():
    assert group_ranges([5, 3, 3, 4, 5], 2) == [[3, 4], [5]]  # duplicates once, ascending
    assert group_ranges([], 5) == []
    assert group_ranges([1, 2, 3], 0) == [[1], [2], [3]]  # a nonsensical size: per partition
    once = [batch_run_key(b) for b in group_ranges(range(1, 12), 5)]
    again = [batch_run_key(b) for b in group_ranges(list(range(11, 0, -1)), 5)]
    assert once == again == ["runs-1-5", "runs-6-10", "run-11"]


def test_the_same_tick_evaluated_twice_gives_the_same_requests(tmp_path):
    for run in range(1, 8):
        make(tmp_path, run)
    cursor = SensorCursor(highest=0, directories=0)
    twice = [plan_tick(tmp_path, cursor, min_age_seconds=AGE, known_partitions=lambda: [],
                       max_range_size=4) for _ in range(2)]
    keys = [[batch_run_key(b) for b in plan.batches] for plan in twice]
    assert keys[0] == keys[1] == ["runs-1-4", "runs-5-7"]  # the daemon launches each key once
    assert twice[0].cursor == twice[1].cursor


def test_incremental_tick_asks_once_which_new_runs_are_partitions_already(tmp_path):
    make(tmp_path, 1)
    first = plan_tick(tmp_path, SensorCursor(), min_age_seconds=AGE, known_partitions=lambda: [],
                      max_range_size=5)
    for run in (2, 3, 4):
        make(tmp_path, run)
    calls = []

    def known():
        calls.append(1)
        return ["1", "3"]  # 3 was added by someone else meanwhile

    second = plan_tick(tmp_path, first.cursor, min_age_seconds=AGE, known_partitions=known,
                       max_range_size=5)
    assert not second.full_scan and calls == [1]
    assert second.new_runs == [2, 3, 4] and second.batches == [[2], [3], [4]]


def test_unfinished_and_capped_runs_stay_out_of_the_ranges(tmp_path):
    for run in (1, 2, 4, 5):
        make(tmp_path, run)
    make(tmp_path, 3, finished=False, fresh=True)
    plan = plan_tick(tmp_path, SensorCursor(), min_age_seconds=AGE, known_partitions=lambda: [],
                     max_range_size=10, max_new_runs=3)
    assert plan.new_runs == [1, 2, 4] and plan.batches == [[1, 2, 4]]
    assert plan.cursor.pending == [3] and plan.cursor.highest == 4  # 5: the next tick's
    mark_finished(tmp_path / "3")
    following = plan_tick(tmp_path, plan.cursor, min_age_seconds=AGE, max_range_size=10,
                          known_partitions=lambda: ["1", "2", "4"])
    assert following.batches == [[3, 5]]  # added together now, so adjacent in the order
