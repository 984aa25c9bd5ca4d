"""The streamed legacy --validate (:class:`MetadataScan`) gives what the legacy rule gives over
the whole blob (``validate_metadata(split_blob(text))``, the text decoded with replacement),
for any blob and any chunking, holding only the metadata.fcl section."""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archiver_resources.blob import (
    MetadataScan, format_packed_on, pack, split_blob, validate_metadata,
)
from archiver_resources.errors import BlobError
from datetime import datetime


def legacy(data: bytes):
    """(sections, errors) as the legacy rule sees the whole blob; sections 0 = no markers."""
    try:
        files = split_blob(data.decode("utf-8", errors="replace"))
    except BlobError:
        return 0, ("No file markers found in blob",)
    return len(files) > 0, tuple(validate_metadata(files))


def streamed(data: bytes, cuts, max_chars=1 << 20):
    scan = MetadataScan(max_section_chars=max_chars)
    previous = 0
    for cut in sorted(cuts) + [len(data)]:
        scan.update(data[previous:cut])
        previous = cut
    verdict = scan.result()
    return verdict.sections > 0 if verdict.sections else 0, verdict.errors, verdict


GOOD_META = ("components: [a, b]\nconfig_name: \"standard\"\n"
             "sbndaq_commit_or_version: v1_10\n")
LINES = ["#####", "#####", "#####", "metadata.fcl:", "metadata.fcl:", "boot.fcl:", ":", "x:",
         "End of Record", "", "", "components: a", "components:", " ", "config_name: c",
         "config_name:", "sbndaq_commit_or_version:\t1", "\u00e9\u00e9:", "\udcff", "\r", "#",
         "  metadata.fcl:", "\t"]


@st.composite
def blobs(draw):
    lines = draw(st.lists(st.sampled_from(LINES), max_size=50))
    data = "\n".join(lines).encode("utf-8", errors="surrogateescape")  # \udcff: an invalid byte
    if draw(st.booleans()):
        data = data.replace(b"\xff", b"\xff\xc3")
    cuts = draw(st.lists(st.integers(0, max(len(data), 0)), max_size=8))
    return data, cuts


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blobs())
def test_streamed_verdict_equals_the_legacy_rule(case):
    data, cuts = case
    sections, errors, _ = streamed(data, cuts)
    assert (sections, errors) == legacy(data)


def _packed(files) -> bytes:
    return pack(5, files, datetime(2026, 10, 5, 9, 7))


@pytest.mark.parametrize("meta, expect", [
    (GOOD_META, ()),
    ("components: a\ncomponents: b\n", None),
    ("components:\n\n   x\nconfig_name: c\n", None),  # whitespace across lines counts
])
def test_packed_blobs_every_chunk_size(meta, expect):
    data = _packed({"a.fcl": "x: 1\n", "metadata.fcl": meta, "RunHistory.fcl": "y: 2\n"})
    want = legacy(data)
    if expect is not None:
        assert want[1] == expect
    for size in (1, 2, 3, 7, 64, len(data)):
        assert streamed(data, list(range(size, len(data), size)))[:2] == want, size


def test_a_later_duplicate_wins_and_sections_end_at_the_next_marker():
    text = ("Start of Record\n\n#####\nmetadata.fcl:\n#####\ncomponents: a\n"
            "\n#####\nother:\n#####\nconfig_name: c\n"
            "\n#####\nmetadata.fcl:\n#####\n" + GOOD_META + "\nEnd of Record\ncomponents: z\n")
    data = text.encode()
    assert legacy(data)[1] == ()
    for size in (1, 5, 13):
        assert streamed(data, list(range(size, len(data), size)))[:2] == (True, ())


def test_no_marker_is_the_legacy_splitter_error():
    verdict = streamed(b"corrupted by a test", [3])[2]
    assert verdict.sections == 0
    with pytest.raises(BlobError, match="No file markers found in blob"):
        verdict.raise_if_unsplittable()


def test_only_a_bounded_metadata_section_is_held():
    big = "x: 1\n" * 200_000  # 1 MB in another section: never held
    data = _packed({"a.fcl": big, "metadata.fcl": GOOD_META})
    scan = MetadataScan(max_section_chars=4096)
    for at in range(0, len(data), 65536):
        scan.update(data[at:at + 65536])
        assert scan._captured_chars <= 4096 and len(scan._partial) <= 4096
    assert scan.result().errors == ()
    huge = _packed({"metadata.fcl": GOOD_META + "# " + "y" * 10_000 + "\n"})
    verdict = streamed(huge, list(range(1000, len(huge), 1000)), max_chars=4096)[2]
    assert verdict.too_large and "not validated" in verdict.errors[0]


def test_random_line_blobs():
    rng = random.Random(17)
    alphabet = [b"#####"] * 4 + [b"metadata.fcl:"] * 2 + [
        b"End of Record", b"", b"a:", b":", b"\xc3", b"\xa9", b" ", b"components: 1",
        b"config_name: 2", b"sbndaq_commit_or_version: 3", b"components:", b"x"]
    seen = set()
    for _ in range(4000):
        data = b"\n".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        cuts = [rng.randint(0, len(data)) for _ in range(rng.randint(0, 6))]
        want = legacy(data)
        seen.add((bool(want[0]), len(want[1])))
        assert streamed(data, cuts)[:2] == want, (data, cuts)
        assert streamed(data, list(range(1, len(data))))[:2] == want, data  # byte by byte
    assert {(True, 0), (True, 1), (True, 3), (False, 1)} <= seen  # every kind of verdict
