"""The `archive_status` asset (the legacy status report per store plus what Dagster knows), its
`stores_in_sync` check and the `archive_status_daily` schedule.

A store that cannot be queried does not fail the materialization: the report carries the legacy
``✗ … query failed`` line and `stores_in_sync` warns, so the daily run never fails for an outage
that the archive assets report anyway (docs/alerts.md).

The report also finds runs Dagster records as archived that a store no longer holds (a store
restored from an older backup): `archive_status` marks them failed with the reason
(``state.drift``), so the sensor archives them again, and `stores_in_sync` warns (an alert). Run
numbers far above the others (``app.max_run_number_jump``) are reported and warned about too.
"""

import base64
import os
from typing import TYPE_CHECKING, Callable, Optional

import dagster as dg

from archiver_assets import dagster_internals as internals
from archiver_assets.partitions import RUNS_PARTITIONS_NAME, runs_partitions
from archiver_assets.state.drift import STORE_NAMES, Drift, find_drift, repair_drift
from archiver_assets.state.partition_status import read_stage_status
from archiver_assets.resources import MetricsResource
from archiver_resources.redaction import redact
from archiver_assets.resources import ArtdaqDBResource, RunRecordsResource, UconDBResource
from archiver_resources.runrecords import list_runs

if TYPE_CHECKING:
    # statusreport pulls in pandas + numpy (~0.4 s of start-up): the functions that build a
    # report import it, so a run worker loading the definitions for an archive run does not.
    from archiver_resources import statusreport as sr

OWNERS = ["team:daq-operations"]
STATUS_ASSET = "archive_status"
STATUS_JOB = "archive_status_job"
STATUS_SCHEDULE = "archive_status_daily"
DEFAULT_CRON = "0 6 * * *"
DEFAULT_MAX_LAG_RUNS = 10

ARCHIVE_ASSET_KEYS = (dg.AssetKey("artdaqdb_config"), dg.AssetKey("ucondb_blob"))
ARCHIVE_CHECK_KEYS = (dg.AssetCheckKey(dg.AssetKey("ucondb_blob"), "md5_round_trip"),
                      dg.AssetCheckKey(dg.AssetKey("artdaqdb_config"), "hashes_match"),
                      dg.AssetCheckKey(dg.AssetKey("ucondb_blob"), "legacy_metadata"))
LAG_KEYS = ("artdaqdb_behind_filesystem", "ucondb_behind_artdaqdb",
            "artdaqdb_max_run_behind", "ucondb_max_run_behind")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def lag_thresholds() -> tuple[int, int]:
    """(artdaqDB, UconDB) lag thresholds in runs: ``ARCHIVER_MAX_ARTDAQDB_LAG_RUNS`` and
    ``ARCHIVER_MAX_UCONDB_LAG_RUNS`` (default 10 each)."""
    return (_env_int("ARCHIVER_MAX_ARTDAQDB_LAG_RUNS", DEFAULT_MAX_LAG_RUNS),
            _env_int("ARCHIVER_MAX_UCONDB_LAG_RUNS", DEFAULT_MAX_LAG_RUNS))


# ---------------------------------------------------------------------------------------------
# Gathering
# ---------------------------------------------------------------------------------------------

def _query(name: str, fetch: Callable[[], object], errors: dict, secrets) -> Optional[object]:
    """``fetch()``, or None with a one-line, secret-free cause in ``errors[name]``."""
    try:
        return fetch()
    except Exception as error:  # noqa: BLE001 - any store failure becomes a report line
        detail = " ".join(str(error).split())[:300]
        errors[name] = redact(f"{type(error).__name__}: {detail}", secrets)
        return None


def _failed_partitions(instance, keys: list) -> dict:
    out = {}
    for asset_key in ARCHIVE_ASSET_KEYS:
        status = instance.get_status_by_partition(asset_key, keys, runs_partitions) or {}
        out[asset_key.to_user_string()] = sorted(
            (k for k, s in status.items() if s is not None and s.value == "FAILED"),
            key=lambda k: (len(k), k))
    return out


