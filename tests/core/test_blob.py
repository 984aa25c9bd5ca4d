"""Tests of the UconDB blob format (docs/formats.md §3): the legacy layout byte for byte, a
deterministic `Packed on` time, duplicate base names refused, MD5 over the exact UTF-8 bytes,
non-UTF-8 files kept whole as Latin-1."""

import hashlib
import zlib
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver_resources import blob
from archiver_resources.errors import BlobError

PACKED = datetime(2024, 10, 15, 16, 5, 42)

# The two-file example of docs/formats.md §3, written out byte by byte.
SPEC_EXAMPLE = (
    "Start of Record\n"
    "Run Number: 1234\n"
    "Packed on Oct 15 16:05 UTC\n"
    "\n"
    "#####\n"
    "EventBuilder1.fcl:\n"
    "#####\n"
    "a: 1\n"
    "\n"
    "#####\n"
    "boot.fcl:\n"
    "#####\n"
    "b: 2\n"
    "\n"
    "End of Record\n"
    "Run Number: 1234\n"
    "Packed on Oct 15 16:05 UTC\n"
).encode("utf-8")


def test_spec_two_file_example_byte_exact():
    data = blob.pack(1234, {"boot.fcl": "b: 2\n", "EventBuilder1.fcl": "a: 1\n"}, PACKED)
    assert data == SPEC_EXAMPLE


def test_md5_and_adler_over_exact_bytes():
    data = blob.pack(1234, {"boot.fcl": "b: 2\n", "EventBuilder1.fcl": "a: 1\n"}, PACKED)
    assert blob.md5_hex(data) == hashlib.md5(SPEC_EXAMPLE).hexdigest()
    assert blob.adler32(data) == zlib.adler32(SPEC_EXAMPLE)
    assert blob.adler32(b"\xff" * 5000) >= 0


def test_section_name_is_basename_and_content_verbatim():
    data = blob.pack(7, {"sub/dir/x.fcl": "no newline at end"}, PACKED).decode()
    assert "\n#####\nx.fcl:\n#####\nno newline at end\nEnd of Record\n" in data
    assert "sub/dir" not in data


def test_file_order_regular_sorted_then_fixed_end_order():
    names = ["RunHistory2.fcl", "ranks.fcl", "zeta.fcl", "RunHistory.fcl", "settings.fcl",
             "metadata.fcl", "environment.fcl", "setup.fcl", "known_boardreaders_list.fcl",
             "boot.fcl", "Alpha.fcl", "beta.fcl", "schema.fcl"]
    files = {n: f"{n}\n" for n in names}
    _, out = blob.unpack(blob.pack(1, files, PACKED))
    assert list(out) == ["Alpha.fcl", "beta.fcl", "schema.fcl", "zeta.fcl",
                         "boot.fcl", "known_boardreaders_list.fcl", "setup.fcl", "environment.fcl",
                         "metadata.fcl", "settings.fcl", "ranks.fcl", "RunHistory.fcl",
                         "RunHistory2.fcl"]


def test_end_files_matched_case_insensitively_keep_their_own_name():
    _, out = blob.unpack(blob.pack(1, {"BOOT.FCL": "x", "a.fcl": "y", "Zz.fcl": "z"}, PACKED))
    assert list(out) == ["a.fcl", "Zz.fcl", "BOOT.FCL"]


def test_basename_clash_is_an_error_naming_both_paths():
    with pytest.raises(BlobError) as err:
        blob.pack(55, {"a/boot.fcl": "1", "b/Boot.fcl": "2"}, PACKED)
    message = str(err.value)
    assert "run 55" in message and "a/boot.fcl" in message and "b/Boot.fcl" in message


def test_packed_on_c_locale_and_utc_conversion():
    assert blob.format_packed_on(datetime(2024, 1, 3, 4, 5)) == "Jan 03 04:05"
    aware = datetime(2024, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-6)))
    assert blob.format_packed_on(aware) == "Jan 01 05:30"
    months = [blob.format_packed_on(datetime(2024, m, 1)).split()[0] for m in range(1, 13)]
    assert months == ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                      "Nov", "Dec"]


