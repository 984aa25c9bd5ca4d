"""UconDB client against the local UconDB-compatible server over real loopback HTTP."""

import hashlib
import time
import zlib

import pytest
import requests
from requests.auth import HTTPDigestAuth

from archiver_resources.errors import DuplicateKeyError, UconDBError
from archiver_resources.ucondb.client import UconDBClient, VersionMeta, run_of_key


def make_client(server, **overrides):
    options = dict(user=server.user, password=server.password, timeout=5.0, retries=2,
                   backoff_factor=0.01)
    options.update(overrides)
    return UconDBClient(server.base_url, server.folder, "configuration", **options)


def test_put_then_get_returns_exact_bytes_and_metadata(ucondb_client):
    data = "run 1001 blob ✓\r\n".encode("utf-8") + bytes(range(256))
    meta = ucondb_client.put_blob(1001, data)
    assert isinstance(meta, VersionMeta)
    assert meta.key == "1001" and meta.tags == ("1001",)
    assert meta.data_size == len(data) and meta.adler32 == zlib.adler32(data)
    assert meta.folder == "public.sbnd_runs" and meta.object == "configuration"
    blob = ucondb_client.get_blob(1001)
    assert blob.data == data
    assert blob.md5 == hashlib.md5(data).hexdigest()
    assert blob.meta == meta


def test_server_version_and_create_folder(ucondb_server):
    with make_client(ucondb_server) as client:
        assert client.server_version() == "3.9.7"
    with UconDBClient(ucondb_server.base_url, "new_folder", "configuration",
                      user=ucondb_server.user, password=ucondb_server.password) as client:
        client.create_folder()
        client.create_folder()  # idempotent
        client.put_blob(1, b"x")  # a put after create_folder uses the other realm
        assert client.existing_runs() == {1}


def test_existing_runs_ignores_null_and_non_numeric_keys(ucondb_server, ucondb_client):
    assert ucondb_client.existing_runs() == set()  # object does not exist yet (404)
    ucondb_client.put_blob(7, b"seven")
    ucondb_client.put_blob(12, b"twelve")
    auth = HTTPDigestAuth(ucondb_server.user, ucondb_server.password)
    url = f"{ucondb_server.base_url}/data/sbnd_runs/configuration"
    for params in ({}, {"key": "calib-A"}, {"key": "0123"}, {"key": "12a"}):
        assert requests.post(url, params=params, data=b"other", auth=auth).status_code == 200
    assert ucondb_client.existing_runs() == {7, 12}


def test_existing_runs_of_unknown_folder_is_an_error(ucondb_server):
    with UconDBClient(ucondb_server.base_url, "no_such_folder", "configuration") as client:
        with pytest.raises(UconDBError) as info:
            client.existing_runs()
    assert info.value.status == 404


def test_duplicate_key_raises_duplicate_key_error_without_retry(faulty_ucondb):
    with make_client(faulty_ucondb, retries=3) as client:
        client.put_blob(5, b"first")
        faulty_ucondb.faults.reset()
        started = time.monotonic()
        with pytest.raises(DuplicateKeyError) as info:
            client.put_blob(5, b"second")
        elapsed = time.monotonic() - started
        assert "already exists" in str(info.value) and "run 5" in str(info.value)
        assert info.value.status == 500 and not info.value.retryable
        # the digest state is cached after the first put: exactly one POST, no retries
        assert faulty_ucondb.faults.count(method="POST") == 1
        assert elapsed < 1.0
        assert client.get_blob(5).data == b"first"  # never overwritten


def test_override_moves_the_key_for_explicit_new_version(ucondb_client):
    first = ucondb_client.put_blob(9, b"old")
    second = ucondb_client.put_blob(9, b"new", override=True)
    assert second.id != first.id and second.key == "9"
    assert ucondb_client.get_blob(9).data == b"new"


def test_wrong_password_is_reported_without_the_password(ucondb_server):
    secret = "wrong-s3cret-value"
    with make_client(ucondb_server, password=secret) as client:
        with pytest.raises(UconDBError) as info:
            client.put_blob(3, b"data")
        assert secret not in repr(client)
    error = info.value
    assert error.status == 401 and not error.retryable
    assert secret not in str(error) and secret not in repr(error)
    assert ucondb_server.user not in str(error)
    assert "authentication failed" in str(error) and "run 3" in str(error)


def test_client_repr_never_shows_password(ucondb_server):
    client = make_client(ucondb_server)
    assert ucondb_server.password not in repr(client)
    assert ucondb_server.password not in repr(client.__dict__.get("_put_auth"))
    client.close()


def test_get_unknown_run_is_404(ucondb_client):
    ucondb_client.put_blob(1, b"one")
    with pytest.raises(UconDBError) as info:
        ucondb_client.get_blob(2)
    assert info.value.status == 404 and not info.value.retryable
    assert "Version not found" in str(info.value) and "run 2" in str(info.value)
    assert ucondb_client.version_meta(2) is None
    assert ucondb_client.version_meta(1).key == "1"


def test_500_is_retried_then_succeeds(faulty_ucondb):
    with make_client(faulty_ucondb, retries=3) as client:
        client.put_blob(1, b"warm up digest state")
        faulty_ucondb.faults.reset()
        faulty_ucondb.faults.fail_next(2, status=500, body="database is locked",
                                       path_contains="/data/")
        meta = client.put_blob(2, b"payload")
        assert meta.key == "2"
        assert faulty_ucondb.faults.count(method="POST") == 3


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried_by_urllib3(faulty_ucondb, status):
    with make_client(faulty_ucondb, retries=2) as client:
        faulty_ucondb.faults.fail_next(2, status=status, path_contains="/data/")
        client.put_blob(4, b"x")  # first put: 2 faults, then 401 challenge, then success
        assert client.get_blob(4).data == b"x"


