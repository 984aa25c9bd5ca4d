"""``#include`` replacement: artdaq_database's reader replaces ``#include``, one blank and
everything up to the next quote character by ``fhicl_pound_include_<n>:``, editing the text in
place and resuming its search at the old match's end in the edited text. The project builds the
result in one pass; these tests hold it to the in-place algorithm, written here as the C++ runs it."""

from hypothesis import given, settings
from hypothesis import strategies as st

from archiver_resources.fhicl.lexer import INCLUDE_RE, replace_includes


def in_place(text: str, extensions: set) -> str:
    """The C++ algorithm step by step: edit the string, resume at the old match end."""
    index = begin = 0
    while True:
        match = INCLUDE_RE.search(text, begin)
        if match is None:
            return text
        start, end = match.span()
        text = text[:start] + f"fhicl_pound_include_{index}:" + text[end:]
        index += 1
        begin = end
        if begin > len(text):
            extensions.add("include_overrun")
            return text


CHUNKS = st.sampled_from(['#include "a.fcl"', "#include ", "#include\t", "#include\n", "#include",
                          '"', "'", "a", " ", "\n", "x: 1", "# note", "#includes", "include ",
                          "b" * 40, '#include  long comment without a quote\n'])


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(CHUNKS, max_size=30).map("".join))
def test_replacement_equals_the_in_place_algorithm(text):
    ours, theirs = set(), set()
    assert replace_includes(text, ours) == in_place(text, theirs)
    assert ours == theirs


def test_a_resume_point_past_the_end_is_reported():
    extensions = set()
    text = "#include " + "x" * 40
    assert replace_includes(text, extensions) == "fhicl_pound_include_0:"
    assert extensions == {"include_overrun"}


def test_many_directives_are_numbered_in_order():
    text = "".join(f'#include "f{i}.fcl"\n' for i in range(3))
    assert replace_includes(text) == "".join(
        f'fhicl_pound_include_{i}:"f{i}.fcl"\n' for i in range(3))
