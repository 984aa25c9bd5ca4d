"""Fixtures of the reliability suite: the pipeline fixtures (generated run records, a local UconDB
server, filesystemdb, a legacy config.yaml) plus helpers that read the stores directly."""

import os
from pathlib import Path

import pytest

from archiver_resources.archiving import ImportSettings
from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.config import FHICLIZE_NAMES
from archiver_resources.fhiclize import default_schema_text
from archiver_resources.ucondb.client import UconDBClient
from tests.pipeline.conftest import archive_env, ucondb_server  # noqa: F401 (re-exported fixtures)
from tests.support import FOLDER

#: Seed of every randomised test; override with ARCHIVER_RELIABILITY_SEED to explore.
SEED = int(os.environ.get("ARCHIVER_RELIABILITY_SEED", "20261124"))
#: An mtime far in the past: generated runs count as finished by their stop time anyway.
OLD = 1_600_000_000


def import_settings(max_file_bytes: int = 1_000_000) -> ImportSettings:
    return ImportSettings(enabled=FHICLIZE_NAMES, schema_text=default_schema_text(),
                          finished_after_seconds=3600, max_file_bytes=max_file_bytes)


def direct_client(server, **kw) -> UconDBClient:
    """A client straight to the server (no proxy), for reading what UconDB really holds."""
    return UconDBClient(server.base_url, FOLDER, "configuration", user=server.user,
                        password=server.password, timeout=10, retries=2, **kw)


def ucondb_versions(server, folder: str = FOLDER) -> dict:
    """key → number of versions with that key, read from the server's /versions listing."""
    import requests

    reply = requests.get(server.base_url + "/versions",
                         params={"folder": folder, "object": "configuration"}, timeout=10)
    if reply.status_code == 404:
        return {}
    reply.raise_for_status()
    counts: dict = {}
    for item in reply.json():
        counts[item.get("key")] = counts.get(item.get("key"), 0) + 1
    return counts


def delete_blobs(server, folder: str, runs) -> None:
    """Remove the runs' versions and blobs from the local UconDB server's database, as restoring
    an older backup would."""
    from sqlalchemy import delete, select

    storage = server.storage
    tables = storage.folder(folder)
    keys = [str(r) for r in runs]
    with storage.lock, storage.engine.begin() as conn:
        blobs = {int(row[0]) for row in conn.execute(
            select(tables.versions.c.data_key).where(tables.versions.c.key.in_(keys)))}
        conn.execute(delete(tables.versions).where(tables.versions.c.key.in_(keys)))
        still_used = {int(row[0]) for row in conn.execute(select(tables.versions.c.data_key))}
        conn.execute(delete(tables.data).where(tables.data.c.key.in_(blobs - still_used)))


def leftover_files(root: Path) -> list:
    """Temp files and journals a killed or failed writer may leave in a filesystemdb tree."""
    found = []
    for path in Path(root).rglob("*"):
        name = path.name
        if ".tmp-" in name or name.endswith(".journal") or name.endswith(".tmp"):
            found.append(str(path.relative_to(root)))
    return sorted(found)


@pytest.fixture
def store(tmp_path):
    db = open_artdaqdb(f"filesystemdb://{tmp_path / 'artdaqdb' / 'db'}")
    try:
        yield db
    finally:
        db.close()
