"""Peak resident memory while archiving one big run record, measured in a child process that
reports its own peak (VmHWM) (the UconDB server runs in the parent, so only the archiver's
memory is counted). In core mode the import's and the migration's peaks are also reported
(``import_peak_mb``, ``migrate_peak_mb``; the high-water mark is reset between them), so the
raw numbers show which stage holds the peak."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.benchlib import ROOT, Stores

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
mode, config_path, run_dir, run = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
from bench.catchup import import_settings_of, open_stores
from archiver_resources.archiving import import_run, migrate_run
import dagster  # same imports in every mode, so the baseline is comparable
settings, config = import_settings_of(config_path)
def hwm_kb():
    # VmHWM belongs to this process's own address space; ru_maxrss would carry the parent's
    # high-water mark over fork+exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
def reset_hwm():
    # VmHWM := current RSS, so the migration's own peak is seen (False when not permitted).
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False
base = hwm_kb()
stages = {{}}
t0 = time.perf_counter()
if mode == "core":
    store, client = open_stores(config)
    try:
        import_run(run, __import__("pathlib").Path(run_dir), store, settings)
        stages["import_peak_kb"] = hwm_kb()
        if reset_hwm():
            migrate_run(run, store, client)
            stages["migrate_peak_kb"] = hwm_kb()
        else:
            migrate_run(run, store, client)
    finally:
        store.close(); client.close()
elif mode == "dagster":
    import dagster as dg
    from archiver_assets.definitions import build_definitions
    defs = build_definitions(config_path)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("runs", [str(run)])
        result = defs.resolve_job_def("archive_runs").execute_in_process(
            instance=instance, partition_key=str(run), raise_on_error=False)
        assert result.success
peak = max([hwm_kb(), *stages.values()])
print(json.dumps({{"imports_kb": base, "peak_kb": peak, "seconds": time.perf_counter() - t0,
                  **stages}}))
"""


def peak_rss(stores: Stores, run: int, mode: str) -> dict:
    """Archive ``run`` (already under stores.run_records) in a child; ``mode``: idle | core | dagster."""
    code = CHILD.format(root=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code, mode, str(stores.config_path),
                           str(stores.run_records / str(run)), str(run)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"peak-RSS child ({mode}) failed: {proc.stderr[-2000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    result = {"peak_mb": data["peak_kb"] / 1024, "imports_mb": data["imports_kb"] / 1024,
              "seconds": data["seconds"]}
    for stage in ("import", "migrate"):  # core mode: which stage holds the peak
        if f"{stage}_peak_kb" in data:
            result[f"{stage}_peak_mb"] = data[f"{stage}_peak_kb"] / 1024
    return result
