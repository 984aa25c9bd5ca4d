"""The UconDB client against the quirks of the real server (3.9.7) seen on a deployment:

1. a get by key of an object with no version yet answers 500 ``'NoneType' object has no
   attribute 'getVersion'``: read as "not found", never retried (only that exact text);
2. a chunked request body is stored as an empty blob: every upload carries Content-Length
   (seen on the wire with a recording server, digest challenge and retries included);
3. a missing folder answers 404 ``Folder not found``: the error names the folder and says how
   to create it; the opt-in creates it and sends the upload once more.
"""

import hashlib
import io
import logging

import pytest

from archiver_resources.errors import UconDBError
from archiver_resources.ucondb.client import MISSING_OBJECT_REASON, SizedFileBody, UconDBClient
from archiver_resources.ucondb.testing import start_local_ucondb
from tests.ucondb.recording import RecordingServer, Reply, digest_then_store

FOLDER = "sbnd_runs"


def recording_client(server: RecordingServer, **options) -> UconDBClient:
    settings = dict(user="writer", password="pw", timeout=5.0, retries=2, backoff_factor=0.01)
    settings.update(options)
    return UconDBClient(server.base_url, FOLDER, "configuration", **settings)


def local_client(server, folder=FOLDER, **options) -> UconDBClient:
    settings = dict(user=server.user, password=server.password, timeout=5.0, retries=2,
                    backoff_factor=0.01)
    settings.update(options)
    return UconDBClient(server.base_url, folder, "configuration", **settings)


@pytest.fixture
def recorder():
    with RecordingServer() as server:
        yield server


# ---- 2. every upload carries Content-Length ---------------------------------------------------

PAYLOAD = bytes(range(256)) * 40 + "✓ end\n".encode("utf-8")


def file_at(tmp_path, content: bytes, position: int):
    path = tmp_path / "blob"
    path.write_bytes(content)
    handle = open(path, "rb")
    handle.seek(position)
    return handle


BODIES = {
    "bytes": lambda tmp: (PAYLOAD, PAYLOAD),
    "empty bytes": lambda tmp: (b"", b""),
    "bytearray": lambda tmp: (bytearray(PAYLOAD), PAYLOAD),
    "file": lambda tmp: (file_at(tmp, PAYLOAD, 0), PAYLOAD),
    "file from an offset": lambda tmp: (file_at(tmp, PAYLOAD, 1000), PAYLOAD[1000:]),
    "empty file": lambda tmp: (file_at(tmp, b"", 0), b""),
    "file at its end": lambda tmp: (file_at(tmp, PAYLOAD, len(PAYLOAD)), b""),
    "in-memory file": lambda tmp: (io.BytesIO(PAYLOAD), PAYLOAD),
    "empty in-memory file": lambda tmp: (io.BytesIO(b""), b""),
}


def assert_sized(uploads, expected: bytes) -> None:
    assert uploads, "no upload reached the server"
    for request in uploads:
        assert not request.chunked and "transfer-encoding" not in request.headers
        assert request.content_length == len(expected)
        assert request.body == expected


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_every_upload_carries_content_length_through_the_digest_challenge(recorder, tmp_path,
                                                                          kind):
    body, expected = BODIES[kind](tmp_path)
    with recording_client(recorder) as client:
        meta = client.put_blob(7, body)
    uploads = recorder.uploads()
    # a fresh client: the first POST meets the challenge, the second carries the credentials
    assert [r.headers.get("authorization", "")[:6] for r in uploads] == ["", "Digest"]
    assert_sized(uploads, expected)
    assert meta.data_size == len(expected)
    if hasattr(body, "close"):
        body.close()


@pytest.mark.parametrize("kind", ["bytes", "file", "file from an offset"])
def test_retries_after_a_500_and_a_gateway_error_send_the_same_sized_body(recorder, tmp_path,
                                                                          kind):
    body, expected = BODIES[kind](tmp_path)
    recorder.push(Reply(500, b"database is locked"), Reply(502, b"Bad Gateway"))
    with recording_client(recorder) as client:
        client.put_blob(8, body)
    uploads = recorder.uploads()
    # 500 (retried by the client), 502 (retried by urllib3), 401 challenge, stored
    assert [r.headers.get("authorization", "")[:6] for r in uploads] == ["", "", "", "Digest"]
    assert_sized(uploads, expected)


