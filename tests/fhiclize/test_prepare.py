"""prepare_run: the in-memory equivalent of the legacy import and update directories."""

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver_resources.fhiclize import (
    CONVERTERS,
    GENERATORS,
    PreparedRun,
    prepare_run,
    run_history,
)

GOLDEN = Path(__file__).parent / "golden"
ALL = frozenset(CONVERTERS) | GENERATORS
SCHEMA = "run_history: []\nsystem_layout: []\n"


def _golden(kind: str, case: str, ext: str = "txt") -> str:
    return (GOLDEN / kind / f"{case}.{ext}").read_bytes().decode("utf-8")


def _run_record() -> dict[str, str]:
    return {
        "metadata.txt": _golden("metadata", "daqinterface_full"),
        "boot.txt": _golden("boot", "icarus_full"),
        "known_boardreaders_list.txt": _golden("known_boardreaders_list", "icarus"),
        "settings.txt": _golden("settings", "daqinterface"),
        "setup.txt": _golden("setup", "daq_setup"),
        "environment.txt": _golden("environment", "daqinterface"),
        "ranks.txt": _golden("ranks", "daqinterface"),
        "EventBuilder1.fcl": "daq: { event_builder: { max_incomplete_events: 75 } }\n",
        "tpc01.fcl": "daq: { fragment_receiver: { generator: TpcGen } }\n",
        "extra/nested.fcl": "nested: true\n",
        "extra/notes.txt": "a nested text file\n",
        "readme.txt": "operator notes\n",
        "run.log": "not FHiCL\n",
    }


def test_full_run_record_insert_and_update_sets():
    prepared = prepare_run(12345, _run_record(), enabled=ALL, schema_text=SCHEMA)

    assert prepared.run == 12345
    assert prepared.config_name == "standard"
    assert set(prepared.insert_files) == {
        "metadata.fcl", "boot.fcl", "known_boardreaders_list.fcl", "settings.fcl", "setup.fcl",
        "environment.fcl", "ranks.fcl", "EventBuilder1.fcl", "tpc01.fcl", "extra/nested.fcl",
        "RunHistory.fcl", "schema.fcl"}
    for name in CONVERTERS:  # converted with the golden expectations, .txt dropped
        case = {"metadata": "daqinterface_full", "boot": "icarus_full",
                "known_boardreaders_list": "icarus", "settings": "daqinterface",
                "setup": "daq_setup", "environment": "daqinterface", "ranks": "daqinterface"}[name]
        assert prepared.insert_files[f"{name}.fcl"] == _golden(name, case, "fcl")
    assert prepared.insert_files["extra/nested.fcl"] == "nested: true\n"
    assert prepared.insert_files["RunHistory.fcl"] == _golden("RunHistory", "daqinterface_full", "fcl")
    assert prepared.insert_files["schema.fcl"] == SCHEMA
    assert prepared.update_files == {
        "RunHistory2.fcl": _golden("RunHistory2", "daqinterface_full", "fcl"), "schema.fcl": SCHEMA}
    assert prepared.warnings == []
    skipped = {entry.split(":", 1)[0] for entry in prepared.skipped}
    assert skipped == {"extra/notes.txt", "readme.txt", "run.log"}
    assert all("never loaded" in entry for entry in prepared.skipped)


def test_disabled_converter_keeps_its_txt_out_of_the_stored_set():
    prepared = prepare_run(1, _run_record(), enabled=ALL - {"settings"}, schema_text=SCHEMA)
    assert "settings.fcl" not in prepared.insert_files
    assert "settings.txt" not in prepared.insert_files
    assert any(entry.startswith("settings.txt: converter 'settings' disabled")
               for entry in prepared.skipped)


def test_generators_disabled():
    prepared = prepare_run(1, _run_record(), enabled=frozenset(CONVERTERS), schema_text=SCHEMA)
    assert "RunHistory.fcl" not in prepared.insert_files
    assert prepared.update_files is None
    assert "schema.fcl" in prepared.insert_files


def test_nothing_enabled_stores_only_fcl_files_and_schema():
    prepared = prepare_run(1, _run_record(), enabled=frozenset(), schema_text=SCHEMA)
    assert set(prepared.insert_files) == {"EventBuilder1.fcl", "tpc01.fcl", "extra/nested.fcl",
                                          "schema.fcl"}
    assert len(prepared.skipped) == 10


