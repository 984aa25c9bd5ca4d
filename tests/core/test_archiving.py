"""The per-run archiving core (`archiver_resources.archiving`) against a real filesystemdb and a
real local UconDB server: idempotent import, RunHistory2 when the stop time appears late,
deterministic blobs, duplicate keys verified by MD5, legacy blobs taken over (verified-legacy),
and the on_existing policies."""

import os
from datetime import timedelta

import pytest

from archiver_resources.archiving import (
    ON_EXISTING_POLICIES, ImportSettings, build_blob, build_blob_file, check_stored_blob,
    import_run, migrate_run, verify_uploaded,
)
from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.blob import format_packed_on, md5_hex, pack, unpack
from archiver_resources.config import parse_fhiclize_generate
from archiver_resources.errors import IntegrityError, RunRecordError
from archiver_resources.fhiclize import default_schema_text
from archiver_resources.samples import generate_run_record, mark_finished
from archiver_resources.ucondb.client import UconDBClient
from archiver_resources.ucondb.testing import start_local_ucondb

SETTINGS = ImportSettings(enabled=parse_fhiclize_generate(None), schema_text=default_schema_text(),
                          finished_after_seconds=3600)


@pytest.fixture
def store(tmp_path):
    db = open_artdaqdb(f"filesystemdb://{tmp_path / 'adb' / 'db_archive'}")
    yield db
    db.close()


@pytest.fixture
def ucondb(tmp_path):
    server = start_local_ucondb(tmp_path / "ucon", folder="runs")
    client = UconDBClient(server.base_url, "runs", "configuration", user=server.user,
                          password=server.password, timeout=5, retries=1)
    yield client
    client.close()
    server.stop()


def test_import_is_idempotent_and_never_inserts_twice(tmp_path, store):
    run_dir = generate_run_record(tmp_path / "rr", 1234)
    first = import_run(1234, run_dir, store, SETTINGS)
    assert first.action == "inserted" and first.configuration == "1234/standard"
    assert first.finished_rule == "stop_time"
    # RunHistory2 is added at once because the stop time is already known.
    assert first.versions == ["1234/standard", "1234/standardv1"]
    second = import_run(1234, run_dir, store, SETTINGS)
    assert second.action == "verified" and second.versions == first.versions
    assert store.archived_runs() == {1234: "1234/standard"}


def test_unfinished_run_reaches_no_store_unless_forced(tmp_path, store):
    run_dir = generate_run_record(tmp_path / "rr", 77, finished=False, mtime=None)
    os.utime(run_dir / "metadata.txt")  # just written: the run is still going
    os.utime(run_dir)
    with pytest.raises(RunRecordError, match="run 77.*not finished"):
        import_run(77, run_dir, store, SETTINGS)
    assert store.archived_runs() == {}
    forced = import_run(77, run_dir, store, SETTINGS, force=True)
    assert forced.finished_rule == "forced" and forced.versions == ["77/standard"]


def test_stop_time_appearing_later_adds_runhistory2_once(tmp_path, store):
    run_dir = generate_run_record(tmp_path / "rr", 500, finished=False)  # old: finished by age
    early = import_run(500, run_dir, store, SETTINGS)
    assert early.finished_rule == "age" and early.versions == ["500/standard"]
    mark_finished(run_dir)
    late = import_run(500, run_dir, store, SETTINGS)
    assert late.action == "updated" and late.versions == ["500/standard", "500/standardv1"]
    again = import_run(500, run_dir, store, SETTINGS)
    assert again.action == "verified" and again.versions == late.versions
    exported = store.export_run(500, "standard")
    assert "DAQInterface_stop_time" in exported["RunHistory2.fcl"]


