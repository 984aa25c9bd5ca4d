"""The run queue settings of both instance files (dagster.yaml for development, the PostgreSQL
template for production): queued runs are picked up every second and launched in threads, the
two settings behind the submit→done target of docs/performance.md (bench/steady.py measures it)."""

import yaml
from dagster import DagsterInstance
from dagster._core.run_coordinator import QueuedRunCoordinator

from tests.deploy.instance import DEPLOY, ROOT, render_home


def _assert_fast_queue(coordinator):
    assert isinstance(coordinator, QueuedRunCoordinator)
    assert coordinator.dequeue_interval_seconds == 1
    assert coordinator.dequeue_use_threads is True
    assert coordinator.dequeue_num_workers == 4


def test_development_instance_dequeues_every_second_in_threads(tmp_path):
    home = render_home(tmp_path / "home", ROOT / "dagster.yaml")
    with DagsterInstance.from_config(str(home)) as instance:
        _assert_fast_queue(instance.run_coordinator)
        # the queue settings coexist with the concurrency limits, which still apply
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 2
        assert [limit["key"] for limit in queue.tag_concurrency_limits] == ["dagster/partition"]


def test_production_template_dequeues_every_second_in_threads():
    # Without PostgreSQL: build the coordinator from the template's own section (the full
    # template is loaded against a real server in test_postgres_instance.py).
    section = yaml.safe_load((DEPLOY / "dagster.postgres.yaml").read_text())["run_coordinator"]
    assert section["class"] == "QueuedRunCoordinator"
    _assert_fast_queue(QueuedRunCoordinator.from_config_value(None, section["config"]))