def test_an_override_put_carries_content_length(recorder, tmp_path):
    body, expected = BODIES["file"](tmp_path)
    with recording_client(recorder) as client:
        client.put_blob(9, body, override=True)
    assert all(r.query["override"] == ["yes"] for r in recorder.uploads())
    assert_sized(recorder.uploads(), expected)


def test_a_file_longer_than_measured_sends_only_the_measured_bytes(recorder, tmp_path):
    """The length is measured once; the body never outgrows its Content-Length header."""
    path = tmp_path / "growing"
    path.write_bytes(b"a" * 100)
    with recording_client(recorder) as client, open(path, "rb") as body:
        sized = SizedFileBody(body)
        with open(path, "ab") as grow:
            grow.write(b"b" * 50)
        assert len(sized) == 100 and sized.read() == b"a" * 100 and sized.read() == b""
        sized.seek(0)
        client.put_blob(10, body)  # measured again at put time: 150 bytes
    assert_sized(recorder.uploads(), b"a" * 100 + b"b" * 50)


def test_the_archiver_file_upload_reaches_the_local_server_whole(ucondb_server, tmp_path):
    """The pipeline's path (a packed file streamed up) against the local server, which refuses
    chunked bodies (411), including an empty file."""
    for run, content in ((1, PAYLOAD), (2, b"")):
        path = tmp_path / f"{run}.blob"
        path.write_bytes(content)
        with local_client(ucondb_server) as client, open(path, "rb") as body:
            client.put_blob(run, body)
            assert client.blob_digest(run).md5 == hashlib.md5(content).hexdigest()


# ---- 1. a get of an object without versions --------------------------------------------------

MISSING_OBJECT_BODIES = {
    "plain text": MISSING_OBJECT_REASON.encode(),
    "error page": ("<html><body><h2>Application error</h2><h3>" + MISSING_OBJECT_REASON
                   + "</h3><pre>Traceback (most recent call last):\n  File \"ServerApp.py\", "
                   "line 420, in data\nAttributeError: " + MISSING_OBJECT_REASON
                   + "</pre></body></html>").encode(),
    "escaped error page": ("<html><body><h2>Application error</h2><h3>&#x27;NoneType&#x27; "
                           "object has no attribute &#x27;getVersion&#x27;</h3><pre>…</pre>"
                           "</body></html>").encode(),
}


def always(reply: Reply):
    return lambda request: reply


@pytest.mark.parametrize("body", sorted(MISSING_OBJECT_BODIES))
def test_the_missing_object_500_is_not_found_without_retries(body):
    reply = Reply(500, MISSING_OBJECT_BODIES[body])
    with RecordingServer(always(reply)) as server, recording_client(server, retries=3) as client:
        with pytest.raises(UconDBError) as info:
            client.get_blob(42)
        assert len(server.requests) == 1
        error = info.value
        assert error.status == 404 and not error.retryable
        assert "run 42" in str(error) and "no version" in str(error)
        assert "'configuration'" in str(error)
        with pytest.raises(UconDBError) as streamed:
            client.blob_digest(42)
        assert streamed.value.status == 404 and len(server.requests) == 2
        assert client.version_meta(42) is None
        assert len(server.requests) == 3


@pytest.mark.parametrize("body", [
    b"'NoneType' object has no attribute 'getData'",
    b"'NoneType' object has no attribute 'getVersion' (while reading)",
    b"AttributeError: 'NoneType' object has no attribute 'getVersionX'",
    b"<html><body><h3>database is locked</h3><pre>AttributeError: 'NoneType' object has no "
    b"attribute 'getVersion'</pre></body></html>",
    b"",
])
def test_other_500s_are_still_retried(body):
    with RecordingServer(always(Reply(500, body))) as server, \
            recording_client(server, retries=2) as client:
        with pytest.raises(UconDBError) as info:
            client.get_blob(42)
        assert len(server.requests) == 3  # the first attempt and 2 retries
        assert info.value.status == 500 and info.value.retryable
        with pytest.raises(UconDBError):
            client.version_meta(42)


