"""run_archiver.sh: archiver.env sourced with `set -a`, config.yaml inserted when no non-flag
argument is given, -q silences everything but keeps the exit code, help aliases pass through."""

import os
import subprocess

from tests.cli.conftest import REPO_ROOT

LAUNCHER = REPO_ROOT / "run_archiver.sh"


def launch(*args, cwd, env=None):
    return subprocess.run(["bash", str(LAUNCHER), *args], cwd=cwd, capture_output=True,
                          text=True, env=env or dict(os.environ), timeout=300)


def test_launcher_env_file_default_config_quiet_and_help(cli_env, tmp_path):
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    # The password comes only from the env file (set -a exports it to the archiver).
    text = cli_env.config_path.read_text().replace("TEST_UCONDB_PASSWORD", "LAUNCHER_PASSWORD")
    (workdir / "config.yaml").write_text(text)
    env_file = tmp_path / "archiver.env"
    env_file.write_text(f"LAUNCHER_PASSWORD={cli_env.ucondb.password}\n")
    env = dict(os.environ, ARCHIVER_ENV=str(env_file))
    env.pop("LAUNCHER_PASSWORD", None)

    done = launch("--report-status", cwd=workdir, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Config: config.yaml" in done.stdout and "END OF STATUS REPORT" in done.stdout
    assert cli_env.ucondb.password not in done.stdout

    quiet = launch("-q", "--report-status", cwd=workdir, env=env)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    missing = launch("-q", "other.yaml", "--report-status", cwd=workdir, env=env)
    assert (missing.returncode, missing.stdout) == (1, "")

    helped = launch("/?", cwd=workdir, env=env)
    assert helped.returncode == 0 and "exit codes" in helped.stdout
    assert launch("--bogus", cwd=workdir, env=env).returncode == 2
