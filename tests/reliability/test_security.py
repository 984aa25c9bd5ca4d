"""Security of the local UconDB server and of temporary files: loopback by default, digest auth for
every write, oversized and malformed requests rejected without bringing the server down; temporary
files and exports private and cleaned up on success, failure and SIGTERM."""

import os
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest
import requests
from requests.auth import HTTPBasicAuth, HTTPDigestAuth

from archiver_resources.archiving import import_run
from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.samples import generate_run_records
from archiver_resources.ucondb.server import build_parser
from archiver_resources.ucondb.testing import start_local_ucondb
from tests.support import FOLDER
from tests.reliability.conftest import OLD, import_settings, leftover_files, ucondb_versions

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def small_server(tmp_path):
    server = start_local_ucondb(tmp_path / "ucondb", folder=FOLDER, max_body_bytes=4096)
    try:
        yield server
    finally:
        server.stop()


def put_url(server, key="1"):
    return (f"{server.base_url}/data/{FOLDER}/configuration",
            {"key": key, "tag": key, "override": "no", "full_meta": "yes"})


def alive(server) -> bool:
    return requests.get(server.base_url + "/version", timeout=5).status_code == 200


def test_server_binds_loopback_by_default(small_server):
    assert build_parser().parse_args([]).host == "127.0.0.1"
    assert small_server.host == "127.0.0.1"


@pytest.mark.parametrize("auth", [None, "basic", "wrong-password", "wrong-user"])
def test_writes_need_digest_auth(small_server, auth):
    url, params = put_url(small_server)
    credentials = {None: None,
                   "basic": HTTPBasicAuth(small_server.user, small_server.password),
                   "wrong-password": HTTPDigestAuth(small_server.user, "not-the-password"),
                   "wrong-user": HTTPDigestAuth("intruder", small_server.password)}[auth]
    reply = requests.post(url, params=params, data=b"blob", auth=credentials, timeout=5)
    assert reply.status_code == 401
    if auth is None:
        assert reply.headers.get("WWW-Authenticate", "").startswith("Digest ")
    folder = requests.get(small_server.base_url + "/create_folder",
                          params={"folder": "intruders"}, auth=credentials, timeout=5)
    assert folder.status_code == 401
    assert ucondb_versions(small_server) == {}
    good = requests.post(url, params=params, data=b"blob", timeout=5,
                         auth=HTTPDigestAuth(small_server.user, small_server.password))
    assert good.status_code == 200 and ucondb_versions(small_server) == {"1": 1}


def raw(server, payload: bytes, read_timeout=5.0, half_close=True) -> bytes:
    with socket.create_connection((server.host, server.port), timeout=read_timeout) as sock:
        sock.sendall(payload)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (socket.timeout, ConnectionResetError):
            pass
    return b"".join(chunks)