def test_packed_on_independent_of_process_locale(monkeypatch):
    import locale
    try:
        locale.setlocale(locale.LC_TIME, "de_DE.UTF-8")
    except locale.Error:
        pytest.skip("de_DE locale not installed")
    try:
        assert blob.format_packed_on(datetime(2024, 10, 15, 1, 2)) == "Oct 15 01:02"
    finally:
        locale.setlocale(locale.LC_TIME, "C")


def test_deterministic_bytes():
    files = {"a.fcl": "x: 1\n", "metadata.fcl": "config_name: \"s\"\n"}
    assert blob.pack(3, files, PACKED) == blob.pack(3, dict(reversed(files.items())), PACKED)


def test_non_ascii_utf8_round_trip():
    files = {"a.fcl": "name: \"Müller – µs ✓\"\n", "b.fcl": "ÿ\u00e9"}
    data = blob.pack(9, files, PACKED)
    assert "Müller".encode("utf-8") in data
    assert blob.unpack(data) == (9, files)


def test_unencodable_surrogate_is_blob_error():
    with pytest.raises(BlobError, match="a.fcl"):
        blob.pack(1, {"a.fcl": "x\udcff"}, PACKED)


def test_empty_file_set_refused():
    with pytest.raises(BlobError, match="no files"):
        blob.pack(1, {}, PACKED)


@pytest.mark.parametrize("content", [
    "x\n#####\nfake.fcl:\n#####\ny",
    "x\n#####\nfake.fcl:",             # completed by the marker that follows
    "x\n#####\nfake.fcl:\n#####",      # completed by the marker that follows
    "x\nEnd of Record\ny",
    "x\nEnd of Record",                # completed by the footer
])
def test_content_that_would_be_split_wrongly_is_refused(content):
    with pytest.raises(BlobError, match="a.fcl"):
        blob.pack(1, {"a.fcl": content, "b.fcl": "b"}, PACKED)


@pytest.mark.parametrize("content", [
    "#####\n# banner\n#####\n", "\n#####\n", "x\n#####\nname\n#####\n", "#####\nx:\n#####\n",
    "End of Record\n", "x\n#####", "x:\n#####\n",
])
def test_hash_banners_that_are_not_markers_are_accepted(content):
    files = {"a.fcl": content, "b.fcl": "b"}
    assert blob.unpack(blob.pack(1, files, PACKED)) == (1, files)
    assert blob.split_blob(blob.pack(1, files, PACKED).decode()) == files


def test_check_content_is_exactly_the_legacy_splitter_condition():
    """Whatever pack accepts, the legacy splitter (split at the ``⏎#####⏎<name>:⏎#####⏎``
    markers, the last file ending at ``⏎End of Record⏎``) reads back unchanged."""
    for content in ["a\n#####\nb", "#####\na:\n#####\n", "\n#####\na:\n####\n"]:
        files = {"a.fcl": content, "z.fcl": "tail"}
        assert blob.split_blob(blob.pack(1, files, PACKED).decode()) == files


_LINE = st.sampled_from(["#####", "a.fcl:", "x:", "End of Record", "", "k: v", "Run Number: 1",
                         "ü €", "\r"])
_CONTENT = st.one_of(st.text(max_size=60),
                     st.lists(_LINE, max_size=8).map("\n".join),
                     st.lists(_LINE, max_size=8).map(lambda ls: "\n".join(ls) + "\n"))
_NAME = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/"),
                min_size=1, max_size=12).filter(lambda n: n not in (".", ".."))


@settings(max_examples=300, deadline=None)
@given(run=st.integers(0, 10**7), files=st.dictionaries(_NAME, _CONTENT, min_size=1, max_size=6),
       when=st.datetimes())
def test_unpack_inverts_pack(run, files, when):
    if len({n.lower() for n in files}) != len(files):
        with pytest.raises(BlobError):
            blob.pack(run, files, when)
        return
    try:
        data = blob.pack(run, files, when)
    except BlobError as exc:  # refused content must really be ambiguous for legacy readers
        assert "section marker" in str(exc) or "End of Record" in str(exc)
        return
    assert blob.unpack(data) == (run, files)
    assert blob.split_blob(data.decode("utf-8")) == files