def _latest_completed_failed(storage, info) -> bool:
    """Whether the latest *completed* execution failed (a planned execution that a failed run
    skipped must not hide an earlier failure)."""
    status = internals.status_value(info.latest_execution_status)
    if status == internals.FAILED:
        return True
    if status != internals.PLANNED:
        return False
    history = internals.check_history(storage, info.check_key, limit=1,
                                      statuses={internals.SUCCEEDED, internals.FAILED},
                                      partition=info.partition_key)
    return bool(history) and internals.status_value(history[0].status) == internals.FAILED


def _failed_checks(instance) -> dict:
    """Check → partitions whose latest completed execution failed (``-``: unpartitioned)."""
    storage = instance.event_log_storage
    out: dict = {f"{k.asset_key.to_user_string()}:{k.name}": [] for k in ARCHIVE_CHECK_KEYS}
    for info in storage.get_asset_check_partition_info(list(ARCHIVE_CHECK_KEYS)):
        if _latest_completed_failed(storage, info):
            name = f"{info.check_key.asset_key.to_user_string()}:{info.check_key.name}"
            out[name].append(info.partition_key or "-")
    return out


def dagster_status(instance, drift: Optional[Drift] = None) -> "sr.DagsterStatus":
    """Failed partitions of both archive assets, the latest failed check executions and the runs
    a store lost (``drift``, see ``state.drift``)."""
    from archiver_resources import statusreport as sr

    keys = instance.get_dynamic_partitions(RUNS_PARTITIONS_NAME)
    lost = {STORE_NAMES[stage]: runs for stage, runs in (drift.lost if drift else {}).items()}
    return sr.DagsterStatus(failed_partitions=_failed_partitions(instance, keys),
                            failed_checks=_failed_checks(instance), lost_runs=lost)


def gather_report(instance, run_records: RunRecordsResource, artdaqdb: ArtdaqDBResource,
                  ucondb: UconDBResource, metrics: MetricsResource) -> "sr.StatusReport":
    """Query the three stores (a failure becomes the legacy ``query failed`` line) and Dagster."""
    return gather(instance, run_records, artdaqdb, ucondb, metrics)[0]


def gather(instance, run_records: RunRecordsResource, artdaqdb: ArtdaqDBResource,
           ucondb: UconDBResource, metrics: MetricsResource) -> tuple:
    """``(report, drift)``: the report of :func:`gather_report` and the runs Dagster records as
    archived that a store lacks (partition status read before the listings, ``state.drift``)."""
    from archiver_resources import statusreport as sr

    config = run_records.settings.get()
    secrets = config.secrets()
    errors: dict = {}
    status = read_stage_status(instance)

    def artdaqdb_runs():
        with artdaqdb.open() as store:
            return list(metrics.timed_artdaqdb(store).archived_runs())

    def ucondb_runs():
        with ucondb.client() as client:
            return metrics.timed_ucondb(client).existing_runs()

    filesystem = _query("filesystem", lambda: list(list_runs(run_records.run_records_dir).runs),
                        errors, secrets)
    artdaq = _query("artdaqdb", artdaqdb_runs, errors, secrets)
    ucon = _query("ucondb", ucondb_runs, errors, secrets)
    locations = {"filesystem": str(config.source_files.run_records_dir),
                 "artdaqdb": config.artdaq_db.database_uri, "ucondb": config.ucon_db.server_url,
                 "ucondb_folder": config.ucon_db.folder_name,
                 "ucondb_object": config.ucon_db.object_name}
    drift = find_drift(status, artdaqdb_runs=artdaq, ucondb_runs=ucon)
    report = sr.build_report(filesystem, artdaq, ucon, locations=locations, errors=errors,
                             dagster=dagster_status(instance, drift),
                             max_run_jump=config.app.max_run_number_jump)
    return report, drift


