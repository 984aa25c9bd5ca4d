"""The processing modes through the command line, each a real set of Dagster runs on a
temporary instance: full pipeline, batch caps, --incremental, --import-only/--migrate-only,
failures (exit 1, the run named) and the retry modes after the fault is fixed, --validate,
--dry-run, and the on_existing policies."""

import shutil
import time

import dagster as dg

from archiver_resources.samples import generate_run_record, generate_run_records
from tests.cli.conftest import IMPORT, MIGRATE
from tests.operations.conftest import SMTP_PASSWORD, SMTP_USER, smtp_server  # noqa: F401


def messages(out: str) -> list:
    """The message part of each log line (after ``<time> - <logger> - <LEVEL> - ``)."""
    return [line.split(" - ", 3)[-1].strip() for line in out.splitlines()]


def latest_metadata(asset_key, run: int) -> dict:
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[str(run)]), limit=1)
        meta = records.records[0].asset_materialization.metadata
    return {k: getattr(v, "value", v) for k, v in meta.items()}


def test_full_pipeline_archives_finished_runs_as_dagster_runs_and_a_rerun_does_nothing(cli_env):
    runs = set(range(1001, 1008))
    generate_run_records(cli_env.run_records, sorted(runs), profile="small")
    generate_run_record(cli_env.run_records, 1008, profile="small", finished=False,
                        mtime=time.time())
    code, out = cli_env.main("--validate")
    assert code == 0, out
    lines = messages(out)
    for expected in ("=== Execution Mode: Full Pipeline (Full) ===",
                     "STAGE: Import - Importing runs from filesystem to ArtdaqDB", "Mode: Full",
                     "STAGE: Migration - Migrating runs from ArtdaqDB to UconDB",
                     "✓ Run 1001 imported successfully",
                     "✓ Run 1007 migrated and verified successfully",
                     "Progress: 7/7 runs processed (7 successful, 0 failed)",
                     "Batch processing complete: 7 successful, 0 failed",
                     "✓ Import Stage completed successfully (exit code: 0)",
                     "✓ Migration Stage completed successfully (exit code: 0)",
                     "✓ Blob validation passed for run 1004",
                     "✓ EXECUTION COMPLETED SUCCESSFULLY"):
        assert expected in lines, expected
    assert any(line.startswith("Run 1008 skipped: not finished") for line in lines)
    assert cli_env.materialized(IMPORT) == cli_env.materialized(MIGRATE) == runs
    assert cli_env.artdaqdb_runs() == cli_env.ucondb_runs() == runs
    assert cli_env.partitions() == [str(r) for r in sorted(runs)]  # ascending, 1008 not added
    dagster_runs = cli_env.dagster_runs()
    assert {r.job_name for r in dagster_runs} == {"import_runs", "migrate_runs"}
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in dagster_runs)
    assert all(r.tags["archiver/launched_by"] == "run-record-archiver" for r in dagster_runs)
    ranged = [r for r in dagster_runs if "dagster/asset_partition_range_start" in r.tags]
    assert {(r.tags["dagster/asset_partition_range_start"],
             r.tags["dagster/asset_partition_range_end"]) for r in ranged} == {
        ("1001", "1005"), ("1006", "1007")}  # batch_size 5

    code, out = cli_env.main()
    assert code == 0
    assert messages(out).count("No runs to process") == 2
    assert len(cli_env.dagster_runs()) == len(dagster_runs)  # nothing re-processed