def test_a_404_for_the_key_and_the_missing_object_500_give_the_same_outcome(faulty_ucondb):
    with local_client(faulty_ucondb, retries=3) as client:
        with pytest.raises(UconDBError) as before:  # the object has no version yet: a 500
            client.get_blob(5)
        assert faulty_ucondb.faults.count(method="GET") == 1  # not retried
        assert client.version_meta(5) is None
        client.put_blob(6, b"six")
        with pytest.raises(UconDBError) as after:  # the object exists, the key does not: 404
            client.get_blob(5)
    assert before.value.status == after.value.status == 404
    assert not before.value.retryable and not after.value.retryable


# ---- 3. a missing folder ---------------------------------------------------------------------

def test_a_put_into_a_missing_folder_names_it_and_says_how_to_create_it(ucondb_server):
    with local_client(ucondb_server, folder="no_such_runs") as client:
        with pytest.raises(UconDBError) as info:
            client.put_blob(3, b"three")
    text = str(info.value)
    assert info.value.status == 404 and not info.value.retryable
    assert "'no_such_runs'" in text and "run 3" in text and "Folder not found" in text
    assert "ucon_db.create_folder: true" in text and "--create-ucondb-folder" in text
    assert "administrator" in text
    assert ucondb_server.password not in text
    assert ucondb_server.storage.folder("no_such_runs") is None  # nothing created


def test_listing_a_missing_folder_names_it_too(ucondb_server):
    with local_client(ucondb_server, folder="no_such_runs") as client:
        with pytest.raises(UconDBError) as info:
            client.existing_runs()
    assert info.value.status == 404 and "'no_such_runs'" in str(info.value)
    assert "ucon_db.create_folder" in str(info.value)


def test_the_opt_in_creates_the_folder_once_and_sends_the_upload_again(ucondb_server, tmp_path,
                                                                       caplog):
    path = tmp_path / "blob"
    path.write_bytes(PAYLOAD)
    caplog.set_level(logging.INFO, logger="archiver_resources.ucondb.client")
    with local_client(ucondb_server, folder="new_runs", create_missing_folder=True) as client:
        with open(path, "rb") as body:
            meta = client.put_blob(11, body)
        client.put_blob(12, b"twelve")  # the folder exists now: no second creation
        assert client.get_blob(11).data == PAYLOAD and meta.folder == "public.new_runs"
        assert client.existing_runs() == {11, 12}
    creating = [r for r in caplog.records if "creating it" in r.getMessage()]
    assert len(creating) == 1 and creating[0].levelno == logging.WARNING
    assert "'new_runs'" in creating[0].getMessage() and "run 11" in creating[0].getMessage()
    assert ucondb_server.password not in caplog.text


def test_the_opt_in_reports_a_folder_it_cannot_create(ucondb_server):
    with local_client(ucondb_server, folder="new_runs", password="wrong-password",
                      create_missing_folder=True) as client:
        with pytest.raises(UconDBError) as info:
            client.put_blob(13, b"x")
    text = str(info.value)
    assert "'new_runs'" in text and "creating it failed" in text and "administrator" in text
    assert info.value.status == 401 and "wrong-password" not in text
    assert ucondb_server.storage.folder("new_runs") is None


def test_the_opt_in_retries_once_only(tmp_path):
    """Created, yet the put still finds no folder (e.g. another namespace): one creation, one
    retry, then the error naming the folder."""
    folder_missing = Reply(404, b"Folder not found")

    def script(request):
        if request.method == "POST":
            return folder_missing
        return digest_then_store(request)

    with RecordingServer(script) as server, \
            recording_client(server, create_missing_folder=True) as client:
        with pytest.raises(UconDBError) as info:
            client.put_blob(14, b"fourteen")
        assert [(r.method, r.path) for r in server.requests] == [
            ("POST", "/app/data/sbnd_runs/configuration"),
            ("GET", "/app/create_folder"), ("GET", "/app/create_folder"),
            ("POST", "/app/data/sbnd_runs/configuration")]
        assert_sized(server.uploads(), b"fourteen")
    assert info.value.status == 404 and "'sbnd_runs'" in str(info.value)


def test_without_the_opt_in_a_missing_folder_is_never_created(tmp_path):
    with start_local_ucondb(tmp_path / "ucondb", folder=None) as server:
        with local_client(server, folder="absent") as client:
            for _ in range(2):
                with pytest.raises(UconDBError):
                    client.put_blob(1, b"x")
        assert server.storage.folders() == []
