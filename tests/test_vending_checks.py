"""The checks of presigned-URL vending and of the ``service`` tier kind that need no
server: paths taken as one object's name, expiry capped, tier locations and options,
secrets kept out of reprs, and the in-process API over two local tiers (no S3, so every
presign there is a 409)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.testclient import TestClient

import aifdata
from aifdata import ConfigError
from aifdata._errors import BadArgument
from aifdata.catalog import Principal, acting_as
from aifdata.catalog import _catalog as catalog_module
from aifdata.service import ServiceSettings, _vending, build_app
from aifdata.service._presign import SIGV4_MAX_EXPIRY, expiry, object_path

from ._serving import make_world

API = "/api/v1"


@pytest.mark.parametrize(
    ("text", "path"),
    [("aif://both/run42/reads.fq", "both/run42/reads.fq"), ("aif://m/a*b?[c]", "m/a*b?[c]"),
     ("aif://m/p%41", "m/p%41"), ("aif://m/%252e%252e/x", "m/%252e%252e/x"),
     ("aif://m/…/x", "m/…/x")],
)  # fmt: skip
def test_a_path_is_taken_as_it_is_spelled(text, path):
    assert object_path(text) == path


@pytest.mark.parametrize(
    "text",
    ["", "m/x", "s3://b/k", "aif://", "aif:///m/x", "aif://m//x", "aif://m/x/", "aif://m/./x",
     "aif://m/../x", "aif://m/%2e%2E/x", "aif://m/.%2e/x", "aif://m/%2e/x", "aif://m/a%2fb",
     "aif://m/a%5Cb", "aif://m/a%00", "aif://m/a\\b", "aif://m/a\x00", "aif://m/a\tb",
     "aif://m/a\x7f", "aif://m/a\u2028", None, 42, "aif://m/" + "x" * 2048],
)  # fmt: skip
def test_a_path_that_is_not_one_objects_name_is_refused(text):
    with pytest.raises(BadArgument):
        object_path(text)


def test_expiry_is_the_default_or_asked_at_most_the_cap():
    assert expiry(None, 900, 3600) == 900
    assert expiry(60, 900, 3600) == 60
    assert expiry(10**9, 900, 3600) == 3600
    assert expiry(10**9, 900, 10**9) == SIGV4_MAX_EXPIRY
    assert expiry(2.7, 900, 3600) == 2
    for bad in (0, -5, 0.5, "60", True, [60], float("nan")):
        with pytest.raises(BadArgument):
            expiry(bad, 900, 3600)


def test_expiry_settings_come_from_the_config_file():
    config = aifdata.parse_config(
        '[service]\npresign_max_expiry = "2h"\npresign_default_expiry = 120\n'
    )
    settings = ServiceSettings.from_config(config)
    assert (settings.presign_max_expiry, settings.presign_default_expiry) == (7200, 120)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8750", "https://catalog.site/both", "http://h:1/a/b/"]
)
def test_a_service_tier_is_an_http_url_of_a_service(url):
    tier = aifdata.Tier("service", url, "remote", {"token": "aif_x", "timeout": 5})
    assert tier.url == url.rstrip("/") and not tier.local
    assert aifdata.Tier.service(url, "remote", token="aif_x", timeout=5) == tier


@pytest.mark.parametrize(
    "url", ["ftp://h/x", "http://", "h:8750", "http://h/a/../b", "http://h/a//b",
            "http://h/x?token=1", "http://user:pw@h/x", 8750],
)  # fmt: skip
def test_a_service_tier_location_that_is_not_a_services_url_is_refused(url):
    with pytest.raises(ConfigError, match="tier 'remote': url"):
        aifdata.Tier("service", url, "remote")


def test_a_service_tier_takes_a_token_and_a_timeout_only():
    with pytest.raises(ConfigError, match="unknown service option"):
        aifdata.Tier("service", "http://h:1", "remote", {"key": "x"})
    with pytest.raises(ConfigError, match="token"):
        aifdata.Tier("service", "http://h:1", "remote", {"token": 42})


def test_secrets_of_a_tier_stay_out_of_its_repr():
    secret = "aif_0123456789abcdef_s3cr3tS3CR3Ts3cr3tS3CR3T"
    tier = aifdata.Tier("service", "http://h:1/m", "remote", {"token": secret})
    s3 = aifdata.Tier.s3("s3://b/p", key="AKIA", secret="hush-hush", token="session-tok")
    config = aifdata.Config((aifdata.Mount("m", (tier,)), aifdata.Mount("n", (s3,))))
    shown = repr(tier) + repr(s3) + repr(config) + str(config)
    for hidden in (secret, "hush-hush", "session-tok"):
        assert hidden not in shown
    assert "'***'" in repr(tier) and "AKIA" in repr(s3)


# -- the API in process, over the serve tests' world (two local tiers) -------------------


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path / "world")


@pytest.fixture
def client(world):
    app = build_app(world.catalog, ServiceSettings(rate_per_token=1e6, burst=10**6))
    return TestClient(app)


def test_info_and_ls_list_what_the_caller_may_read(client, world):
    headers = world.headers("bob")
    info = client.get(f"{API}/info", params={"path": "aif://both/trimmed/reads.fq"},
                      headers=headers).json()  # fmt: skip
    assert info["type"] == "file" and info["size"] > 0
    listed = client.get(f"{API}/ls", params={"path": "aif://both"}, headers=headers).json()
    names = {e["name"] for e in listed["entries"]}
    assert "both/trimmed" in names and "both/run42" not in names and "both/climate" not in names


def test_a_hidden_path_reads_as_a_missing_one(client, world):
    headers = world.headers("bob")
    for endpoint in ("info", "ls"):
        hidden = client.get(f"{API}/{endpoint}", params={"path": "aif://both/run42/reads.fq"},
                            headers=headers)  # fmt: skip
        absent = client.get(f"{API}/{endpoint}", params={"path": "aif://both/trimmed/none"},
                            headers=headers)  # fmt: skip
        assert hidden.status_code == absent.status_code == 404
        assert (
            hidden.json()["error"]["message"].replace("run42/reads.fq", "trimmed/none")
            == (absent.json()["error"]["message"])
        )


def test_a_file_no_s3_tier_holds_cannot_be_presigned(client, world):
    r = client.post(f"{API}/presign", json={"path": "aif://both/trimmed/reads.fq"},
                    headers=world.headers("bob"))  # fmt: skip
    assert r.status_code == 409 and r.json()["error"]["type"] == "Conflict"


def presign_rows(world):
    with acting_as(Principal("boss")):
        return [r for r in world.catalog.audit_log(100) if r["action"] == "presign"]


def test_each_vended_url_is_an_audit_row_of_the_caller_and_reloads_no_policy(world, monkeypatch):
    """Every worker keeps its cached policy across the audit rows of URLs vended (one
    client for all requests: its worker threads live on from one request to the next)."""
    s3_copy = SimpleNamespace(settings=None, key=lambda rel: f"bucket-prefix/{rel}")
    monkeypatch.setattr(_vending, "object_copy", lambda fs, path: (s3_copy, path, 5, None))
    minted = SimpleNamespace(url="https://s3.example/k?X-Amz-Signature=0", expires_at=1.0)
    monkeypatch.setattr(_vending, "mint", lambda *args: minted)
    loads = []
    real = catalog_module.load_policy
    monkeypatch.setattr(catalog_module, "load_policy", lambda *a: loads.append(1) or real(*a))
    path = "aif://both/trimmed/reads.fq"
    app = build_app(world.catalog, ServiceSettings(rate_per_token=1e6, burst=10**6))
    with TestClient(app) as client:
        presign_repeatedly(client, world, path, loads, minted.url)
    vended = [r for r in presign_rows(world) if r["allowed"]]
    assert len(vended) == 4
    assert {(r["principal"], r["target"], r["resource"], r["privilege"]) for r in vended} == {
        ("user:bob", path, "shared/trimmed", "read")
    }


def presign_repeatedly(client, world, path, loads, url):
    first = client.post(f"{API}/presign", json={"path": path}, headers=world.headers("bob"))
    assert first.status_code == 200, first.text
    loaded = len(loads)
    for _ in range(3):
        r = client.post(f"{API}/presign", json={"path": path}, headers=world.headers("bob"))
        assert r.json()["url"] == url
    assert len(loads) == loaded


def test_a_url_not_vended_is_no_allowed_audit_row(client, world):
    r = client.post(f"{API}/presign", json={"path": "aif://both/trimmed/reads.fq"},
                    headers=world.headers("bob"))  # fmt: skip
    assert r.status_code == 409
    assert not [row for row in presign_rows(world) if row["allowed"]]


def test_a_presign_request_with_unknown_fields_or_no_json_is_refused(client, world):
    headers = world.headers("bob")
    for body in ('{"path": "aif://both/trimmed/reads.fq", "key": "x"}', "[1]", "not json"):
        r = client.post(f"{API}/presign", content=body, headers=headers)
        assert r.status_code == 400, r.text


def test_a_post_with_the_cookie_and_no_bearer_header_is_refused(client, world):
    client.cookies.set("aifdata_token", world.tokens["bob"])
    r = client.post(f"{API}/presign", json={"path": "aif://both/trimmed/reads.fq"},
                    headers={"Origin": "https://evil.example"})  # fmt: skip
    assert r.status_code == 401 and "Authorization: Bearer" in r.json()["error"]["message"]
    assert (
        client.get(f"{API}/info", params={"path": "aif://both/trimmed/reads.fq"}).status_code == 200
    )


def test_an_upload_to_a_mount_without_s3_is_a_conflict(client, world):
    body = {"dataset": "genomics/run42", "files": [{"path": "x", "size": 1}]}
    r = client.post(f"{API}/uploads", headers=world.headers("alice"), json=body)
    assert r.status_code == 409 and "no S3 tier" in r.json()["error"]["message"]


def test_a_service_tier_lists_through_the_api_and_hides_what_it_may_not_read(client, world):
    from aifdata import NotFound
    from aifdata._errors import Conflict
    from aifdata.connectors.service import ServiceConnector

    conn = ServiceConnector(aifdata.Tier.service("http://testserver/both", token="unused"))
    client.headers.update(world.headers("bob"))
    conn._api = client  # the app in process, as bob
    assert conn.info("trimmed/reads.fq")["type"] == "file"
    assert [e["name"] for e in conn.ls("trimmed")] == ["trimmed/reads.fq"]
    assert list(conn.find("trimmed")) == ["trimmed/reads.fq"]
    assert "run42" not in {e["name"] for e in conn.ls("")}
    with pytest.raises(NotFound) as hidden:
        conn.info("run42/reads.fq")
    with pytest.raises(NotFound) as absent:
        conn.info("trimmed/none")
    assert str(hidden.value).replace("run42/reads.fq", "trimmed/none") == str(absent.value)
    with pytest.raises(Conflict):  # no S3 tier in this world: nothing to presign
        conn.cat_file("trimmed/reads.fq")


def test_a_service_tier_waits_out_the_rate_limit(world):
    from aifdata.connectors.service import ServiceConnector

    app = build_app(world.catalog, ServiceSettings(rate_per_token=2.0, burst=1))
    conn = ServiceConnector(aifdata.Tier.service("http://testserver/both", token="unused"))
    conn._api = TestClient(app, headers=world.headers("bob"))
    for _ in range(3):  # the 2nd and 3rd are told to retry in 1 s, and then go through
        assert conn.info("trimmed/reads.fq")["type"] == "file"
