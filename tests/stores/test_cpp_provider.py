"""Differential tests against artdaq_database's real C++ over a filesystemdb store (the "fsoracle":
its ConfigurationDB operations, the functions conftool's SWIG module exposes, over the real
FileSystemDB provider, as one command).

Skipped unless the fsoracle is built. ``ARCHIVER_ADB_FSORACLE`` names its build directory (holding
``bin/fstool`` and ``tools/fstool.py``) or the ``fstool`` binary; without it
``${TMPDIR:-/tmp}/adb-fsoracle`` is tried. Its sources and binaries never enter this repository.

What is compared: a generated run archived by the C++ (conftool's archive: one ``write_document``
per file, ``hashes`` added, schema last; then RunHistory2 and schema written as ``<run>/<config>v1``,
the archiver's update) and
by the native filesystemdb backend; every stored document field for field except ``_id`` and the
FHiCL conversion's own parts (``document.data``/``metadata``, ``comments``, which the FHiCL codec's
tests cover), times checked for the format and then masked; ``index.json`` with oids replaced by
entity names; ``SystemMetadata``. Then each side reads the other's store, one store with writes
of both included.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import pytest

from archiver_resources.artdaqdb import hashes_text, open_artdaqdb, parse_hashes
from archiver_resources.artdaqdb.base import parse_timestamp
from archiver_resources.fhicl import fhicl_equivalent
from archiver_resources.fhiclize import CONVERTERS, GENERATORS, default_schema_text, prepare_run
from archiver_resources.runrecords import read_run_record
from archiver_resources.samples import generate_run_record

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}")
TIME_KEYS = {"timestamp", "created", "assigned", "create_time"}
CONFIG = "standard"


def locate_fsoracle() -> tuple[Optional[tuple[Path, Path]], str]:
    """((fstool binary, fstool.py), "") or (None, why not)."""
    named = os.environ.get("ARCHIVER_ADB_FSORACLE")
    place = Path(named) if named else Path(os.environ.get("TMPDIR") or "/tmp") / "adb-fsoracle"
    binary = place if place.is_file() else place / "bin" / "fstool"
    helper = binary.parent.parent / "tools" / "fstool.py"
    if binary.is_file() and os.access(binary, os.X_OK) and helper.is_file():
        return (binary, helper), ""
    how = ("ARCHIVER_ADB_FSORACLE=" + named) if named else f"no ARCHIVER_ADB_FSORACLE and {place}"
    return None, (f"artdaq_database fsoracle not built ({how} holds no bin/fstool + "
                  "tools/fstool.py): build it with adb-fsoracle's build.sh and point "
                  "ARCHIVER_ADB_FSORACLE at its output directory")


FOUND, WHY_NOT = locate_fsoracle()
pytestmark = pytest.mark.skipif(FOUND is None, reason=WHY_NOT)


class Cpp:
    """The C++ operations on one filesystemdb URI."""

    def __init__(self, uri: str):
        self.uri = uri
        self.binary, self.helper = FOUND

    def call(self, function: str, query, document: Optional[Path] = None,
             check: bool = True) -> subprocess.CompletedProcess:
        args = [str(self.binary), self.uri, function,
                query if isinstance(query, str) else json.dumps(query)]
        if document is not None:
            args.append(str(document))
        done = subprocess.run(args, capture_output=True, text=True, timeout=120)
        if check and done.returncode:
            pytest.fail(f"C++ {function} failed (rc {done.returncode}): {done.stderr[-2000:]}")
        return done

    def tool(self, *args: str) -> str:
        done = subprocess.run([sys.executable, str(self.helper), str(self.binary), self.uri, *args],
                              capture_output=True, text=True, timeout=300)
        if done.returncode:
            pytest.fail(f"fstool.py {args[0]} failed: {done.stderr[-2000:]} {done.stdout[-500:]}")
        return done.stdout

    def archive(self, run: int, files: dict[str, str], scratch: Path) -> None:
        """conftool's archiveRunConfiguration: every file, ``hashes`` added, schema last."""
        scratch.mkdir(parents=True)
        for relpath, text in files.items():
            (scratch / relpath.rsplit("/", 1)[-1]).write_bytes(text.encode("utf-8"))
        self.tool("archive", str(run), CONFIG, str(scratch))

    def update(self, run: int, files: dict[str, str], scratch: Path, number: int = 1) -> None:
        """conftool's update write of each file as ``<run>/<config>v<number>`` (schema last)."""
        name = f"{run}/{CONFIG}"
        scratch.mkdir(parents=True)
        for relpath, text in sorted(files.items(), key=lambda item: item[0] == "schema.fcl"):
            entity = relpath.rsplit("/", 1)[-1][: -len(".fcl")]
            document = scratch / relpath.rsplit("/", 1)[-1]
            document.write_bytes(text.encode("utf-8"))
            self.call("write_document", {
                "operation": "store", "dataformat": "fhicl",
                "collection": "SystemLayout" if entity == "schema" else "RunHistory",
                "filter": {"configurations.name": name, "version": f"{name}v{number}",
                           "entities.name": entity, "runs.name": str(run)}}, document)

    def names(self) -> list[str]:
        return self.tool("list").split()

    def versions(self) -> list[str]:
        return sorted(v for v in self.tool("versions", "SystemLayout").strip().split(",") if v)

    def export(self, name: str, out: Path) -> dict[str, str]:
        self.tool("export", name, str(out))
        return {p.name: p.read_text(encoding="utf-8") for p in sorted(out.glob("*.fcl"))}


