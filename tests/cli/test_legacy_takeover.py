"""Taking over from the legacy tool through the command line: blobs the legacy tool
packed with another `Packed on` time are already in UconDB when the migration runs. They are
taken over as `verified-legacy` (the ✓ line shows both MD5s, a summary line counts them); one
other changed byte is a mismatch (exit 1, the run named, the email alert, the blob untouched);
--report-status counts no mismatch for the taken-over runs."""

from datetime import timedelta

from archiver_resources.archiving import build_blob
from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.blob import format_packed_on, md5_hex, pack
from archiver_resources.samples import generate_run_records
from tests.cli.conftest import MIGRATE
from tests.cli.test_processing import latest_metadata, messages
from tests.operations.conftest import SMTP_PASSWORD, SMTP_USER, smtp_server  # noqa: F401

SHIFT = timedelta(days=2, hours=7, minutes=11)


def legacy_blobs(env, runs) -> dict:
    """run → (our blob, the legacy tool's blob, its Packed on time), from artdaqDB's export."""
    out = {}
    with open_artdaqdb(env.artdaqdb_uri) as store:
        for run in runs:
            _, files, packed_at, ours = build_blob(run, store)
            out[run] = (ours, pack(run, files, packed_at - SHIFT),
                        format_packed_on(packed_at - SHIFT))
    return out


def test_legacy_blobs_are_taken_over_and_one_changed_byte_fails_and_alerts(
        cli_env, smtp_server):  # noqa: F811
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
    generate_run_records(cli_env.run_records, [1001, 1002, 1003, 1004], profile="small")
    assert cli_env.main("--import-only")[0] == 0
    blobs = legacy_blobs(cli_env, [1001, 1002, 1003])
    legacy_1003 = bytearray(blobs[1003][1])
    legacy_1003[len(legacy_1003) // 2] ^= 0x01  # one byte besides the Packed on lines
    with cli_env.client() as client:
        client.put_blob(1001, blobs[1001][1])
        client.put_blob(1002, blobs[1002][1])
        client.put_blob(1003, bytes(legacy_1003))

    code, out = cli_env.main("--migrate-only")
    assert code == 1, out
    lines = messages(out)
    for run in (1001, 1002):
        ours, legacy, when = blobs[run]
        assert (f"✓ Run {run} migrated and verified successfully: verified-legacy (UconDB holds "
                f"the legacy tool's blob, packed on {when} UTC: the same archive, only its "
                f"'Packed on' lines differ; MD5 ours {md5_hex(ours)}, stored {md5_hex(legacy)})"
                ) in lines
        meta = latest_metadata(MIGRATE, run)
        assert (meta["action"], meta["md5"], meta["stored_md5"]) == (
            "verified-legacy", md5_hex(ours), md5_hex(legacy))
    assert "✓ Run 1004 migrated and verified successfully" in lines  # uploaded as usual
    failure = next(line for line in lines
                   if line.startswith("✗ Run 1003 failed (migration, IntegrityError): "))
    assert "not only in its 'Packed on' lines (first difference at byte" in failure
    assert md5_hex(bytes(legacy_1003)) in failure and md5_hex(blobs[1003][0]) in failure
    assert any(line.startswith("Legacy blobs taken over: 2 run(s) verified-legacy")
               and line.endswith(": 1001, 1002") for line in lines)
    assert cli_env.status(MIGRATE).failed == {1003}
    assert cli_env.materialized(MIGRATE) == {1001, 1002, 1004}
    with cli_env.client() as client:
        assert client.get_blob(1001).data == blobs[1001][1]  # taken over as it is
        assert client.get_blob(1003).data == bytes(legacy_1003)  # never overwritten
    [mail] = smtp_server.mail.envelopes
    body = mail.content.decode()
    assert "The following runs failed during the migration stage:" in body
    assert "1003" in body and "1001" not in body and "1002" not in body

    code, out = cli_env.main("--report-status")
    assert code == 0
    lines = messages(out)
    assert "ucondb_blob: 1 partition(s) (1003)" in lines
    assert not any("md5_round_trip" in line for line in lines)  # no failed MD5 check
    assert "Status:          No failed checks" in lines
