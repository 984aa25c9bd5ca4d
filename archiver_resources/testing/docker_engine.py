"""A private Docker engine for the scale-out tests and benchmarks: Debian's ``dockerd`` started
on its own socket, data root and exec root (no bridge network and no iptables: containers use the
host's network only), and the run worker image built by ``deploy/docker/build-image.sh``.

The data root and the build cache live in ``ARCHIVER_DOCKER_CACHE`` (default
``/var/tmp/run-record-archiver-docker``) so that the next session reuses the base image and the
dependency layer; a second engine started while the first holds that data root gets a throw-away
one. Everything started here is stopped by its PID (containers by their id) in :meth:`stop`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

# The repository checkout (deploy/ is not part of the installed package: run from a checkout).
ROOT = Path(__file__).resolve().parents[2]
CACHE_ENV = "ARCHIVER_DOCKER_CACHE"
DEFAULT_CACHE = Path("/var/tmp/run-record-archiver-docker")
DOCKERD = Path("/usr/sbin/dockerd")
DOCKER_CLI = Path("/usr/bin/docker")  # Debian's docker.io client, same release as the engine
IMAGE = "run-record-archiver:test"
IMAGE_TITLE_LABEL = "org.opencontainers.image.title=run-record-archiver run worker"
DEPS_HINT = "bash scripts/install-docker-test-deps.sh installs Debian's docker.io"


# requests lets these replace the CA that the Docker SDK sets from DOCKER_CERT_PATH, so with either
# set, TLS to the engine fails ("unable to get local issuer certificate"): not for the daemon.
CA_BUNDLE_OVERRIDES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
TEMPLATE = ROOT / "deploy" / "dagster.postgres.yaml"
FRAGMENT = ROOT / "deploy" / "scale-out" / "docker.run_launcher.yaml"


def docker_instance_yaml(*, storage: Path, artdaqdb: Path, etc: Path, run_records: Path,
                         monitoring_s: Optional[int] = None, extra_env_vars=()) -> str:
    """The production template + the Docker fragment as an operator appends them, with the
    fragment's production paths replaced by these (the same path on the host and in the
    container); ``monitoring_s`` shortens the run-monitoring periods (tests wait seconds, not
    minutes); ``extra_env_vars`` are more names passed into the containers."""
    text = TEMPLATE.read_text() + "\n" + FRAGMENT.read_text()
    replace = {
        "/var/lib/run-record-archiver/dagster_home/storage": str(storage),
        "/var/lib/run-record-archiver/artdaqdb": str(artdaqdb),
        "/etc/run-record-archiver": str(etc),
        "/daq/run_records": str(run_records),
    }
    if monitoring_s is not None:
        replace.update({"poll_interval_seconds: 120": f"poll_interval_seconds: {monitoring_s}",
                        "free_slots_after_run_end_seconds: 60":
                            f"free_slots_after_run_end_seconds: {monitoring_s}"})
    if extra_env_vars:
        replace["      - UCONDB_WRITER_PASSWORD\n"] = "".join(
            f"      - {name}\n" for name in ("UCONDB_WRITER_PASSWORD", *extra_env_vars))
    for old, new in replace.items():
        if old not in text:
            raise AssertionError(f"{old!r} is no longer in the template or the Docker fragment")
        text = text.replace(old, new)
    return text


class NoDocker(Exception):
    """No Docker engine can be started here; the message says why and what to do."""


class DockerEngine:
    """A running private ``dockerd``: ``host`` is its ``DOCKER_HOST`` value."""

    def __init__(self, proc: subprocess.Popen, exec_root: Path, data_root: Path,
                 cache: Path, log: Path, lock_fd: Optional[int], throwaway_data: bool):
        self.proc = proc
        self.exec_root = exec_root
        self.data_root = data_root
        self.cache = cache
        self.log = log
        self.host = f"unix://{exec_root / 'docker.sock'}"
        self._lock_fd = lock_fd
        self._throwaway_data = throwaway_data
        self._client = None
        self.image_build_s: Optional[float] = None
        self.image_build_log = ""
        self.tls_port: Optional[int] = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def env(self) -> dict:
        """What a process needs to reach this engine on its Unix socket (the CLI, the image
        build)."""
        return {"DOCKER_HOST": self.host, "DOCKER": str(DOCKER_CLI)}

    def remote_env(self) -> dict:
        """How a daemon reaches a remote engine, pointed at this one: TCP on loopback with TLS
        client verification (the Docker SDK's DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH);
        the Unix socket when no TLS listener could be set up (no openssl)."""
        if self.tls_port is None:
            return {"DOCKER_HOST": self.host}
        return {"DOCKER_HOST": f"tcp://127.0.0.1:{self.tls_port}", "DOCKER_TLS_VERIFY": "1",
                "DOCKER_CERT_PATH": str(self.exec_root / "tls" / "client")}

    def client(self):
        import docker

        if self._client is None:
            self._client = docker.DockerClient(base_url=self.host, timeout=60)
        return self._client

    def build_image(self, tag: str = IMAGE) -> str:
        """Build the run worker image with the deployment recipe (deploy/docker/build-image.sh),
        keeping its base tarball and wheels in the cache; returns the tag. The build's own
        timing lines are kept in ``image_build_log``."""
        started = time.monotonic()
        out = subprocess.run(
            ["bash", str(ROOT / "deploy" / "docker" / "build-image.sh"), "--tag", tag,
             "--cache", str(self.cache / "build"), "--python", sys.executable],
            cwd=ROOT, env={**os.environ, **self.env()}, capture_output=True, text=True,
            timeout=900)
        self.image_build_s = time.monotonic() - started
        self.image_build_log = (out.stdout + out.stderr).strip()
        if out.returncode != 0:
            raise AssertionError(f"building the run worker image failed "
                                 f"({out.returncode}):\n{self.image_build_log[-4000:]}")
        self._prune_old_images()
        return tag

    def _prune_old_images(self) -> None:
        """Earlier builds of the worker image left untagged (the dependency layers stay: they
        are the build cache)."""
        client = self.client()
        for image in client.images.list(filters={"dangling": True, "label": IMAGE_TITLE_LABEL}):
            try:
                client.images.remove(image.id, noprune=False)
            except Exception:  # in use by a container of this session: left for next time
                pass

    def remove_containers(self) -> List[str]:
        """Kill and remove every container of this private engine; returns their ids."""
        removed = []
        for container in self.client().containers.list(all=True):
            try:
                container.remove(force=True)
                removed.append(container.id)
            except Exception:  # auto_remove got there first
                pass
        return removed

    def stop(self) -> None:
        """Remove the containers, stop dockerd (SIGTERM, then SIGKILL) and its containerd by
        PID, and drop the exec root (and a throw-away data root)."""
        try:
            if self.proc.poll() is None:
                try:
                    self.remove_containers()
                except Exception:
                    pass
        finally:
            if self._client is not None:
                self._client.close()
            containerd_pid = _read_pid(self.exec_root / "containerd" / "containerd.pid")
            _terminate(self.proc)
            if containerd_pid is not None and _alive(containerd_pid):
                os.kill(containerd_pid, signal.SIGTERM)
                for _ in range(100):
                    if not _alive(containerd_pid):
                        break
                    time.sleep(0.1)
                else:
                    os.kill(containerd_pid, signal.SIGKILL)
            # dockerd leaves its network namespace mount (netns/default) behind when it stops.
            _unmount_under(self.exec_root)
            shutil.rmtree(self.exec_root, ignore_errors=True)
            if self._throwaway_data:
                _unmount_under(self.data_root)
                shutil.rmtree(self.data_root, ignore_errors=True)
            if self._lock_fd is not None:
                os.close(self._lock_fd)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _read_pid(path: Path) -> Optional[int]:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _unmount_under(directory: Path) -> None:
    """Lazily unmount whatever is still mounted below ``directory`` (deepest first)."""
    prefix = str(directory).rstrip("/") + "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    points = [line.split()[4] for line in lines if len(line.split()) > 4]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, timeout=30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours is not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _terminate(proc: subprocess.Popen, timeout: float = 30) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)


def make_tls(directory: Path) -> Optional[dict]:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate (in
    ``client/`` as ca.pem, cert.pem, key.pem: the layout DOCKER_CERT_PATH expects); the
    dockerd arguments to require it. None when openssl is missing."""
    if shutil.which("openssl") is None:
        return None
    try:
        return _make_tls(directory)
    except (subprocess.SubprocessError, OSError):
        return None


def _make_tls(directory: Path) -> dict:
    client = directory / "client"
    client.mkdir(parents=True)
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n"
                                          "extendedKeyUsage=serverAuth\n")
    (directory / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(directory, "req", "-x509", *key, "-keyout", "ca-key.pem", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=archiver test engine CA")
    for name, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=archiver daemon")):
        _openssl(directory, "req", *key, "-keyout", f"{name}-key.pem", "-out", f"{name}.csr",
                 "-subj", subject)
        _openssl(directory, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey",
                 "ca-key.pem", "-CAcreateserial", "-out", f"{name}-cert.pem", "-days", "2",
                 "-extfile", f"{name}.ext")
    shutil.copy(directory / "ca.pem", client / "ca.pem")
    shutil.copy(directory / "client-cert.pem", client / "cert.pem")
    shutil.copy(directory / "client-key.pem", client / "key.pem")
    return {"--tlsverify": None, "--tlscacert": directory / "ca.pem",
            "--tlscert": directory / "server-cert.pem", "--tlskey": directory / "server-key.pem"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def _data_root(cache: Path):
    """The cached data root when no other engine holds it (flock), else a throw-away one."""
    cache.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache / "data-root.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return cache / "data-root", fd, False
    except BlockingIOError:
        os.close(fd)
        return Path(tempfile.mkdtemp(prefix="data-root-", dir=cache)), None, True


def start_private_dockerd(timeout: float = 60) -> DockerEngine:
    """Start Debian's dockerd on a private socket; raise NoDocker (saying why) when it cannot."""
    if os.geteuid() != 0:
        raise NoDocker("dockerd needs root and the tests do not run as root")
    if not DOCKERD.is_file() or not DOCKER_CLI.is_file():
        raise NoDocker(f"no {DOCKERD} / {DOCKER_CLI}: {DEPS_HINT}")
    cache = cache_dir()
    data_root, lock_fd, throwaway = _data_root(cache)
    run_dir = Path("/run") if os.access("/run", os.W_OK) else Path(tempfile.gettempdir())
    exec_root = Path(tempfile.mkdtemp(prefix="rra-dockerd-", dir=run_dir))  # short: socket paths
    config = exec_root / "daemon.json"
    config.write_text(json.dumps({}))  # never the machine's /etc/docker/daemon.json
    log = exec_root / "dockerd.log"
    args = [str(DOCKERD), "--host", f"unix://{exec_root / 'docker.sock'}",
            "--data-root", str(data_root), "--exec-root", str(exec_root),
            "--pidfile", str(exec_root / "dockerd.pid"), "--config-file", str(config),
            # Host networking only: no docker0 bridge (whose private-range addresses tests here
            # must never use), no iptables rules, no forwarding or masquerading.
            "--bridge", "none", "--iptables=false", "--ip-forward=false", "--ip-masq=false",
            "--storage-driver", "overlay2"]
    # A second listener as a remote engine would have one: TCP (loopback) with TLS client
    # verification, for the daemon's launcher.
    tls = make_tls(exec_root / "tls")
    tls_port = None
    if tls is not None:
        tls_port = _free_port()
        args += ["--host", f"tcp://127.0.0.1:{tls_port}"]
        for flag, value in tls.items():
            args += [flag] if value is None else [flag, str(value)]
    proc = subprocess.Popen(args, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True,
                            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"})
    engine = DockerEngine(proc, exec_root, data_root, cache, log, lock_fd, throwaway)
    engine.tls_port = tls_port
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise NoDocker(f"dockerd exited at start ({proc.returncode}): "
                               f"{engine.log_tail(1500)}")
            if (exec_root / "docker.sock").exists():
                try:
                    engine.client().ping()
                    break
                except Exception:
                    pass
            if time.monotonic() > deadline:
                raise NoDocker(f"dockerd did not answer within {timeout:.0f} s: "
                               f"{engine.log_tail(1500)}")
            time.sleep(0.2)
        engine.remove_containers()  # left over in the cached data root by a killed session
    except BaseException:
        engine.stop()
        raise
    return engine