@pytest.fixture
def prepared(tmp_path):
    """``prepared(run) -> (insert files, update files)`` of a generated finished run record."""
    def make(run: int):
        run_dir = generate_run_record(tmp_path / "records", run, profile="small",
                                      config_name=CONFIG)
        record = read_run_record(run, Path(run_dir))
        texts = {f.relpath: record.read_text(f.relpath) for f in record.files}
        result = prepare_run(run, texts, enabled=frozenset(CONVERTERS) | GENERATORS,
                             schema_text=default_schema_text())
        assert result.update_files, "the generated run is finished: it has a RunHistory2 update"
        flat = lambda files: {p.rsplit("/", 1)[-1]: t for p, t in files.items()}  # noqa: E731
        return flat(result.insert_files), flat(result.update_files)
    return make


# ------------------------------------------------------------------------------- comparing

def documents(root: Path) -> dict[tuple, dict]:
    """``{(collection, entity, version): record}`` of a store (one SystemMetadata document)."""
    found = {}
    for collection in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in collection.glob("*.json"):
            if path.name == "index.json":
                continue
            record = json.loads(path.read_text(encoding="utf-8"))
            if collection.name == "SystemMetadata":
                key = ("SystemMetadata", None, None)
            else:
                key = (collection.name, record["entities"][0]["name"], record["version"])
            assert key not in found, f"two documents for {key} in {root}"
            found[key] = record
    return found


