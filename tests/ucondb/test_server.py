"""The local UconDB server reproduces the documented UconDB 3.9.7 API (raw HTTP with requests)."""

import hashlib
import json
import os
import re
import socket
import time
import zlib

import pytest
import requests
from requests.auth import HTTPDigestAuth

from archiver_resources.ucondb import digest
from archiver_resources.ucondb.server import parse_time
from archiver_resources.ucondb.testing import start_local_ucondb

META_FIELDS = ["object", "folder", "tv", "tr", "tags", "adler32", "uadler32", "data_size",
               "data_key", "id", "key"]


@pytest.fixture
def srv(ucondb_server):
    return ucondb_server


@pytest.fixture
def auth(srv):
    return HTTPDigestAuth(srv.user, srv.password)


def put(srv, auth, data, obj="configuration", **params):
    params.setdefault("full_meta", "yes")
    response = requests.post(f"{srv.base_url}/data/sbnd_runs/{obj}", params=params, data=data,
                             auth=auth)
    assert response.status_code == 200, response.text
    return response.json()


# ---- service endpoints and headers ----

def test_version_probe_hello_and_common_headers(srv):
    response = requests.get(f"{srv.base_url}/version")
    assert response.status_code == 200 and response.text == "3.9.7"
    assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert response.headers["Connection"] == "close"
    assert response.headers["X-WebPie-Request-Id"]
    probe = requests.get(f"{srv.base_url}/probe")
    assert probe.text == "OK"
    assert probe.headers["X-Server-Application-Version"] == "UConDB 3.9.7"
    assert probe.headers["Access-Control-Allow-Origin"] == "*" and probe.headers["X-Actual-Server"]
    assert requests.get(f"{srv.base_url}/hello", params={"x": "V"}).text == "hello: x=V"
    root = requests.get(srv.base_url, allow_redirects=False)
    assert root.status_code == 302 and root.headers["Location"] == "./UI/index"
    assert requests.get(f"{srv.base_url}/no_such_endpoint").status_code == 404


# ---- authentication: digest, realms, 401s ----

def test_missing_authorization_gives_challenge_with_put_realm(srv):
    response = requests.post(f"{srv.base_url}/data/sbnd_runs/configuration", data=b"x" * 1000)
    assert response.status_code == 401 and response.text == "Authorization required"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Digest realm="public.sbnd_runs", nonce="b\'')
    assert challenge.endswith('algorithm=MD5, qop="auth"')
    assert response.headers["X-Server-Application-Version"] == "UConDB 3.9.7"
    basic = requests.post(f"{srv.base_url}/data/sbnd_runs/configuration", data=b"x",
                          auth=(srv.user, srv.password))
    assert basic.status_code == 401 and "WWW-Authenticate" in basic.headers


def test_bad_credentials_give_401_without_challenge(srv):
    for user, password in ((srv.user, "wrong"), ("nobody", srv.password)):
        response = requests.post(f"{srv.base_url}/data/sbnd_runs/configuration", data=b"x",
                                 auth=HTTPDigestAuth(user, password))
        assert response.status_code == 401
        assert "WWW-Authenticate" not in response.headers


def test_digest_header_missing_fields_is_500(srv):
    response = requests.post(f"{srv.base_url}/data/sbnd_runs/configuration", data=b"x",
                             headers={"Authorization": f'Digest username="{srv.user}", '
                                                       'nonce="n", uri="/x", response="abc"'})
    assert response.status_code == 500 and "<h3>" in response.text


def test_create_folder_realm_is_folder_as_given_and_idempotent(srv, auth):
    url = f"{srv.base_url}/create_folder"
    challenge = requests.get(url, params={"folder": "other_runs"})
    assert challenge.status_code == 401
    assert 'realm="other_runs"' in challenge.headers["WWW-Authenticate"]
    assert requests.get(url, params={"folder": "other_runs"}, auth=auth).text == "OK"
    assert requests.get(url, params={"folder": "other_runs"}, auth=auth).text == "OK"
    empty = requests.get(url, params={"folder": ""}, auth=auth)
    assert empty.status_code == 400 and empty.text == "Empty folder name"
    fresh = HTTPDigestAuth(srv.user, srv.password)  # digest state is per realm
    assert requests.get(url, params={"folder": "a.b.c"}, auth=fresh).status_code == 500
    assert requests.get(f"{srv.base_url}/folders").json() == ["other_runs", "sbnd_runs"]
    csv = requests.get(f"{srv.base_url}/folders", params={"format": "csv"})
    assert csv.headers["Content-Type"].startswith("text/csv")
    assert csv.text == "Name\nother_runs\nsbnd_runs\n"


