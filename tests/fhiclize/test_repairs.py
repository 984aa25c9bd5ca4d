"""Where the legacy rule would write invalid FHiCL, the converters make the smallest change that
keeps the information, and report it. One test per repair rule; each checks the exact
output, that it parses (the project's reader, and artdaq_database's C++ reader when built), and
the warning. Byte-for-byte legacy output is the golden tests' job."""

import pytest

from archiver_resources.fhicl import parse_fhicl
from archiver_resources.fhiclize import (
    fhiclize_boot,
    fhiclize_environment,
    fhiclize_known_boardreaders_list,
    fhiclize_metadata,
    fhiclize_ranks,
    fhiclize_settings,
    fhiclize_setup,
    run_history,
    run_history2,
)
from archiver_resources.fhiclize.repair import (
    dquoted_ok,
    fhicl_name,
    fhicl_string,
    is_fhicl_key,
    squoted_ok,
)
from tests.fhiclize.adb_oracle import assert_valid_fhicl, cpp_refusal, oracle_path


def convert(function, text, *args):
    """(output, [repair descriptions]); the output must parse in the project's reader and, when
    it is built, in artdaq_database's C++ reader."""
    repairs = []
    output = function(*args, text, repairs=repairs)
    assert_valid_fhicl(output, "converted")
    return output, [repair.describe() for repair in repairs]


# ---------------------------------------------------------------- metadata: BuildInfo line joined

# What DAQInterface writes when a package's commit-information file ends in a newline: the
# BuildInfo fields (" %s" % buildinfo) land on a line of their own.
COMMIT_ON_TWO_LINES = (
    'Config name: standard\n'
    'sbndaq commit/version: 5e3a9c1 0 0 "Fix trigger" "Tue Oct 1 09:00:00 2024" "develop"\n'
    ' "01-Oct-2024 09:12:44 UTC" "v1_10_03"\n'
    '\n'
    'process management method: direct\n'
)


def test_buildinfo_line_of_its_own_is_joined_to_its_commit_entry():
    output, repairs = convert(fhiclize_metadata, COMMIT_ON_TWO_LINES)
    joined = ('5e3a9c1 0 0 "Fix trigger" "Tue Oct 1 09:00:00 2024" "develop" '
              '"01-Oct-2024 09:12:44 UTC" "v1_10_03"').replace('"', " ")
    assert output == ('config_name: "standard"\n'
                      f'sbndaq_commit_or_version: "{joined}"\n'
                      'process_management_method: "direct"\n')
    assert repairs == ["line 3: joined to the 'sbndaq commit/version' entry of line 2 with one "
                       "space (BuildInfo fields on a line of their own)"]


def test_joined_entry_is_what_a_one_line_entry_gives():
    one_line = COMMIT_ON_TWO_LINES.replace('"develop"\n "01-Oct', '"develop" "01-Oct')
    assert fhiclize_metadata(one_line) == fhiclize_metadata(COMMIT_ON_TWO_LINES)


def test_buildinfo_line_without_a_colon_is_still_dropped_as_the_legacy_tool_did():
    # "time/version from BuildInfo undetermined": no colon, so the legacy output stays valid.
    text = 'DAQInterface commit/version: v3_13_00\n "time undetermined" "version undetermined"\n'
    output, repairs = convert(fhiclize_metadata, text)
    assert output == 'DAQInterface_commit_or_version: "v3_13_00"\n'
    assert repairs == []


def test_only_an_indented_line_right_after_the_entry_is_joined():
    text = ("sbndaq commit/version: v1\n\n"
            ' "01-Oct-2024 09:12:44 UTC" "v1"\n')  # a blank line between: not a continuation
    output, repairs = convert(fhiclize_metadata, text)
    assert output.startswith('sbndaq_commit_or_version: "v1"\n')
    assert len(repairs) == 1 and "is not a FHiCL name" in repairs[0]


# ---------------------------------------------------------------- keys: _ for what a name cannot hold

def test_2018_pmt_logfiles_key_gets_underscores():
    output, repairs = convert(fhiclize_metadata, "pmt logfile(s): /daq/log/pmt/*.log\n")
    assert output == 'pmt_logfile_s_: "/daq/log/pmt/*.log"\n'
    assert repairs == ["line 1: key 'pmt logfile(s)' is not a FHiCL name; written as "
                       "pmt_logfile_s_ (each character a name cannot hold becomes _)"]


@pytest.mark.parametrize("key,name", [
    ("pmt_logfile(s)", "pmt_logfile_s_"), ("2nd_trigger", "_2nd_trigger"), ("a.1", "a_1"),
    ("a[0]", "a_0_"), ("Jürgen", "J_rgen"), ("BEGIN_PROLOG_x", "_BEGIN_PROLOG_x"), ("", None),
])
def test_fhicl_name(key, name):
    assert fhicl_name(key) == name


