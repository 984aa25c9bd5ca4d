"""Reading a document record in pieces (``load_record_file``) gives exactly ``loads_record``'s
value; the writer's compaction of its output pieces and the spooled export change no byte."""

from __future__ import annotations

import json
import random

import pytest

import archiver_resources.fhicl.writer as writer
import archiver_resources.artdaqdb.base as base
from archiver_resources.artdaqdb.base import SpooledFiles, records_to_files
from archiver_resources.fhicl import fhicl_to_record, iter_json, loads_record, record_to_fhicl
from archiver_resources.fhicl.jsonio import load_record_file
from archiver_resources.fhicl.tables import MultiTable

BIG_FHICL = "\n".join(
    ["# a boardreader", "BEGIN_PROLOG", "host_map: [ { rank: 0 host: \"a\" } ]", "END_PROLOG",
     "daq: { fragment_receiver: { channels: ["]
    + [f"  {{ id: {i} gain: {i / 7:.4f} name: \"ch{i}\" enabled: {str(i % 3 == 0).lower()} }}"
       f"{',' if i < 599 else ''}  # channel {i}" for i in range(600)]
    + ["] register_writes: [" + ", ".join(f"[0x{i:x}, {i}]" for i in range(400)) + "] } }",
       "dup: 1", "dup: 2", ""])


def _random_value(rnd: random.Random, depth: int = 0):
    choice = rnd.random()
    if depth > 4 or choice < 0.3:
        return rnd.choice([1, -2.5e10, 0.5, "x" * rnd.randint(0, 30), "é\u2028\"\\",
                           True, False, None, 12345678901234567890, "true"])
    if choice < 0.65:
        return [_random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 8))]
    return {rnd.choice(["a", "b", "type", "comment", "annotation", "c" * rnd.randint(1, 5)]):
            _random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 6))}


def _same(text: str, path, piece: int) -> None:
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        expected, error = loads_record(text), None
    except ValueError as exc:
        expected, error = None, exc
    if error is not None:
        with pytest.raises(ValueError):
            load_record_file(path, piece=piece)
        return
    got = load_record_file(path, piece=piece)
    assert got == expected and type(got) is type(expected)
    assert json.dumps(got) == json.dumps(expected)


def test_random_documents_in_tiny_windows(tmp_path):
    rnd = random.Random(17)
    path = tmp_path / "doc.json"
    for _ in range(150):
        value = _random_value(rnd)
        text = json.dumps(value, ensure_ascii=rnd.random() < 0.5,
                          indent=rnd.choice([None, 2]),
                          separators=rnd.choice([(", ", ": "), (",", ":")]))
        for piece in (1, 2, 3, 7, 64, 1 << 20):  # the last: the whole-text path
            _same(text, path, piece)


@pytest.mark.parametrize("text", [
    "", "{", "[1,]", "[1 2]", '{"a" 1}', '{"a":1,}', "[1]x", "  [1]  ", '{"a":1, "a":2}',
    "\ufeff[1]", "nul", "[1,2", '"abc', '[1.5e+3, -0.0, 1E-2]', '{"a": [], "b": {}}'])
@pytest.mark.parametrize("piece", [1, 2, 5, 100])
def test_edge_texts(tmp_path, text, piece):
    _same(text, tmp_path / "doc.json", piece)


def test_a_record_with_repeated_keys_read_in_pieces(tmp_path):
    record = fhicl_to_record(BIG_FHICL, "boardreader")
    text = "".join(iter_json(record))
    for piece in (997, 4096, 1 << 20):
        _same(text, tmp_path / "doc.json", piece)
    got = load_record_file(tmp_path / "doc.json", piece=997)
    assert record_to_fhicl(got) == record_to_fhicl(loads_record(text))


def test_a_small_document_written_by_iter_json_takes_the_plain_decoder(tmp_path, monkeypatch):
    """The documents the archiver writes are read by plain ``json.loads`` (checked by encoding
    the value back); a repeated key still comes back as a MultiTable through the exact path."""
    import archiver_resources.fhicl.jsonio as jsonio

    record = fhicl_to_record("a: 1\nb: { c: [1, 2, \"x\"] }  # note\n", "small")
    path = tmp_path / "doc.json"
    path.write_text("".join(iter_json(record)), encoding="utf-8")
    calls = []
    exact = jsonio.loads_record
    monkeypatch.setattr(jsonio, "loads_record", lambda text: calls.append(text) or exact(text))
    assert load_record_file(path) == record and calls == []
    repeated = fhicl_to_record("dup: 1\ndup: 2\n", "small")
    path.write_text("".join(iter_json(repeated)), encoding="utf-8")
    got = load_record_file(path)
    assert len(calls) == 1 and record_to_fhicl(got) == record_to_fhicl(repeated)
    assert type(got["document"]["data"]["main"]) is MultiTable


def test_writer_compaction_changes_no_byte(monkeypatch):
    record = fhicl_to_record(BIG_FHICL, "boardreader")
    whole = record_to_fhicl(record)
    monkeypatch.setattr(writer, "_JOIN_PIECES", 3)
    assert record_to_fhicl(record) == whole


def test_spooled_export_is_the_same_mapping(tmp_path, monkeypatch):
    records = [fhicl_to_record(BIG_FHICL, "boardreader"), fhicl_to_record("a: x\nb: y\n", "odd")]
    # texts a spool must keep exactly: a CR LF (no newline translation), a lone surrogate
    records[1]["document"]["data"]["main"].update(a="x\r\ny", b="\ud800")
    for record, entity in zip(records, ("boardreader", "odd")):
        record.update(entities=[{"name": entity}], version="1/standard")
    in_memory = records_to_files("1/standard", records)
    (tmp_path / "all").mkdir()
    (tmp_path / "big").mkdir()
    monkeypatch.setattr(base, "SPOOL_FROM_CHARS", 0)  # every text spooled
    spooled = records_to_files("1/standard", records, spool_dir=tmp_path / "all")
    assert isinstance(spooled, SpooledFiles) and len(list((tmp_path / "all").iterdir())) == 2
    assert dict(spooled) == in_memory and list(spooled) == list(in_memory)
    # from the size on (the boardreader's text), the small one held as it is
    monkeypatch.setattr(base, "SPOOL_FROM_CHARS", len(in_memory["boardreader.fcl"]))
    mixed = records_to_files("1/standard", records, spool_dir=tmp_path / "big")
    assert [p.read_text() for p in (tmp_path / "big").iterdir()] == [in_memory["boardreader.fcl"]]
    assert dict(mixed) == in_memory and list(mixed) == list(in_memory)