def test_missing_metadata_gives_a_warning_and_no_update():
    files = {"boot.txt": "", "EventBuilder1.fcl": "a: 1\n"}
    prepared = prepare_run(77, files, enabled=ALL, schema_text=SCHEMA)
    assert "RunHistory.fcl" not in prepared.insert_files
    assert prepared.update_files is None
    assert prepared.config_name == "standard"
    assert prepared.warnings == [
        "run 77: cannot generate RunHistory.fcl: metadata.txt not found in the run record"]


def test_run_without_start_or_stop_time_has_no_update():
    files = {"metadata.txt": "Config name: demo\nComponent #0: a\n"}
    prepared = prepare_run(5, files, enabled=ALL, schema_text=SCHEMA)
    assert prepared.update_files is None
    assert prepared.insert_files["RunHistory.fcl"] == run_history(5, files["metadata.txt"])
    assert prepared.config_name == "demo"


def test_start_time_alone_triggers_the_update():
    files = {"metadata.txt": "Config name: demo\n\nDAQInterface start time: T1\n"}
    prepared = prepare_run(5, files, enabled=ALL, schema_text=SCHEMA)
    assert prepared.update_files == {"RunHistory2.fcl": 'DAQInterface_start_time: "T1"',
                                     "schema.fcl": SCHEMA}


def test_generated_files_replace_run_record_files_with_a_warning():
    files = {"metadata.txt": "Config name: a\n", "metadata.fcl": "old: 1\n",
             "RunHistory.fcl": "old: 2\n", "schema.fcl": "old: 3\n"}
    prepared = prepare_run(9, files, enabled=ALL, schema_text=SCHEMA)
    assert prepared.insert_files["metadata.fcl"] == 'config_name: "a"\n'
    assert prepared.insert_files["RunHistory.fcl"].startswith("run_number: 9\n")
    assert prepared.insert_files["schema.fcl"] == SCHEMA
    assert [w.split(" replaced", 1)[0] for w in prepared.warnings] == [
        "run 9: metadata.fcl from the run record", "run 9: RunHistory.fcl from the run record",
        "run 9: schema.fcl from the run record"]


def test_entity_clash_between_directories_is_reported():
    files = {"boot.fcl": "a: 1\n", "old/boot.fcl": "a: 2\n"}
    prepared = prepare_run(3, files, enabled=ALL, schema_text=SCHEMA)
    assert set(prepared.insert_files) == {"boot.fcl", "old/boot.fcl", "schema.fcl"}
    assert prepared.warnings[-1] == ("run 3: boot.fcl and old/boot.fcl are both entity 'boot'; "
                                     "artdaqDB keeps only one of them")


@pytest.mark.parametrize("metadata,name", [
    ("Config name: standard_myexp\n", "standard_myexp"),
    ("Config name: my/config/x  \n", "my_config_x"),
    ("Config name:nospace\n", "standard"),            # needs whitespace after the colon
    ("Config name:   \nConfig name: second\n", "second"),  # first non-empty value
    (" Config name: indented\n", "standard"),          # column 0 only
    ("Config name: first\nConfig name: second\n", "first"),
    ("Component #0: a\n", "standard"),
])
def test_config_name_rule(metadata, name):
    prepared = prepare_run(1, {"metadata.txt": metadata}, enabled=ALL, schema_text=SCHEMA)
    assert prepared.config_name == name


def test_config_name_keyword_overrides_the_metadata_rule():
    prepared = prepare_run(1, {"metadata.txt": "Config name: a\n"}, enabled=ALL,
                           schema_text=SCHEMA, config_name="given")
    assert prepared.config_name == "given"


def test_prepared_run_is_frozen():
    prepared = prepare_run(1, {}, enabled=ALL, schema_text=SCHEMA)
    with pytest.raises(dataclasses.FrozenInstanceError):
        prepared.run = 2  # type: ignore[misc]
    assert isinstance(prepared, PreparedRun)


@settings(max_examples=100, deadline=None)
@given(files=st.dictionaries(
    st.sampled_from(["metadata.txt", "boot.txt", "ranks.txt", "x.fcl", "d/y.fcl", "z.txt", "w.bin"]),
    st.text(max_size=200), max_size=7))