MALFORMED = {
    "garbage-request-line": b"GARBAGE\r\n\r\n",
    "binary-noise": bytes(range(256)) * 4,
    "unknown-method": b"BREW /app/data/f/o?key=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad-content-length": b"POST /app/data/f/o?key=1 HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "negative-content-length": b"POST /app/data/f/o?key=1 HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Length: -5\r\n\r\n",
    "bad-percent-encoding": b"GET /app/versions?folder=%ff%fe&object=%zz HTTP/1.1\r\nHost: x\r\n\r\n",
    "truncated-body": b"POST /app/data/f/o?key=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab",
    "nul-in-path": b"GET /app/versions\x00/x HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_requests_are_rejected_and_the_server_stays_up(small_server, name):
    reply = raw(small_server, MALFORMED[name])
    if reply:
        status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0
        assert 400 <= status < 500 or status == 0, reply[:200]
    assert alive(small_server)
    assert ucondb_versions(small_server) == {}


def test_oversized_upload_is_refused_before_reading_it(small_server):
    url, params = put_url(small_server)
    auth = HTTPDigestAuth(small_server.user, small_server.password)
    too_big = requests.post(url, params=params, data=b"x" * 5000, auth=auth, timeout=10)
    assert too_big.status_code == 413
    # A client announcing a huge body is answered at once, without the bytes being sent.
    reply = raw(small_server, b"POST " + url.split(str(small_server.port), 1)[1].encode()
                + b"?key=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
                half_close=False)
    assert reply.split(b" ", 2)[1] in (b"413", b"401"), reply[:200]
    assert alive(small_server) and ucondb_versions(small_server) == {}


def test_oversized_headers_are_refused(small_server):
    payload = (b"GET /app/version HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * (8 << 20)
               + b"\r\n\r\n")
    reply, reset = b"", False
    with socket.create_connection((small_server.host, small_server.port), timeout=20) as sock:
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                reply += chunk
        except (ConnectionResetError, BrokenPipeError):
            reset = True  # refused (and closed) before the whole header was even sent
    assert reset or reply.startswith(b"HTTP/1.1 4"), reply[:100]
    assert not reply.startswith(b"HTTP/1.1 2"), reply[:100]
    assert alive(small_server)


# ---- temporary files and exports ---------------------------------------------------------------

def test_exported_blob_file_is_private(tmp_path):
    from datetime import datetime, timezone

    from archiver_resources.blob import pack_to_file

    old = os.umask(0o022)
    try:
        packed = pack_to_file(tmp_path / "7.blob", 7, {"a.fcl": "a: 1\n"},
                              datetime(2024, 1, 1, tzinfo=timezone.utc))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(packed.path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["7.blob"]


def test_bulk_tool_staging_directories_are_private_and_removed(tmp_path, monkeypatch):
    from tests.stores.conftest import install_fake_tools

    bin_dir = tmp_path / "bin"
    install_fake_tools(bin_dir, tmp_path / "tools.log", monkeypatch)
    os.rename(bin_dir / "bulkloader", bin_dir / "bulkloader.real")
    seen = tmp_path / "seen.txt"
    # Record the mode of the staging directory given with -p, then run the real fake.
    (bin_dir / "bulkloader").write_text(
        "#!/bin/bash\nargs=(\"$@\")\nfor ((i=0; i<${#args[@]}; i++)); do "
        "if [ \"${args[$i]}\" = -p ]; then "
        f"stat -c '%a %n' \"${{args[$((i+1))]}}\" >> {seen}; fi; done\n"
        f"exec {bin_dir / 'bulkloader.real'} \"$@\"\n")
    (bin_dir / "bulkloader").chmod(0o755)
    generate_run_records(tmp_path / "records", [9], profile="small", mtime=OLD)
    db = open_artdaqdb(f"filesystemdb://{tmp_path / 'db'}", use_tools=True, tool_timeout=30)
    import_run(9, tmp_path / "records" / "9", db, import_settings())
    mode, path = seen.read_text().split()[:2]
    assert mode == "700", (mode, path)
    assert not os.path.exists(path), f"staging directory {path} left behind"


def sigterm_mid_write(tmp_path):
    """Import run 11 in a child that gets SIGTERM during its 5th document write; returns the
    filesystemdb root and the temp/journal files left when the child is gone."""
    generate_run_records(tmp_path / "records", [11, 12], profile="small", mtime=OLD)
    root = tmp_path / "db"
    # The child starts with SIGTERM's default disposition, as a real archiver does. (An ignored
    # signal is inherited across exec, and Dagster's in-process execution leaves SIGTERM with
    # the SIGINT handler it found: in a test process started in the background, SIGINT is
    # ignored, so SIGTERM ends up ignored too once any earlier test ran a job in process.)
    code = f"""
import os, signal, sys
signal.signal(signal.SIGTERM, signal.SIG_DFL)
sys.path.insert(0, {REPO!r})
from archiver_resources.artdaqdb.filesystem import FilesystemArtdaqDB
from archiver_resources.artdaqdb import open_artdaqdb
from archiver_resources.archiving import import_run
from tests.reliability.conftest import import_settings
real = FilesystemArtdaqDB._stage
seen = [0]
def _stage(self, stage):
    if stage.startswith("document:"):
        seen[0] += 1
        if seen[0] == 5:
            os.kill(os.getpid(), signal.SIGTERM)
            import time; time.sleep(5)
    return real(self, stage)
FilesystemArtdaqDB._stage = _stage
db = open_artdaqdb("filesystemdb://{root}")
import_run(11, {str(tmp_path / 'records' / '11')!r}, db, import_settings())
"""
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120, cwd=REPO)
    assert child.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM, 1), child.stderr[-2000:]
    return root, leftover_files(root)


def test_after_sigterm_mid_write_the_next_writer_removes_every_leftover(tmp_path):
    root, _ = sigterm_mid_write(tmp_path)
    db = open_artdaqdb(f"filesystemdb://{root}")
    assert db.archived_runs() == {}  # the interrupted insert is invisible
    import_run(12, tmp_path / "records" / "12", db, import_settings())  # the next writer
    assert leftover_files(root) == [], leftover_files(root)
    assert sorted(db.archived_runs()) == [12]


def test_sigterm_mid_write_cleans_up_before_exit(tmp_path):
    # The write is rolled back before the process ends, and it still ends by SIGTERM.
    root, left = sigterm_mid_write(tmp_path)
    assert left == []
    assert open_artdaqdb(f"filesystemdb://{root}").archived_runs() == {}
