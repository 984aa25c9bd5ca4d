"""The bulkloader / bulkdownloader adapter (``use_tools: true``), locally or over ssh with a tar pipe.

Initial inserts go through ``bulkloader`` and exports through ``bulkdownloader`` with the legacy
command lines; listing, presence, versions, updates and assigned times go through a *lister*:
conftoolp when it imports, otherwise the native backend on the same URI. Commands run with a real
timeout that kills the whole process group; failures carry exit code and stderr.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from archiver_resources.errors import ArtdaqDBError

from .base import ArchiveResult, ArtdaqDB, Clock, PlannedDocument, split_configuration_name

SSH_OPTIONS = ('-o "StrictHostKeyChecking=no" -o "UserKnownHostsFile=/dev/null" '
               '-o "BatchMode=yes"')
PASSED_VARIABLES = ("LD_LIBRARY_PATH", "PYTHONPATH", "ARTDAQ_DATABASE_DATADIR",
                    "ARTDAQ_DATABASE_CONFDIR")
#: legacy ``$(( $(nproc)/2 ))``, but never 0 on a one-core host
DEFAULT_THREADS = "$(( $(nproc) > 1 ? $(nproc)/2 : 1 ))"
STDERR_TAIL = 2000


class ToolError(ArtdaqDBError):
    """bulkloader/bulkdownloader failed: ``exit_code`` (None on timeout), ``stderr``, ``stdout``."""

    def __init__(self, reason: str, *, exit_code: Optional[int], stderr: str = "", stdout: str = "",
                 run: Optional[int] = None, retryable: bool = True):
        self.exit_code = exit_code
        self.stderr = stderr
        self.stdout = stdout
        super().__init__(reason, run=run, retryable=retryable)


def env_prefix(uri: str, *, tool_path: Optional[str] = None,
               environ: Optional[Mapping[str, str]] = None) -> str:
    """The legacy ``ENV`` prefix: PATH (tool dir first), the passed-on variables that are set,
    then ARTDAQ_DATABASE_URI; values shell-quoted."""
    environ = os.environ if environ is None else environ
    path = environ.get("PATH", "")
    if tool_path:
        path = f"{tool_path}:{path}"
    parts = [f"export PATH={shlex.quote(path)}"]
    parts += [f"export {k}={shlex.quote(environ[k])}" for k in PASSED_VARIABLES if environ.get(k)]
    parts.append(f"export ARTDAQ_DATABASE_URI={shlex.quote(uri)}")
    return "; ".join(parts)


def tool_args(tool: str, run: int, config: str, path: str, threads: str) -> str:
    return (f"{tool} -r {int(run)} -c {shlex.quote(config)} -p {shlex.quote(path)} -t {threads}")


def loader_command(env: str, run: int, config: str, directory: str, *, threads: str,
                   remote_host: Optional[str], remote_dir: str) -> str:
    """The legacy bulkloader command (docs/stores.md, "bulkloader / bulkdownloader"); remotely
    the bulkloader status is kept (``pipefail`` + ``exit $rc``), which the legacy pipe lost."""
    if not remote_host:
        return f"{env}; cd {shlex.quote(directory)}; {tool_args('bulkloader', run, config, directory, threads)}"
    t = shlex.quote(remote_dir)
    script = (f"mkdir -p {t}; cd {t} && tar xzf - || exit 97; {env}; "
              f"{tool_args('bulkloader', run, config, remote_dir, threads)}; rc=$?; "
              f"cd /; rm -rf {t}; exit $rc")
    return (f"set -o pipefail; tar czf - -C {shlex.quote(directory)} . | "
            f"ssh {SSH_OPTIONS} {shlex.quote(remote_host)} {shlex.quote(script)}")


def downloader_command(env: str, run: int, config: str, destination: str, *, threads: str,
                       remote_host: Optional[str], remote_dir: str) -> str:
    """The legacy bulkdownloader command (docs/stores.md, "bulkloader / bulkdownloader");
    remotely bulkdownloader's stdout is kept out of the tar stream."""
    if not remote_host:
        return f"{env}; {tool_args('bulkdownloader', run, config, destination, threads)}"
    t = shlex.quote(remote_dir)
    script = (f"mkdir -p {t}; {env}; {tool_args('bulkdownloader', run, config, remote_dir, threads)}"
              f" 1>&2; rc=$?; if [ $rc -eq 0 ]; then cd {t} && tar czf - .; rc=$?; fi; "
              f"cd /; rm -rf {t}; exit $rc")
    return (f"set -o pipefail; ssh {SSH_OPTIONS} {shlex.quote(remote_host)} {shlex.quote(script)}"
            f" | tar xzf - -C {shlex.quote(destination)}")