@pytest.mark.parametrize("key,valid", [
    ("a", True), ("_", True), ("a.b.c", True), ("a1_B", True), ("1a", False), ("a.", False),
    ("a..b", False), ("a[0]", False), ("BEGIN_PROLOG", False), ("END_PROLOG", True),
    ("é", False), ("a-b", False),
])
def test_is_fhicl_key_matches_the_cpp_reader(key, valid):
    assert is_fhicl_key(key) is valid
    if oracle_path() is not None and key.isascii():
        assert (cpp_refusal(f"{key}: 1\n") is None) is valid


def test_keys_of_every_converter_are_repaired():
    settings, repairs = convert(fhiclize_settings, "speed [m/s]: 3\n")
    assert settings == 'speed__m_s_: 3\n' and "written as speed__m_s_" in repairs[0]
    boot, repairs = convert(fhiclize_boot, "3rd party: x\n")
    assert boot.startswith('_3rd_party: "x"\n') and "written as _3rd_party" in repairs[0]
    boardreaders, repairs = convert(fhiclize_known_boardreaders_list, "tpc-01 host 5205\n")
    assert boardreaders == 'tpc_01: ["host", "5205"]\n' and len(repairs) == 1
    ranks, repairs = convert(fhiclize_ranks, "h p l s r\na b c d 1.5\n")
    assert '  rank1_5: ["a", "b", "c", "d", "1.5"]\n' in ranks and len(repairs) == 1


def test_a_line_without_a_key_becomes_a_comment():
    output, repairs = convert(fhiclize_metadata, "Config name: x\n: orphan value\n")
    assert output == 'config_name: "x"\n# : orphan value\n'
    assert repairs == ["line 2: cannot be written as valid FHiCL; kept as a comment line holding "
                       "the input line"]


# ---------------------------------------------------------------- values: escaped, or single-quoted

@pytest.mark.parametrize("content,valid", [
    ("plain", True), ('say \\"hi\\"', True), ("tab\\there", True), ("a\\\\b", True),
    ("C:\\dir", False), ("ends\\", False), ('un"escaped', False), ("bell\x07", False),
    ("del\x7f", False), ("tab\tok", True), ("cr\rok", True), ("Jürgen", True), ("", True),
    ('x\\\\"y', True),  # fhicl-cpp reads \" after \\ as an escaped quote: valid
])
def test_dquoted_ok_matches_the_cpp_reader(content, valid):
    assert dquoted_ok(content) is valid
    if oracle_path() is not None:
        assert (cpp_refusal(f'k: "{content}"\n') is None) is valid


def test_fhicl_string_keeps_the_text_as_its_value():
    assert fhicl_string("C:\\dir") == '"C:\\\\dir"'
    assert fhicl_string('a "b" \\n') == '"a \\"b\\" \\\\n"'
    assert fhicl_string("ends\\") == "'ends\\'"  # "…\\" would swallow its closing quote
    assert fhicl_string("it's\\") is None and fhicl_string("bell\x07") is None
    assert squoted_ok("ends\\") and not squoted_ok("it's")


def test_value_with_an_invalid_escape_is_escaped():
    output, repairs = convert(fhiclize_metadata, "DAQInterface directory: evb01:C:\\daq\\new\n")
    assert output == 'DAQInterface_directory: "evb01:C:\\\\daq\\\\new"\n'
    assert repairs == ["line 1: value of 'DAQInterface directory': not a valid FHiCL string as "
                       'written; written with \\ and " escaped']


def test_environment_prompt_escapes_are_kept_as_text():
    text = 'export DAQINTERFACE_PS1="\\u@\\h:\\w"\nexport DAQINTERFACE_OK=plain\n'
    output, repairs = convert(fhiclize_environment, text)
    assert output == 'DAQINTERFACE_PS1: "\\\\u@\\\\h:\\\\w"\nDAQINTERFACE_OK: "plain"\n'
    assert repairs == ["line 1: value of DAQINTERFACE_PS1: not a valid FHiCL string as written; "
                       'written with \\ and " escaped']
    assert parse_fhicl(output, "e").data["main"]["DAQINTERFACE_OK"] == "plain"


def test_value_ending_in_a_backslash_is_single_quoted():
    output, repairs = convert(fhiclize_boot, "DAQ setup script: /daq/setup.sh \\\n")
    assert output.startswith("DAQ_setup_script: '/daq/setup.sh \\'\n")
    assert repairs[0].endswith("written in single quotes")


def test_value_no_fhicl_string_can_hold_becomes_a_comment():
    output, repairs = convert(fhiclize_settings, "a: 1\nbell: ring\x07\nb: 2\n")
    assert output == "a: 1\n# bell: ring\x07\nb: 2\n"
    assert repairs == ["line 2: cannot be written as valid FHiCL; kept as a comment line holding "
                       "the input line"]


def test_already_quoted_value_with_a_stray_quote_is_escaped_inside_its_quotes():
    output, _ = convert(fhiclize_metadata, 'Note: "say "hi""\nLone: "\n')
    assert output == 'Note: "say \\"hi\\""\nLone: "\\""\n'


