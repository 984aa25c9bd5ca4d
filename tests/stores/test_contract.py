"""The artdaqDB contract: every backend (parametrised in conftest) must pass these tests."""

from __future__ import annotations

import pytest

from archiver_resources.artdaqdb import hashes_text, parse_hashes
from archiver_resources.errors import AlreadyArchivedError, ArtdaqDBError, NotArchivedError
from archiver_resources.fhicl import fhicl_equivalent
from tests.stores.samples import insert_files, update_files


def assert_equivalent(exported: dict[str, str], files: dict[str, str]) -> None:
    expected = {path.rsplit("/", 1)[-1]: text for path, text in files.items()}
    for name, text in expected.items():
        assert name in exported, f"{name} missing from export {sorted(exported)}"
        assert fhicl_equivalent(exported[name], text, a_name=name), name


def test_archive_then_is_archived_exactly(open_store):
    db = open_store()
    result = db.archive_run(123, "foo", insert_files(123, "foo"))
    assert result.version == "123/foo" and result.configuration == "123/foo"
    assert set(result.entities) >= {"schema", "boot", "metadata", "RunHistory", "component00"}
    assert db.is_archived(123, "foo")
    assert not db.is_archived(123, "foobar")
    assert not db.is_archived(123, "fo")
    assert not db.is_archived(12, "foo")
    assert not db.is_archived(1234, "foo")
    db.archive_run(12, "foobar", insert_files(12, "foobar"))
    assert not db.is_archived(12, "foo")
    assert not db.is_archived(123, "foobar")
    assert db.archived_runs() == {123: "123/foo", 12: "12/foobar"}


def test_archive_twice_raises_already_archived(open_store):
    db = open_store()
    db.archive_run(5, "standard", insert_files(5))
    with pytest.raises(AlreadyArchivedError, match="5/standard"):
        db.archive_run(5, "standard", insert_files(5))
    assert db.versions(5, "standard") == ["5/standard"]
    db.archive_run(5, "standard_b", insert_files(5, "standard_b"))  # another config: allowed
    assert db.is_archived(5, "standard_b")


def test_update_adds_numbered_versions(open_store, clock):
    db = open_store()
    with pytest.raises(NotArchivedError):
        db.update_run(7, "standard", update_files())
    db.archive_run(7, "standard", insert_files(7))
    clock.advance(60)
    assert db.update_run(7, "standard", update_files()) == "7/standardv1"
    clock.advance(60)
    assert db.update_run(7, "standard", update_files("Tue Oct 15 17:00:00 UTC 2024")) == "7/standardv2"
    assert db.versions(7, "standard") == ["7/standard", "7/standardv1", "7/standardv2"]
    assert db.archived_runs() == {7: "7/standard"}


def test_export_round_trip_includes_update(open_store, clock):
    db = open_store()
    files = insert_files(42, n_processes=4)
    db.archive_run(42, "standard", files)
    exported = db.export_run(42, "standard")
    assert_equivalent(exported, files)
    clock.advance(5)
    db.update_run(42, "standard", update_files())
    clock.advance(5)
    db.update_run(42, "standard", update_files("Wed Oct 16 01:00:00 UTC 2024"))
    exported = db.export_run(42)
    assert_equivalent(exported, files)
    assert fhicl_equivalent(exported["RunHistory2.fcl"],
                            update_files("Wed Oct 16 01:00:00 UTC 2024")["RunHistory2.fcl"])
    assert all("/" not in name for name in exported)


def test_export_of_missing_run_raises(open_store):
    db = open_store()
    with pytest.raises(NotArchivedError):
        db.export_run(99)
    with pytest.raises(NotArchivedError):
        db.export_run(99, "standard")


def test_hashes_agree_with_prepared_files(open_store):
    db = open_store()
    files = insert_files(8)
    db.archive_run(8, "standard", files)
    text = db.read_hashes(8, "standard")
    if not db.writes_hashes:
        assert text is None  # bulkloader stores no hashes entity
        return
    assert text is not None
    expected = parse_hashes(hashes_text(files))
    assert parse_hashes(text) == expected
    assert set(expected) == {e for e in ("RunHistory", "boot", "metadata", "component00",
                                         "component01", "component02", "configuration")}
    assert "hashes.fcl" in db.export_run(8)


def test_archived_runs_and_find_configuration(open_store):
    db = open_store()
    assert db.archived_runs() == {}
    for run in (1, 2, 10, 100):
        db.archive_run(run, f"cfg{run}", insert_files(run, f"cfg{run}", n_processes=1))
    assert db.archived_runs() == {1: "1/cfg1", 2: "2/cfg2", 10: "10/cfg10", 100: "100/cfg100"}
    assert db.find_configuration(10) == "10/cfg10"
    assert db.find_configuration(3) is None
    reopened = open_store()
    assert sorted(reopened.archived_runs()) == [1, 2, 10, 100]


def test_archived_at_is_the_assigned_time(open_store, clock):
    db = open_store()
    archived = clock.advance(0.2509)  # stored with its milliseconds (truncated), as the C++ does
    db.archive_run(9, "standard", insert_files(9, n_processes=1))
    first = db.archived_at(9, "standard")
    assert first.tzinfo is not None
    assert first == archived.replace(microsecond=250000)
    assert db.archived_at(9, "standard") == first  # deterministic
    clock.advance(3600)
    db.update_run(9, "standard", update_files())
    assert db.archived_at(9, "standard") == clock.now.replace(microsecond=250000)


def test_describe_hides_password(open_store):
    db = open_store()
    text = db.describe()
    assert "s3cret" not in text and "s3cret" not in repr(db)
    assert text.startswith(("filesystemdb://", "mongodb://"))


def test_invalid_inputs_are_refused(open_store):
    db = open_store()
    with pytest.raises(ArtdaqDBError, match="schema.fcl"):
        db.archive_run(11, "standard", {"boot.fcl": "a: 1\n"})
    with pytest.raises(ArtdaqDBError, match="configuration name"):
        db.archive_run(11, "a/b", insert_files(11))
    assert db.archived_runs() == {}


def test_update_once_refuses_a_second_update(open_store):
    """Two imports racing to add RunHistory2 must leave one update version, not v1 and v2."""
    from archiver_resources.errors import AlreadyUpdatedError

    db = open_store()
    db.archive_run(88, "standard", insert_files(88, "standard"))
    assert db.update_run(88, "standard", update_files(), once=True) == "88/standardv1"
    with pytest.raises(AlreadyUpdatedError, match="run 88"):
        db.update_run(88, "standard", update_files(), once=True)
    assert db.versions(88, "standard") == ["88/standard", "88/standardv1"]
    assert db.update_run(88, "standard", update_files()) == "88/standardv2"  # explicit: allowed