def run_tool(label: str, command: str, *, timeout: float, run: Optional[int], secret: str = ""
             ) -> subprocess.CompletedProcess:
    """Run ``command`` with bash in its own process group; timeout kills the group."""
    process = subprocess.Popen(["bash", "-c", command], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               errors="replace", start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        stdout, stderr = process.communicate()
        raise ToolError(f"{label} timed out after {timeout:g} s: {_tail(stderr, secret)}",
                        exit_code=None, stderr=stderr, stdout=stdout, run=run) from None
    if process.returncode != 0:
        raise ToolError(f"{label} failed with code {process.returncode}: {_tail(stderr, secret)}",
                        exit_code=process.returncode, stderr=stderr, stdout=stdout, run=run)
    return subprocess.CompletedProcess(command, 0, stdout, stderr)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tail(text: str, secret: str) -> str:
    tail = text.strip()[-STDERR_TAIL:] or "(no stderr)"
    return tail.replace(secret, "***") if secret else tail


class BulkToolsArtdaqDB(ArtdaqDB):
    """artdaqDB through bulkloader/bulkdownloader (inserts, exports) plus a lister (the rest)."""

    writes_hashes = False  # bulkloader stores no hashes entity

    def __init__(self, uri: str, *, remote_host: Optional[str] = None, timeout: float = 300.0,
                 clock: Optional[Clock] = None, conftoolp_module: Any = None,
                 mongo_client: Any = None, tool_path: Optional[str] = None,
                 threads: str = DEFAULT_THREADS, lister: Optional[ArtdaqDB] = None):
        super().__init__(uri, clock=clock)
        self.remote_host = remote_host or os.environ.get("ARTDAQ_DATABASE_REMOTEHOST") or None
        self.timeout = timeout
        self.tool_path = tool_path
        self.threads = threads
        self.lister = lister or _default_lister(uri, clock, conftoolp_module, mongo_client)

    # ---- primitives: listing through the lister -----------------------------------------------

    def _configuration_names(self) -> Iterable[str]:
        return self.lister._configuration_names()

    def _has_configuration(self, name: str) -> bool:
        return self.lister._has_configuration(name)

    def _versions(self, name: str) -> list[str]:
        return self.lister._versions(name)

    def _records(self, name: str) -> list[dict]:
        return self.lister._records(name)

    def _assigned_of(self, name: str):
        return self.lister._assigned_of(name)

    def _store(self, run: int, name: str, docs: list[PlannedDocument], timestamp: str, *,
               initial: bool, once: bool = False) -> ArchiveResult:
        if not initial:  # bulkloader can only write version <run>/<config>
            return self.lister._store(run, name, docs, timestamp, initial=False, once=once)
        config = name.split("/", 1)[1]
        with tempfile.TemporaryDirectory(prefix=f"importer_{run}_") as directory:
            for doc in docs:
                target = Path(directory, doc.relpath)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(doc.text, encoding="utf-8")
            remote_dir = f"/tmp/bulkloader_{run}_{os.getpid()}"
            command = loader_command(self._env(), run, config, directory, threads=self.threads,
                                     remote_host=self.remote_host, remote_dir=remote_dir)
            run_tool("Bulkloader", command, timeout=self.timeout, run=run, secret=self._secret())
        return ArchiveResult(run=run, configuration=name, version=name,
                             entities=tuple(doc.entity for doc in docs),
                             assigned=self._assigned_of(name))

    # ---- export through bulkdownloader --------------------------------------------------------

    def export_run(self, run: int, config: Optional[str] = None) -> dict[str, str]:
        """bulkdownloader's files (``<prefix>/<entity>.fcl``, ``schema.fcl``) as flat names."""
        name = self._require(run, config)
        parsed = split_configuration_name(name)
        assert parsed is not None
        with tempfile.TemporaryDirectory(prefix=f"migrator_{run}_") as destination:
            command = downloader_command(
                self._env(), run, parsed[1], destination, threads=self.threads,
                remote_host=self.remote_host, remote_dir=f"/tmp/bulkdownloader_{run}_{os.getpid()}")
            run_tool("Bulkdownloader", command, timeout=self.timeout, run=run, secret=self._secret())
            return read_flat(Path(destination), run=run)

    def close(self) -> None:
        self.lister.close()

    def _env(self) -> str:
        return env_prefix(self.uri, tool_path=self.tool_path)

    def _secret(self) -> str:
        from urllib.parse import urlsplit

        try:
            return urlsplit(self.uri).password or ""
        except ValueError:
            return ""


def read_flat(directory: Path, *, run: int) -> dict[str, str]:
    """``{basename: text}`` of every ``*.fcl`` below ``directory``; equal basenames are an error."""
    files: dict[str, str] = {}
    origin: dict[str, Path] = {}
    for path in sorted(directory.rglob("*.fcl")):
        if path.name in files:
            raise ArtdaqDBError(f"bulkdownloader wrote both {origin[path.name]} and {path}", run=run)
        files[path.name] = path.read_text(encoding="utf-8", errors="replace")
        origin[path.name] = path.relative_to(directory)
    if not files:
        raise ArtdaqDBError("bulkdownloader exported no files", run=run)
    return dict(sorted(files.items()))


def _default_lister(uri: str, clock, conftoolp_module, mongo_client) -> ArtdaqDB:
    from .conftoolp_backend import ConftoolpArtdaqDB, conftoolp_available

    if conftoolp_module is not None or conftoolp_available():
        return ConftoolpArtdaqDB(uri, module=conftoolp_module, clock=clock)
    from . import open_native

    return open_native(uri, clock=clock, mongo_client=mongo_client)
