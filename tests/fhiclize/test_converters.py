"""Converter rules beyond the golden files: the Decision-7 deviations, the shared helpers, and a
property test that no converter or generator raises on arbitrary text."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver_resources.fhiclize import (
    CONVERTERS,
    fhiclize_boot,
    fhiclize_metadata,
    fhiclize_setup,
    run_history,
    run_history2,
)
from archiver_resources.fhiclize.converters import _is_numeric, _quote_value

# ------------------------------- deviations from the legacy converters (docs/formats.md §4)


def test_open_component_list_at_end_is_emitted():
    # The legacy metadata converter gave empty output for this input (data lost); it is emitted.
    assert fhiclize_metadata("Component #0: a\nComponent #1: b") == 'components: ["a", "b"]\n'


def test_open_component_list_after_a_comment_at_end_is_emitted_last():
    text = "Config name: x\nComponent #0: a\n# trailing comment\nComponent #1: b\n"
    assert fhiclize_metadata(text) == (
        'config_name: "x"\n# trailing comment\ncomponents: ["a", "b"]\n')


@pytest.mark.parametrize("kind", ["process manager", "boardreader", "eventbuilder",
                                  "routingmanager", "datalogger"])
def test_open_logfile_block_at_end_is_emitted_as_if_closed_by_a_blank_line(kind):
    text = f"Config name: x\n{kind} logfiles: \nhost:/log/one.log\nhost:/log/two.log 99\n"
    key = kind.replace(" ", "_") + "_logfiles"
    expected = f'config_name: "x"\n\n{key}: ["host:/log/one.log", "host:/log/two.log"]\n'
    assert fhiclize_metadata(text) == expected
    assert fhiclize_metadata(text + "\n") == expected  # identical to the blank-line close


def test_empty_open_logfile_block_at_end_is_an_empty_list():
    assert fhiclize_metadata("boardreader logfiles:") == "\nboardreader_logfiles: []\n"


def test_dispatcher_block_at_end_is_emitted_as_the_legacy_tool_did():
    assert fhiclize_metadata("dispatcher logfiles:\nd:/x.log") == '\ndispatcher_logfiles: ["d:/x.log"]\n'


def test_lines_without_colon_and_short_boardreader_lines_are_still_dropped():
    # The legacy input-shape rules that discard lines (no colon, short lines) are kept.
    assert fhiclize_metadata("no colon here\n") == ""
    assert CONVERTERS["known_boardreaders_list"]("lonely\n") == ""
    assert CONVERTERS["ranks"]("h p l s r\na b c d\n") == 'ranks: {\n  header: ["h", "p", "l", "s", "r"]\n}\n'
    assert fhiclize_boot("BoardReader host: h\n") == "\nartdaq_process_settings: [\n]\n"


# ------------------------------------ shared helpers (numeric, quote_value, array, clean)


@pytest.mark.parametrize("value,numeric", [
    ("1", True), ("1.5", True), (".", True), ("1.", True), ("", False), ("1.2.3", False),
    ("-1", False), ("1e3", False), ("\u0661", False),  # Arabic-Indic one: not an ASCII digit
])
def test_numeric(value, numeric):
    assert _is_numeric(value) is numeric


@pytest.mark.parametrize("value,quoted", [
    ("  abc  ", '"abc"'), ('"kept"', '"kept"'), ("[1, 2]", "[1, 2]"), ("42", "42"),
    ("", '""'), ('say "hi"', '"say \\"hi\\""'), ('"', '"'), ("[", '"["'),
])
def test_quote_value(value, quoted):
    assert _quote_value(value) == quoted


def test_setup_escapes_in_the_legacy_order():
    # clean first (é → .), then backslashes doubled, then quotes, then newlines as \n
    assert fhiclize_setup('é\\"\n') == 'setup_script: ".\\\\\\"\\n"'


def test_metadata_keeps_non_ascii_where_no_rule_cleans():
    assert fhiclize_metadata("Operator: Jürgen\n") == 'Operator: "Jürgen"\n'


# ---------------------------------------------------------------- robustness

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)
_LINES = st.lists(st.sampled_from([
    "", " ", "# c", "Config name: a/b", "Component #1: x", "Component #x: y", "boardreader logfiles:",
    "dispatcher logfiles: ", "h:/l.log", "a b c d e", '"q" r', "k: [1,2]", "export A='b'", ":",
    "BoardReader label: l", "Subsystem id: 1", "DAQInterface stop time: t", "\r", "é: ü",
]), max_size=30).map("\n".join)


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(_TEXT, _LINES))
def test_no_converter_or_generator_raises(text):
    for name, convert in CONVERTERS.items():
        output = convert(text)
        assert isinstance(output, str), name
        if name != "setup":
            assert output == "" or output.endswith("\n"), name
    assert run_history(1, text).startswith("run_number: 1\n\n")
    result = run_history2(text)
    assert result is None or (result and not result.endswith("\n") and result.isascii())