def test_password_lookup_uses_star_entries(tmp_path):
    users = {"public.sbnd_runs": {"writer": "pw1"}, "*": {"*": "fallback"}}
    with start_local_ucondb(tmp_path, users=users, extra_folders=["other"]) as server:
        url = f"{server.base_url}/data/%s/configuration"
        ok = requests.post(url % "sbnd_runs", data=b"a", auth=HTTPDigestAuth("writer", "pw1"))
        assert ok.status_code == 200
        star = requests.post(url % "other", data=b"b", auth=HTTPDigestAuth("anyone", "fallback"))
        assert star.status_code == 200
        wrong = requests.post(url % "sbnd_runs", data=b"c",
                              auth=HTTPDigestAuth("anyone", "fallback"))
        assert wrong.status_code == 401


def test_digest_lookup_rules_unit():
    table = {"ns.f": {"u": "p1", "*": "p2"}, "*": {"v": "p3"}}
    assert digest.lookup_password(table, "ns.f", "u") == "p1"
    assert digest.lookup_password(table, "ns.f", "x") == "p2"
    assert digest.lookup_password(table, "other", "v") == "p3"
    assert digest.lookup_password(table, "other", "u") is None


def test_read_only_instance_answers_405(tmp_path):
    with start_local_ucondb(tmp_path, read_only=True) as server:
        auth = HTTPDigestAuth(server.user, server.password)
        response = requests.post(f"{server.base_url}/data/sbnd_runs/configuration", data=b"x",
                                 auth=auth)
        assert response.status_code == 405 and response.text == "Read-only instance"
        assert requests.get(f"{server.base_url}/create_folder", params={"folder": "z"},
                            auth=auth).status_code == 405


# ---- puts ----

def test_put_unknown_folder_is_404_before_auth_and_missing_object_400(srv, auth):
    response = requests.post(f"{srv.base_url}/data/nope/configuration", data=b"x")
    assert response.status_code == 404 and response.text == "Folder not found"
    assert "WWW-Authenticate" not in response.headers
    missing = requests.post(f"{srv.base_url}/data/sbnd_runs", data=b"x", auth=auth)
    assert missing.status_code == 400 and missing.content == b""


@pytest.mark.parametrize("method, path", [("POST", "/data/sbnd_runs/configuration"),
                                          ("PUT", "/data/sbnd_runs/configuration"),
                                          ("GET", "/put/sbnd_runs/configuration")])
def test_a_chunked_put_is_refused_loudly_and_stores_nothing(srv, auth, method, path):
    """The real server stores a chunked body as an empty blob; this one answers 411."""
    chunks = iter([b"run record ", b"blob"])  # a generator: requests sends it chunked
    response = requests.request(method, f"{srv.base_url}{path}", params={"key": "5"},
                                data=chunks, auth=auth)
    assert response.status_code == 411
    assert "chunked" in response.text and "empty blob" in response.text
    assert "Send Content-Length" in response.text
    assert srv.storage.objects(srv.storage.folder("sbnd_runs")) == []
    sized = requests.request(method, f"{srv.base_url}{path}", params={"key": "5"},
                             data=b"run record blob", auth=auth)
    assert sized.status_code == 200  # the same put with Content-Length is stored
    stored = requests.get(f"{srv.base_url}/data/sbnd_runs/configuration/key=5")
    assert stored.content == b"run record blob"


def test_put_reply_id_text_and_full_meta_json(srv, auth):
    plain = requests.post(f"{srv.base_url}/data/sbnd_runs/configuration", params={"key": "1"},
                          data=b"abc", auth=auth)
    assert plain.text == "1" and plain.headers["Content-Type"] == "text/html; charset=UTF-8"
    full = requests.post(f"{srv.base_url}/put/sbnd_runs/configuration",
                         params=[("key", "2"), ("tag", "b"), ("tag", "a"), ("full_meta", "yes")],
                         data=b"abcd", auth=auth)
    assert full.headers["Content-Type"] == "text/json; charset=UTF-8"
    meta = full.json()
    assert list(meta) == META_FIELDS
    assert meta["folder"] == "public.sbnd_runs" and meta["tv"] == 0.0
    assert isinstance(meta["tr"], float) and abs(meta["tr"] - time.time()) < 60
    assert meta["tags"] == ["a", "b"] and meta["key"] == "2" and meta["id"] == 2
    assert meta["adler32"] == meta["uadler32"] == zlib.adler32(b"abcd")
    assert meta["data_size"] == 4 and meta["data_key"] == "2"
    assert "md5" not in json.dumps(meta).lower()