def test_persistent_5xx_gives_up_after_retries(faulty_ucondb):
    with make_client(faulty_ucondb, retries=2) as client:
        faulty_ucondb.faults.fail_next(100, status=500, body="boom: database unavailable",
                                       path_contains="/version")
        with pytest.raises(UconDBError) as info:
            client.server_version()
        assert faulty_ucondb.faults.count(path_contains="/version") == 3
    assert info.value.status == 500 and info.value.retryable
    assert "HTTP 500: boom: database unavailable" in str(info.value)
    assert "<html>" not in str(info.value)


def test_4xx_is_not_retried(faulty_ucondb):
    with make_client(faulty_ucondb, retries=3) as client:
        faulty_ucondb.faults.fail_next(5, status=400, path_contains="/data/")
        with pytest.raises(UconDBError) as info:
            client.get_blob(1)
    assert info.value.status == 400
    assert faulty_ucondb.faults.count(path_contains="/data/") == 1


def test_timeout_really_applies(faulty_ucondb):
    timeout, retries = 0.3, 1
    with make_client(faulty_ucondb, timeout=timeout, retries=retries) as client:
        faulty_ucondb.faults.stall_next(10, 3.0, path_contains="/version")
        started = time.monotonic()
        with pytest.raises(UconDBError) as info:
            client.server_version()
        elapsed = time.monotonic() - started
    assert info.value.retryable and "no answer within 0.3 s" in str(info.value)
    assert elapsed < timeout * (retries + 1) + 1.0
    assert faulty_ucondb.faults.count(path_contains="/version") == retries + 1


def test_connection_refused_is_retryable_error(tmp_path):
    import socket
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with UconDBClient(f"http://u:pw-in-url@127.0.0.1:{port}/app", "f", "o", retries=1,
                      backoff_factor=0.01, timeout=1) as client:
        assert "pw-in-url" not in repr(client)
        with pytest.raises(UconDBError) as info:
            client.existing_runs()
    assert info.value.retryable and "cannot reach" in str(info.value)
    assert "pw-in-url" not in str(info.value)


def test_keys_are_percent_encoded(ucondb_server):
    with UconDBClient(ucondb_server.base_url, "sbnd_runs", "odd name&x#+ é",
                      user=ucondb_server.user, password=ucondb_server.password) as client:
        client.put_blob(77, b"odd")
        assert client.get_blob(77).data == b"odd"
        assert client.existing_runs() == {77}
        assert client.version_meta(77).object == "odd name&x#+ é"


def test_run_of_key_accepts_exact_decimal_only():
    assert run_of_key("1234") == 1234
    for key in (None, "", "abc", "0123", "+5", "-1", "1.0", "١٢"):
        assert run_of_key(key) is None


def test_object_names_with_equals_use_the_query_form(ucondb_server):
    with UconDBClient(ucondb_server.base_url, "sbnd_runs", "a=b/c",
                      user=ucondb_server.user, password=ucondb_server.password) as client:
        client.put_blob(78, b"eq")
        assert client.get_blob(78).data == b"eq"
        assert client.version_meta(78).object == "a=b/c"
        assert client.existing_runs() == {78}


def test_put_from_a_file_streams_it_and_blob_digest_hashes_the_download(ucondb_server, tmp_path):
    data = bytes(range(256)) * 9000 + "✓ end\n".encode("utf-8")  # > 2 MB: several chunks
    path = tmp_path / "blob"
    path.write_bytes(data)
    # a fresh client: the first POST meets the digest challenge, so the file is sent twice
    with make_client(ucondb_server) as client, open(path, "rb") as body:
        meta = client.put_blob(77, body)
        assert meta.data_size == len(data) and meta.adler32 == zlib.adler32(data)
        assert client.get_blob(77).data == data
        digest = client.blob_digest(77, chunk_size=4096)
        assert digest.md5 == hashlib.md5(data).hexdigest()
        assert (digest.size, digest.adler32) == (len(data), zlib.adler32(data))
        assert digest.meta == meta


def test_a_file_body_is_sent_again_whole_on_a_retried_500(faulty_ucondb, tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"payload from a file\n" * 1000)
    with make_client(faulty_ucondb, retries=3) as client:
        client.put_blob(1, b"warm up digest state")
        faulty_ucondb.faults.reset()
        faulty_ucondb.faults.fail_next(2, status=500, body="database is locked",
                                       path_contains="/data/")
        with open(path, "rb") as body:
            meta = client.put_blob(2, body)
        assert faulty_ucondb.faults.count(method="POST") == 3
        assert meta.data_size == path.stat().st_size
        assert client.get_blob(2).data == path.read_bytes()


def test_put_blob_refuses_text(ucondb_client):
    with pytest.raises(TypeError):
        ucondb_client.put_blob(3, "not bytes")


def test_blob_digest_of_unknown_run_is_404(ucondb_client):
    ucondb_client.put_blob(1, b"one")
    with pytest.raises(UconDBError) as info:
        ucondb_client.blob_digest(2)
    assert info.value.status == 404 and not info.value.retryable
    assert "Version not found" in str(info.value) and "run 2" in str(info.value)


def test_a_file_body_survives_gateway_retries_and_the_digest_challenge(faulty_ucondb, tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"gateway retried file body\n" * 5000)
    with make_client(faulty_ucondb, retries=2) as client:
        faulty_ucondb.faults.fail_next(2, status=502, path_contains="/data/")
        with open(path, "rb") as body:
            meta = client.put_blob(4, body)  # 2 faults, then the 401 challenge, then success
        assert meta.data_size == path.stat().st_size
        assert client.get_blob(4).data == path.read_bytes()
