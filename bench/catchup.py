"""Catch-up of N runs: the plain loop over the domain core (no Dagster) and the same runs through
Dagster's batched range runs (what a backfill with BackfillPolicy.multi_run launches)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from bench.benchlib import Stores


def import_settings_of(config_path: Path):
    """The ImportSettings the resources would build, read straight from config.yaml."""
    from archiver_resources.archiving import ImportSettings
    from archiver_resources.config import load_config
    from archiver_resources.fhiclize import load_schema_text

    config = load_config(config_path)
    return ImportSettings(enabled=config.fhiclize_generate,
                          schema_text=load_schema_text(config.artdaq_db.fcl_conf_dir),
                          finished_after_seconds=config.source_files.finished_after_seconds,
                          max_file_bytes=config.source_files.max_file_bytes), config


def open_stores(config):
    from archiver_resources.artdaqdb import open_artdaqdb
    from archiver_resources.ucondb.client import UconDBClient

    section = config.ucon_db
    store = open_artdaqdb(config.artdaq_db.database_uri)
    client = UconDBClient(section.server_url, section.folder_name, section.object_name,
                          user=section.writer_user, password=section.writer_password,
                          timeout=float(section.timeout_seconds), retries=section.retries)
    return store, client


def plain_loop(stores: Stores, runs: list[int], *, with_checks: bool = False) -> float:
    """Archive ``runs`` with a plain loop over import_run + migrate_run (MD5 verify included).

    ``with_checks`` also does the work of the three asset checks (hashes re-verified from disk,
    MD5 of the served blob against a re-packed one, legacy metadata), so that Dagster and the
    loop do the same work. Returns the wall time in seconds.
    """
    from archiver_resources.archiving import (build_blob, import_run, migrate_run,
                                              prepare_from_disk, verify_archived)
    from archiver_resources.blob import md5_hex, split_blob, validate_metadata

    settings, config = import_settings_of(stores.config_path)
    store, client = open_stores(config)
    started = time.perf_counter()
    try:
        for run in runs:
            run_dir = stores.run_records / str(run)
            import_run(run, run_dir, store, settings)
            if with_checks:
                verify_archived(run, prepare_from_disk(run, run_dir, settings, force=True),
                                settings, store)
            migrate_run(run, store, client, on_existing=config.app.on_existing)
            if with_checks:
                _, _, _, data = build_blob(run, store)
                assert md5_hex(client.get_blob(run).data) == md5_hex(data)
                validate_metadata(split_blob(client.get_blob(run).data.decode("utf-8")))
    finally:
        store.close()
        client.close()
    return time.perf_counter() - started


class RunlessTimer:
    """Counts and times the checks' per-partition evaluation records in range runs: runless
    reports (``report_runless_asset_event``) or in-run events (``checks._log_partition_evaluation``),
    whichever checks.py uses. Undo with ``restore``."""

    def __init__(self, instance):
        import archiver_assets.archive.checks as checks

        self.calls, self.seconds = 0, 0.0
        self._restore = []
        instance.report_runless_asset_event = self._timed(instance.report_runless_asset_event)
        # Every per-partition evaluation goes through this function, batched or not (batched:
        # the last call of a step stores them all, so the total time is still counted).
        name = "_log_partition_evaluation"
        self._restore.append((checks, name, getattr(checks, name)))
        setattr(checks, name, self._timed(getattr(checks, name)))

    def _timed(self, original):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.calls += 1
                self.seconds += time.perf_counter() - t0

        return timed

    def restore(self):
        for owner, name, value in self._restore:
            setattr(owner, name, value)


def dagster_instance(home: Path, dagster_yaml: Optional[Path] = None):
    """A persistent SQLite instance with the project's dagster.yaml, as in development, or the
    instance ``dagster_yaml`` describes (bench/postgres.py: the production PostgreSQL one)."""
    import shutil

    import dagster as dg

    from bench.benchlib import ROOT

    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(dagster_yaml or ROOT / "dagster.yaml", home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(home))


def dagster_catchup(stores: Stores, runs: list[int], batch: int, home: Path,
                    dagster_yaml: Optional[Path] = None) -> dict:
    """Add the runs as partitions (one call, as the sensor does), then execute range runs of
    ``batch`` partitions of both assets + checks, as the backfill daemon launches them.

    Returns wall time, the time spent adding partitions, in range runs, and in per-partition
    runless check reports.
    """
    import dagster as dg

    from archiver_assets.definitions import build_definitions

    defs = build_definitions(str(stores.config_path), backfill_batch_size=batch)
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey("artdaqdb_config"), dg.AssetKey("ucondb_blob")})
    keys = [str(r) for r in runs]
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    with dagster_instance(home, dagster_yaml) as instance:
        # As the command line's workers do before they create range runs (and the daemon with
        # DAGSTER_EVENT_BATCH_SIZE in its environment): a run's planned events in one write.
        from archiver_assets.event_batching import enable_batched_writes

        enable_batched_writes(instance)
        timer = RunlessTimer(instance)
        cpu0 = _cpu()
        started = time.perf_counter()
        instance.add_dynamic_partitions("runs", keys)
        added = time.perf_counter()
        failed = 0
        for i in range(0, len(keys), batch):
            chunk = keys[i:i + batch]
            if len(chunk) == 1:
                result = job.execute_in_process(instance=instance, partition_key=chunk[0],
                                                raise_on_error=False, run_config=quiet)
            else:
                result = job.execute_in_process(
                    instance=instance, raise_on_error=False, run_config=quiet,
                    tags={"dagster/asset_partition_range_start": chunk[0],
                          "dagster/asset_partition_range_end": chunk[-1]})
            failed += 0 if result.success else len(chunk)
        total = time.perf_counter() - started
        cpu = _cpu() - cpu0
        timer.restore()
        materialized = len(instance.get_materialized_partitions(dg.AssetKey("ucondb_blob")))
    if failed or materialized != len(keys):
        raise RuntimeError(f"Dagster catch-up failed: {failed} failed partitions, "
                           f"{materialized}/{len(keys)} materialized")
    return {"seconds": total, "cpu_s": cpu, "add_partitions_s": added - started,
            "runless_reports": timer.calls, "runless_s": timer.seconds}


def _cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