def test_changed_run_record_is_an_integrity_error_not_a_second_copy(tmp_path, store):
    run_dir = generate_run_record(tmp_path / "rr", 9)
    import_run(9, run_dir, store, SETTINGS)
    (run_dir / "boot.txt").write_text((run_dir / "boot.txt").read_text() + "\nnew key: 1\n")
    with pytest.raises(IntegrityError, match="run 9.*differs.*boot"):
        import_run(9, run_dir, store, SETTINGS)
    assert store.versions(9, "standard") == ["9/standard", "9/standardv1"]


def test_blob_is_deterministic_and_round_trips_through_ucondb(tmp_path, store, ucondb):
    run_dir = generate_run_record(tmp_path / "rr", 42)
    import_run(42, run_dir, store, SETTINGS)
    _, files, packed_at, data = build_blob(42, store)
    assert build_blob(42, store)[3] == data  # same artdaqDB content, same bytes
    run, unpacked = unpack(data)
    assert run == 42 and set(unpacked) == {os.path.basename(p) for p in files}
    name, count, at, packed = build_blob_file(42, store, tmp_path)
    assert packed.path.read_bytes() == data and (name, count, at) == (_, len(files), packed_at)
    assert (packed.size, packed.md5) == (len(data), md5_hex(data))
    outcome = migrate_run(42, store, ucondb)
    assert outcome.action == "uploaded" and outcome.md5 == md5_hex(data)
    assert outcome.size == len(data) and ucondb.get_blob(42).data == data
    assert verify_uploaded(42, ucondb, outcome.md5) == outcome.md5
    # A second migration meets the duplicate key and verifies instead of failing or overwriting.
    again = migrate_run(42, store, ucondb)
    assert again.action == "verified-existing" and again.version_id == outcome.version_id


def test_existing_different_blob_follows_the_on_existing_policy(tmp_path, store, ucondb):
    run_dir = generate_run_record(tmp_path / "rr", 7, finished=False)  # archived by age
    import_run(7, run_dir, store, SETTINGS)
    first = migrate_run(7, store, ucondb)
    mark_finished(run_dir)
    import_run(7, run_dir, store, SETTINGS)  # RunHistory2 changes artdaqDB's content
    for policy in ("verify", "fail"):
        with pytest.raises(IntegrityError, match="run 7.*different blob"):
            migrate_run(7, store, ucondb, on_existing=policy)
    assert md5_hex(ucondb.get_blob(7).data) == first.md5  # never overwritten
    skipped = migrate_run(7, store, ucondb, on_existing="skip")
    assert skipped.action == "skipped-existing" and skipped.md5 == first.md5
    replaced = migrate_run(7, store, ucondb, on_existing="new_version")
    assert replaced.action == "replaced" and replaced.replaced_version_id == first.version_id
    assert md5_hex(ucondb.get_blob(7).data) == replaced.md5 != first.md5
    with pytest.raises(ValueError):
        migrate_run(7, store, ucondb, on_existing="overwrite")


def test_non_utf8_file_is_kept_as_latin1_and_reported(tmp_path, store, ucondb):
    run_dir = generate_run_record(tmp_path / "rr", 8)
    (run_dir / "extra.fcl").write_bytes(b'comment: "caf\xe9"\n')
    outcome = import_run(8, run_dir, store, SETTINGS)
    assert outcome.latin1_files == ["extra.fcl"]
    assert any("extra.fcl" in w for w in outcome.warnings)
    migrate_run(8, store, ucondb)
    assert "café" in ucondb.get_blob(8).data.decode("utf-8")