def test_bracketed_value_that_is_no_fhicl_sequence_becomes_a_string():
    output, repairs = convert(fhiclize_metadata, "Good list: [1, 2]\nBad list: [a b]\n")
    assert output == 'Good_list: [1, 2]\nBad_list: "[a b]"\n'
    assert repairs == ["line 2: value of 'Bad list': not a valid FHiCL sequence; "
                       'written with \\ and " escaped']


def test_list_entries_are_escaped_one_by_one():
    text = ("Component #0: tpc01\nComponent #1: C:\\dpc\n\nboardreader logfiles:\n"
            "h:/log/a.log\nh:/log/b\\c.log\nh:/log/bell\x07.log\n")
    output, repairs = convert(fhiclize_metadata, text)
    assert output == ('components: ["tpc01", "C:\\\\dpc"]\n'
                      "# h:/log/bell\x07.log\n"
                      '\nboardreader_logfiles: ["h:/log/a.log", "h:/log/b\\\\c.log"]\n')
    assert [r.split(":")[0] for r in repairs] == ["line 2", "line 6", "line 7"]


def test_settings_list_elements_that_are_no_fhicl_value_become_strings():
    output, repairs = convert(fhiclize_settings, "ok: [a, b-c, 1]\nodd: [x y, 2, ]\n")
    assert output == 'ok: [ a, b_c, 1 ]\nodd: [ "x y", 2 ]\n'
    assert len(repairs) == 1 and "a list element" in repairs[0]


def test_boot_fields_are_checked_where_they_are_written():
    text = ("EventBuilder host: evb\\01\nEventBuilder port: 52 35\nEventBuilder label: EB1\n"
            "EventBuilder subsystem: s\x01\n")
    output, repairs = convert(fhiclize_boot, text)
    assert output == ('\nartdaq_process_settings: [\n{\nname: "EventBuilder"\nlabel: "EB1"\n'
                      'host: "evb\\\\01"\nport: "52 35"\n# EventBuilder subsystem: s\x01\n}\n]\n')
    assert [r.split(":")[0] for r in repairs] == ["line 1", "line 2", "line 4"]
    assert "not a valid FHiCL value" in repairs[1]


def test_setup_script_ending_in_a_backslash_is_single_quoted_with_its_newlines():
    output, repairs = convert(fhiclize_setup, 'source /x\necho "a" \\')
    assert output == "setup_script: 'source /x\necho \"a\" \\'"
    assert parse_fhicl(output, "s").data["main"]["setup_script"] == 'source /x\necho "a" \\'
    assert len(repairs) == 1


def test_setup_script_with_control_characters_becomes_comment_lines():
    output, repairs = convert(fhiclize_setup, "echo \x1b[1m\nexit 0\n")
    assert output == "# echo \x1b[1m\n# exit 0"
    assert repairs == ["line 1: cannot be written as valid FHiCL; kept as 2 comment lines "
                       "holding input lines 1 to 2"]


def test_generators_escape_their_values():
    history, repairs = convert(run_history, 'Config name: my "cfg"\nComponent #0: a\\b\n', 7)
    assert history == ('run_number: 7\n\nconfig_name: "my \\"cfg\\""\n\n'
                       'components: ["a\\\\b"]\n\n')
    assert len(repairs) == 2
    times, repairs = convert(run_history2, "DAQInterface stop time: Oct 15 \\d\n")
    assert times == 'DAQInterface_stop_time: "Oct 15 \\\\d"' and len(repairs) == 1


def test_a_comment_line_fhicl_takes_for_a_malformed_include_becomes_a_comment():
    # metadata.txt comment lines are written as they are, but a line starting with "#include"
    # is an include directive for fhicl-cpp, refused unless it names a quoted file.
    output, repairs = convert(fhiclize_metadata, "#include x\nConfig name: a\n")
    assert output == '# #include\\ x\nconfig_name: "a"\n'
    assert repairs == ["line 1: cannot be written as valid FHiCL; kept as a comment line holding "
                       "the input line"]


def test_include_text_is_never_left_for_artdaq_database_to_rewrite():
    # artdaq_database replaces "#include", a blank and everything up to the next quote by an
    # include key, anywhere: in a value that would change it (or break the line), in a comment
    # it would swallow the following lines. Such text becomes a comment with "#include\".
    text = ('Note: see #include x\n# old: #include y\n#include "kept.fcl"\n'
            'Config name: a\nComponent #0: #include z\n')
    output, repairs = convert(fhiclize_metadata, text)
    assert output == ('# Note: see #include\\ x\n# # old: #include\\ y\n#include "kept.fcl"\n'
                      'config_name: "a"\n# Component #0: #include\\ z\ncomponents: []\n')
    assert [r.split(":")[0] for r in repairs] == ["line 1", "line 2", "line 5"]
    setup, repairs = convert(fhiclize_setup, "echo x\n#include <y>\n")
    assert setup == "# echo x\n# #include\\ <y>" and len(repairs) == 1
