"""Every Dagster run worker imports the code location before it starts its run, so what the
definitions import is paid once per run (it counts in every run's submit→done time). The reporting-only modules
(statusreport: pandas + numpy; legacy_state: numpy) are imported by the functions that use them."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "numpy")


def _modules_after(statement: str) -> set:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    env = dict(os.environ, ARCHIVER_CONFIG=str(ROOT / "no-such-config.yaml"))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_loading_the_definitions_does_not_import_pandas_or_numpy():
    loaded = _modules_after("import archiver_assets.definitions")
    assert "archiver_assets.definitions" in loaded
    assert not loaded & set(HEAVY), f"run workers would import {sorted(loaded & set(HEAVY))}"

