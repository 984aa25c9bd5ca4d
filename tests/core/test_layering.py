"""The domain core (``archiver_resources``) imports no Dagster: it can be tested and reused alone,
and a Dagster release cannot break it."""

import pkgutil
import subprocess
import sys

import archiver_resources

_PROBE = """
import importlib, pkgutil, sys
import archiver_resources
names = [m.name for m in pkgutil.walk_packages(archiver_resources.__path__, "archiver_resources.")]
for name in names:
    importlib.import_module(name)
loaded = sorted(n for n in sys.modules if n == "dagster" or n.startswith(("dagster.", "dagster_")))
print(len(names))
print(",".join(loaded))
"""


def test_no_module_of_archiver_resources_imports_dagster():
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          timeout=300, check=True)
    count, loaded = done.stdout.split("\n")[-3:-1]
    expected = len(list(pkgutil.walk_packages(archiver_resources.__path__,
                                              "archiver_resources.")))
    assert int(count) == expected > 20
    assert loaded == "", f"archiver_resources imported Dagster modules: {loaded}"