def test_converter_repairs_and_byte_order_mark_are_reported_and_archived(tmp_path, store, ucondb):
    run_dir = generate_run_record(tmp_path / "rr", 9)
    metadata = (run_dir / "metadata.txt").read_bytes()
    assert metadata.startswith(b"Config name: ")
    (run_dir / "metadata.txt").write_bytes(
        b"\xef\xbb\xbf" + metadata + b"pmt logfile(s): h:/daq/log/pmt/*.log\n")
    outcome = import_run(9, run_dir, store, SETTINGS)
    pmt_line = metadata.count(b"\n") + 1
    config = metadata.split(b"\n", 1)[0].split(b": ", 1)[1].decode().strip().replace("/", "_")
    assert outcome.configuration == f"9/{config}"  # not 9/standard: the mark is gone
    assert outcome.bom_removed_files == ["metadata.txt"]
    assert outcome.converter_repairs == 1
    assert [w for w in outcome.warnings if "metadata.txt" in w] == [
        "run 9, file metadata.txt: UTF-8 byte-order mark removed before conversion",
        f"run 9, file metadata.txt, line {pmt_line}: key 'pmt logfile(s)' is "
        "not a FHiCL name; written as pmt_logfile_s_ (each character a name cannot hold becomes "
        "_) (in metadata.fcl)"]
    assert import_run(9, run_dir, store, SETTINGS).action == "verified"
    migrate_run(9, store, ucondb)
    assert 'pmt_logfile_s_: "h:/daq/log/pmt/*.log"' in ucondb.get_blob(9).data.decode()


class _NoHashesStore:
    """A store like bulkloader's: everything but a hashes entity."""

    def __init__(self, inner):
        self._inner = inner

    def read_hashes(self, run, config):
        return None

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_store_without_hashes_is_verified_by_its_export(tmp_path, store):
    run_dir = generate_run_record(tmp_path / "rr", 31)
    import_run(31, run_dir, store, SETTINGS)
    no_hashes = _NoHashesStore(store)
    assert import_run(31, run_dir, no_hashes, SETTINGS).action == "verified"
    (run_dir / "boot.txt").write_text((run_dir / "boot.txt").read_text() + "\nnew key: 2\n")
    with pytest.raises(IntegrityError, match="run 31.*exports.*boot"):
        import_run(31, run_dir, no_hashes, SETTINGS)


def legacy_blob(run, store, shift=timedelta(days=3, hours=5, minutes=17)):
    """The blob the legacy tool would have uploaded: this project's export of the run, packed
    with another (wall-clock) Packed on time."""
    _, files, packed_at, _ = build_blob(run, store)
    return pack(run, files, packed_at - shift), format_packed_on(packed_at - shift)


def test_legacy_blob_packed_at_another_time_is_verified_legacy_under_every_policy(
        tmp_path, store, ucondb):
    import_run(88, generate_run_record(tmp_path / "rr", 88), store, SETTINGS)
    legacy, legacy_time = legacy_blob(88, store)
    ours = build_blob(88, store)[3]
    placed = ucondb.put_blob(88, legacy)
    for policy in ON_EXISTING_POLICIES:
        outcome = migrate_run(88, store, ucondb, on_existing=policy)
        assert outcome.action == "verified-legacy", policy
        assert (outcome.md5, outcome.stored_md5) == (md5_hex(ours), md5_hex(legacy))
        assert outcome.md5 != outcome.stored_md5
        assert outcome.stored_packed_on == legacy_time
        assert (outcome.version_id, outcome.data_key) == (placed.id, placed.data_key)
        assert "verified-legacy" in outcome.action_text() and md5_hex(legacy) in \
            outcome.action_text()
    assert ucondb.get_blob(88).data == legacy  # the same archive: never replaced
    check = check_stored_blob(88, store, ucondb)
    assert (check.outcome, check.verified) == ("verified-legacy", True)
    assert (check.packed_md5, check.stored_md5) == (md5_hex(ours), md5_hex(legacy))
    assert check.stored_packed_on == legacy_time and check.difference is None


