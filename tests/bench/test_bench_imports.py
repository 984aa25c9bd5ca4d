"""bench/ runs without tests/: what both need lives in archiver_resources.testing."""

import ast
from pathlib import Path

from archiver_resources.config import load_config
from archiver_resources.testing.legacy_config import write_legacy_config

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_bench_imports_nothing_from_tests():
    offenders = []
    for path in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {name}" for name in names
                          if name == "tests" or name.startswith("tests.")]
    assert not offenders


def test_the_shared_config_writer_gives_a_loadable_config(tmp_path):
    server = type("Server", (), {"base_url": "http://127.0.0.1:9/app", "user": "writer"})()
    path = write_legacy_config(tmp_path, server, run_records=tmp_path / "runs",
                               artdaqdb_uri="filesystemdb:///x/db_archive", folder="f",
                               password_env="BENCH_PW", timeout_seconds=60, retries=None,
                               app={"batch_size": 7}, source={},
                               extra_yaml="carbon:\n  port: 2004\n")
    config = load_config(path, environ={"BENCH_PW": "pw"})
    assert (tmp_path / "fcl_conf" / "schema.fcl").is_file()
    assert config.app.work_dir == tmp_path / "work" and config.app.batch_size == 7
    assert config.ucon_db.retries == 3 and config.ucon_db.timeout_seconds == 60  # key left out
    assert config.source_files.finished_after_seconds == 3600 and config.carbon.port == 2004
    assert config.ucon_db.writer_password == "pw" and config.warnings == ()