def test_duplicate_key_500_and_override_moves_key(srv, auth):
    first = put(srv, auth, b"one", key="42")
    dup = requests.post(f"{srv.base_url}/data/sbnd_runs/configuration",
                        params={"key": "42", "override": "no"}, data=b"two", auth=auth)
    assert dup.status_code == 500
    assert "Version of object configuration with key 42 already exists" in dup.text
    assert "<h3>" in dup.text
    second = put(srv, auth, b"two", key="42", override="yes")
    assert second["key"] == "42" and second["id"] == first["id"] + 1
    old = requests.get(f"{srv.base_url}/data/sbnd_runs/configuration",
                       params={"id": first["id"], "meta_only": "yes"}).json()
    assert old["key"] is None
    assert requests.get(f"{srv.base_url}/data/sbnd_runs/configuration/key=42").content == b"two"


def test_blob_dedup_gives_data_keys_distinct_from_ids(srv, auth):
    a1 = put(srv, auth, b"same bytes", key="1")
    a2 = put(srv, auth, b"same bytes", obj="other", key="1")  # same key, other object: allowed
    b = put(srv, auth, b"different", key="2")
    assert a1["data_key"] == a2["data_key"] == "1"
    assert (a1["id"], a2["id"], b["id"]) == (1, 2, 3)  # one id serial per folder
    assert b["data_key"] == "2" and str(b["id"]) != b["data_key"]
    # [a+1, b-2, c+1] has the adler32 and size of [a, b, c]: the bytes must be compared
    first, twin = b"\x01\x05\x01", b"\x02\x03\x02"
    assert zlib.adler32(first) == zlib.adler32(twin)
    m1, m2 = put(srv, auth, first, key="3"), put(srv, auth, twin, key="4")
    assert m1["adler32"] == m2["adler32"] and m1["data_key"] != m2["data_key"]
    assert requests.get(f"{srv.base_url}/data/sbnd_runs/configuration/key=4").content == twin
    assert put(srv, auth, twin, key="5")["data_key"] == m2["data_key"]


def test_binary_and_empty_bodies_roundtrip(srv, auth):
    samples = {"empty": b"", "binary": bytes(range(256)) * 40, "crlf": b"a\r\nb\rc\n\x00"}
    for key, data in samples.items():
        meta = put(srv, auth, data, key=key)
        assert meta["data_size"] == len(data)
        got = requests.get(f"{srv.base_url}/data/sbnd_runs/configuration/key={key}")
        assert got.content == data
        assert got.headers["X-UConDB-data-size"] == str(len(data))


# ---- gets ----

def test_get_by_key_headers_and_streaming(srv, auth):
    meta = put(srv, auth, b"payload", key="77", tag="77")
    response = requests.get(f"{srv.base_url}/data/sbnd_runs/configuration/key=77")
    assert response.content == b"payload"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert "Content-Length" not in response.headers
    h = response.headers
    assert h["X-UConDB-product-version"] == "3.9.7"
    assert h["X-UConDB-version-id"] == str(meta["id"])
    assert h["X-UConDB-data-key"] == meta["data_key"]
    assert h["X-UConDB-version-key"] == "77"
    assert h["X-UConDB-adler32"] == str(zlib.adler32(b"payload"))
    assert h["X-UConDB-tv"] == "0.0" and float(h["X-UConDB-tr"]) == meta["tr"]
    assert json.loads(h["X-UConDB-metadata"]) == meta
    assert h["X-UConDB-metadata-format"] == "text/json"
    meta_only = requests.get(f"{srv.base_url}/data/sbnd_runs/configuration/key=77/meta_only=yes")
    assert meta_only.headers["Content-Type"] == "text/json; charset=UTF-8"
    assert meta_only.json() == meta