def test_legacy_blob_with_one_other_changed_byte_is_a_mismatch_never_overwritten(
        tmp_path, store, ucondb):
    import_run(89, generate_run_record(tmp_path / "rr", 89), store, SETTINGS)
    legacy, _ = legacy_blob(89, store)
    middle = len(legacy) // 2
    changed = legacy[:middle] + bytes([legacy[middle] ^ 0x01]) + legacy[middle + 1:]
    ucondb.put_blob(89, changed)
    for policy in ("verify", "fail"):
        with pytest.raises(IntegrityError, match=r"run 89: .*different blob.*not only in its "
                                                 r"'Packed on' lines \(first difference at byte "
                                                 rf"{middle}, line \d+;"):
            migrate_run(89, store, ucondb, on_existing=policy)
    assert ucondb.get_blob(89).data == changed
    skipped = migrate_run(89, store, ucondb, on_existing="skip")
    assert skipped.action == "skipped-existing" and skipped.md5 == md5_hex(changed)
    check = check_stored_blob(89, store, ucondb)
    assert (check.outcome, check.verified) == ("mismatch", False)
    assert f"byte {middle}" in check.difference and check.stored_md5 == md5_hex(changed)
    assert ucondb.get_blob(89).data == changed


def test_our_own_blob_already_stored_is_identical_for_the_audit(tmp_path, store, ucondb):
    import_run(90, generate_run_record(tmp_path / "rr", 90), store, SETTINGS)
    uploaded = migrate_run(90, store, ucondb)
    check = check_stored_blob(90, store, ucondb)
    assert check.outcome == "identical" and check.stored_md5 == check.packed_md5 == uploaded.md5


# --- a run record that changes while it is read; errors in generated entities -----------------

def test_a_record_changing_while_read_is_not_archived_in_that_attempt(tmp_path, store,
                                                                      monkeypatch):
    """DAQInterface appends the stop time to metadata.txt while an import (by the age rule)
    reads the run: that attempt stores nothing and says so (retryable); the next one archives
    the record as it is then."""
    from archiver_resources import runrecords

    run_dir = generate_run_record(tmp_path / "rr", 5, finished=False, mtime=1_600_000_000)
    real_read_text = runrecords.RunRecord.read_text
    appended = []

    def read_text_while_the_stop_time_is_appended(self, relpath):
        text = real_read_text(self, relpath)
        if relpath == "boot.txt" and not appended:  # after the listing, during the reads
            appended.append(mark_finished(run_dir))
        return text

    monkeypatch.setattr(runrecords.RunRecord, "read_text",
                        read_text_while_the_stop_time_is_appended)
    with pytest.raises(RunRecordError) as caught:
        import_run(5, run_dir, store, SETTINGS)
    assert appended and caught.value.retryable
    assert "run 5, file metadata.txt: the run record changed while it was being read" in str(
        caught.value)
    assert store.archived_runs() == {}
    outcome = import_run(5, run_dir, store, SETTINGS)  # the retry, once the record is quiet
    assert outcome.action == "inserted" and outcome.finished_rule == "stop_time"
    assert outcome.versions == ["5/standard", "5/standardv1"]  # with its RunHistory2 at once


def test_a_file_added_while_the_record_is_read_is_caught_by_the_second_listing(
        tmp_path, store, monkeypatch):
    from archiver_resources import runrecords

    run_dir = generate_run_record(tmp_path / "rr", 6)
    files = len(list(run_dir.iterdir()))
    real_read_text = runrecords.RunRecord.read_text

    def read_text_while_a_file_appears(self, relpath):
        if relpath == "boot.txt" and not (run_dir / "late.fcl").exists():
            (run_dir / "late.fcl").write_text("late: 1\n")
        return real_read_text(self, relpath)

    monkeypatch.setattr(runrecords.RunRecord, "read_text", read_text_while_a_file_appears)
    with pytest.raises(RunRecordError, match=r"run 6, file late.fcl: .*changed while .*added"):
        import_run(6, run_dir, store, SETTINGS)
    assert store.archived_runs() == {}
    assert import_run(6, run_dir, store, SETTINGS).file_count == files + 1  # late.fcl too


def _metadata_edit(run_dir, old, new):
    path = run_dir / "metadata.txt"
    path.write_text(path.read_text().replace(old, new))


