"""Start-up of the command line: help aliases, usage errors (2), configuration errors (1 with
the ERROR SUMMARY block), the instance lock held by a real second process (1, the holder
undisturbed), DAGSTER_HOME resolution, logging (file, redaction, -v)."""

import logging
import subprocess
import sys
import textwrap

import pytest

from archiver_assets.cli.main import ArchiverLogFileHandler, main, resolve_dagster_home
from archiver_resources.config import load_config


@pytest.mark.parametrize("alias", ["-h", "--help", "/?", "/h", "/help"])
def test_help_and_aliases_explain_flags_modes_exit_codes(alias, capsys):
    assert main([alias]) == 0
    out = capsys.readouterr().out
    for text in ("--incremental", "--import-only", "--migrate-only", "--retry-failed-import",
                 "--retry-failed-migrate", "--report-status", "--compare-state",
                 "--recover-import-state", "--recover-migrate-state", "--validate", "-v",
                 "--dry-run", "--import-legacy-state", "--create-ucondb-folder", "exit codes",
                 "130", "Ctrl-C",
                 "three times within 2 seconds", "DAGSTER_HOME", "partition"):
        assert text in out, text
    assert "--worker" not in out


@pytest.mark.parametrize("argv", [["--no-such-flag"], ["c.yaml", "--import-only", "--migrate-only"],
                                  ["c.yaml", "--report-status", "--retry-failed-import"],
                                  ["a.yaml", "b.yaml"]])
def test_usage_error_exits_2(argv, capsys):
    assert main(argv) == 2
    assert "usage: run-record-archiver" in capsys.readouterr().err


def test_missing_config_exits_1_with_error_summary(tmp_path, capsys):
    assert main([str(tmp_path / "nope.yaml")]) == 1
    out = capsys.readouterr().out
    assert "ERROR SUMMARY" in out and "Error Type: ConfigError" in out
    assert "configuration file not found" in out


def test_invalid_config_exits_1_naming_the_key(cli_env):
    cli_env.config_path.write_text(cli_env.config_path.read_text().replace(
        "timeout_seconds: 5", "timeout_seconds: soon"))
    code, out = cli_env.main("--report-status")
    assert code == 1
    assert "Error Type: ConfigError" in out and "ucon_db.timeout_seconds" in out


HOLDER = textwrap.dedent("""
    import sys, time
    from archiver_resources.locking import InstanceLock
    with InstanceLock(sys.argv[1]):
        print("LOCKED", flush=True)
        sys.stdin.readline()
""")


def test_lock_held_by_another_process_exits_1_and_leaves_the_holder_alone(cli_env):
    cli_env.lock_file.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(cli_env.lock_file)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "LOCKED"
        before = cli_env.lock_file.read_bytes()
        assert before == f"{holder.pid}\n".encode()
        code, out = cli_env.main("--report-status")
        assert code == 1
        assert f"Another process may be running. Lock file '{cli_env.lock_file}' is held" in out
        assert "ERROR SUMMARY" in out and "Error Type: LockHeldError" in out
        assert cli_env.lock_file.read_bytes() == before  # never truncated
        assert holder.poll() is None
    finally:
        holder.stdin.close()
        holder.wait(10)
    code, _ = cli_env.main("--report-status")  # released: a leftover file never blocks
    assert code == 0


def test_dagster_home_resolution(tmp_path, monkeypatch, cli_env):
    config = load_config(cli_env.config_path)
    monkeypatch.delenv("DAGSTER_HOME")
    home, source = resolve_dagster_home(config)
    assert (home, source) == (cli_env.work_dir / "dagster_home", "app.work_dir")
    assert "run_retries" in (home / "dagster.yaml").read_text()  # the project's dagster.yaml
    cli_env.write_config(dagster_home=f'"{tmp_path / "elsewhere"}"')
    home, source = resolve_dagster_home(load_config(cli_env.config_path))
    assert (home, source) == (tmp_path / "elsewhere", "app.dagster_home")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "env_home"))
    (tmp_path / "env_home").mkdir()
    (tmp_path / "env_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    home, source = resolve_dagster_home(load_config(cli_env.config_path))
    assert (home, source) == (tmp_path / "env_home", "DAGSTER_HOME")
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"  # kept


def test_log_file_gets_the_legacy_format_without_secrets_and_verbose_logs_debug(cli_env):
    log_file = cli_env.work_dir / "archiver.log"
    cli_env.write_config(log_file=f'"{log_file}"')
    code, out = cli_env.main("--report-status", "-v")
    assert code == 0
    text = log_file.read_text()
    first = text.splitlines()[0]
    # `%(asctime)s - %(name)s - %(levelname)s - %(message)s`
    assert first[:4].isdigit() and " - archiver_assets.cli - INFO - " in first
    assert "Run Record Archiver Starting" in text and "END OF STATUS REPORT" in text
    assert " - DEBUG - " in text
    assert cli_env.ucondb.password not in text and cli_env.ucondb.password not in out
    assert not logging.getLogger().handlers or all(
        not isinstance(h, ArchiverLogFileHandler) for h in logging.getLogger().handlers)


def test_log_file_rotates_by_age(tmp_path):
    path = tmp_path / "archiver.log"
    path.write_text("2020-01-01 00:00:00,000 - x - INFO - old\n")
    handler = ArchiverLogFileHandler(path, max_age_seconds=3600)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.emit(logging.LogRecord("x", logging.INFO, __file__, 1, "new", None, None))
    handler.close()
    assert (tmp_path / "archiver.log.1").read_text().startswith("2020-01-01")
    assert path.read_text() == "new\n"


def test_unexpected_exception_exits_2_with_summary_and_traceback(cli_env, monkeypatch):
    from archiver_assets.cli import modes

    def broken(*args, **kwargs):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(modes, "report", broken)
    code, out = cli_env.main("--report-status")
    assert code == 2
    assert "UNEXPECTED ERROR SUMMARY" in out and "Error Type: RuntimeError" in out
    assert "Traceback (most recent call last)" in out and " - CRITICAL - " in out
    assert cli_env.main("--report-status")[0] == 2  # (still patched) no "lock held"


def test_run_listing_failure_exits_1(cli_env):
    cli_env.run_records.rmdir()
    code, out = cli_env.main("--import-only")
    assert code == 1
    assert "✗ Import Stage cannot run: run records directory" in out
    assert "✗ EXECUTION COMPLETED WITH FAILURES (exit code: 1)" in out
