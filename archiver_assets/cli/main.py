"""``run-record-archiver [config.yaml] [flags]``: the legacy command line, on Dagster.

Same flags and meanings as the legacy tool, executed as real Dagster runs of
``import_runs`` / ``migrate_runs`` on the configured instance, so every run and materialization
is visible in the UI afterwards. In Dagster terms "failed runs" are FAILED partitions and
"state" is partition status; docs/migration-from-legacy.md has the mapping table.

Start-up (every mode): load config.yaml (ConfigError → ERROR SUMMARY, exit 1), ``mkdir -p``
work_dir, logging (legacy format; ``-v``; ``app.log_file`` rotating at 500 MiB or 14 days, 5
backups; secrets redacted on every handler), banner, SIGINT+SIGTERM graceful-stop handler, the
instance lock (held → exit 1, the holder undisturbed), the lock monitor (lock file removed →
graceful stop, reason ``Lock file removed``), then the Dagster instance: ``DAGSTER_HOME`` from the
environment, else ``app.dagster_home``, else ``<work_dir>/dagster_home``; a directory without a
dagster.yaml gets the project's. Dagster runs left unfinished by a worker that is gone (a killed
command line, a full disk) are reported failed (not in --dry-run or the report modes). No store
is contacted at start-up: a store that is down fails the runs that need it (exit 1), or stops a
status report at its ``query failed`` line (exit 0).

Exit codes: 0 success or nothing to do (also a finished report or recovery); 1 a run failed, a
known error (config, lock held, run listing), a verification failure in a recovery; 2 an
unexpected exception or a usage error; 130 after a graceful stop or an immediate one. ``main``
returns the code (tests call it in-process); ``python -m archiver_assets.cli`` exits with it.

What each mode does is in ``archiver_assets.cli.modes`` (``modes.choose`` picks it from the
flags); the worker processes that execute the Dagster runs are ``archiver_assets.cli.workers``.
"""

import argparse
import logging
import os
import shutil
import sys
import time
import traceback
import uuid
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Optional, Sequence

RULE = "=" * 70
STAGE_RULE = "=" * 60
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
LOG_MAX_BYTES = 500 * 1024 * 1024
LOG_MAX_AGE_SECONDS = 14 * 24 * 3600
LOG_BACKUPS = 5
HELP_ALIASES = {"/?", "/h", "/help"}
PROJECT_DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"
FALLBACK_DAGSTER_YAML = """\
# Written by run-record-archiver (no dagster.yaml was found in this DAGSTER_HOME).
concurrency:
  runs:
    max_concurrent_runs: 2
  pools:
    default_limit: 2
run_retries:
  enabled: true
  max_retries: 1
  retry_on_asset_or_op_failure: false
telemetry:
  enabled: false
"""

logger = logging.getLogger("archiver_assets.cli")