def masked(node, path: str = ""):
    """``node`` with every time value checked (artdaq_database format, real milliseconds
    included) and replaced by ``"<time>"``."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in TIME_KEYS and isinstance(value, str):
                assert TIMESTAMP.fullmatch(value), f"{path}.{key} = {value!r}"
                out[key] = "<time>"
            else:
                out[key] = masked(value, f"{path}.{key}")
        return out
    if isinstance(node, list):
        return [masked(value, f"{path}[{i}]") for i, value in enumerate(node)]
    return node


def envelope(record: dict) -> dict:
    """What the store writes around the FHiCL conversion (oid dropped, times masked)."""
    out = {key: value for key, value in record.items() if key not in ("_id", "comments")}
    out["document"] = {k: v for k, v in record["document"].items() if k not in ("data", "metadata")}
    assert set(record["document"]) >= {"data", "metadata"}
    assert set(record["_id"]) == {"$oid"} and re.fullmatch(r"[0-9a-f]{24}", record["_id"]["$oid"])
    return masked(out)


def index_by_entity(root: Path, collection: str) -> dict:
    """``index.json`` with each oid replaced by the entity (and version) of its document."""
    index = json.loads((root / collection / "index.json").read_text(encoding="utf-8"))
    owner = {}
    for path in (root / collection).glob("*.json"):
        if path.name != "index.json":
            record = json.loads(path.read_text(encoding="utf-8"))
            owner[path.stem] = f'{record["entities"][0]["name"]}@{record["version"]}'
    name = lambda oids: sorted(owner[o] for o in oids)  # noqa: E731
    by_entity = {"ouid": name(index["ouid"])}
    for key, value in index.items():
        if key not in ("ouid", "configurations.assigned"):
            by_entity[key] = {k: name(v) for k, v in value.items()}
    return by_entity


def times(record: dict) -> set[str]:
    found = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in TIME_KEYS and isinstance(value, str):
                    found.add(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(record)
    return found


# ------------------------------------------------------------------------------- the tests

def test_the_cpp_imports_the_default_schema_and_refused_the_double_quoted_one(tmp_path):
    cpp = Cpp(f"filesystemdb://{tmp_path}/db_archive")
    query = {"operation": "store", "dataformat": "fhicl", "collection": "SystemLayout",
             "filter": {"configurations.name": "1/standard", "version": "1/standard",
                        "entities.name": "schema", "runs.name": "1"}}
    schema = tmp_path / "schema.fcl"
    # The form shipped before: a double-quoted regex with "\." is refused by the C++ reader.
    schema.write_text(default_schema_text().replace("'", '"'), encoding="utf-8")
    refused = cpp.call("write_document", query, schema, check=False)
    assert refused.returncode != 0
    assert "not representable as a canonical string" in refused.stdout + refused.stderr
    schema.write_text(default_schema_text(), encoding="utf-8")
    cpp.call("write_document", query, schema)
    exported = cpp.export("1/standard", tmp_path / "out")
    assert set(exported) == {"schema.fcl"}
    assert fhicl_equivalent(exported["schema.fcl"], default_schema_text())
    # and its rules read back as the archiver reads them
    db = open_artdaqdb(f"filesystemdb://{tmp_path}/db_archive")
    assert fhicl_equivalent(db.export_run(1, "standard")["schema.fcl"], default_schema_text())


def test_stored_documents_and_indexes_match_the_cpp_field_for_field(tmp_path, prepared, clock,
                                                                      monkeypatch):
    monkeypatch.setenv("USER", "daqops")
    run = 4711
    insert, update = prepared(run)
    cpp_root, py_root = tmp_path / "cpp_archive", tmp_path / "py_archive"
    cpp = Cpp(f"filesystemdb://{cpp_root}")
    cpp.archive(run, insert, tmp_path / "cpp_insert")
    cpp.update(run, update, tmp_path / "cpp_update")

    clock.now = datetime.now(timezone.utc).astimezone()
    db = open_artdaqdb(f"filesystemdb://{py_root}", clock=clock)
    db.archive_run(run, CONFIG, insert)
    clock.advance(1.5)
    assert db.update_run(run, CONFIG, update) == f"{run}/{CONFIG}v1"

    cpp_docs, py_docs = documents(cpp_root), documents(py_root)
    assert sorted(cpp_docs, key=repr) == sorted(py_docs, key=repr)
    assert len(cpp_docs) == len(insert) + 1 + len(update) + 1  # + hashes, + SystemMetadata
    for key, cpp_record in cpp_docs.items():
        py_record = py_docs[key]
        if key[0] == "SystemMetadata":
            cpp_meta, py_meta = cpp_record["document"], py_record["document"]
            assert cpp_meta["uri"] == cpp.uri and py_meta["uri"] == db.uri
            assert masked({**py_meta, "uri": ""}) == masked({**cpp_meta, "uri": ""})
            assert list(py_meta) == list(cpp_meta)
            continue
        assert envelope(py_record) == envelope(cpp_record), key
        assert json.dumps(envelope(py_record)) == json.dumps(envelope(cpp_record)), \
            f"{key}: same fields, different key order"
        # one clock reading per write in ours (the C++ reads its clock per field and document)
        version = key[2]
        expected = clock.now if version.endswith("v1") else clock.now - timedelta(seconds=1.5)
        moment = expected.astimezone()
        stamp = f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}{moment:%z}"
        assert times(py_record) == {stamp}, key
        spread = sorted(parse_timestamp(t) for t in times(cpp_record))
        assert spread[-1] - spread[0] < timedelta(seconds=30), key

    for collection in ("RunHistory", "SystemLayout"):
        assert index_by_entity(py_root, collection) == index_by_entity(cpp_root, collection)
        py_index = json.loads((py_root / collection / "index.json").read_text())
        cpp_index = json.loads((cpp_root / collection / "index.json").read_text())
        assert list(py_index) == list(cpp_index)
        # the C++ lists each document's own assigned time; ours one per write
        name = f"{run}/{CONFIG}"
        assert set(py_index["configurations.assigned"]) == {name}
        assert len(py_index["configurations.assigned"][name]) == 2  # the insert, the update
        cpp_assigned = {e["assigned"] for r in cpp_docs.values() if r.get("collection") == collection
                        for e in r["configurations"]}
        assert cpp_index["configurations.assigned"][name] == sorted(cpp_assigned)
        py_assigned = {e["assigned"] for r in py_docs.values() if r.get("collection") == collection
                       for e in r["configurations"]}
        assert py_index["configurations.assigned"][name] == sorted(py_assigned)

    # each side reads the store the other wrote alone
    name = f"{run}/{CONFIG}"
    theirs_of_ours = Cpp(f"filesystemdb://{py_root}")
    assert theirs_of_ours.names() == [name]
    assert theirs_of_ours.versions() == [name, f"{name}v1"]
    exported = theirs_of_ours.export(name, tmp_path / "cpp_export_of_ours")
    ours_of_theirs = open_artdaqdb(f"filesystemdb://{cpp_root}")
    assert ours_of_theirs.archived_runs() == {run: name}
    assert ours_of_theirs.versions(run, CONFIG) == [name, f"{name}v1"]
    read = ours_of_theirs.export_run(run, CONFIG)
    assert set(exported) == set(read) == {*insert, *update, "hashes.fcl"}
    for file_name, text in read.items():
        assert fhicl_equivalent(text, exported[file_name]), file_name
        assert fhicl_equivalent(text, {**insert, **update}.get(file_name, text)), file_name


def test_each_side_reads_the_others_store_mixed_writes_included(tmp_path, prepared, clock):
    clock.now = datetime.now(timezone.utc).astimezone()
    (a_insert, a_update), (b_insert, b_update) = prepared(101), prepared(102)
    c_insert, _ = prepared(103)
    root = tmp_path / "mixed_archive"
    cpp = Cpp(f"filesystemdb://{root}")
    db = open_artdaqdb(f"filesystemdb://{root}", clock=clock)

    cpp.archive(101, a_insert, tmp_path / "a")           # C++ first: it creates the store
    db.archive_run(102, CONFIG, b_insert)                 # the archiver into the C++ store
    clock.advance(2)
    assert db.update_run(101, CONFIG, a_update) == f"101/{CONFIG}v1"  # updates the C++'s run
    cpp.update(102, b_update, tmp_path / "b_update")      # the C++ updates the archiver's run
    cpp.archive(103, c_insert, tmp_path / "c")

    expected_names = [f"{run}/{CONFIG}" for run in (101, 102, 103)]
    assert sorted(cpp.names()) == expected_names
    assert cpp.versions() == sorted(expected_names + [f"101/{CONFIG}v1", f"102/{CONFIG}v1"])
    reopened = open_artdaqdb(f"filesystemdb://{root}")
    assert reopened.archived_runs() == {101: expected_names[0], 102: expected_names[1],
                                        103: expected_names[2]}
    for run, insert, update in ((101, a_insert, a_update), (102, b_insert, b_update),
                                (103, c_insert, None)):
        name = f"{run}/{CONFIG}"
        ours = reopened.export_run(run, CONFIG)
        theirs = cpp.export(name, tmp_path / f"export_{run}")
        expected = {**insert, **(update or {}), "hashes.fcl": ""}
        assert set(ours) == set(theirs) == set(expected), run
        for file_name, text in ours.items():
            assert fhicl_equivalent(text, theirs[file_name], a_name=f"ours/{file_name}",
                                    b_name=f"C++/{file_name}"), (run, file_name)
            if file_name != "hashes.fcl":
                assert fhicl_equivalent(text, expected[file_name]), (run, file_name)
        assert parse_hashes(reopened.read_hashes(run, CONFIG)) == parse_hashes(hashes_text(insert))
        assert reopened.versions(run, CONFIG) == [name] + ([f"{name}v1"] if update else [])
        newest = max(parse_timestamp(e["assigned"]) for r in documents(root).values()
                     if r.get("configurations") for e in r["configurations"] if e["name"] == name)
        assert reopened.archived_at(run, CONFIG) == newest