def test_batch_caps_incremental_and_single_stages(cli_env):
    cli_env.write_config(batch_size=2, parallel_workers=2)
    generate_run_records(cli_env.run_records, [1002, 1003, 1004, 1005, 1006], profile="small")
    code, out = cli_env.main("--import-only", "--incremental")
    assert code == 0, out
    lines = messages(out)
    assert "=== Execution Mode: Import Only (Incremental) ===" in lines
    assert "Mode: Incremental" in lines
    assert "Import Stage: Limited to 2 runs (batch_size). 3 runs remaining." in lines
    assert cli_env.materialized(IMPORT) == {1002, 1003}
    assert cli_env.ucondb_runs() == set()  # --import-only: no migration

    generate_run_record(cli_env.run_records, 1001, profile="small")  # below the mark: waits
    code, out = cli_env.main("--import-only", "--incremental")
    assert code == 0
    assert "Import Stage: Limited to 2 runs (batch_size). 1 runs remaining." in messages(out)
    assert cli_env.materialized(IMPORT) == {1002, 1003, 1004, 1005}

    code, out = cli_env.main("--migrate-only")
    assert code == 0
    assert "=== Execution Mode: Migration Only (Full) ===" in messages(out)
    assert cli_env.materialized(MIGRATE) == cli_env.ucondb_runs() == {1002, 1003, 1004, 1005}

    code, out = cli_env.main("--import-only")  # full: cap batch_size * 10, the skipped 1001 too
    assert code == 0
    assert cli_env.materialized(IMPORT) == {1001, 1002, 1003, 1004, 1005, 1006}


def test_import_failure_exits_1_naming_the_run_and_retry_after_the_fix_succeeds(cli_env):
    cli_env.write_config(batch_size=5, parallel_workers=1, max_file_bytes=200_000)
    generate_run_records(cli_env.run_records, [1001, 1002, 1003], profile="small")
    (cli_env.run_records / "1002" / "huge.dat").write_bytes(b"x" * 300_000)
    code, out = cli_env.main()
    assert code == 1
    lines = messages(out)
    # The worker sends the run's RunFailure record: the line names its stage and error type.
    failure = next(line for line in lines
                   if line.startswith("✗ Run 1002 failed (import, RunRecordError): "))
    assert "huge.dat" in failure and "over the limit of 200000 bytes" in failure
    assert "Run 1002 skipped: its import failed in this invocation" in lines
    assert "✗ Import Stage completed with failures (exit code: 1)" in lines
    assert "✗ EXECUTION COMPLETED WITH FAILURES (exit code: 1)" in lines
    # One Dagster run covered the range; its two good runs still count as archived.
    assert cli_env.status(IMPORT).failed == {1002}
    assert cli_env.materialized(IMPORT) == {1001, 1003} == cli_env.artdaqdb_runs()
    assert cli_env.materialized(MIGRATE) == {1001, 1003} == cli_env.ucondb_runs()
    # Recorded by the failed range step itself (not a runless stand-in), then audited.
    assert "source" not in latest_metadata(IMPORT, 1003)
    assert "configuration" in latest_metadata(IMPORT, 1003)

    (cli_env.run_records / "1002" / "huge.dat").unlink()  # the operator fixes the run record
    code, out = cli_env.main("--retry-failed-import")
    assert code == 0, out
    lines = messages(out)
    assert "=== Execution Mode: Retry Failed Imports ===" in lines
    assert "STAGE: Import Recovery - Retrying failed imports" in lines
    assert "✓ Run 1002 imported successfully" in lines
    assert cli_env.status(IMPORT).failed == set()
    assert cli_env.ucondb_runs() == {1001, 1003}  # a retry mode runs no other stage
    code, _ = cli_env.main("--retry-failed-import")
    assert code == 0  # nothing left to retry


