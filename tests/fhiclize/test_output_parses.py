"""Converter output always parses, as a property: whatever text a run-record file holds, every
converter and generator writes FHiCL that the project's reader accepts and, when it is built on
this machine, that artdaq_database's C++ reader accepts too (non-ASCII characters replaced, as the
C++ refuses them anywhere while the project keeps them in strings and comments)."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver_resources.fhiclize import CONVERTERS, run_history, run_history2
from tests.fhiclize.adb_oracle import assert_valid_fhicl, cpp_refusal, require_oracle

WRITERS = {**CONVERTERS,
           "RunHistory": lambda text, **kw: run_history(7, text, **kw),
           "RunHistory2": lambda text, **kw: run_history2(text, **kw) or ""}

# Pieces the converters react to, and the characters that make FHiCL invalid.
_PIECES = st.sampled_from([
    '"', "'", "\\", ":", ": ", "#", "//", " ", "  ", "\t", "\n", "\n", "\n\n", "\r", "\r\n",
    "\x00", "\x07", "\x0b", "\x1b", "\x7f", "\x85", "\u2028", "é", "µ", "→", "\ufeff",
    "[", "]", "{", "}", ",", ".", "@", "-", "(", ")", "/", "=", "1", "0x1", "1.5", "a", "Ab_9",
    "x y", "true", "nil", "BEGIN_PROLOG", "#include", "#include ", '"x.fcl"', "@local::",
    "infinity",
    "Config name: ", "Component #0: ", "Component #12: ", "DAQInterface stop time: ",
    "DAQInterface start time: ", "Total events: ", "pkg commit/version: ", "pmt logfile(s): ",
    "boardreader logfiles:", "dispatcher logfiles: ", "process management method: ",
    "export ", "export A=", "BoardReader_label: ", "EventBuilder port: ", "Subsystem id: ",
    "Subsystem_destination: ", "\n ", "h p l s 3\n",
])
TEXTS = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=300),
    st.lists(_PIECES, max_size=80).map("".join),
)


def _outputs(text: str) -> dict:
    outputs = {}
    for name, write in WRITERS.items():
        repairs: list = []
        outputs[name] = write(text, repairs=repairs)
        assert all(r.line >= 0 and r.detail for r in repairs), name
    return outputs


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS)
def test_every_output_parses(text):
    for name, output in _outputs(text).items():
        assert_valid_fhicl(output, name, with_oracle=False)  # the C++ has the test below


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS)
def test_every_output_is_accepted_by_artdaq_database(text):
    require_oracle()
    for name, output in _outputs(text).items():
        refusal = cpp_refusal(output)
        assert refusal is None, f"{name} output refused by the C++: {refusal}\n{output!r}"
