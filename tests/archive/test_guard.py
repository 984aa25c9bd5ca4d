"""The partition guard's rules: which older run holds which partition, and waiting for it."""

import pytest

from archiver_assets.archive.guard import OtherRun, PartitionBusyError, PartitionGuard, holders
from archiver_assets.partitions import targeted_keys

ORDER = ["10", "11", "12", "9", "13"]  # Dagster's insertion order, not numeric order


def order():
    return ORDER


def test_targeted_keys_of_a_partition_run_and_of_a_range_in_insertion_order():
    assert targeted_keys({"dagster/partition": "12"}, order) == {"12"}
    assert targeted_keys({"dagster/asset_partition_range_start": "11",
                          "dagster/asset_partition_range_end": "9"}, order) == {"11", "12", "9"}
    assert targeted_keys({"dagster/backfill": "x"}, order) == set()  # not a partition run
    # A range whose end partition was deleted meanwhile: its end points still count.
    assert targeted_keys({"dagster/asset_partition_range_start": "11",
                          "dagster/asset_partition_range_end": "99"}, order) == {"11", "99"}


def test_only_older_runs_hold_and_two_runs_never_wait_for_each_other():
    sensor = OtherRun("b-run", 100.0, {"dagster/partition": "12"})
    backfill = OtherRun("a-run", 200.0, {"dagster/asset_partition_range_start": "10",
                                         "dagster/asset_partition_range_end": "9"})
    assert holders(backfill, [sensor, backfill], ["10", "12"], order) == {"12": "b-run"}
    assert holders(sensor, [sensor, backfill], ["12"], order) == {}
    # Same creation time: the run id decides, the same way for both.
    twin = OtherRun("c-run", 100.0, {"dagster/partition": "12"})
    assert holders(twin, [sensor, twin], ["12"], order) == {"12": "b-run"}
    assert holders(sensor, [sensor, twin], ["12"], order) == {}


def test_the_partition_order_is_read_only_when_a_range_run_is_in_progress():
    calls = []

    def counted():
        calls.append(1)
        return ORDER

    me = OtherRun("me", 300.0, {"dagster/partition": "13"})
    others = [OtherRun(f"r{i}", float(i), {"dagster/partition": str(i)}) for i in range(20)]
    assert holders(me, others, ["13"], counted) == {"13": "r13"}
    assert calls == []
    ranged = others + [OtherRun("range", 1.5, {"dagster/asset_partition_range_start": "10",
                                                "dagster/asset_partition_range_end": "13"})]
    assert holders(me, ranged, ["12", "13"], counted) == {"12": "range", "13": "range"}
    assert len(calls) == 1


class FakeRecord:
    def __init__(self, run_id, created, tags, status=None):
        from datetime import datetime, timezone

        import dagster as dg

        class Run:
            pass

        self.dagster_run = Run()
        self.dagster_run.run_id = run_id
        self.dagster_run.tags = tags
        self.dagster_run.status = status or dg.DagsterRunStatus.STARTED
        self.create_timestamp = datetime.fromtimestamp(created, tz=timezone.utc)


class FakeInstance:
    def __init__(self, records):
        self.records = records
        self.queries = 0

    def get_run_records(self, filters):
        self.queries += 1
        return list(self.records)

    def get_dynamic_partitions(self, name):
        return ORDER

    def add_run_tags(self, run_id, tags):
        for record in self.records:
            if record.dagster_run.run_id == run_id:
                record.dagster_run.tags = {**record.dagster_run.tags, **tags}

    def report_run_failed(self, run, message):
        self.failed = getattr(self, "failed", []) + [(run.run_id, message)]
        self.records = [r for r in self.records if r.dagster_run.run_id != run.run_id]


class FakeLog:
    def __init__(self):
        self.lines = []

    def warning(self, text):
        self.lines.append(("warning", text))

    def info(self, text):
        self.lines.append(("info", text))


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def guard_for(instance, clock, log, wait_seconds=10.0):
    return PartitionGuard(instance, "me", "runs", log, wait_seconds=wait_seconds,
                          poll_seconds=1.0, clock=clock, sleep=clock.sleep)


def test_guard_waits_until_the_older_run_is_gone_then_goes_on():
    clock, log = FakeClock(), FakeLog()
    older = FakeRecord("older", 1.0, {"dagster/partition": "12"})
    instance = FakeInstance([older, FakeRecord("me", 2.0, {})])
    guard = guard_for(instance, clock, log)
    guard.wait_turn(11, "11")  # not held: no wait
    assert clock.now == 0.0 and log.lines == []

    original_sleep = clock.sleep

    def sleep_then_finish(seconds):
        original_sleep(seconds)
        if clock.now >= 3.0:
            instance.records = [FakeRecord("me", 2.0, {})]  # the older run has ended

    guard.sleep = sleep_then_finish
    guard.wait_turn(12, "12")
    assert clock.now == 3.0
    assert log.lines[0][0] == "warning" and "older" in log.lines[0][1]
    assert log.lines[-1][0] == "info"


def test_guard_gives_up_after_the_wait_limit_with_a_retryable_error_naming_the_holder():
    clock, log = FakeClock(), FakeLog()
    instance = FakeInstance([FakeRecord("older", 1.0, {"dagster/partition": "12"}),
                             FakeRecord("me", 2.0, {})])
    with pytest.raises(PartitionBusyError) as caught:
        guard_for(instance, clock, log, wait_seconds=5.0).wait_turn(12, "12")
    assert caught.value.retryable
    assert "run 12" in str(caught.value) and "older" in str(caught.value)
    assert clock.now == pytest.approx(5.0)