def test_path_and_query_forms_are_equivalent(srv, auth):
    put(srv, auth, b"v", key="K")
    base = srv.base_url
    urls = [f"{base}/data/sbnd_runs/configuration?key=K",
            f"{base}/data/sbnd_runs/configuration/key=K",
            f"{base}/data?folder=sbnd_runs&object=configuration&key=K",
            f"{base}/get?folder=sbnd_runs&object=configuration&key=K",
            f"{base}/get/sbnd_runs/configuration/key=K"]
    for url in urls:
        assert requests.get(url).content == b"v", url
    twice = requests.get(f"{base}/data/sbnd_runs/configuration/key=K?key=K")
    assert twice.status_code == 500 and "specified twice" in twice.text


def test_get_error_statuses(srv, auth):
    put(srv, auth, b"v", key="1")
    base = f"{srv.base_url}/data"
    unknown_key = requests.get(f"{base}/sbnd_runs/configuration/key=2")
    assert unknown_key.status_code == 404 and unknown_key.text == "Version not found"
    assert requests.get(f"{base}/nofolder/configuration/key=1").status_code == 500
    # an object without versions: the real server's AttributeError, whatever the selector
    for selector in ("key=1", "tag=1", "", "meta_only=yes"):
        no_versions = requests.get(f"{base}/sbnd_runs/nothing/{selector}")
        assert no_versions.status_code == 500
        assert re.search(r"<h3>(.*?)</h3>", no_versions.text).group(1) == (
            "&#x27;NoneType&#x27; object has no attribute &#x27;getVersion&#x27;")
        assert "AttributeError: " in no_versions.text
    missing = requests.get(f"{srv.base_url}/get", params={"folder": "sbnd_runs"})
    assert missing.status_code == 400 and missing.content == b""


def test_get_by_id_and_data_key(srv, auth):
    meta = put(srv, auth, b"by id", key="1")
    by_id = requests.get(f"{srv.base_url}/data/sbnd_runs/whatever", params={"id": meta["id"]})
    assert by_id.content == b"by id"
    assert by_id.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert by_id.headers["Content-Length"] == "5"
    assert not any(k.lower().startswith("x-ucondb") for k in by_id.headers)
    assert requests.get(f"{srv.base_url}/data/sbnd_runs/x", params={"id": 99}).status_code == 500
    empty = requests.get(f"{srv.base_url}/data/sbnd_runs/x", params={"id": 99, "meta_only": "yes"})
    assert empty.status_code == 200 and empty.json() == {}
    by_dk = requests.get(f"{srv.base_url}/data/sbnd_runs/configuration",
                         params={"data_key": meta["data_key"]})
    assert by_dk.content == b"by id"
    xheaders = {k.lower() for k in by_dk.headers if k.lower().startswith("x-ucondb")}
    assert xheaders == {"x-ucondb-product-version", "x-ucondb-data-key"}
    nodata = requests.get(f"{srv.base_url}/data/sbnd_runs/configuration", params={"data_key": 9})
    assert nodata.status_code == 404 and nodata.text == "Data not found"


def test_latest_tag_and_future_tv(srv, auth):
    put(srv, auth, b"old", key="1", tag="t")
    put(srv, auth, b"new", key="2", tag="t")
    put(srv, auth, b"future", key="3", tag="t", tv=str(time.time() + 3600))
    url = f"{srv.base_url}/data/sbnd_runs/configuration"
    assert requests.get(url).content == b"new"                       # latest hides future tv
    assert requests.get(url, params={"tag": "t"}).content == b"new"
    assert requests.get(url, params={"key": "3"}).content == b"future"  # key ignores tv
    listed = requests.get(f"{srv.base_url}/versions",
                          params={"folder": "sbnd_runs", "object": "configuration"}).json()
    assert [v["key"] for v in listed] == ["2", "1"]
    later = requests.get(f"{srv.base_url}/versions", params={
        "folder": "sbnd_runs", "object": "configuration", "tv": str(time.time() + 7200)}).json()
    assert [v["key"] for v in later] == ["3", "2", "1"]


# ---- listings: /objects, /tags, /versions ----