# ---------------------------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------------------------

def plot_markdown(report: "sr.StatusReport") -> str:
    """The plot as a markdown image with a PNG data URI (the Dagster UI renders ``data:`` images;
    the plot is bounded in size whatever the number of runs)."""
    from archiver_resources import statusreport as sr

    data = base64.b64encode(sr.plot_png(report)).decode("ascii")
    return f"![Runs per store (blue: present, red: gaps)](data:image/png;base64,{data})"


def report_metadata(report: "sr.StatusReport", secrets) -> dict:
    """Everything an operator reads in the UI; secret values are scrubbed from the text."""
    from archiver_resources import statusreport as sr

    text = redact(report.text(), secrets)
    metadata = {
        "report": dg.MetadataValue.md(f"```\n{text}```"),
        "complete": dg.MetadataValue.bool(report.complete),
    }
    if report.dagster is not None:
        metadata["failed_partitions"] = dg.MetadataValue.int(
            sum(len(v) for v in report.dagster.failed_partitions.values()))
        metadata["failed_checks"] = dg.MetadataValue.int(
            sum(len(v) for v in report.dagster.failed_checks.values()))
        metadata["lost_by_store"] = dg.MetadataValue.json(
            {store: list(runs)[:1000] for store, runs in report.dagster.lost_runs.items()
             if len(runs)})
    metadata["far_above_runs"] = dg.MetadataValue.json(report.far_above().far_runs)
    if not report.complete:
        metadata["query_failed"] = report.failure.store
        metadata["query_error"] = redact(report.failure.line(), secrets)
        return metadata
    metadata["summary"] = dg.MetadataValue.md(report.markdown_table())
    metadata["plot"] = dg.MetadataValue.md(plot_markdown(report))
    for name in sr.STORES:
        metadata[f"{name}_runs"] = dg.MetadataValue.int(report.stores[name].total)
    for key, value in sr.store_lag(report).items():
        metadata[key] = dg.MetadataValue.int(value)
    return metadata


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------

@dg.asset(
    name=STATUS_ASSET,
    group_name="operations",
    kinds={"python", "pandas"},
    owners=OWNERS,
    description=(
        "The legacy status report (run_archiver.sh --report-status): per store (filesystem, "
        "artdaqDB, UconDB) total runs, range, contiguous ranges and gaps, the recommendations, "
        "and what Dagster knows (failed partitions, failed checks). Metadata: the report text, a "
        "summary table, a plot of runs per store with gaps highlighted, totals and lag. A store "
        "that cannot be queried is reported, not raised."
    ),
)
def archive_status(context: dg.AssetExecutionContext, run_records: RunRecordsResource,
                   artdaqdb: ArtdaqDBResource, ucondb: UconDBResource,
                   metrics: MetricsResource) -> dg.MaterializeResult:
    with metrics.flushed():
        report, drift = gather(context.instance, run_records, artdaqdb, ucondb, metrics)
    secrets = run_records.settings.get().secrets()
    if drift:  # runs a store lost: marked failed, so they are archived again
        repair_drift(context.instance, drift,
                     where={"import": artdaqdb.describe(), "migrate": ucondb.describe()},
                     found_by="archive_status")
        for line in drift.lines():
            context.log.warning(redact(line, secrets))
    for line in report.records():
        if line.level >= 30:
            context.log.warning(redact(line.text, secrets))
    if not report.complete:
        context.log.warning("Status report incomplete: a store could not be queried; "
                            "stores_in_sync will warn")
    return dg.MaterializeResult(metadata=report_metadata(report, secrets))


def _metadata_value(metadata, key):
    entry = metadata.get(key)
    return getattr(entry, "value", entry)