def test_guard_does_not_wait_for_a_newer_run():
    clock, log = FakeClock(), FakeLog()
    instance = FakeInstance([FakeRecord("newer", 9.0, {"dagster/partition": "12"}),
                             FakeRecord("me", 2.0, {})])
    guard_for(instance, clock, log).wait_turn(12, "12")
    assert clock.now == 0.0 and log.lines == []


def dead_worker_identity():
    """The identity of a process of this machine that has exited."""
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c",
                            "from archiver_assets.archive.guard import worker_identity;"
                            "print(worker_identity())"], capture_output=True, text=True, check=True)
    return child.stdout.strip()


def test_worker_identity_tells_a_live_process_from_a_dead_one_and_doubts_other_hosts():
    import os

    from archiver_assets.archive.guard import worker_identity, worker_is_dead

    assert not worker_is_dead(worker_identity())
    assert worker_is_dead(dead_worker_identity())
    host, namespace, pid, start = worker_identity().split("|")
    assert worker_is_dead(f"{host}|{namespace}|{pid}|{int(start) - 1}")  # PID reused since
    assert not worker_is_dead(f"elsewhere|{namespace}|999999|1")  # another host: assume alive
    assert not worker_is_dead("garbage")
    assert pid == str(os.getpid())


def test_a_worker_that_exited_but_was_not_reaped_counts_as_dead():
    """A killed worker whose parent died too is a zombie until something reaps it (in some
    containers nothing ever does): its PID still answers signal 0, but it writes nothing."""
    import subprocess
    import sys
    import time

    from archiver_assets.archive.guard import _process_state, worker_identity, worker_is_dead

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        identity = worker_identity(child.pid)
        assert not worker_is_dead(identity)
        child.stdin.close()  # the child exits; it is not waited for yet
        deadline = time.monotonic() + 60
        while _process_state(child.pid) != "Z":
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.05)
        assert worker_is_dead(identity)
    finally:
        child.wait()


def test_guard_tags_its_run_and_does_not_wait_for_an_older_run_whose_worker_died():
    clock, log = FakeClock(), FakeLog()
    dead = FakeRecord("killed", 1.0, {"dagster/partition": "12",
                                      "archiver/worker": dead_worker_identity()})
    me = FakeRecord("me", 2.0, {})
    instance = FakeInstance([dead, me])
    guard_for(instance, clock, log).wait_turn(12, "12")
    assert clock.now == 0.0  # no wait
    assert [run_id for run_id, _ in instance.failed] == ["killed"]
    assert "is gone" in instance.failed[0][1]
    assert any("killed" in text and "worker is gone" in text for _, text in log.lines)
    from archiver_assets.archive.guard import worker_identity
    assert me.dagster_run.tags["archiver/worker"] == worker_identity()


def test_guard_waits_for_an_older_run_whose_worker_is_alive():
    from archiver_assets.archive.guard import worker_identity

    clock, log = FakeClock(), FakeLog()
    alive = FakeRecord("alive", 1.0, {"dagster/partition": "12",
                                      "archiver/worker": worker_identity()})
    instance = FakeInstance([alive, FakeRecord("me", 2.0, {})])
    with pytest.raises(PartitionBusyError):
        guard_for(instance, clock, log, wait_seconds=3.0).wait_turn(12, "12")
    assert not getattr(instance, "failed", [])


def test_guard_reports_a_never_started_run_of_a_dead_worker_failed_and_ignores_live_ones():
    import dagster as dg

    from archiver_assets.archive.guard import worker_identity

    clock, log = FakeClock(), FakeLog()
    stuck = FakeRecord("stuck", 1.0, {"dagster/partition": "12",
                                      "archiver/worker": dead_worker_identity()},
                       status=dg.DagsterRunStatus.NOT_STARTED)
    waiting = FakeRecord("waiting", 1.5, {"dagster/partition": "12",
                                          "archiver/worker": worker_identity()},
                         status=dg.DagsterRunStatus.NOT_STARTED)
    instance = FakeInstance([stuck, waiting, FakeRecord("me", 2.0, {})])
    guard_for(instance, clock, log).wait_turn(12, "12")
    assert clock.now == 0.0  # a NOT_STARTED run holds nothing: no wait
    assert [run_id for run_id, _ in instance.failed] == ["stuck"]
    assert instance.failed[0][1].startswith("Abandoned: the worker process of this run")


def test_fail_abandoned_runs_marks_only_runs_of_dead_workers():
    import dagster as dg

    from archiver_assets.archive.guard import fail_abandoned_runs, worker_identity

    records = [FakeRecord("dead-started", 1.0, {"archiver/worker": dead_worker_identity()}),
               FakeRecord("dead-new", 1.0, {"archiver/worker": dead_worker_identity()},
                          status=dg.DagsterRunStatus.NOT_STARTED),
               FakeRecord("alive", 1.0, {"archiver/worker": worker_identity()}),
               FakeRecord("untagged", 1.0, {}, status=dg.DagsterRunStatus.NOT_STARTED)]
    instance = FakeInstance(records)
    assert fail_abandoned_runs(instance, "the test") == ["dead-started", "dead-new"]
    assert all("marked failed by the test" in message for _, message in instance.failed)