def test_migration_failure_alerts_validation_and_retry_failed_migrate(cli_env, smtp_server):
    cli_env.extra_yaml = f"""
reporting:
  email:
    enabled: true
    recipient_email: daq-oncall@example.org
    sender_email: archiver@example.org
    smtp_host: 127.0.0.1
    smtp_port: {smtp_server.port}
    smtp_user: {SMTP_USER}
    smtp_password: {SMTP_PASSWORD}
"""
    cli_env.write_config(batch_size=5, parallel_workers=1)
    generate_run_records(cli_env.run_records, [1001, 1002, 1003], profile="small")
    metadata = cli_env.run_records / "1003" / "metadata.txt"
    metadata.write_text("".join(line for line in metadata.read_text().splitlines(True)
                                if not line.startswith("Config name:")))
    cli_env.ucondb.faults.fail_next(1, status=400, body="Simulated refusal", method="POST")
    code, out = cli_env.main("--validate")
    assert code == 1
    lines = messages(out)
    failure = next(line for line in lines
                   if line.startswith("✗ Run 1001 failed (migration, UconDBError): "))
    assert "HTTP 400" in failure and "Simulated refusal" in failure
    assert "✗ Migration Stage completed with failures (exit code: 1)" in lines
    assert "✓ Blob validation passed for run 1002" in lines
    assert "✗ Blob validation found 1 errors for run 1003: configuration: no matches for " \
           "parameter 'config_name'" in lines  # warns only: 1003 is archived
    assert cli_env.status(MIGRATE).failed == {1001}
    assert cli_env.ucondb_runs() == {1002, 1003}
    [mail] = smtp_server.mail.envelopes  # the legacy alert, once for the failed batch
    body = mail.content.decode()
    assert "Run Record Archiver Migration Errors on" in body
    assert "The following runs failed during the migration stage:" in body and "1001" in body
    assert SMTP_PASSWORD not in out

    code, out = cli_env.main("--retry-failed-migrate", "--validate")
    assert code == 0, out
    lines = messages(out)
    assert "STAGE: Migration Recovery - Retrying failed migrations" in lines
    assert not any("Blob validation" in line for line in lines)  # not in the retry modes
    assert cli_env.ucondb_runs() == cli_env.materialized(MIGRATE) == {1001, 1002, 1003}


def test_run_record_warnings_reach_the_output_and_the_metadata(cli_env):
    """A Latin-1 file, a converter repair and a byte-order mark each give a warning naming run
    and file, in the command line's output and in the run's metadata."""
    generate_run_records(cli_env.run_records, [1001, 1002, 1003], profile="small")
    metadata = cli_env.run_records / "1002" / "metadata.txt"
    text = metadata.read_bytes().replace(b"Config name: standard\n", b"Config name: physics\n")
    assert text.startswith(b"Config name: physics\n")
    metadata.write_bytes(b"\xef\xbb\xbf" + text + b"pmt logfile(s): h:/log/pmt/*.log\n")
    (cli_env.run_records / "1003" / "extra.fcl").write_bytes(b'note: "caf\xe9"\n')
    code, out = cli_env.main("--import-only")
    assert code == 0, out
    lines = messages(out)
    pmt_line = text.count(b"\n") + 1
    pmt = (f"⚠ run 1002, file metadata.txt, line {pmt_line}: key 'pmt logfile(s)'"
           " is not a FHiCL name; written as pmt_logfile_s_ (each character a name cannot hold "
           "becomes _) (in metadata.fcl)")
    for expected in ("⚠ run 1002, file metadata.txt: UTF-8 byte-order mark removed before "
                     "conversion", pmt,
                     "⚠ run 1003, file extra.fcl: not valid UTF-8; decoded as Latin-1 (every "
                     "byte kept, line endings unchanged)"):
        assert expected in lines, (expected, lines)
    assert not any(line.startswith("⚠ run 1001") for line in lines)
    meta = latest_metadata(IMPORT, 1002)
    assert meta["converter_repairs"] == 1 and meta["bom_removed_files"] == ["metadata.txt"]
    assert pmt[2:] in meta["warnings"]
    assert meta["configuration"] == "1002/physics"  # the mark no longer hides the name
    assert latest_metadata(IMPORT, 1003)["latin1_decoded_files"] == ["extra.fcl"]
    with dg.DagsterInstance.get() as instance:  # and in the Dagster run's own log
        [run] = [r for r in instance.get_runs() if r.job_name == "import_runs"]
        logged = [entry.user_message for entry in instance.all_logs(run.run_id)]
    assert pmt[2:] in logged


