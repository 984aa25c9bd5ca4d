"""End-to-end demo on the embedded defaults: sample run records → filesystemdb → local UconDB,
through the real sensor, jobs and checks on the Dagster instance in ``$DAGSTER_HOME``.

Run it with ``scripts/demo.sh`` (which also sets up the environment). Idempotent: a second run
reuses the run records, the stores and the instance, and archives only what is new.
"""

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_USER = "archiver"
DEMO_FOLDER = "demo_runs"
DEMO_OBJECT = "configuration"
# The run's event log stays complete in the instance (and the UI); the console shows warnings.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _free_port(preferred: int) -> int:
    """``preferred`` if it is free on loopback, else any free port (0 asks for any)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_demo_config(demo_dir: Path, port: int) -> Path:
    """A legacy-format config.yaml for the demo (UconDB password from the environment)."""
    fcl_conf = demo_dir / "fcl_conf"
    fcl_conf.mkdir(parents=True, exist_ok=True)
    from archiver_resources.fhiclize import default_schema_text

    schema = fcl_conf / "schema.fcl"
    if not schema.exists():
        schema.write_text(default_schema_text())
    config = demo_dir / "config.yaml"
    config.write_text(f"""# Demo configuration (legacy config.yaml format), written by archiver_assets.demo.
app:
  work_dir: "${{WORK_DIR:-{demo_dir / 'work'}}}"
  batch_size: 5
  parallel_workers: 2
source_files:
  run_records_dir: "${{RUN_RECORDS_DIR:-{demo_dir / 'run_records'}}}"
  finished_after_seconds: 3600
artdaq_db:
  fcl_conf_dir: "{fcl_conf}"
  database_uri: "${{ARTDAQDB_URL:-filesystemdb://{demo_dir / 'artdaqdb' / 'demo_db_archive'}}}"
  use_tools: false
ucon_db:
  server_url: "http://127.0.0.1:{port}/app"
  folder_name: {DEMO_FOLDER}
  object_name: {DEMO_OBJECT}
  timeout_seconds: 10
  writer_user: "${{UCONDB_USER:-{DEMO_USER}}}"
  writer_password: "${{UCONDB_PASSWORD}}"
  verify_tls: true
""")
    return config


def start_ucondb(demo_dir: Path, port: int, password: str) -> subprocess.Popen:
    """Start the project's local UconDB server on loopback and wait until it answers."""
    import requests

    log = open(demo_dir / "ucondb-server.log", "ab")
    env = dict(os.environ, UCONDB_PASSWORD=password)
    proc = subprocess.Popen(
        [sys.executable, "-m", "archiver_resources.ucondb.server",
         "--db", f"sqlite:///{demo_dir / 'ucondb.sqlite'}", "--host", "127.0.0.1",
         "--port", str(port), "--prefix", "/app", "--user", DEMO_USER,
         "--password-env", "UCONDB_PASSWORD", "--create-folder", DEMO_FOLDER],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"local UconDB server exited (code {proc.returncode}); "
                             f"see {demo_dir / 'ucondb-server.log'}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/app/version", timeout=1).ok:
                return proc
        except requests.RequestException:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("local UconDB server did not answer within 30 s")


