"""The ``hashes`` entity (docs/formats.md §2) and the shipped/configured ``schema.fcl``."""

import hashlib
import re

import pytest

from archiver_resources.errors import ConfigError
from archiver_resources.fhiclize import (
    CONVERTERS,
    GENERATORS,
    SchemaNotFoundError,
    default_schema_text,
    hashes_text,
    load_schema_text,
    prepare_run,
)
from archiver_resources.fhiclize.hashes import entity_name

MD5_EMPTY = "d41d8cd98f00b204e9800998ecf8427e"  # md5(b"") — a published constant
MD5_ABC = "900150983cd24fb0d6963f7d28e17f72"    # md5(b"abc") — RFC 1321 test suite


def test_hashes_layout_with_known_digests():
    files = {"sub/boot.fcl": "abc", "EventBuilder1.fcl": "", "schema.fcl": "ignored"}
    lines = [f"EventBuilder1:{MD5_EMPTY}", f"boot:{MD5_ABC}"]  # sorted: "E" < "b"
    configuration = hashlib.md5(",".join(lines).encode()).hexdigest()
    assert hashes_text(files) == "\n".join(lines + [f"configuration:{configuration}"])


def test_hashes_use_utf8_and_skip_non_fcl_paths():
    text = "operator: \"Jürgen\"\n"
    result = hashes_text({"metadata.fcl": text, "notes.txt": "x"})
    first, last = result.split("\n")
    assert first == f"metadata:{hashlib.md5(text.encode('utf-8')).hexdigest()}"
    assert last == f"configuration:{hashlib.md5(first.encode()).hexdigest()}"
    assert not result.endswith("\n")


def test_hashes_of_only_a_schema():
    assert hashes_text({"schema.fcl": "x"}) == f"configuration:{MD5_EMPTY}"


def test_repeated_entity_keeps_the_later_file():
    assert hashes_text({"a/boot.fcl": "x", "boot.fcl": "abc"}).startswith(f"boot:{MD5_ABC}\n")


@pytest.mark.parametrize("path,entity", [
    ("boot.fcl", "boot"), ("a/b/EventBuilder1.fcl", "EventBuilder1"), ("x.fcl.fcl", "x.fcl")])
def test_entity_name(path, entity):
    assert entity_name(path) == entity


# ---------------------------------------------------------------- schema.fcl


def _rules(schema_text: str) -> dict[str, list[dict[str, str]]]:
    from archiver_resources.fhicl import fhicl_to_record

    return fhicl_to_record(schema_text, "schema")["document"]["data"]["main"]


def test_default_schema_is_fhicl_with_both_rule_lists():
    rules = _rules(default_schema_text())
    assert rules["run_history"] == [{"collection": "RunHistory", "pattern": r"(.*/)(.*)(\.fcl$)"}]
    assert rules["system_layout"] == [
        {"collection": "SystemLayout", "pattern": r"(.*/)(schema)(\.fcl$)"}]


def test_default_schema_accepts_every_stored_file_with_the_stem_as_entity():
    files = {"metadata.txt": "Config name: a\n\nDAQInterface stop time: T\n",
             "boot.txt": "", "EventBuilder1.fcl": "a: 1\n", "sub/dir/tpc01.fcl": "b: 2\n"}
    prepared = prepare_run(8, files, enabled=frozenset(CONVERTERS) | GENERATORS,
                           schema_text=default_schema_text())
    rules = _rules(default_schema_text())
    stored = [*prepared.insert_files, *prepared.update_files, "hashes.fcl"]
    for relpath in stored:
        full = f"/tmp/importer_8_x/{relpath}"  # legacy matched the full temporary path
        matches = [re.match(rule["pattern"], full) for rule in rules["run_history"]]
        assert any(matches), relpath
        assert next(m for m in matches if m).group(2) == entity_name(relpath)
    layout = [m for r in rules["system_layout"] if (m := re.match(r["pattern"], "/t/schema.fcl"))]
    assert layout and layout[0].group(2) == "schema"
    assert not re.match(rules["system_layout"][0]["pattern"], "/t/boot.fcl")


def test_load_schema_text_default_and_configured(tmp_path):
    assert load_schema_text(None) == default_schema_text()
    (tmp_path / "schema.fcl").write_bytes(b"run_history: []\r\nsystem_layout: []\r\n")
    assert load_schema_text(str(tmp_path)) == "run_history: []\nsystem_layout: []\n"


def test_missing_schema_is_a_typed_error_naming_the_path(tmp_path):
    with pytest.raises(SchemaNotFoundError) as caught:
        load_schema_text(str(tmp_path))
    assert str(caught.value) == f"Schema not found at {tmp_path / 'schema.fcl'}"
    assert isinstance(caught.value, ConfigError)
    assert caught.value.path == str(tmp_path / "schema.fcl")


def test_undecodable_schema_is_a_config_error(tmp_path):
    (tmp_path / "schema.fcl").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="cannot read schema.fcl"):
        load_schema_text(str(tmp_path))