def test_prepare_never_raises_and_stores_only_fcl(files):
    prepared = prepare_run(1, files, enabled=ALL, schema_text=SCHEMA)
    assert all(path.endswith(".fcl") for path in prepared.insert_files)
    assert prepared.insert_files["schema.fcl"] == SCHEMA
    stored_sources = len(files) - len(prepared.skipped)
    assert len(prepared.insert_files) >= stored_sources


# ---------------------------------------------------------------- UTF-8 byte-order mark

BOM = "\ufeff"


def test_byte_order_mark_on_metadata_no_longer_hides_the_configuration_name():
    files = {"metadata.txt": BOM + "Config name: physics\nComponent #0: tpc01\n"}
    prepared = prepare_run(8, files, enabled=ALL, schema_text=SCHEMA)
    assert prepared.config_name == "physics"  # legacy: the mark stuck to the key -> "standard"
    assert prepared.insert_files["metadata.fcl"] == (
        'config_name: "physics"\ncomponents: ["tpc01"]\n')
    assert prepared.insert_files["RunHistory.fcl"] == run_history(8, files["metadata.txt"][1:])
    assert prepared.bom_removed == ["metadata.txt"]
    assert prepared.warnings == [
        "run 8, file metadata.txt: UTF-8 byte-order mark removed before conversion"]


def test_byte_order_mark_is_removed_from_every_converted_file_once():
    files = {"settings.txt": BOM + "a: 1\n", "boot.txt": BOM + "b: 2\n",
             "metadata.txt": BOM + "DAQInterface start time: T\n"}
    prepared = prepare_run(8, files, enabled=ALL, schema_text=SCHEMA)
    assert prepared.insert_files["settings.fcl"] == "a: 1\n"
    assert prepared.insert_files["boot.fcl"].startswith("b: 2\n")
    assert prepared.update_files["RunHistory2.fcl"] == 'DAQInterface_start_time: "T"'
    assert sorted(prepared.bom_removed) == ["boot.txt", "metadata.txt", "settings.txt"]
    assert len(prepared.warnings) == 3  # one per file, although metadata.txt is read 3 times


def test_fcl_files_keep_their_bytes_and_unconverted_txt_files_are_not_read():
    files = {"tpc01.fcl": BOM + "a: 1\n", "notes.txt": BOM + "x\n"}
    prepared = prepare_run(8, files, enabled=frozenset(CONVERTERS), schema_text=SCHEMA)
    assert prepared.insert_files["tpc01.fcl"] == BOM + "a: 1\n"
    assert prepared.bom_removed == [] and prepared.warnings == []


# ---------------------------------------------------------------- repairs become warnings


def test_repairs_are_warnings_naming_run_file_line_and_output():
    files = {"metadata.txt": "Config name: a\npmt logfile(s): h:/log/*.log\n",
             "environment.txt": "export DAQINTERFACE_SECRET_TOKEN='s3cr\\et'\n"}
    prepared = prepare_run(9, files, enabled=ALL, schema_text=SCHEMA)
    assert prepared.insert_files["metadata.fcl"] == (
        'config_name: "a"\npmt_logfile_s_: "h:/log/*.log"\n')
    assert prepared.insert_files["environment.fcl"] == (
        'DAQINTERFACE_SECRET_TOKEN: "s3cr\\\\et"\n')
    assert prepared.repair_count == 2
    assert sorted(prepared.repairs) == ["environment.txt", "metadata.txt"]
    assert sorted(prepared.warnings) == [
        "run 9, file environment.txt, line 1: value of DAQINTERFACE_SECRET_TOKEN: not a valid "
        'FHiCL string as written; written with \\ and " escaped (in environment.fcl)',
        "run 9, file metadata.txt, line 2: key 'pmt logfile(s)' is not a FHiCL name; written as "
        "pmt_logfile_s_ (each character a name cannot hold becomes _) (in metadata.fcl)"]
    assert not any("s3cr" in warning for warning in prepared.warnings)  # values never shown


def test_generator_repairs_name_the_generated_file():
    files = {"metadata.txt": 'Config name: my "x"\nDAQInterface stop time: a"b\n'}
    prepared = prepare_run(4, files, enabled=ALL, schema_text=SCHEMA)
    written = [w.rsplit("(in ", 1)[1] for w in prepared.warnings]
    assert written == ["RunHistory.fcl)", "RunHistory2.fcl)"]
    assert prepared.update_files["RunHistory2.fcl"] == 'DAQInterface_stop_time: "a\\"b"'