def evaluate_sync(metadata, max_artdaqdb_lag: int, max_ucondb_lag: int) -> dg.AssetCheckResult:
    """Pass when artdaqDB lags the filesystem and UconDB lags artdaqDB by at most the thresholds
    (runs one store has and the next lacks); WARN otherwise or when the report is incomplete."""
    limits = {"max_artdaqdb_lag_runs": max_artdaqdb_lag, "max_ucondb_lag_runs": max_ucondb_lag}
    if not _metadata_value(metadata, "complete"):
        store = _metadata_value(metadata, "query_failed") or "a store"
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN,
            description=f"cannot compare the stores: the {store} query failed "
                        f"({_metadata_value(metadata, 'query_error')})",
            metadata=limits)
    lag = {key: int(_metadata_value(metadata, key)) for key in LAG_KEYS}
    problems = []
    for store, runs in sorted((_metadata_value(metadata, "lost_by_store") or {}).items()):
        problems.append(f"{store} no longer holds {len(runs)} run(s) Dagster recorded as "
                        f"archived ({', '.join(map(str, runs[:10]))}"
                        f"{' …' if len(runs) > 10 else ''}): marked failed, archived again")
    far = _metadata_value(metadata, "far_above_runs") or []
    if far:
        problems.append(f"run number(s) far above the others: {', '.join(map(str, far[:10]))} "
                        f"(check those run directories; they do not move the incremental mark)")
    if lag["artdaqdb_behind_filesystem"] > max_artdaqdb_lag:
        problems.append(f"artdaqDB lacks {lag['artdaqdb_behind_filesystem']} run(s) of the "
                        f"filesystem (allowed {max_artdaqdb_lag})")
    if lag["ucondb_behind_artdaqdb"] > max_ucondb_lag:
        problems.append(f"UconDB lacks {lag['ucondb_behind_artdaqdb']} run(s) of artdaqDB "
                        f"(allowed {max_ucondb_lag})")
    return dg.AssetCheckResult(
        passed=not problems, severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(problems) if problems else "stores in sync within the thresholds",
        metadata={**lag, **limits})


def build_stores_in_sync_check(max_artdaqdb_lag: Optional[int] = None,
                               max_ucondb_lag: Optional[int] = None):
    """`stores_in_sync` on the latest `archive_status` materialization (thresholds: arguments,
    else the environment, else 10 runs each)."""
    default_adb, default_ucon = lag_thresholds()
    adb_limit = default_adb if max_artdaqdb_lag is None else max_artdaqdb_lag
    ucon_limit = default_ucon if max_ucondb_lag is None else max_ucondb_lag

    @dg.asset_check(asset=STATUS_ASSET, name="stores_in_sync", blocking=False,
                    description=f"Warns when artdaqDB lacks more than {adb_limit} run(s) of the "
                                f"filesystem or UconDB more than {ucon_limit} of artdaqDB "
                                "(or a store could not be queried).")
    def stores_in_sync(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        event = context.instance.get_latest_materialization_event(dg.AssetKey(STATUS_ASSET))
        if event is None or event.asset_materialization is None:
            return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                                       description="archive_status was never materialized")
        return evaluate_sync(event.asset_materialization.metadata, adb_limit, ucon_limit)

    return stores_in_sync


def build_status_job_and_schedule(cron: Optional[str] = None, timezone: Optional[str] = None):
    """The job materializing `archive_status` (+ its check) and its schedule, RUNNING by default:
    cron from ``ARCHIVER_STATUS_CRON`` (default daily 06:00), ``ARCHIVER_STATUS_TIMEZONE``."""
    job = dg.define_asset_job(STATUS_JOB, selection=dg.AssetSelection.assets(STATUS_ASSET),
                              executor_def=dg.in_process_executor,
                              description="Build the status report (archive_status).")
    schedule = dg.ScheduleDefinition(
        name=STATUS_SCHEDULE, job=job,
        cron_schedule=cron or os.environ.get("ARCHIVER_STATUS_CRON", DEFAULT_CRON),
        execution_timezone=timezone or os.environ.get("ARCHIVER_STATUS_TIMEZONE") or None,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Materializes archive_status (the status report) once a day by default.")
    return job, schedule