def test_dry_run_writes_nothing_and_says_why(cli_env):
    generate_run_records(cli_env.run_records, [1001, 1002, 1003], profile="small")
    generate_run_record(cli_env.run_records, 1004, profile="small", finished=False,
                        mtime=time.time())
    code, out = cli_env.main("--dry-run")
    assert code == 0, out
    lines = messages(out)
    assert "DRY RUN - nothing is written (no store, no partition, no Dagster run or event)" in lines
    assert any(line.split()[:2] == ["import", "1001"] and "not archived yet" in line
               for line in lines)
    assert any(line.split()[:2] == ["migrate", "1003"] and "after its import" in line
               for line in lines)
    assert any(line.split()[:2] == ["skip", "1004"] and "not finished" in line for line in lines)
    assert "Import Stage would process 3 run(s) in 1 Dagster run(s) of job import_runs " \
           "(up to 5 partitions each)" in lines
    assert cli_env.partitions() == [] and cli_env.dagster_runs() == []
    assert cli_env.artdaqdb_runs() == set() and cli_env.ucondb_runs() == set()

    assert cli_env.main("--import-only")[0] == 0
    shutil.rmtree(cli_env.dagster_home)  # lose the instance: the plan says "verify"
    code, out = cli_env.main("--dry-run", "--migrate-only")
    lines = messages(out)
    assert code == 0
    assert "=== Execution Mode: Migration Only (Full) ===" in lines
    assert "Migration Stage: no runs to process" in lines
    code, out = cli_env.main("--dry-run", "--import-only")
    lines = messages(out)
    assert any(line.split()[:2] == ["verify", "1002"] and "already in artdaqDB (1002/" in line
               for line in lines)
    assert any("--recover-import-state" in line for line in lines)
    assert cli_env.partitions() == [] and cli_env.dagster_runs() == []


def test_on_existing_policies_never_replace_silently(cli_env, monkeypatch):
    cli_env.write_config(batch_size=5, parallel_workers=1)
    generate_run_records(cli_env.run_records, [1001, 1002, 1003], profile="small")
    assert cli_env.main()[0] == 0
    with cli_env.client() as client:
        good = {run: client.get_blob(run).data for run in (1001, 1002)}
        old_ids = {run: client.put_blob(run, b"changed by hand", override=True).id
                   for run in (1001, 1002)}

    def fresh_instance(name):  # a new DAGSTER_HOME that knows the imports only
        monkeypatch.setenv("DAGSTER_HOME", str(cli_env.root / name))
        assert cli_env.main("--recover-import-state")[0] == 0

    fresh_instance("home_verify")  # on_existing: verify (the default)
    code, out = cli_env.main("--migrate-only")
    assert code == 1
    lines = messages(out)
    for run in (1001, 1002):
        line = next(x for x in lines
                    if x.startswith(f"✗ Run {run} failed (migration, IntegrityError): "))
        assert "UconDB already holds a different blob for this run" in line
    assert "✓ Run 1003 migrated and verified successfully" in lines  # same bytes: verified
    with cli_env.client() as client:
        assert client.get_blob(1001).data == b"changed by hand"  # not overwritten

    cli_env.write_config(on_existing="skip")
    fresh_instance("home_skip")
    code, out = cli_env.main("--migrate-only")
    assert code == 1  # kept as is, but the blocking MD5 audit flags the difference
    assert any(x.startswith("✗ Run 1001 failed: blocking check md5_round_trip failed")
               for x in messages(out))
    assert latest_metadata(MIGRATE, 1001)["action"] == "skipped-existing"
    with cli_env.client() as client:
        assert client.get_blob(1001).data == b"changed by hand"

    cli_env.write_config(on_existing="new_version")
    monkeypatch.setenv("DAGSTER_HOME", str(cli_env.root / "home_verify"))
    code, out = cli_env.main("--retry-failed-migrate")
    assert code == 0, out
    with cli_env.client() as client:
        for run in (1001, 1002):
            assert client.get_blob(run).data == good[run]
            meta = latest_metadata(MIGRATE, run)
            assert meta["action"] == "replaced"
            assert meta["replaced_version_id"] == old_ids[run]