def test_errors_in_generated_entities_name_the_file_they_come_from(tmp_path, store):
    from archiver_resources.errors import FhiclSyntaxError

    rr = tmp_path / "rr"
    blank_in_name = generate_run_record(rr, 62)
    (blank_in_name / "my file.fcl").write_text("a: 1\n")
    with pytest.raises(FhiclSyntaxError) as caught:
        import_run(62, blank_in_name, store, SETTINGS)
    assert str(caught.value).startswith(
        "hashes (generated from the names and contents of the run record's files; line "), \
        caught.value
    assert "is for my file.fcl):" in str(caught.value)
    broken_schema = ImportSettings(enabled=SETTINGS.enabled, schema_text="a: {\n")
    with pytest.raises(FhiclSyntaxError, match=r"^schema.fcl \(the configured schema"):
        import_run(64, generate_run_record(rr, 64), store, broken_schema)
    assert 62 not in store.archived_runs() and 64 not in store.archived_runs()


def test_files_beyond_the_cpp_grammar_archive_are_reported_and_export_back(tmp_path, store,
                                                                            ucondb):
    """A pre-2018 style process file (an #include before its prolog, a @table:: splice) and a
    metadata.txt with non-ASCII text: artdaq_database's C++ reader refuses both, the archiver
    archives them, names them with the extension each needed, and exports equivalent FHiCL."""
    run_dir = generate_run_record(tmp_path / "rr", 4321)
    os.chmod(run_dir, 0o755)
    (run_dir / "oldstyle.fcl").write_text(
        '#include "common.fcl"\nBEGIN_PROLOG\nbase: { a: 1 }\nEND_PROLOG\n'
        "daq: { @table::base b: 2 }\n", encoding="utf-8")
    metadata = run_dir / "metadata.txt"
    os.chmod(metadata, 0o644)
    metadata.write_text(metadata.read_text().replace("Config name: standard",
                                                     "Config name: standard\nOperator: Jürgen"),
                        encoding="utf-8")
    outcome = import_run(4321, run_dir, store, SETTINGS)
    assert outcome.beyond_cpp_files == {
        "metadata.fcl": ["non_ascii"],
        "oldstyle.fcl": ["include_before_prolog", "table_splice"]}
    assert any("oldstyle.fcl: archived with include_before_prolog, table_splice" in w
               for w in outcome.warnings)
    files = store.export_run(4321, "standard")
    assert files["oldstyle.fcl"].startswith(' \n#include "common.fcl" \nBEGIN_PROLOG\n')
    assert "\n@table::base \n" in files["oldstyle.fcl"]
    assert 'Operator: "Jürgen"' in files["metadata.fcl"] or "Jürgen" in files["metadata.fcl"]
    migrated = migrate_run(4321, store, ucondb)
    assert migrated.action == "uploaded"


def test_generated_runhistory_files_are_valid_fhicl_for_quoted_values(tmp_path, store):
    """RunHistory.fcl and RunHistory2.fcl, generated from metadata.txt, escape a value that the
    legacy rule would write as an invalid string (it failed such a run at every attempt)."""
    rr = tmp_path / "rr"
    quoted_name = generate_run_record(rr, 61)
    _metadata_edit(quoted_name, "Config name: standard", 'Config name: my"config')
    quoted_stop = generate_run_record(rr, 63)
    _metadata_edit(quoted_stop, "DAQInterface stop time: ", 'DAQInterface stop time: x"y ')
    for run, run_dir, written in ((61, quoted_name, "RunHistory.fcl"),
                                  (63, quoted_stop, "RunHistory2.fcl")):
        outcome = import_run(run, run_dir, store, SETTINGS)
        assert outcome.converter_repairs == 1
        assert [w for w in outcome.warnings if f"(in {written})" in w] == [
            w for w in outcome.warnings if "escaped" in w]
    assert store.archived_runs() == {61: '61/my"config', 63: "63/standard"}
    assert store.export_run(61, 'my"config')["RunHistory.fcl"].count('my\\"config') == 1
    assert 'x\\"y' in store.export_run(63, "standard")["RunHistory2.fcl"]
