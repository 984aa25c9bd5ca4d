"""The README's first command, minus the environment set-up: the demo archives every sample run
with all checks passing, and a second invocation reuses everything and archives nothing twice."""

import os

import pytest

from archiver_assets import demo


@pytest.fixture
def dagster_home(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("ARCHIVER_CONFIG", raising=False)
    return home


def test_demo_archives_all_runs_and_is_idempotent(tmp_path, dagster_home, capsys):
    args = ["--dir", str(tmp_path / "demo"), "--runs", "1000-1002", "--port", "0"]
    assert demo.main(args) == 0
    first = capsys.readouterr().out
    assert "Runs requested this time:   3 (0 failed)" in first
    assert "Check ucondb_blob.md5_round_trip 3/3 passed" in first
    assert "Check artdaqdb_config.hashes_match 3/3 passed" in first
    assert demo.main(args) == 0
    second = capsys.readouterr().out
    assert "(0 new)" in second and "Runs requested this time:   0 (0 failed)" in second
    assert "Runs in UconDB (Dagster):   3" in second
    assert os.environ["UCONDB_PASSWORD"] not in first + second
