"""Start a local UconDB-compatible server on a free loopback port (tests, benchmarks, the demo).

``start_local_ucondb(tmp_path)`` returns a running ``LocalUconDB`` handle (``.base_url`` ending in
``/app``, ``.user``, ``.password``, ``.stop()``; also a context manager). Reusable by any test
package.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
from pathlib import Path
from typing import Iterable, Mapping, Optional, Union

import uvicorn

from archiver_resources.ucondb.server import (
    DEFAULT_MAX_BODY_BYTES, HTTP_OPTIONS, TestingFaults, create_app,
)

DEFAULT_FOLDER = "sbnd_runs"
DEFAULT_OBJECT = "configuration"


class LocalUconDB:
    """A running local UconDB server in a background thread (uvicorn on 127.0.0.1)."""

    def __init__(self, app, sock: socket.socket, *, user: str, password: str, prefix: str,
                 folder: Optional[str], db_url: str, faults: Optional[TestingFaults]):
        self.app = app
        self.user = user
        self.password = password
        self.folder = folder
        self.object_name = DEFAULT_OBJECT
        self.db_url = db_url
        self.faults = faults
        self.storage = app.state.storage
        host, port = sock.getsockname()[:2]
        self.host, self.port = host, port
        self.base_url = f"http://{host}:{port}{prefix}"
        self._sock = sock
        config = uvicorn.Config(app, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=1, server_header=False,
                                **HTTP_OPTIONS)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name=f"ucondb-local-{port}",
                                        daemon=True)
        self._failure: Optional[BaseException] = None

    def __repr__(self) -> str:
        return f"LocalUconDB(base_url={self.base_url!r}, user={self.user!r})"

    def _serve(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # reported by start()
            self._failure = exc

    def start(self, timeout: float = 10.0) -> "LocalUconDB":
        self._thread.start()
        waited = 0.0
        while not self._server.started:
            if self._failure is not None or not self._thread.is_alive():
                raise RuntimeError(f"local UconDB server failed to start: {self._failure!r}")
            if waited > timeout:
                raise RuntimeError("local UconDB server did not start in time")
            threading.Event().wait(0.01)
            waited += 0.01
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
        self.storage.close()

    def __enter__(self) -> "LocalUconDB":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def free_loopback_socket() -> socket.socket:
    """A listening-ready socket bound to 127.0.0.1 on a free port (no race with other tests)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def start_local_ucondb(tmp_path: Union[str, Path], *, user: str = "archiver",
                       password: Optional[str] = None, folder: Optional[str] = DEFAULT_FOLDER,
                       extra_folders: Iterable[str] = (), prefix: str = "/app",
                       namespace: str = "public", authentication: str = "RFC2617",
                       read_only: bool = False, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                       db_url: Optional[str] = None,
                       testing_faults: Union[bool, TestingFaults] = False,
                       users: Optional[Mapping[str, Mapping[str, str]]] = None) -> LocalUconDB:
    """Start a local UconDB server over SQLite in ``tmp_path`` and return its running handle.

    ``folder`` (default ``sbnd_runs``) and ``extra_folders`` are created; the password is random
    unless given; ``users`` replaces the default ``{'*': {user: password}}`` Authorization
    mapping. ``testing_faults=True`` enables fault injection (``handle.faults``).
    """
    password = password or secrets.token_urlsafe(16)
    Path(tmp_path).mkdir(parents=True, exist_ok=True)
    db_url = db_url or f"sqlite:///{Path(tmp_path) / 'ucondb-local.db'}"
    faults = testing_faults if isinstance(testing_faults, TestingFaults) else (
        TestingFaults() if testing_faults else None)
    folders = ([folder] if folder else []) + list(extra_folders)
    app = create_app(db_url, prefix=prefix, authentication=authentication,
                     users=users if users is not None else {"*": {user: password}},
                     namespace=namespace, read_only=read_only,
                     max_body_bytes=max_body_bytes, create_folders=folders, testing_faults=faults)
    handle = LocalUconDB(app, free_loopback_socket(), user=user, password=password,
                         prefix=prefix, folder=folder, db_url=db_url, faults=faults)
    return handle.start()