EPILOG = """\
modes (mutually exclusive; none = full pipeline: import, then migration):
  --import-only            import stage only: run records -> artdaqDB (job import_runs)
  --migrate-only           migration stage only: artdaqDB -> UconDB (job migrate_runs)
  --retry-failed-import    re-run every FAILED artdaqdb_config partition and every run whose
                           blocking import check failed (no batch cap)
  --retry-failed-migrate   re-run every FAILED ucondb_blob partition (no batch cap)
  --report-status          status report per store + what Dagster knows; no processing
  --recover-import-state   rebuild artdaqdb_config partition status from artdaqDB (reconcile)
  --recover-migrate-state  rebuild ucondb_blob partition status from UconDB (reconcile)
  --reconcile              both recover modes in one command, e.g. after losing DAGSTER_HOME
  --import-legacy-state [WORK_DIR]
                           one-shot import of the legacy state files and failure logs
                           (default: the app.* paths): reconcile, then the runs the legacy
                           tool logged as failed become FAILED partitions
  Precedence: the recover modes first, then --report-status/--compare-state.

candidates, in Dagster terms:
  import    finished run directories whose artdaqdb_config partition is not materialized
  migrate   runs whose artdaqdb_config is materialized and ucondb_blob is not; a run whose
            blocking import check (hashes_match) failed is held back ("held back from
            migration"), in every mode, until --retry-failed-import re-imports it
  --incremental keeps runs above the highest materialized partition of the stage; batch cap
  batch_size (incremental) or batch_size*10 (full); Dagster runs of batch_size partitions,
  parallel_workers at a time.

exit codes:
  0    success, nothing to do, a finished report or recovery
  1    a run failed, or a known error (configuration, lock held, run listing)
  2    unexpected error, or a command-line usage error
  130  stopped by Ctrl-C / SIGTERM / lock-file removal

Ctrl-C (or SIGTERM): the Dagster runs in progress finish, no new ones start, exit 130.
Press Ctrl-C three times within 2 seconds to stop at once (the runs in progress are
interrupted and recorded as failed). Deleting the lock file also stops gracefully.
Every run is a Dagster run on the instance in DAGSTER_HOME (else app.dagster_home, else
<work_dir>/dagster_home): open the Dagster UI to see runs, partitions and checks.
"""


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run-record-archiver",
        description="Archive artdaq run records: run records -> artdaqDB -> UconDB, as Dagster "
                    "runs on the configured instance (legacy run_archiver.sh flags).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config_file", nargs="?", default="config.yaml",
                        help="legacy-format configuration file (default: config.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log at DEBUG (overrides app.log_level); shows the Dagster event log")
    parser.add_argument("--incremental", action="store_true",
                        help="only runs above the highest materialized partition of each stage; "
                             "batch cap batch_size instead of batch_size*10")
    parser.add_argument("--compare-state", action="store_true",
                        help="status report with the STATE COMPARISON section (implies "
                             "--report-status)")
    parser.add_argument("--validate", action="store_true",
                        help="log the legacy_metadata check (blob metadata.fcl) of every migrated "
                             "run; warns only")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be imported/migrated/verified/recorded and why; "
                             "write nothing (no store, no partition, no Dagster run or event)")
    parser.add_argument("--verify", action="store_true",
                        help="with a recover mode or --import-legacy-state: verify each run "
                             "before recording it (hashes / MD5; slow)")
    parser.add_argument("--create-ucondb-folder", action="store_true",
                        help="if the UconDB folder (ucon_db.folder_name) does not exist, the "
                             "first upload creates it with the writer credentials and is sent "
                             "again (as ucon_db.create_folder: true); without it a missing "
                             "folder fails the migration with an error naming the folder")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--import-only", action="store_true", help="import stage only")
    modes.add_argument("--migrate-only", action="store_true", help="migration stage only")
    modes.add_argument("--retry-failed-import", action="store_true",
                       help="retry the failed artdaqdb_config partitions")
    modes.add_argument("--retry-failed-migrate", action="store_true",
                       help="retry the failed ucondb_blob partitions")
    modes.add_argument("--report-status", action="store_true", help="status report only")
    modes.add_argument("--recover-import-state", action="store_true",
                       help="rebuild the import state (partitions) from artdaqDB")
    modes.add_argument("--recover-migrate-state", action="store_true",
                       help="rebuild the migration state (partitions) from UconDB")
    modes.add_argument("--reconcile", action="store_true",
                       help="rebuild the partition status of both stages from the stores in one "
                            "command (the Dagster job `reconcile`)")
    modes.add_argument("--import-legacy-state", nargs="?", const="", default=None,
                       metavar="WORK_DIR",
                       help="import the legacy state files and failure logs (WORK_DIR or the "
                            "app.* paths)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser


def rewrite_help_aliases(argv: Sequence[str]) -> list:
    """``/?``, ``/h`` and ``/help`` mean ``--help`` (legacy)."""
    return ["--help" if arg in HELP_ALIASES else arg for arg in argv]


# ---------------------------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------------------------

class ArchiverLogFileHandler(RotatingFileHandler):
    """Rotates at 500 MiB or when the file is 14 days old, whichever comes first, keeping 5
    backups (``archiver.log.1`` … ``.5``). Age: the time of the file's first record (Linux's
    ctime, which the legacy tool used, changes at every write)."""

    def __init__(self, filename, max_age_seconds: float = LOG_MAX_AGE_SECONDS, **kw):
        kw.setdefault("maxBytes", LOG_MAX_BYTES)
        kw.setdefault("backupCount", LOG_BACKUPS)
        super().__init__(filename, encoding="utf-8", **kw)
        self.max_age_seconds = max_age_seconds
        self.started = self._first_record_time() or time.time()

    def _first_record_time(self) -> Optional[float]:
        try:
            with open(self.baseFilename, "r", encoding="utf-8", errors="replace") as handle:
                head = handle.read(19)
            return time.mktime(time.strptime(head, "%Y-%m-%d %H:%M:%S"))
        except (OSError, ValueError):
            return None

    def shouldRollover(self, record) -> int:
        if self.stream is not None and time.time() - self.started > self.max_age_seconds:
            return 1
        return super().shouldRollover(record)

    def doRollover(self) -> None:
        super().doRollover()
        self.started = time.time()


class LoggingSetup:
    """The root-logger handlers of one invocation, removable again (tests call ``main`` often)."""

    def __init__(self):
        self.handlers: list = []
        self.root = logging.getLogger()
        self.previous_level = self.root.level

    def add(self, handler: logging.Handler, secrets: Sequence[str]) -> None:
        from archiver_resources.printable import PrintableFilter
        from archiver_resources.redaction import RedactingFilter

        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(RedactingFilter(secrets))
        # Control characters from run records (an escape sequence in a .fcl, a NUL byte) never
        # reach the terminal or the log file: they are written as \x1b, \x00, …
        handler.addFilter(PrintableFilter())
        self.root.addHandler(handler)
        self.handlers.append(handler)

    def configure(self, *, level: int, log_file: Optional[Path], secrets: Sequence[str]) -> None:
        self.root.setLevel(level)
        self.add(logging.StreamHandler(sys.stdout), secrets)
        if log_file is not None:
            Path(log_file).parent.mkdir(parents=True, exist_ok=True)
            self.add(ArchiverLogFileHandler(log_file), secrets)

    def close(self) -> None:
        for handler in self.handlers:
            self.root.removeHandler(handler)
            handler.close()
        self.handlers.clear()
        self.root.setLevel(self.previous_level)


def error_summary(error: BaseException, *, stage: Optional[str] = None,
                  level: int = logging.CRITICAL) -> None:
    logger.log(level, RULE)
    logger.log(level, "ERROR SUMMARY")
    logger.log(level, RULE)
    if stage:
        logger.log(level, "Failed Stage: %s", stage)
    logger.log(level, "Error Type: %s", type(error).__name__)
    logger.log(level, "Error Message: %s", error)
    logger.log(level, RULE)


def unexpected_summary(error: BaseException, *, stage: Optional[str] = None) -> None:
    logger.critical(RULE)
    logger.critical("UNEXPECTED ERROR SUMMARY")
    logger.critical(RULE)
    if stage:
        logger.critical("Failed Stage: %s", stage)
    logger.critical("Error Type: %s", type(error).__name__)
    logger.critical("Error Message: %s", error)
    logger.critical(RULE)
    logger.critical("".join(traceback.format_exception(type(error), error,
                                                       error.__traceback__)).rstrip())


# ---------------------------------------------------------------------------------------------
# Dagster instance
# ---------------------------------------------------------------------------------------------

def resolve_dagster_home(config) -> tuple:
    """``(path, where it came from)``: the environment's ``DAGSTER_HOME``, else
    ``app.dagster_home``, else ``<work_dir>/dagster_home``. The directory is created, and given
    the project's dagster.yaml when it has none."""
    if os.environ.get("DAGSTER_HOME"):
        home, source = Path(os.environ["DAGSTER_HOME"]), "DAGSTER_HOME"
    elif config.app.dagster_home:
        home, source = Path(config.app.dagster_home), "app.dagster_home"
    else:
        home, source = Path(config.app.work_dir) / "dagster_home", "app.work_dir"
    home = home.expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        if PROJECT_DAGSTER_YAML.is_file():
            shutil.copyfile(PROJECT_DAGSTER_YAML, settings)
        else:
            settings.write_text(FALLBACK_DAGSTER_YAML, encoding="utf-8")
    return home, source


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------

def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the process exit code."""
    argv = rewrite_help_aliases(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2), argparse printed why
        return int(exit_.code or 0)
    if args.worker:
        from archiver_assets.cli.workers import worker_main

        return worker_main(args.config_file)
    return Invocation(args).run()


def _restore_env(name: str, value: Optional[str]) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


class Invocation:
    """One command-line invocation: start-up, dispatch, shutdown."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.logging = LoggingSetup()
        self.stage: Optional[str] = None
        self.controller = None
        self.config = None
        self.pool = None
        self.lock = None
        self.monitor = None
        self.invocation_id = uuid.uuid4().hex[:16]

    def worker_pool(self):
        """The invocation's worker processes (started on first use, closed at the end)."""
        if self.pool is None:
            from archiver_assets.cli.workers import WorkerPool

            self.pool = WorkerPool(str(Path(self.args.config_file).resolve()),
                                   self.config.app.parallel_workers)
        return self.pool

    # -- start-up ---------------------------------------------------------------------------

    def run(self) -> int:
        from archiver_resources.config import CREATE_UCONDB_FOLDER_ENV
        from archiver_resources.errors import ArchiverError
        from archiver_resources.shutdown import EXIT_UNEXPECTED

        saved_home = os.environ.get("DAGSTER_HOME")
        saved_create_folder = os.environ.get(CREATE_UCONDB_FOLDER_ENV)
        try:
            code = self._start_and_dispatch()
        except ArchiverError as error:
            error_summary(error, stage=self.stage)
            code = 1
        except Exception as error:  # noqa: BLE001 - the last line of defence: exit 2
            unexpected_summary(error, stage=self.stage)
            code = EXIT_UNEXPECTED
        finally:
            self._shut_down()
            _restore_env("DAGSTER_HOME", saved_home)
            _restore_env(CREATE_UCONDB_FOLDER_ENV, saved_create_folder)
        controller = self.controller
        if controller is not None and controller.requested:
            code = controller.exit_code(code)
            controller.log_completed()
        self.logging.close()
        return code

    def _start_and_dispatch(self) -> int:
        from archiver_resources.config import CREATE_UCONDB_FOLDER_ENV, load_config
        from archiver_resources.errors import ConfigError
        from archiver_resources.locking import InstanceLock, LockHeldError, LockMonitor
        from archiver_resources.shutdown import ShutdownController

        try:
            self.config = load_config(self.args.config_file)
            Path(self.config.app.work_dir).mkdir(parents=True, exist_ok=True)
        except ConfigError as error:
            self.logging.configure(level=logging.INFO, log_file=None, secrets=())
            error_summary(error)
            return 1
        self._configure_logging()
        logger.info(RULE)
        logger.info("Run Record Archiver Starting")
        logger.info("Config: %s", self.args.config_file)
        logger.info(RULE)
        logger.debug("Configuration: %r", self.config)
        for warning in self.config.warnings:
            logger.warning("Configuration: %s", warning)
        if self.args.create_ucondb_folder:
            os.environ[CREATE_UCONDB_FOLDER_ENV] = "1"  # inherited by the worker processes
            logger.info("UconDB folder %s is created by the first upload if it does not exist "
                        "(--create-ucondb-folder)", self.config.ucon_db.folder_name)
        self.controller = ShutdownController(
            logger=logging.getLogger("archiver_resources.shutdown"),
            on_immediate=self._immediate_exit).install()
        lock = InstanceLock(self.config.app.lock_file)
        try:
            lock.acquire()
        except LockHeldError as error:
            error_summary(error, level=logging.WARNING)
            return 1
        self.lock = lock
        self.monitor = LockMonitor(lock, self.controller.request).start()
        home, source = resolve_dagster_home(self.config)
        os.environ["DAGSTER_HOME"] = str(home)
        logger.info("Dagster instance: %s (from %s)", home, source)
        return self._dispatch()

    def _shut_down(self) -> None:
        """Workers first (they finish their batch), then the lock monitor, lock and handlers."""
        if self.pool is not None:
            from archiver_assets.cli.workers import fail_unfinished_runs

            self.pool.close()
            try:  # a worker killed at the end (it did not exit in time) leaves its run STARTED
                for run_id in fail_unfinished_runs(self.invocation_id,
                                                   "Interrupted: its worker process was stopped"):
                    logger.warning("Dagster run %s did not finish, marked failed", run_id)
            except Exception as error:  # noqa: BLE001 - never hide the real exit code
                logger.error("Could not check for unfinished Dagster runs: %s", error)
        if self.monitor is not None:
            self.monitor.stop()
        if self.lock is not None:
            self.lock.release()
        if self.controller is not None:
            self.controller.uninstall()

    def _configure_logging(self) -> None:
        level = logging.DEBUG if self.args.verbose else getattr(logging, self.config.app.log_level)
        self.logging.configure(level=level, log_file=self.config.app.log_file,
                               secrets=self.config.secrets())
        for noisy in ("urllib3", "sqlalchemy", "alembic", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)

    def _immediate_exit(self) -> None:
        from archiver_assets.cli.workers import (
            IMMEDIATE_GRACE_SECONDS, fail_unfinished_runs, interrupt_workers,
        )
        from archiver_resources.shutdown import EXIT_INTERRUPTED

        if self.pool is not None:
            interrupt_workers(IMMEDIATE_GRACE_SECONDS)
            try:
                failed = fail_unfinished_runs(self.invocation_id, "Interrupted: the command "
                                              "line was stopped immediately (3 signals in 2 s)")
                for run_id in failed:
                    logger.warning("Dagster run %s interrupted, marked failed", run_id)
            except Exception as error:  # noqa: BLE001 - exiting anyway
                logger.error("Could not mark the interrupted Dagster runs failed: %s", error)
        for handler in self.logging.handlers:
            handler.flush()
        sys.stdout.flush()
        os._exit(EXIT_INTERRUPTED)

    # -- dispatch ---------------------------------------------------------------------------

    def _dispatch(self) -> int:
        import dagster as dg

        from archiver_assets.cli import modes
        from archiver_assets.state.stores import Stores

        args = self.args
        stores = Stores.from_config_path(args.config_file)
        with dg.DagsterInstance.get() as instance:
            if not (args.dry_run or args.report_status or args.compare_state):
                fail_abandoned_runs_at_start(instance)
            return modes.choose(args)(self, instance, stores)


def fail_abandoned_runs_at_start(instance) -> None:
    """Dagster runs left unfinished by a worker that is gone (a killed command line, a full
    disk) are reported failed with the reason, so their partitions do not stay "in progress"."""
    from archiver_assets.archive.guard import fail_abandoned_runs

    try:
        failed = fail_abandoned_runs(instance, "run-record-archiver at start-up")
    except Exception as error:  # noqa: BLE001 - never stops the invocation
        logger.error("Could not check for abandoned Dagster runs: %s", error)
        return
    for run_id in failed:
        logger.warning("Dagster run %s was left unfinished by a worker that is gone (killed, or "
                       "a full disk): marked failed", run_id)


if __name__ == "__main__":
    sys.exit(main())