def test_iter_pack_and_pack_to_file_match_pack(tmp_path):
    files = {f"f{i}.fcl": f"v: {i}\n" * 100 for i in range(5)}
    data = blob.pack(77, files, PACKED)
    assert b"".join(blob.iter_pack(77, files, PACKED)) == data
    info = blob.pack_to_file(tmp_path / "77.blob", 77, files, PACKED)
    assert (tmp_path / "77.blob").read_bytes() == data
    assert info.md5 == blob.md5_hex(data) and info.size == len(data)
    assert info.adler32 == blob.adler32(data)
    assert [p.name for p in tmp_path.iterdir()] == ["77.blob"]


def test_iter_pack_validates_before_yielding(tmp_path):
    with pytest.raises(BlobError):
        blob.iter_pack(1, {"a/x.fcl": "1", "b/X.fcl": "2"}, PACKED)
    with pytest.raises(BlobError):
        blob.pack_to_file(tmp_path / "1.blob", 1, {"a.fcl": "\nEnd of Record\n"}, PACKED)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("data, reason", [
    (b"\xff\xfe", "UTF-8"),
    (b"garbage", "Start of Record"),
    (SPEC_EXAMPLE[:-3], "footer"),
    (SPEC_EXAMPLE.replace(b"Run Number: 1234\nPacked on Oct 15 16:05 UTC\n",
                          b"Run Number: 1235\nPacked on Oct 15 16:05 UTC\n", 1), "footer"),
    (b"Start of Record\nRun Number: 1\nPacked on Oct 15 16:05 UTC\n"
     b"\nEnd of Record\nRun Number: 1\nPacked on Oct 15 16:05 UTC\n", "no file sections"),
    (b"Start of Record\nRun Number: 1\nPacked on Oct 15 16:05 UTC\njunk\n#####\na:\n#####\nx"
     b"\nEnd of Record\nRun Number: 1\nPacked on Oct 15 16:05 UTC\n", "between the header"),
    (b"Start of Record\nRun Number: 1\nPacked on X UTC\n\n#####\na:\n#####\nx\n#####\na:\n#####\ny"
     b"\nEnd of Record\nRun Number: 1\nPacked on X UTC\n", "two sections"),
])
def test_unpack_rejects_malformed(data, reason):
    with pytest.raises(BlobError, match=reason):
        blob.unpack(data)


def test_unpack_spec_example():
    assert blob.unpack(SPEC_EXAMPLE) == (1234, {"EventBuilder1.fcl": "a: 1\n", "boot.fcl": "b: 2\n"})


def test_split_blob_legacy_semantics():
    text = SPEC_EXAMPLE.decode()
    assert blob.split_blob(text) == {"EventBuilder1.fcl": "a: 1\n", "boot.fcl": "b: 2\n"}
    # no footer: the last file runs to the end of the text
    assert blob.split_blob("\n#####\na:\n#####\nxyz") == {"a": "xyz"}
    with pytest.raises(BlobError, match="No file markers"):
        blob.split_blob("nothing here")


GOOD_METADATA = ('config_name: "standard"\ncomponents: ["tpc01", "tpc02"]\n'
                 'sbndaq_commit_or_version: "v1_10_03"\n')


def test_validate_metadata_passes_and_reports_values():
    files = {"metadata.fcl": GOOD_METADATA}
    assert blob.validate_metadata(files) == []
    assert blob.validated_values(files) == {"components": "[tpc01, tpc02]",
                                            "configuration": "standard",
                                            "projectversion": "v1_10_03"}


def test_validate_metadata_missing_repeated_and_missing_file():
    text = 'config_name: "a"\nconfig_name: "b"\ncomponents: []\n'
    errors = blob.validate_metadata({"metadata.fcl": text})
    assert len(errors) == 2
    assert any("multiple" in e and "config_name" in e for e in errors)
    assert any("no matches" in e and "sbndaq_commit_or_version" in e for e in errors)
    assert len(blob.validate_metadata({"boot.fcl": "x"})) == 3
    assert blob.validate_metadata({}) == ["No files found in blob"]


def test_validate_split_stops_at_hash_line_like_legacy():
    text = blob.pack(1, {"metadata.fcl": GOOD_METADATA + "\n#####\n# more\n"}, PACKED).decode()
    assert blob.validate_split(text)["metadata.fcl"] == GOOD_METADATA
