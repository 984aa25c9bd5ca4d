"""Taking over legacy blobs: a stored blob equal to ours but for the two `Packed on`
times verifies; one other changed byte, a malformed time or a header/footer disagreement does not.
The comparison is streamed: the stored blob arrives in chunks of any size, ours is read in step."""

import io
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver_resources import blob
from archiver_resources.errors import BlobError

PACKED = datetime(2024, 10, 15, 16, 5, tzinfo=timezone.utc)
FILES = {"EventBuilder1.fcl": "a: 1\n", "boot.fcl": "b: 2\n"}

# What the legacy tool uploaded for these files on Mar 02 07:09 UTC, written out byte by byte.
LEGACY = (
    "Start of Record\n"
    "Run Number: 1234\n"
    "Packed on Mar 02 07:09 UTC\n"
    "\n#####\nEventBuilder1.fcl:\n#####\na: 1\n"
    "\n#####\nboot.fcl:\n#####\nb: 2\n"
    "\nEnd of Record\n"
    "Run Number: 1234\n"
    "Packed on Mar 02 07:09 UTC\n"
).encode()


def compare(ours: bytes, stored: bytes, chunk: int = 4096, run: int = 1234):
    comparator = blob.PackedOnComparator(run, io.BytesIO(ours), len(ours))
    for start in range(0, len(stored), chunk):
        comparator.update(stored[start:start + chunk])
    return comparator.result()


def ours() -> bytes:
    return blob.pack(1234, FILES, PACKED)


def test_the_legacy_tool_s_blob_differs_only_in_packed_on():
    result = compare(ours(), LEGACY)
    assert (result.identical, result.only_packed_on) == (False, True)
    assert (result.packed_on, result.stored_packed_on) == ("Oct 15 16:05", "Mar 02 07:09")
    assert result.difference is None and result.stored_size == len(LEGACY)


def test_our_own_blob_is_identical():
    result = compare(ours(), ours(), chunk=3)
    assert (result.identical, result.only_packed_on, result.difference) == (True, False, None)


@pytest.mark.parametrize("stored, where", [
    (LEGACY.replace(b"a: 1", b"a: 2"), "line 8"),  # one content byte
    (LEGACY.replace(b"Run Number: 1234\nPacked", b"Run Number: 1235\nPacked", 1), "line 2"),
    (LEGACY.replace(b"End of Record", b"End of record"), "line 15"),   # the footer's text
    (LEGACY.replace(b"Start of Record", b"Start of Recorx"), "line 1"),
    (LEGACY.replace(b"Packed on Mar", b"Packed at Mar", 1), "line 3"),  # not the time itself
    (LEGACY.replace(b"07:09 UTC\n\n", b"07:09 utc\n\n", 1), "line 3"),
])
def test_any_other_byte_is_a_difference_naming_its_line(stored, where):
    result = compare(ours(), stored)
    assert not result.identical and not result.only_packed_on
    assert where in result.difference and result.stored_packed_on is None


@pytest.mark.parametrize("stored, reason", [
    (LEGACY[:LEGACY.rindex(b"\nEnd of Record")], "ends after"),         # footer missing
    (LEGACY + b"\n", "goes on after"),                                   # one byte more
    (LEGACY.replace(b"Mar 02 07:09", b"Mar 02 07:10", 1), "disagrees with the footer"),
    (LEGACY.replace(b"Mar 02 07:09", b"Mar  2 07:09"), "line 3 is not"),  # day not zero-padded
    (LEGACY.replace(b"Mar 02 07:09", b"Mrz 02 07:09"), "line 3 is not"),  # not the C locale
    (LEGACY.replace(b"Mar 02 07:09", b"Mar 02 24:09"), "line 3 is not"),  # no such time
    (LEGACY.replace(b"Mar 02 07:09", b"Mar 02 07:60"), "line 3 is not"),
    (LEGACY[:-len(b"07:09 UTC\n")] + b"07:08 UTC\n", "disagrees"),          # footer time only
])
def test_size_footer_and_malformed_or_disagreeing_times_are_differences(stored, reason):
    result = compare(ours(), stored)
    assert not result.only_packed_on and not result.identical
    assert reason in result.difference


def test_a_malformed_footer_time_alone_is_named():
    stored = LEGACY[:-len("Mar 02 07:09 UTC\n")] + b"Mar 02 7:09  UTC\n"
    assert len(stored) == len(LEGACY)
    result = compare(ours(), stored)
    assert "the last line is not" in result.difference


def test_ours_must_be_a_blob():
    data = ours().replace(b"Oct 15 16:05", b"Oct 15 16:5x")
    with pytest.raises(BlobError, match="run 1234.*no valid 'Packed on' lines"):
        blob.PackedOnComparator(1234, io.BytesIO(data), len(data))


def test_packed_on_spans_point_at_both_times():
    data = ours()
    (h0, h1), (f0, f1) = blob.packed_on_spans(1234, len(data))
    assert data[h0:h1] == data[f0:f1] == b"Oct 15 16:05"
    assert data[:h0].endswith(b"\nPacked on ") and data[f1:] == b" UTC\n"
    assert data[f0 - len(b"\nPacked on "):f0] == b"\nPacked on "


def test_the_file_of_ours_is_read_in_step_not_whole():
    data = ours()

    class CountingFile(io.BytesIO):
        largest = 0

        def read(self, n=-1):
            assert n is not None and n >= 0, "read whole"
            CountingFile.largest = max(CountingFile.largest, n)
            return super().read(n)

    comparator = blob.PackedOnComparator(1234, CountingFile(data), len(data))
    for start in range(0, len(LEGACY), 16):
        comparator.update(LEGACY[start:start + 16])
    assert comparator.result().only_packed_on and CountingFile.largest == 16


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).map(
    lambda s: s + ".fcl")
contents = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="#"),
                   max_size=60)
times = st.datetimes(min_value=datetime(2015, 1, 1), max_value=datetime(2030, 12, 31))


@settings(max_examples=60, deadline=None)
@given(files=st.dictionaries(names, contents, min_size=1, max_size=4),
       run=st.integers(min_value=0, max_value=10**7), ours_at=times, theirs_at=times,
       chunk=st.integers(min_value=1, max_value=64), data=st.data())
def test_repacked_at_another_time_verifies_and_one_flipped_byte_never_does(
        files, run, ours_at, theirs_at, chunk, data):
    mine = blob.pack(run, files, ours_at)
    theirs = blob.pack(run, files, theirs_at)
    result = compare(mine, theirs, chunk=chunk, run=run)
    same_time = blob.format_packed_on(ours_at) == blob.format_packed_on(theirs_at)
    assert result.identical == same_time and result.only_packed_on == (not same_time)
    assert result.stored_packed_on == blob.format_packed_on(theirs_at)
    # Flip one byte anywhere, the two times included: never accepted any more.
    position = data.draw(st.integers(min_value=0, max_value=len(theirs) - 1))
    changed = bytearray(theirs)
    changed[position] ^= data.draw(st.integers(min_value=1, max_value=255))
    flipped = compare(mine, bytes(changed), chunk=chunk, run=run)
    assert not flipped.identical and not flipped.only_packed_on and flipped.difference


def test_packed_on_minute_granularity():
    later = blob.pack(1234, FILES, PACKED + timedelta(seconds=50))
    assert compare(ours(), later).identical  # the same minute: the same bytes
