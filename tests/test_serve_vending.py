"""Presigned URLs, uploads and the ``service`` tier kind, against a real ``aifdata serve``
process over a real S3 server (SeaweedFS): a cloud-side process with a token and no S3
credentials reads through ``aif://``; a URL covers one object and expires when it says;
a revoked token stops at once; uploads become a new version only when complete."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from starlette.testclient import TestClient

import aifdata
from aifdata import AccessDenied, InvalidToken
from aifdata._errors import BadArgument
from aifdata.catalog import Principal, acting_as, create_token, revoke_token
from aifdata.connectors.service import ServiceConnector
from aifdata.service import ServiceSettings, _uploads, _vending, build_app
from aifdata.service._presign import key_of

from ._vend_world import CSV, ODD, READS, make_site, start_server

API = "/api/v1"


@pytest.fixture(scope="module")
def site(_seaweedfs_session, session_bucket, tmp_path_factory):
    root = tmp_path_factory.mktemp("vend")
    made = make_site(root, _seaweedfs_session, f"s3://{session_bucket}/vend-{uuid.uuid4().hex[:8]}")
    start_server(made)
    yield made
    made.stop()


def presign(site, user, path, **body):
    return httpx.post(f"{site.base}{API}/presign", json={"path": path, **body},
                      headers=site.headers(user), timeout=30)  # fmt: skip


def prefix(site):
    return site.s3_url.removeprefix("s3://").partition("/")[2]


def bucket(site):
    return site.s3_url.removeprefix("s3://").partition("/")[0]


def error(response, status):
    assert response.status_code == status, response.text
    return response.json()["error"]


# -- presigned GETs --------------------------------------------------------------------------


def test_a_presigned_get_names_one_object_and_reads_its_exact_bytes(site):
    r = presign(site, "bob", "aif://both/run42/reads.fq")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "GET" and body["size"] == len(READS)
    assert body["checksum"] == "sha256:" + hashlib.sha256(READS).hexdigest()
    assert key_of(body["url"], bucket(site)) == f"{prefix(site)}/run42/reads.fq"
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in body["url"]
    assert httpx.get(body["url"]).content == READS
    ranged = httpx.get(body["url"], headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206 and ranged.content == READS[100:200]


def test_expiry_is_the_default_or_what_is_asked_never_past_the_cap(site):
    now = time.time()
    default = presign(site, "bob", "aif://both/run42/reads.fq").json()
    assert default["expires_in"] == 300 and now + 290 < default["expires_at"] < now + 310
    capped = presign(site, "bob", "aif://both/run42/reads.fq", expires=10**6).json()
    assert capped["expires_in"] == 600 and "X-Amz-Expires=600" in capped["url"]
    assert presign(site, "bob", "aif://both/run42/reads.fq", expires=5).json()["expires_in"] == 5
    for bad in (0, -1, "10", True, None):
        if bad is not None:
            error(presign(site, "bob", "aif://both/run42/reads.fq", expires=bad), 400)


def test_a_presigned_url_works_until_it_expires_and_not_after(site):
    body = presign(site, "bob", "aif://both/run42/reads.fq", expires=2).json()
    assert httpx.get(body["url"]).content == READS
    time.sleep(max(0.0, body["expires_at"] - time.time()) + 1.5)
    late = httpx.get(body["url"])
    assert late.status_code == 403 and b"expired" in late.content.lower()


@pytest.mark.parametrize("rel", sorted(ODD))
def test_glob_and_percent_characters_are_literal_characters_of_one_key(site, rel):
    body = presign(site, "bob", f"aif://both/run42/{rel}").json()
    assert key_of(body["url"], bucket(site)) == f"{prefix(site)}/run42/{rel}"
    assert httpx.get(body["url"]).content == ODD[rel]


WIDENING = [
    "aif://both/run42/*",
    "aif://both/run42/odd/*",
    "aif://both/run42/odd/a?b.txt",
    "aif://both/run42/odd/[a-z]*.txt",
    "aif://both/*/t.csv",
    "aif://both/run42/odd/a%2Ab.txt",  # an encoded '*' is the three characters %2A
    "aif://both/run42/odd/pA.txt",  # p%41.txt is not pA.txt
    "aif://both/run42/odd/p%2541.txt",
    "aif://both/run42/reads.f?",
    "aif://both/run4*/reads.fq",
    "aif://both/run42/%252e%252e/climate/t.csv",  # decoded once: still a literal name
    "aif://both/run42/\u2024\u2024/climate/t.csv",  # one-dot leaders are not dots
    "aif://both/run42/odd/a%2ab.txt",
]


@pytest.mark.parametrize("path", WIDENING)
def test_a_pattern_never_widens_what_a_url_covers(site, path):
    assert error(presign(site, "bob", path), 404)["message"] == (
        f"{path}: no such file or directory"
    )


ESCAPES = [
    "aif://both/run42/../climate/t.csv",
    "aif://both/run42/%2e%2e/climate/t.csv",
    "aif://both/run42/%2E%2E/climate/t.csv",
    "aif://both/run42/..%2fclimate/t.csv",
    "aif://both/run42/.%2e/climate/t.csv",
    "aif://both/run42/%2e/reads.fq",
    "aif://both/run42/reads.fq%00",
    "aif://both/run42/\x7f",
    "aif://both/run42/reads.fq\u2028",
    "aif://both/run42/%2fclimate",
    "aif://both//climate/t.csv",
    "aif://both/run42/./reads.fq",
    "aif://both/run42/reads.fq/",
    "aif:///both/run42/reads.fq",
    "aif://both/run42/reads.fq\x00",
    "aif://both/run42/reads\n.fq",
    "aif://both/run42\\..\\climate/t.csv",
    "s3://bucket/run42/reads.fq",
    "both/run42/reads.fq",
    "",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_a_path_that_is_not_one_objects_name_is_refused_before_anything(site, path):
    assert error(presign(site, "bob", path), 400)["type"] == "BadArgument"


def test_a_dataset_the_caller_may_not_read_is_refused_as_a_missing_file(site):
    hidden = error(presign(site, "bob", "aif://both/climate/t.csv"), 404)
    absent = error(presign(site, "bob", "aif://both/climate/none.csv"), 404)
    assert hidden["type"] == absent["type"] == "NotFound"
    assert hidden["message"].replace("t.csv", "none.csv") == absent["message"]
    assert presign(site, "carol", "aif://both/climate/t.csv").status_code == 200


def test_a_file_outside_every_dataset_is_not_vended(site):
    catalog = site.catalog()
    with acting_as(Principal("boss")):
        catalog.filesystem().pipe("both/loose/x.bin", b"loose")
    assert error(presign(site, "bob", "aif://both/loose/x.bin"), 404)["message"] == (
        "aif://both/loose/x.bin: no such file or directory"
    )


def test_a_file_only_on_the_pfs_tier_is_a_conflict(site):
    e = error(presign(site, "bob", "aif://both/local/only-here.csv"), 409)
    assert e["type"] == "Conflict" and "'pfs'" in e["message"] and "S3" in e["message"]


def test_a_pfs_copy_of_the_same_bytes_still_vends_the_s3_object(site):
    (site.pfs / "run42").mkdir(exist_ok=True)
    (site.pfs / "run42" / "reads.fq").write_bytes(READS)
    try:
        body = presign(site, "bob", "aif://both/run42/reads.fq").json()
        assert key_of(body["url"], bucket(site)) == f"{prefix(site)}/run42/reads.fq"
    finally:
        (site.pfs / "run42" / "reads.fq").unlink()


def test_a_verified_pfs_copy_serves_reads_and_the_url_names_the_same_bytes_on_s3(site):
    catalog = site.catalog()
    with acting_as(Principal("bob")):
        assert catalog.filesystem().where("both/staged/a.bin").tier == "pfs"
    body = presign(site, "bob", "aif://both/staged/a.bin").json()
    assert key_of(body["url"], bucket(site)) == f"{prefix(site)}/staged/a.bin"
    assert body["checksum"] == "sha256:" + hashlib.sha256(READS[:999]).hexdigest()
    assert httpx.get(body["url"]).content == READS[:999]


def test_a_vended_url_is_audited_as_the_tokens_principal(site):
    body = presign(site, "bob", "aif://both/run42/reads.fq").json()
    with acting_as(Principal("boss")):
        rows = [r for r in site.catalog().audit_log(50) if r["action"] == "presign"]
    vended = next(r for r in rows if r["allowed"])
    assert vended["principal"] == "user:bob" and vended["target"] == body["path"]
    assert vended["resource"] == "genomics/run42" and vended["privilege"] == "read"


def test_a_refused_presign_is_audited_as_the_tokens_principal(site):
    presign(site, "bob", "aif://both/climate/t.csv")
    catalog = site.catalog()
    with acting_as(Principal("boss")):
        rows = [r for r in catalog.audit_log(50) if r["action"] == "presign"]
    refused = next(r for r in rows if "climate/t.csv" in r["target"])
    assert refused["principal"] == "user:bob" and not refused["allowed"]
    assert refused["resource"] == "climate/x"


def test_a_revoked_token_stops_working_at_the_next_request(site):
    catalog = site.catalog()
    with acting_as(Principal("boss")):
        made = create_token(catalog, "user:bob", label="to revoke")
    headers = {"Authorization": f"Bearer {made.text}"}
    url = f"{site.base}{API}/presign"
    ok = httpx.post(url, json={"path": "aif://both/run42/reads.fq"}, headers=headers)
    assert ok.status_code == 200
    with acting_as(Principal("boss")):
        revoke_token(catalog, made.token.id)
    refused = httpx.post(url, json={"path": "aif://both/run42/reads.fq"}, headers=headers)
    assert error(refused, 401)["message"] == "invalid or expired token"
    listing = httpx.get(f"{site.base}{API}/ls", params={"path": "aif://both/run42"},
                        headers=headers)  # fmt: skip
    assert listing.status_code == 401
    tier = aifdata.Tier("service", f"{site.base}/both", "remote", {"token": made.text})
    with pytest.raises(InvalidToken) as refused_read:
        ServiceConnector(tier).cat_file("run42/reads.fq")
    assert made.text not in str(refused_read.value)


def test_posts_take_the_token_from_the_header_only_not_the_cookie(site):
    cookies = {"aifdata_token": site.tokens["bob"]}
    for endpoint, body in [("presign", {"path": "aif://both/run42/reads.fq"}),
                           ("uploads", {"dataset": "genomics/inbox",
                                        "files": [{"path": "x", "size": 1}]})]:  # fmt: skip
        client = httpx.Client(cookies=cookies)
        e = error(client.post(f"{site.base}{API}/{endpoint}", json=body), 401)
        assert "Authorization: Bearer" in e["message"]


def test_info_and_ls_show_only_what_the_caller_may_read(site):
    get = lambda endpoint, path, user="bob": httpx.get(  # noqa: E731
        f"{site.base}{API}/{endpoint}", params={"path": path}, headers=site.headers(user)
    )
    info = get("info", "aif://both/run42/reads.fq").json()
    assert info["size"] == len(READS) and info["type"] == "file"
    names = {e["name"] for e in get("ls", "aif://both").json()["entries"]}
    assert {"both/run42", "both/local", "both/inbox"} <= names and "both/climate" not in names
    assert error(get("ls", "aif://both/climate"), 404)["message"] == (
        "aif://both/climate: no such file or directory"
    )
    assert error(get("info", "aif://both/climate/t.csv"), 404)["message"] == (
        "aif://both/climate/t.csv: no such file or directory"
    )
    assert "both/climate" in {e["name"] for e in get("ls", "aif://both", "carol").json()["entries"]}


# -- the URL is minted only after the grant check (in process, counting) ---------------------


def test_no_url_is_minted_before_the_path_and_grant_checks(site, monkeypatch):
    minted = []
    real = _vending.mint

    def counting(*args, **kwargs):
        minted.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(_vending, "mint", counting)
    monkeypatch.setattr(_uploads, "mint", counting)
    settings = ServiceSettings(rate_per_token=1e6, burst=10**6)
    client = TestClient(build_app(site.catalog(), settings))

    def post(user, path):
        return client.post(f"{API}/presign", json={"path": path}, headers=site.headers(user))

    refused = [post("bob", "aif://both/climate/t.csv"), post("bob", "aif://both/loose/x.bin"),
               post("bob", "aif://both/run42/../climate/t.csv"), post("bob", "aif://both/run42/*"),
               post("bob", "aif://both/local/only-here.csv")]  # fmt: skip
    assert [r.status_code for r in refused] == [404, 404, 400, 404, 409]
    bad_token = client.post(
        f"{API}/presign",
        json={"path": "aif://both/climate/t.csv"},
        headers={"Authorization": "Bearer aif_0000000000000000_" + "x" * 40},
    )
    assert bad_token.status_code == 401
    uploads = [
        client.post(f"{API}/uploads", headers=site.headers(user),
                    json={"dataset": name, "files": [{"path": path, "size": 1}]})
        for user, name, path in [
            ("bob", "genomics/run42", "x"), ("bob", "climate/x", "x"),
            ("carol", "genomics/inbox", "x"), ("bob", "genomics/inbox", "../x"),
        ]
    ]  # fmt: skip
    assert [r.status_code for r in uploads] == [403, 404, 404, 400]
    assert minted == []
    assert post("carol", "aif://both/climate/t.csv").status_code == 200
    assert len(minted) == 1


# -- the service tier kind: a cloud process with a token and no S3 keys ---------------------

CLIENT = textwrap.dedent(
    """
    import json, os, sys
    import aifdata

    assert not any(k.startswith("AWS_") for k in os.environ)
    fs = aifdata.filesystem()
    out = {}
    out["whole"] = fs.cat_file("aif://site/run42/reads.fq").hex()
    out["ranges"] = [fs.cat_file("aif://site/run42/reads.fq", s, e).hex()
                     for s, e in [(0, 10), (1000, 5000), (-7, None)]]
    with fs.open("aif://site/run42/reads.fq", "rb") as f:
        f.seek(12345)
        out["seek"] = f.read(100).hex()
    out["odd"] = fs.cat_file("aif://site/run42/odd/a*b.txt").hex()
    out["ls"] = sorted(fs.ls("aif://site/run42", detail=False))
    out["size"] = fs.info("aif://site/run42/reads.fq")["size"]
    out["find"] = sorted(fs.find("aif://site/run42"))
    errors = {}
    for path in ["aif://site/climate/t.csv", "aif://site/run42/absent.fq"]:
        try:
            fs.cat_file(path)
        except Exception as exc:
            errors[path] = [type(exc).__name__, str(exc)]
    out["errors"] = errors
    print(json.dumps(out))
    """
)


def test_a_process_with_a_token_and_no_s3_keys_reads_through_a_service_tier(site, tmp_path):
    config = tmp_path / "client.toml"
    config.write_text(f'[mounts.site.remote]\nkind = "service"\nurl = "{site.base}/both"\n')
    env = {k: v for k, v in site.env().items() if not k.startswith("AWS_")}
    home = tmp_path / "home"
    home.mkdir()
    env.update(AIFDATA_CONFIG=str(config), AIFDATA_HOME=str(home),
               AIFDATA_TOKEN=site.tokens["bob"])  # fmt: skip
    run = subprocess.run([sys.executable, "-c", CLIENT], env=env, capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode()
    out = json.loads(run.stdout)
    assert bytes.fromhex(out["whole"]) == READS
    assert [bytes.fromhex(h) for h in out["ranges"]] == [READS[:10], READS[1000:5000], READS[-7:]]
    assert bytes.fromhex(out["seek"]) == READS[12345:12445]
    assert bytes.fromhex(out["odd"]) == ODD["odd/a*b.txt"]
    assert out["ls"] == ["site/run42/odd", "site/run42/reads.fq"]
    assert out["size"] == len(READS)
    assert out["find"] == sorted(["site/run42/reads.fq"] + [f"site/run42/{r}" for r in ODD])
    hidden, absent = (
        out["errors"]["aif://site/climate/t.csv"],
        out["errors"]["aif://site/run42/absent.fq"],
    )
    assert hidden[0] == absent[0] == "NotFound"
    assert hidden[1].replace("climate/t.csv", "run42/absent.fq") == absent[1]
    assert site.tokens["bob"] not in run.stdout.decode() + run.stderr.decode()


def test_a_service_tier_vends_again_when_a_url_expired(site, monkeypatch):

    monkeypatch.setenv("AIFDATA_TOKEN", site.tokens["bob"])
    tier = aifdata.Tier("service", f"{site.base}/both", "remote")
    conn = ServiceConnector(tier)
    _, size = conn.presigned("run42/reads.fq")
    # an expired URL held as if still good: S3 answers 403, and the connector vends anew
    expired = presign(site, "bob", "aif://both/run42/reads.fq", expires=1).json()["url"]
    time.sleep(2.5)
    with conn._lock:
        conn._urls["run42/reads.fq"] = (expired, size, time.time() + 60)
    assert conn.cat_file("run42/reads.fq", 5, 25) == READS[5:25]
    assert conn._urls["run42/reads.fq"][0] != expired
    assert "aif_" not in repr(conn) + repr(tier)
    again = pickle.loads(pickle.dumps(conn))  # a worker's copy: no client, no URLs held
    assert again._urls == {} and again.cat_file("run42/reads.fq", -5) == READS[-5:]


def test_a_service_tier_without_a_token_says_how_to_get_one(site, monkeypatch):

    monkeypatch.delenv("AIFDATA_TOKEN", raising=False)
    conn = ServiceConnector(aifdata.Tier("service", f"{site.base}/both", "remote"))
    with pytest.raises(InvalidToken, match="AIFDATA_TOKEN"):
        conn.info("run42/reads.fq")


def test_a_service_tier_is_read_only(site):

    conn = ServiceConnector(aifdata.Tier("service", f"{site.base}/both", "r", {"token": "t"}))
    with pytest.raises(AccessDenied, match="read-only"):
        conn.pipe_file("run42/new", b"x")


# -- uploads ------------------------------------------------------------------------------


def start_upload(site, user, files, dataset="genomics/inbox", **extra):
    return httpx.post(f"{site.base}{API}/uploads", headers=site.headers(user), timeout=30,
                      json={"dataset": dataset, "files": files, **extra})  # fmt: skip


def act(site, user, upload_id, what="commit"):
    return httpx.post(f"{site.base}{API}/uploads/{upload_id}/{what}", headers=site.headers(user),
                      timeout=60)  # fmt: skip


def versions(site, name="genomics/inbox"):
    with acting_as(Principal("boss")):
        return site.catalog().versions(name)


def test_an_upload_is_committed_as_a_new_version_with_exact_bytes(site):
    files = {"reads.fq": READS[:5000], "sub/t.csv": CSV}
    before = versions(site)
    started = start_upload(site, "bob", [{"path": p, "size": len(d)} for p, d in files.items()])
    assert started.status_code == 200, started.text
    body = started.json()
    for f in body["files"]:
        assert f["method"] == "PUT" and key_of(f["url"], bucket(site)).endswith(
            f"_aifdata-uploads/{body['upload']}/{f['path']}"
        )
        assert httpx.put(f["url"], content=files[f["path"]]).status_code == 200
    done = act(site, "bob", body["upload"])
    assert done.status_code == 200, done.text
    assert done.json()["version"] == before[-1] + 1 and versions(site) == [*before, before[-1] + 1]
    with acting_as(Principal("bob")):
        ds = site.catalog().dataset("genomics/inbox")
    assert {f.path: f.size for f in ds.files} == {p: len(d) for p, d in files.items()}
    for path, data in files.items():
        url = presign(site, "bob", f"{ds.source}/{path}").json()["url"]
        assert httpx.get(url).content == data
    with acting_as(Principal("boss")):
        rows = site.catalog().audit_log(30)
    commit_row = next(r for r in rows if r["action"] == "upload-commit")
    assert commit_row["principal"] == "user:bob" and commit_row["allowed"]
    assert commit_row["resource"] == "genomics/inbox"
    assert commit_row["target"] == f"upload {body['upload']} as version {before[-1] + 1}"
    started_row = next(r for r in rows if r["target"].startswith(f"upload {body['upload']}:"))
    assert started_row["principal"] == "user:bob" and started_row["action"] == "upload"
    again = error(act(site, "bob", body["upload"]), 409)["message"]
    assert again.endswith(f"committed already, as version {before[-1] + 1}")


def test_a_commit_with_a_missing_or_short_object_records_nothing(site):
    before = versions(site)
    body = start_upload(site, "bob", [{"path": "a.bin", "size": 10}, {"path": "b.bin", "size": 4}]
                        ).json()  # fmt: skip
    urls = {f["path"]: f["url"] for f in body["files"]}
    e = error(act(site, "bob", body["upload"]), 409)
    assert "a.bin: not uploaded" in e["message"] and "b.bin: not uploaded" in e["message"]
    httpx.put(urls["a.bin"], content=b"short")
    httpx.put(urls["b.bin"], content=b"four")
    e = error(act(site, "bob", body["upload"]), 409)
    assert "a.bin: 5 bytes arrived, 10 declared" in e["message"] and "b.bin" not in e["message"]
    assert versions(site) == before
    assert act(site, "bob", body["upload"], "abort").json()["state"] == "aborted"
    assert error(act(site, "bob", body["upload"]), 409)["message"].endswith("aborted already")
    catalog = site.catalog()
    with acting_as(Principal("boss")):
        left = catalog.filesystem().find(f"both/_aifdata-uploads/{body['upload']}")
    assert not left and versions(site) == before


def test_a_put_url_covers_its_one_key_only(site):
    body = start_upload(site, "bob", [{"path": "one.bin", "size": 3}]).json()
    url = body["files"][0]["url"]
    other = url.replace("/one.bin?", "/two.bin?")
    assert httpx.put(other, content=b"abc").status_code == 403
    manifest = url.replace(f"/{body['upload']}/one.bin?", f"/{body['upload']}.json?")
    assert httpx.put(manifest, content=b"{}").status_code == 403
    act(site, "bob", body["upload"], "abort")


def test_uploads_need_write_and_hide_what_the_caller_may_not_see(site):
    files = [{"path": "x.bin", "size": 1}]
    assert error(start_upload(site, "bob", files, "genomics/run42"), 403)["type"] == "AccessDenied"
    hidden = error(start_upload(site, "bob", files, "climate/x"), 404)
    absent = error(start_upload(site, "bob", files, "climate/none"), 404)
    assert hidden["message"].replace("climate/x", "climate/none") == absent["message"]
    body = start_upload(site, "bob", files).json()
    assert error(act(site, "alice", body["upload"]), 404)["message"] == (
        f"no upload '{body['upload']}' of user:alice"
    )
    assert error(act(site, "bob", "0123456789abcdef"), 404)["type"] == "NotFound"
    act(site, "bob", body["upload"], "abort")


def test_a_service_tier_uploads_a_new_version_and_reads_it_back(site, tmp_path):
    local = tmp_path / "big.bin"
    local.write_bytes(READS)
    conn = ServiceConnector(aifdata.Tier.service(f"{site.base}/both", token=site.tokens["bob"]))
    before = versions(site)
    version = conn.upload("genomics/inbox", {"a/small.txt": b"small", "big.bin": local})
    assert version == before[-1] + 1 and versions(site) == [*before, version]
    with acting_as(Principal("bob")):
        source = site.catalog().dataset("genomics/inbox").source
    rel = source.removeprefix("aif://both/")
    assert conn.cat_file(f"{rel}/big.bin") == READS
    assert conn.cat_file(f"{rel}/a/small.txt") == b"small"
    with pytest.raises(BadArgument):
        conn.upload("genomics/inbox", {"../x": b"x"})
    with pytest.raises(AccessDenied):
        conn.upload("genomics/run42", {"x": b"x"})
    assert versions(site) == [*before, version]


@pytest.mark.parametrize(
    "path", ["../x", "a/../../x", "a//b", "/abs", "a/./b", "%2e%2e/x", "a%2fb", "a\\b", "x\n", ""]
)
def test_an_upload_path_that_is_not_one_objects_name_is_refused(site, path):
    assert error(start_upload(site, "bob", [{"path": path, "size": 1}]), 400)["type"] == (
        "BadArgument"
    )


def test_an_expired_upload_is_swept_and_never_recorded(site):
    before = versions(site)
    body = start_upload(site, "bob", [{"path": "late.bin", "size": 2}], expires=1).json()
    httpx.put(body["files"][0]["url"], content=b"ok")
    catalog = site.catalog()
    fs = catalog.filesystem()
    mount, _ = fs.split("both/x")
    conn = fs.connector(mount, "s3")
    with acting_as(Principal("boss")):
        removed = _uploads.sweep(conn, now=time.time() + _uploads.COMMIT_GRACE + 1000)
    assert body["upload"] in removed
    with acting_as(Principal("boss")):
        assert not fs.find(f"both/_aifdata-uploads/{body['upload']}")
    assert error(act(site, "bob", body["upload"]), 404)["type"] == "NotFound"
    assert versions(site) == before


def test_a_put_after_commit_changes_nothing_a_reader_sees(site):
    files = {"a.bin": b"committed-a", "sub/b.bin": b"committed-bb"}
    body = start_upload(site, "bob", [{"path": p, "size": len(d)} for p, d in files.items()]
                        ).json()  # fmt: skip
    urls = {f["path"]: f["url"] for f in body["files"]}
    for path, data in files.items():
        assert httpx.put(urls[path], content=data).status_code == 200
    done = act(site, "bob", body["upload"])
    assert done.status_code == 200, done.text
    assert "_aifdata-uploads" not in done.json()["source"]
    for path, data in files.items():  # the same sizes, other bytes, and a new file
        httpx.put(urls[path], content=data.upper())
    with acting_as(Principal("bob")):
        ds = site.catalog().dataset("genomics/inbox", done.json()["version"])
    assert ds.source == done.json()["source"]
    for f in ds.files:
        got = httpx.get(presign(site, "bob", f"{ds.source}/{f.path}").json()["url"]).content
        assert got == files[f.path]
        assert f.checksum == "sha256:" + hashlib.sha256(got).hexdigest()
    catalog = site.catalog()
    fs = catalog.filesystem()
    conn = fs.connector(fs.split("both/x")[0], "s3")
    with acting_as(Principal("boss")):  # the dead staging prefix goes with its manifest
        assert body["upload"] in _uploads.sweep(conn, now=time.time() + 10**6)
        assert not fs.find(f"both/_aifdata-uploads/{body['upload']}")
        assert {p.rsplit("/", 1)[-1] for p in fs.find(ds.source)} == {"a.bin", "b.bin"}


def copies_of(catalog, upload_id):
    """The files of every copy of an upload a commit made (its attempts' prefixes)."""
    with acting_as(Principal("boss")):
        found = catalog.filesystem().find(f"both/{_uploads.VERSIONS}")
    return sorted(p for p in found if f"/{_uploads.VERSIONS}/{upload_id}-" in p)


def test_a_commit_that_fails_part_way_records_nothing_and_leaves_no_copies(site, monkeypatch):
    before = versions(site)
    body = start_upload(site, "bob", [{"path": "x.bin", "size": 2}, {"path": "y.bin", "size": 2}]
                        ).json()  # fmt: skip
    for f in body["files"]:
        httpx.put(f["url"], content=b"ok")
    catalog = site.catalog()
    seen = []

    def broken(self, source, *args, **kwargs):
        with acting_as(Principal("boss")):
            seen.append(copies_of(catalog, body["upload"]))
        raise OSError("the catalog's disk is full")

    monkeypatch.setattr(type(catalog), "ingest", broken)
    client = TestClient(build_app(catalog, ServiceSettings()))
    failed = client.post(f"{API}/uploads/{body['upload']}/commit", headers=site.headers("bob"))
    assert failed.status_code == 500 and len(seen[0]) == 2  # copied, then the ingest failed
    monkeypatch.undo()
    assert not copies_of(catalog, body["upload"])
    assert versions(site) == before
    done = act(site, "bob", body["upload"])  # still open: it commits now
    assert done.status_code == 200, done.text
    assert versions(site) == [*before, before[-1] + 1]


def test_a_commit_past_the_request_timeout_records_nothing_and_leaves_no_copies(site, monkeypatch):
    before = versions(site)
    body = start_upload(site, "bob", [{"path": "slow.bin", "size": 4}]).json()
    httpx.put(body["files"][0]["url"], content=b"slow")
    catalog = site.catalog()
    client = TestClient(build_app(catalog, ServiceSettings(request_timeout=0.05)))
    ended, real = threading.Event(), _uploads._commit

    def watched(*args):
        try:
            return real(*args)
        finally:
            ended.set()

    def slow_copies(*args):  # copies that take longer than the request may
        copied = real_copies(*args)
        time.sleep(0.2)
        return copied

    real_copies = _uploads._copy_all
    monkeypatch.setattr(_uploads, "_copy_all", slow_copies)
    monkeypatch.setattr(_uploads, "_commit", watched)
    late = client.post(f"{API}/uploads/{body['upload']}/commit", headers=site.headers("bob"))
    assert late.status_code == 504, late.text
    assert ended.wait(60)  # the worker thread went on, then gave up
    monkeypatch.undo()
    assert not copies_of(catalog, body["upload"])
    assert versions(site) == before
    done = act(site, "bob", body["upload"])  # still open: a server with time commits it
    assert done.status_code == 200, done.text


def test_two_server_processes_commit_one_upload_once(site):
    """Two commits of one upload at once, each to another ``aifdata serve`` process over
    the same catalog (as two workers): one version is recorded, the other commit is told
    why, and a third is told which version it became."""
    other = dataclasses.replace(site, process=None, port=0)
    start_server(other)
    try:
        before = versions(site)
        data = {"a.bin": b"a" * 3000, "b.bin": b"b" * 2000}
        body = start_upload(site, "bob", [{"path": p, "size": len(d)} for p, d in data.items()])
        for f in body.json()["files"]:
            assert httpx.put(f["url"], content=data[f["path"]]).status_code == 200
        upload = body.json()["upload"]
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda s: act(s, "bob", upload), [site, other]))
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 409], [a.text for a in answers]
        made = next(a for a in answers if a.status_code == 200).json()["version"]
        refused = next(a for a in answers if a.status_code == 409).json()["error"]["message"]
        assert refused.endswith(("being committed by another request",
                                 f"committed already, as version {made}"))  # fmt: skip
        assert versions(site) == [*before, made]
        again = error(act(other, "bob", upload), 409)["message"]
        assert again.endswith(f"committed already, as version {made}")
    finally:
        other.stop()
