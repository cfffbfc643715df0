"""The JSON API of ``aifdata serve``, in process (Starlette's TestClient): the endpoints,
errors as JSON with the command line's words, and the limits."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import threading

import httpx
import pytest
from starlette.testclient import TestClient

from aifdata.catalog import Principal, acting_as, current_principal
from aifdata.cli import main
from aifdata.service import ServiceSettings, api_route, build_app

from ._serving import CSV, READABLE_BY_BOB, READS, make_world

API = "/api/v1"


@pytest.fixture
def world(tmp_path, catalog_url):
    """The service's world, its catalog on each backend (SQLite, PostgreSQL)."""
    return make_world(tmp_path / "world", catalog_url)


def client_for(world, extra_routes=(), **settings):
    limits = {"rate_per_token": 1000.0, "burst": 1000, **settings}
    app = build_app(world.catalog, ServiceSettings(**limits), extra_routes=extra_routes)
    return TestClient(app, raise_server_exceptions=True)


@pytest.fixture
def client(world):
    return client_for(world)


def get(client, world, user, endpoint, **params):
    return client.get(f"{API}/{endpoint}", params=params, headers=world.headers(user))


def error(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
    return body["error"]


# -- the endpoints -----------------------------------------------------------------------


def test_whoami_names_the_tokens_principal(client, world):
    body = get(client, world, "alice", "whoami").json()
    assert body["principal"] == "user:alice" and body["admin"] is False
    assert body["token"]["label"] == "test"
    assert get(client, world, "boss", "whoami").json()["admin"] is True


def test_datasets_are_those_the_caller_may_read(client, world):
    assert get(client, world, "bob", "datasets").json() == {"datasets": sorted(READABLE_BY_BOB)}
    assert "genomics/run42" in get(client, world, "alice", "datasets").json()["datasets"]


def test_search_finds_by_words_and_keeps_to_what_the_caller_may_read(client, world):
    hits = get(client, world, "alice", "search", q="reads run").json()["hits"]
    assert hits[0]["name"] == "genomics/run42" and hits[0]["tags"] == {"assay": "wgs"}
    names = [h["name"] for h in get(client, world, "bob", "search", q="reads").json()["hits"]]
    assert names and set(names) <= set(READABLE_BY_BOB)
    limited = get(client, world, "boss", "search", q="reads", limit="2").json()["hits"]
    assert len(limited) == 2
    tagged = get(client, world, "boss", "search", q="reads", tag="assay=wgs").json()["hits"]
    assert [h["name"] for h in tagged] == ["genomics/run42"]
    bad = get(client, world, "boss", "search", tag="assay")
    assert error(bad, 400)["message"] == "parameter 'tag' must be KEY=VALUE, got 'assay'"


def test_a_dataset_has_versions_files_tiers_and_the_callers_grants(client, world):
    body = get(client, world, "alice", "dataset", name="genomics/run42").json()
    assert body["versions"] == [1] and body["owner"] == "alice"
    (f,) = body["files"]
    assert f["path"] == "reads.fq" and f["size"] == len(READS) and f["format"] == "fastq"
    assert f["checksum"] == "sha256:" + hashlib.sha256(READS).hexdigest()
    assert f["served_by"] == "archive" and f["url"] == "aif://both/run42/reads.fq"
    assert body["access"]["privileges"] == ["read", "write", "admin"] and body["access"]["owner"]
    shared = get(client, world, "bob", "dataset", name="shared/trimmed", version="1").json()
    assert shared["access"]["privileges"] == ["read"]
    assert shared["access"]["grants"] == [
        {"principal": "user:bob", "privilege": "read", "pattern": "shared/*"}
    ]
    assert shared["lineage"][0]["job"] == "trim"


def test_a_missing_version_is_404_naming_the_versions(client, world):
    message = error(get(client, world, "alice", "dataset", name="genomics/run42", version="9"),
                    404)["message"]  # fmt: skip
    assert message == "dataset 'genomics/run42' has no version 9; versions: 1"


def test_lineage_keeps_a_hidden_upstream_counted_and_unnamed(client, world):
    body = get(client, world, "alice", "lineage", ref="shared/trimmed@1").json()
    run = body["upstream"]["runs"][0]
    assert run["run"]["inputs"] == [{"dataset": "genomics/run42", "version": 1}]
    assert run["datasets"][0]["dataset"] == "genomics/run42"
    seen = get(client, world, "bob", "lineage", ref="shared/trimmed")
    assert seen.status_code == 200 and "genomics/run42" not in seen.text
    hidden = seen.json()["upstream"]["runs"][0]
    assert hidden["run"]["inputs"] == [] and hidden["run"]["hidden_inputs"] == 1
    assert hidden["datasets"] == []


def test_where_says_which_tier_serves_a_file(client, world):
    body = get(client, world, "alice", "where", path="aif://both/run42/reads.fq").json()
    assert body["tier"] == "archive" and body["size"] == len(READS)
    bare = get(client, world, "alice", "where", path="both/run42/reads.fq").json()
    assert (bare["tier"], bare["url"]) == (body["tier"], body["url"])


def test_partitions_are_the_format_plan(client, world):
    body = get(client, world, "alice", "partitions", path="aif://both/run42/reads.fq", n="4")
    parts = body.json()["partitions"]
    assert [p["ordinal"] for p in parts] == [0, 1, 2, 3]
    assert {p["format"] for p in parts} == {"fastq"}
    spans = [(p["spec"]["start"], p["spec"]["end"]) for p in parts]
    assert spans[0][0] == 0 and spans[-1][1] == len(READS)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    by_size = get(client, world, "alice", "partitions", path="aif://both/run42/reads.fq",
                  target_bytes=str(len(READS) // 2)).json()["partitions"]  # fmt: skip
    assert len(by_size) == 2
    both = get(client, world, "alice", "partitions", path="aif://both/run42/reads.fq",
               n="2", target_bytes="100")  # fmt: skip
    assert error(both, 400)["message"] == "give n or target_bytes, not both"


def test_a_datasets_partitions_cover_its_files(client, world):
    body = get(client, world, "bob", "partitions", name="shared/trimmed", n="3").json()
    assert body["dataset"] == "shared/trimmed" and body["version"] == 1
    parts = body["partitions"]
    assert len(parts) == 3 and {p["url"] for p in parts} == {"aif://both/trimmed/reads.fq"}
    refused = get(client, world, "bob", "partitions", name="genomics/run42", n="3")
    assert error(refused, 404)["type"] == "UnknownDataset"
    both = get(client, world, "bob", "partitions", name="shared/trimmed", path="aif://x")
    assert error(both, 400)["message"] == "give path or name, not both"


def test_the_audit_is_for_admins(client, world):
    rows = get(client, world, "boss", "audit", limit="5").json()["audit"]
    assert len(rows) == 5 and rows[0]["id"] > rows[-1]["id"]
    refused = error(get(client, world, "alice", "audit"), 403)
    assert refused["type"] == "AccessDenied" and "may not admin" in refused["message"]


# -- errors ------------------------------------------------------------------------------


def test_no_token_is_401_with_a_bearer_challenge(client):
    response = client.get(f"{API}/whoami")
    assert error(response, 401)["type"] == "InvalidToken"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_cookie_carries_the_token_too(world):
    client = client_for(world)
    client.cookies.set("aifdata_token", world.tokens["alice"])
    assert client.get(f"{API}/whoami").json()["user"] == "alice"


def test_an_unknown_endpoint_is_json_404(client, world):
    assert error(get(client, world, "alice", "nope"), 404)["message"] == (
        "no endpoint GET /api/v1/nope"
    )
    assert error(client.delete(f"{API}/whoami", headers=world.headers("alice")), 405)


@pytest.mark.parametrize(
    ("endpoint", "params", "words"),
    [
        ("dataset", {}, "parameter 'name' is missing"),
        ("dataset", {"name": "genomics/run42", "version": "x"}, "whole number from 1"),
        ("dataset", {"name": "genomics/run42", "version": "0"}, "whole number from 1"),
        ("search", {"q": "reads", "limit": "-1"}, "whole number from 1 to 500"),
        ("search", {"q": "reads", "limit": "\u00b2"}, "whole number from 1 to 500"),
        ("search", {"q": "reads", "limit": "\u0661\u0662"}, "whole number from 1 to 500"),
        ("search", {"q": "reads", "limit": "1e3"}, "whole number from 1 to 500"),
        ("search", {"q": "x" * 501}, "longer than 500"),
        ("lineage", {"ref": "genomics/run42@x"}, "expected NAME or NAME@VERSION"),
        ("lineage", {"ref": "genomics/run42", "depth": "1000"}, "from 0 to 100"),
        ("partitions", {"path": "aif://both/run42/reads.fq", "n": "0"}, "whole number"),
        ("where", {}, "parameter 'path' is missing"),
    ],
)
def test_bad_arguments_are_400_naming_the_parameter(client, world, endpoint, params, words):
    assert words in error(get(client, world, "alice", endpoint, **params), 400)["message"]


def test_an_error_has_the_command_lines_words(client, world, monkeypatch, capsys):
    """The API's message for an unknown dataset is the line ``aifdata show`` prints (but
    for the catalog's location on the server, which the API calls "the catalog")."""
    api = error(get(client, world, "bob", "dataset", name="climate/x"), 404)
    monkeypatch.setenv("AIFDATA_USER", "bob")
    assert main(["show", "climate/x", "--catalog", str(world.catalog.path)]) == 3
    line = capsys.readouterr().err.strip().replace(str(world.catalog.path), "the catalog")
    assert line == f"aifdata: error: {api['message']}"
    assert api["type"] == "UnknownDataset"


def test_an_unexpected_error_is_500_without_its_text(world):
    def broken(call):
        raise RuntimeError("secret internals at /srv/x")

    client = client_for(world, [api_route(f"{API}/broken", broken)])
    body = error(client.get(f"{API}/broken", headers=world.headers("alice")), 500)
    assert body["type"] == "InternalError" and "secret" not in body["message"]


# -- limits ------------------------------------------------------------------------------


def echo(call):
    return {"bytes": len(call.body)}


def test_a_body_larger_than_the_limit_is_413(world):
    client = client_for(world, [api_route(f"{API}/echo", echo, methods=["POST"])],
                        max_request_bytes=1000)  # fmt: skip
    headers = world.headers("alice")
    assert client.post(f"{API}/echo", content=b"x" * 1000, headers=headers).json() == {
        "bytes": 1000
    }
    declared = client.post(f"{API}/echo", content=b"x" * 1001, headers=headers)
    assert "larger than 1,000 bytes" in error(declared, 413)["message"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(5):
            yield b"x" * 400

    streamed = client.post(f"{API}/echo", content=chunks(), headers=headers)
    assert error(streamed, 413)["type"] == "RequestTooLarge"


def test_a_token_past_its_rate_gets_429_with_retry_after(world):
    client = client_for(world, rate_per_token=0.01, burst=3)
    for _ in range(3):
        assert get(client, world, "alice", "whoami").status_code == 200
    limited = get(client, world, "alice", "whoami")
    assert error(limited, 429)["type"] == "RateLimited"
    assert int(limited.headers["retry-after"]) >= 1
    assert get(client, world, "bob", "whoami").status_code == 200  # per token


def test_a_client_guessing_tokens_is_slowed_down(world):
    client = client_for(world, rate_per_token=0.01, burst=3)
    bad = {"Authorization": "Bearer aif_0000000000000000_" + "x" * 43}
    statuses = [client.get(f"{API}/whoami", headers=bad).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]


def test_a_request_past_the_timeout_is_504(world):
    release = threading.Event()

    def slow(call):
        release.wait(30)
        return {}

    client = client_for(world, [api_route(f"{API}/slow", slow)], request_timeout=0.2)
    try:
        response = client.get(f"{API}/slow", headers=world.headers("alice"))
    finally:
        release.set()
    assert "took longer than 0.2 s" in error(response, 504)["message"]


# -- who a request acts as ---------------------------------------------------------------


def test_requests_at_once_each_act_as_their_own_token(world):
    """Many requests in flight from several users: each sees its own principal and grants
    (the principal is set in each worker thread, and none leaks into the next)."""
    app = build_app(world.catalog, ServiceSettings(rate_per_token=1e6, burst=10**6))
    users = ["alice", "bob", "carol", "boss"] * 12
    seen_before = current_principal()

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return await asyncio.gather(*(
                http.get(f"{API}/datasets", headers=world.headers(u)) for u in users
            ))  # fmt: skip

    responses = asyncio.run(run())
    expected = {}
    for user in set(users):
        with acting_as(Principal(user)):
            expected[user] = world.catalog.datasets()
    for user, response in zip(users, responses, strict=True):
        assert response.json()["datasets"] == expected[user], user
    assert current_principal() == seen_before


def test_the_audit_names_the_tokens_principal_not_the_servers(client, world, monkeypatch):
    monkeypatch.setenv("AIFDATA_USER", "boss")  # the server process runs as an admin
    monkeypatch.setenv("AIFDATA_GROUPS", "")
    refused = get(client, world, "bob", "dataset", name="climate/x")
    assert refused.status_code == 404  # not boss's view
    with acting_as(Principal("boss")):
        row = world.catalog.audit_log(1)[0]
    assert (row["principal"], row["target"], row["allowed"]) == ("user:bob", "climate/x", 0)


def test_a_file_served_is_the_one_the_catalog_checksummed(client, world):
    body = get(client, world, "carol", "dataset", name="climate/x").json()
    assert body["files"][0]["checksum"] == "sha256:" + hashlib.sha256(CSV).hexdigest()


def test_a_file_no_tier_holds_is_listed_served_by_none(client, world):
    (world.root / "archive" / "climate" / "x" / "t.csv").unlink()
    body = get(client, world, "carol", "dataset", name="climate/x").json()
    assert body["files"][0]["served_by"] is None and body["files"][0]["size"] == len(CSV)


def test_files_are_listed_up_to_the_limit_asked(client, world):
    body = get(client, world, "alice", "dataset", name="genomics/run42", files="0").json()
    assert body["files"] == [] and body["file_count"] == 1


def test_the_service_package_exports_a_complete_all():
    import inspect

    import aifdata.service as service

    assert len(service.__all__) == len(set(service.__all__))  # kept in order by ruff (RUF022)
    public = {
        name
        for name, value in vars(service).items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
    }
    assert public <= set(service.__all__)
