"""Fixtures of the artdaqDB tests: a settable clock and a factory per backend (filesystem,
mongomock, fake conftoolp module, fake bulkloader/bulkdownloader executables, real MongoDB)."""

from __future__ import annotations

import os
import stat
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from archiver_resources.artdaqdb import open_artdaqdb

FAKES = Path(__file__).resolve().parent / "fakes"
REPO = Path(__file__).resolve().parents[2]
MONGODB_URI = os.environ.get("ARCHIVER_TEST_MONGODB_URI")


class Clock:
    """A clock tests move by hand; fakes of the C++ tools read it from ``FAKE_ARTDAQ_NOW``."""

    def __init__(self, start: datetime):
        self.now = start
        os.environ["FAKE_ARTDAQ_NOW"] = start.isoformat()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        os.environ["FAKE_ARTDAQ_NOW"] = self.now.isoformat()
        return self.now


@pytest.fixture
def clock(monkeypatch):
    monkeypatch.setenv("FAKE_ARTDAQ_NOW", "")
    return Clock(datetime(2024, 10, 15, 14, 2, 11, tzinfo=timezone.utc).astimezone())


def install_fake_tools(bin_dir: Path, log_path: Path, monkeypatch) -> None:
    """Launchers for fakes/<tool>.py on PATH (shebang = this interpreter); calls logged to
    ``log_path`` as JSON lines."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in ("bulkloader", "bulkdownloader", "ssh"):
        launcher = bin_dir / tool
        launcher.write_text(
            f"#!{sys.executable}\nimport runpy, sys\nsys.path.insert(0, {str(REPO)!r})\n"
            f"runpy.run_path({str(FAKES / (tool + '.py'))!r}, run_name='__main__')\n")
        launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_TOOLS_LOG", str(log_path))


BACKENDS = ["filesystem", "mongomock", "conftoolp-fake", "bulktools-fake", "bulktools-fake-remote",
            pytest.param("mongodb-real", marks=[pytest.mark.mongodb, pytest.mark.skipif(
                not MONGODB_URI, reason="set ARCHIVER_TEST_MONGODB_URI to test a real MongoDB")])]


def real_mongodb_uri(database: str) -> str:
    """ARCHIVER_TEST_MONGODB_URI with its database replaced by ``database``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(MONGODB_URI)
    return urlunsplit(parts._replace(path="/" + database))


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def open_store(backend, tmp_path, clock, monkeypatch):
    """``open_store(**kw) -> ArtdaqDB`` for the parametrised backend, on one database per test."""
    opened = []
    root = tmp_path / "db_archive"
    fs_uri = f"filesystemdb://{root}"

    if backend == "filesystem":
        factory = lambda **kw: open_artdaqdb(fs_uri, clock=clock, **kw)  # noqa: E731
    elif backend == "mongomock":
        import mongomock

        client = mongomock.MongoClient()
        uri = "mongodb://daq:s3cret@localhost:27017/test_db_archive"
        factory = lambda **kw: open_artdaqdb(uri, clock=clock, mongo_client=client, **kw)  # noqa: E731
    elif backend == "mongodb-real":
        uri = real_mongodb_uri(f"archiver_test_{uuid.uuid4().hex[:8]}_archive")
        factory = lambda **kw: open_artdaqdb(uri, clock=clock, **kw)  # noqa: E731
    elif backend == "conftoolp-fake":
        from tests.stores import fake_conftoolp

        fake_conftoolp.reset()
        factory = lambda **kw: open_artdaqdb(  # noqa: E731
            fs_uri, backend="conftoolp", conftoolp_module=fake_conftoolp, clock=clock, **kw)
    else:
        install_fake_tools(tmp_path / "bin", tmp_path / "tools.log", monkeypatch)
        remote = "daq-gateway.example" if backend.endswith("remote") else None
        factory = lambda **kw: open_artdaqdb(  # noqa: E731
            fs_uri, use_tools=True, remote_host=remote, tool_timeout=60.0, clock=clock, **kw)

    def open_(**kw):
        store = factory(**kw)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        if backend == "mongodb-real":
            store._client.drop_database(store.database_name)
        store.close()
