"""Syntax errors: typed, one line, with file name, 1-based line and column and the line's text."""

import pytest

from archiver_resources.errors import FhiclSyntaxError
from archiver_resources.fhicl import MAX_DEPTH, FhiclRecordError, parse_fhicl, record_to_fhicl


@pytest.mark.parametrize("text, line, column, reason", [
    ("a: 1\nb 2\n", 2, 3, "expected ':' after key 'b'"),
    ("a: {\n b: 1\n", 1, 4, "'{' opened here is never closed"),
    ("s: [\n 1\n", 1, 4, "'[' opened here is never closed"),
    ("a: [1 2]", 1, 7, "expected ',' or ']'"),
    ('a: "abc\nb: 1', 1, 4, "unterminated \"-quoted string"),
    ("x:  'abc", 1, 5, "unterminated '-quoted string"),
    ("a: (1,)", 1, 7, "malformed complex number"),
    ("a: }", 1, 4, "expected a value for key 'a'"),
    ("a: 1\n}", 2, 1, "'}' without a matching '{'"),
    ("a: 1\nEND_PROLOG", 2, 1, "END_PROLOG without BEGIN_PROLOG"),
    ("BEGIN_PROLOG\na: 1\n", 1, 1, "BEGIN_PROLOG without END_PROLOG"),
    ("BEGIN_PROLOG\nBEGIN_PROLOG\n", 2, 1, "BEGIN_PROLOG inside a prolog"),
    ("x: 1\nBEGIN_PROLOG\nEND_PROLOG\n", 2, 1, "prolog blocks must come first"),
    ("t: {\n  BEGIN_PROLOG }", 2, 3, "only allowed at top level"),
    ("x: 1\n  a:", 2, 3, "key 'a' has no value"),
    ("a: b: 1", 1, 5, "a value holding ':' must be quoted"),
    ("a: file.fcl", 1, 8, "a value holding '.' must be quoted"),
    ("#include x.fcl", 1, 1, "malformed #include"),
    ("#includex", 1, 1, "malformed #include"),
    ("a: [1,,2]", 1, 7, "expected a value"),
    ("a: [1, 2,]", 1, 10, "expected a value"),
    (": 1", 1, 1, "':' without a valid key"),
    ("a: $", 1, 4, "unexpected character '$'"),
    ("a: x-y", 1, 5, "unexpected character '-'"),
    ("a: 1\n  b: { c: [1, 2 }\n", 2, 17, "expected ',' or ']'"),
    ("a: 1\r\nb: ]\r\n", 2, 4, "expected a value for key 'b'"),
    ('a: "x\\d"', 1, 4, "unsupported escape sequence '\\d'"),
    ('a: "x"#c', 1, 7, "must be followed by a blank"),
    ("a: 'tab\x01'", 1, 4, "unprintable character"),
    ("t: { a @protect_error: 1 a: 2 }", 1, 26, "'a' is protected"),
    ("t: { a.b: 1 }", 1, 7, "dotted keys are only allowed at top level"),
])
def test_error_position_and_reason(text, line, column, reason):
    with pytest.raises(FhiclSyntaxError) as caught:
        parse_fhicl(text, "dir/file.fcl")
    error = caught.value
    assert (error.name, error.line, error.column) == ("dir/file.fcl", line, column)
    assert reason in error.reason
    expected_line = text.replace("\r\n", "\n").split("\n")[line - 1]
    assert error.excerpt == expected_line
    message = str(error)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"dir/file.fcl:{line}:{column}: FHiCL syntax error: ")


def test_too_deep_nesting_is_a_syntax_error_not_recursion_error():
    text = "x: " + "{a:" * (MAX_DEPTH + 5) + "1" + "}" * (MAX_DEPTH + 5)
    with pytest.raises(FhiclSyntaxError) as caught:
        parse_fhicl(text, "deep.fcl")
    assert f"deeper than {MAX_DEPTH}" in caught.value.reason


def test_error_in_long_line_shows_window_around_column():
    text = "s: [" + ", ".join(["1"] * 200) + ", $]"
    with pytest.raises(FhiclSyntaxError) as caught:
        parse_fhicl(text, "long.fcl")
    assert caught.value.column == len(text) - 1
    assert caught.value.reason == "unexpected character '$'"
    assert "$" in str(caught.value)


@pytest.mark.parametrize("record", [None, {}, {"document": {"metadata": {}}},
                                    {"document": {"data": {"main": []}}}])
def test_malformed_record_is_typed_error(record):
    with pytest.raises(FhiclRecordError):
        record_to_fhicl(record)