def run_demo(demo_dir: Path, runs: range, port: int) -> int:
    import dagster as dg

    from archiver_assets.definitions import build_definitions
    from archiver_assets.partitions import runs_partitions, targeted_key_list
    from archiver_resources.samples import generate_run_records

    demo_dir.mkdir(parents=True, exist_ok=True)
    password = os.environ.setdefault("UCONDB_PASSWORD", "demo-only-password")
    records = demo_dir / "run_records"
    missing = [run for run in runs if not (records / str(run)).exists()]
    generate_run_records(records, missing, profile="typical", seed=0)
    config = write_demo_config(demo_dir, port)
    os.environ["ARCHIVER_CONFIG"] = str(config)
    print(f"[demo] {len(runs)} sample run records in {records} ({len(missing)} new)")
    server = start_ucondb(demo_dir, port, password)
    print(f"[demo] local UconDB server on http://127.0.0.1:{port}/app (folder {DEMO_FOLDER})")
    try:
        instance = dg.DagsterInstance.get()
        defs = build_definitions(str(config))
        sensor = defs.resolve_sensor_def("new_run_records")
        with dg.build_sensor_context(instance_ref=instance.get_ref(), definitions=defs,
                                     resources=defs.resources,
                                     cursor=None) as context:
            tick = sensor.evaluate_tick(context)
        for request in tick.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(runs_partitions.name, list(request.partition_keys))
        requests = list(tick.run_requests or [])
        partition_order = lambda: instance.get_dynamic_partitions(runs_partitions.name)  # noqa: E731
        # a tick that finds several runs requests them as range runs (range tags, no key)
        targets = [[r.partition_key] if r.partition_key else
                   targeted_key_list(dict(r.tags), partition_order) for r in requests]
        keys = [key for target in targets for key in target]
        print(f"[demo] sensor tick: {len(keys)} run(s) to archive in {len(requests)} "
              f"Dagster run(s)")
        job = defs.resolve_job_def("archive_runs")
        failed = []
        for request, target in zip(requests, targets):
            result = job.execute_in_process(
                instance=instance, partition_key=request.partition_key, raise_on_error=False,
                run_config=QUIET, tags={**request.tags, "dagster/sensor_name": "new_run_records"})
            label = target[0] if len(target) == 1 else f"{target[0]}-{target[-1]}"
            if result.success:
                status = "ok"
            else:  # which runs of the range failed: the ones not archived
                migrated = instance.get_materialized_partitions(dg.AssetKey("ucondb_blob"))
                failed += [key for key in target if key not in migrated] or target
                status = "FAILED"
            print(f"[demo]   run(s) {label}: {status} (dagster run {result.run_id[:8]})")
        return summarize(instance, keys, failed, demo_dir, config)
    finally:
        server.terminate()
        server.wait(timeout=10)


def summarize(instance, keys, failed, demo_dir: Path, config: Path) -> int:
    import dagster as dg

    imported = instance.get_materialized_partitions(dg.AssetKey("artdaqdb_config"))
    migrated = instance.get_materialized_partitions(dg.AssetKey("ucondb_blob"))
    print()
    print("=" * 70)
    print("DEMO SUMMARY")
    print("=" * 70)
    print(f"  Runs requested this time:   {len(keys)} ({len(failed)} failed)")
    print(f"  Runs in artdaqDB (Dagster): {len(imported)}")
    print(f"  Runs in UconDB (Dagster):   {len(migrated)}")
    checks = _latest_check_results(instance)
    for name, (passed, total) in sorted(checks.items()):
        print(f"  Check {name:<26} {passed}/{total} passed")
    print(f"  Config:          {config}")
    print(f"  Dagster home:    {os.environ.get('DAGSTER_HOME')}")
    print(f"  artdaqDB:        {demo_dir / 'artdaqdb'}")
    print(f"  UconDB database: {demo_dir / 'ucondb.sqlite'}")
    print()
    print("  Open the UI:  scripts/ui.sh   (starts the local UconDB server and `dagster dev`)")
    print("=" * 70)
    return 1 if failed else 0


def _latest_check_results(instance) -> dict:
    import dagster as dg
    from archiver_assets.dagster_internals import SUCCEEDED, status_value

    results = {}
    for asset, name in (("ucondb_blob", "md5_round_trip"), ("artdaqdb_config", "hashes_match"),
                        ("ucondb_blob", "legacy_metadata")):
        key = dg.AssetCheckKey(dg.AssetKey(asset), name)
        latest = {}
        for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=100000):
            partition = record.partition
            if partition is None:  # a range run's summary of its runs' own evaluations
                continue
            if partition not in latest:
                latest[partition] = record.status
        passed = sum(1 for s in latest.values() if status_value(s) == SUCCEEDED)
        results[f"{asset}.{name}"] = (passed, len(latest))
    return results


def _parse_runs(text: str) -> range:
    first, _, last = text.partition("-")
    return range(int(first), int(last or first) + 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/demo.sh",
        description="Archive a set of generated sample run records end to end (filesystemdb, "
                    "local UconDB server, SQLite Dagster instance in $DAGSTER_HOME) and print a "
                    "summary. Safe to run again.")
    parser.add_argument("--dir", default=str(ROOT / "demo"), help="demo directory (default: ./demo)")
    parser.add_argument("--runs", default="1000-1019", help="run numbers to generate, e.g. 1000-1019")
    parser.add_argument("--port", type=int, default=8088, help="local UconDB port (default 8088)")
    args = parser.parse_args(argv)
    if not os.environ.get("DAGSTER_HOME"):
        os.environ["DAGSTER_HOME"] = str(ROOT / ".dagster_home")
        Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    return run_demo(Path(args.dir).resolve(), _parse_runs(args.runs), _free_port(args.port))


if __name__ == "__main__":
    sys.exit(main())