def test_versions_streamed_ordered_and_filtered(srv, auth):
    first = put(srv, auth, b"a", key="1")
    put(srv, auth, b"b")  # no key → "key": null
    put(srv, auth, b"c", key="x")
    response = requests.get(f"{srv.base_url}/versions",
                            params={"folder": "sbnd_runs", "object": "configuration"})
    assert response.headers["Content-Type"] == "text/json; charset=UTF-8"
    assert "Content-Length" not in response.headers
    assert response.content.startswith(b"[{") and b"}, {" in response.content
    items = response.json()
    assert [v["key"] for v in items] == ["x", None, "1"]
    assert [v["tr"] for v in items] == sorted((v["tr"] for v in items), reverse=True)
    since = requests.get(f"{srv.base_url}/versions", params={
        "folder": "sbnd_runs", "object": "configuration", "tr_since": repr(first["tr"])}).json()
    assert [v["key"] for v in since] == ["x", None]
    until = requests.get(f"{srv.base_url}/versions", params={
        "folder": "sbnd_runs", "object": "configuration", "tr": repr(first["tr"])}).json()
    assert [v["key"] for v in until] == ["1"]
    recent = requests.get(f"{srv.base_url}/versions", params={
        "folder": "sbnd_runs", "object": "configuration", "tr_since": "-1h"}).json()
    assert len(recent) == 3


def test_versions_unknown_folder_and_object_are_404(srv):
    nofolder = requests.get(f"{srv.base_url}/versions", params={"folder": "nf", "object": "o"})
    assert nofolder.status_code == 404 and nofolder.text == "Folder nf not found"
    noobj = requests.get(f"{srv.base_url}/versions", params={"folder": "sbnd_runs", "object": "o"})
    assert noobj.status_code == 404 and noobj.text == "Object o not found"


def test_objects_and_tags_listings(srv, auth):
    put(srv, auth, b"1", obj="b", key="1", tag="t")
    put(srv, auth, b"2", obj="a", key="1", tag="t")
    assert requests.get(f"{srv.base_url}/objects", params={"folder": "sbnd_runs"}).json() == [
        "a", "b"]
    tags = requests.get(f"{srv.base_url}/tags", params={"folder": "sbnd_runs"})
    assert tags.json() == ["t", "t"] and tags.headers["Content-Type"].startswith("text/json")
    assert requests.get(f"{srv.base_url}/objects", params={"folder": "zz"}).status_code == 500
    assert requests.get(f"{srv.base_url}/tags", params={"folder": "zz"}).status_code == 500


def test_lookup_versions_post_only_json_seq(srv, auth):
    one = put(srv, auth, b"1", key="1")
    put(srv, auth, b"2", key="2")
    url = f"{srv.base_url}/lookup_versions"
    response = requests.post(url, params={"folder": "sbnd_runs", "object": "configuration"},
                             json={"keys": ["1", "2", "missing"]})
    assert response.headers["Content-Type"] == "text/json-seq"
    records = [json.loads(r) for r in response.content.split(b"\x1e") if r]
    assert response.content.startswith(b"\x1e") and response.content.endswith(b"\n")
    assert sorted(r["key"] for r in records) == ["1", "2"]
    by_ids = requests.post(f"{url}/sbnd_runs", json={"ids": [one["id"], 999]})
    assert [json.loads(r)["id"] for r in by_ids.content.split(b"\x1e") if r] == [one["id"]]
    ranged = requests.post(f"{url}/sbnd_runs/configuration", json={"key_min": "1", "key_max": "2"})
    assert [json.loads(r)["key"] for r in ranged.content.split(b"\x1e") if r] == ["1"]
    assert requests.get(url, params={"folder": "sbnd_runs"}).status_code == 500
    assert requests.post(url, params={"folder": "sbnd_runs"}, json={"keys": ["1"]}
                         ).status_code == 500
    assert requests.post(url, params={"folder": "nf"}, json={"ids": [1]}).status_code == 404


def test_get_blob_and_tag(srv, auth):
    meta = put(srv, auth, b"z" * 20000, key="1")
    url = f"{srv.base_url}/get_blob"
    assert requests.get(url, params={"folder": "sbnd_runs", "version_id": meta["id"]}
                        ).content == b"z" * 20000
    compressed = requests.get(f"{url}/sbnd_runs", params={"data_key": meta["data_key"],
                                                          "compress": "best"})
    assert zlib.decompress(compressed.content) == b"z" * 20000
    both = requests.get(url, params={"folder": "sbnd_runs", "version_id": 1, "data_key": 1})
    assert both.status_code == 400
    assert requests.get(url, params={"folder": "sbnd_runs", "version_id": 9}).text == \
        "Version not found"
    assert requests.get(url, params={"folder": "nf", "data_key": 1}).status_code == 404
    tag_url = f"{srv.base_url}/tag"
    params = {"folder": "sbnd_runs", "tag": "golden", "object": "configuration", "key": "1"}
    assert requests.get(tag_url, params=params).status_code == 401  # fixed: needs auth
    assert requests.get(tag_url, params=params, auth=auth).text == "OK"
    assert requests.get(f"{srv.base_url}/data/sbnd_runs/configuration",
                        params={"tag": "golden", "meta_only": "yes"}).json()["tags"] == ["golden"]


# ---- input rejection and robustness ----

def test_input_rejection_rules(srv, auth):
    bad_query = requests.get(f"{srv.base_url}/versions",
                             params={"folder": "sbnd_runs", "object": "a<b"})
    assert bad_query.status_code == 400 and bad_query.text == "Invalid value for object"
    bad_path = requests.get(f"{srv.base_url}/data/sbnd_runs/conf|x/key=1")
    assert bad_path.status_code == 400
    semicolon = requests.get(f"{srv.base_url}/data/sbnd_runs/conf;x/key=1")
    assert semicolon.status_code == 500 and "Invalid path element" in semicolon.text
    bad_arg = requests.get(f"{srv.base_url}/data/sbnd_runs/configuration", params={"key": "a;b"})
    assert bad_arg.status_code == 500 and "Invalid argument value" in bad_arg.text
    assert requests.get(f"{srv.base_url}/hello", params={"x": "<"}).status_code == 200


def test_oversized_and_malformed_requests_do_not_crash(tmp_path):
    with start_local_ucondb(tmp_path, max_body_bytes=1000) as server:
        auth = HTTPDigestAuth(server.user, server.password)
        url = f"{server.base_url}/data/sbnd_runs/configuration"
        assert requests.post(url, data=b"x" * 10, auth=auth).status_code == 200
        assert requests.post(url, data=b"x" * 5000, auth=auth).status_code == 413
        chunked = requests.post(url, data=iter([b"y" * 800, b"y" * 800]), auth=auth)
        assert chunked.status_code == 413
        bad_utf8 = requests.get(f"{server.base_url}/versions?folder=%ff%fe")
        assert bad_utf8.status_code == 400
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            sock.sendall(b"GARBAGE / NOT-HTTP\r\n\r\n")
            sock.recv(1024)
        assert requests.get(f"{server.base_url}/version").text == "3.9.7"


def test_100_mb_put_and_get_stream_byte_exact(tmp_path):
    data = os.urandom(1 << 20) * 100  # 100 MiB
    expected = hashlib.md5(data).hexdigest()
    with start_local_ucondb(tmp_path) as server:
        auth = HTTPDigestAuth(server.user, server.password)
        session = requests.Session()
        url = f"{server.base_url}/data/sbnd_runs/configuration"
        assert session.post(url, params={"key": "0"}, data=b"warm", auth=auth).ok  # digest state
        meta = session.post(url, params={"key": "big", "full_meta": "yes"}, data=data,
                            auth=auth).json()
        assert meta["data_size"] == len(data) and meta["adler32"] == zlib.adler32(data)
        del data
        md5 = hashlib.md5()
        with session.get(f"{url}/key=big", stream=True) as response:
            assert "Content-Length" not in response.headers
            for chunk in response.iter_content(1 << 20):
                md5.update(chunk)
        assert md5.hexdigest() == expected


@pytest.mark.parametrize("text, expected", [
    ("2024-10-15T12:00:00", 1728993600.0),
    ("2024-10-15T12:00:00.500000", 1728993600.5),
    ("10/15/2024 12:00:00", 1728993600.0),
    ("2024-10-15 14:00:00+2", 1728993600.0),
    ("2024-10-15 10:00:00-2", 1728993600.0),
    ("1728993600.25", 1728993600.25),
    ("-1d", 1000.0 - 86400), ("-2h", 1000.0 - 7200), ("-30", 970.0),
])
def test_time_texts(text, expected):
    assert parse_time(text, now=1000.0) == pytest.approx(expected)
