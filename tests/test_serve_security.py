"""What a token may reach through ``aifdata serve``, tried the ways an attacker would.

* No name, query or path (globs ``* ? [``, dot segments, encoded forms ``%2A %2e%2e %2F``,
  ``%`` and ``_`` as a LIKE would read them) widens what bob's token may read.
* A token that is expired, revoked, malformed, unknown or for another id gets one 401 body,
  whether the dataset asked for exists or not.
* Without a grant, a dataset that exists and one that does not get the same 404.
* The audit row names the token's principal, not the server process's ``$AIFDATA_USER``.

bob may read lab/gen_1, lab/a%b and shared/trimmed (see tests/_serving.py); every other
dataset is hidden from him.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from aifdata.catalog import Principal, acting_as, revoke_token
from aifdata.service import ServiceSettings, build_app

from ._serving import HIDDEN_FROM_BOB, READABLE_BY_BOB, expire, fresh_schema, make_world

API = "/api/v1"
#: What a response to bob must never hold: the hidden datasets' owners and files.
SECRETS = ("alice", "carol", "reads.fq", "sha256:", "wgs", "run 42")


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def world(request, tmp_path_factory):
    """The service's world, its catalog on each backend (SQLite, PostgreSQL)."""
    root = tmp_path_factory.mktemp("serve-security")
    if request.param == "sqlite":
        yield make_world(root)
        return
    with fresh_schema(request.getfixturevalue("_postgresql_session")) as url:
        yield make_world(root, url)


@pytest.fixture(scope="module")
def client(world):
    app = build_app(world.catalog, ServiceSettings(rate_per_token=1e6, burst=10**6))
    return TestClient(app)


def raw(client, world, user, target):
    """GET ``/api/v1/<target>`` with the query string exactly as written (no re-encoding)."""
    return client.get(f"{API}/{target}", headers=world.headers(user))


def leaks(text, asked=""):
    """What ``text`` holds of :data:`SECRETS` beyond what the request itself said."""
    return [s for s in SECRETS if s in text and s not in asked]


# Names bob might try to widen his read with: each is refused as a bad name (400) or is an
# unknown dataset (404), and no answer names a hidden dataset's owner or files.
GLOB_NAMES = ["genomics/*", "gen*", "*", "genomics/**", "genomics/run4?", "genomics/run4[0-9]",
              "lab/gen[_]1", "lab/*", "shared/*/../../genomics/run42"]  # fmt: skip
DOT_NAMES = ["genomics/../climate/x", "lab/gen_1/../../climate/x", "lab/../genomics/run42",
             "./genomics/run42", "genomics//run42", "/genomics/run42", "genomics/run42/",
             "lab/gen_1/..", " genomics/run42", "genomics/run42\x00"]  # fmt: skip
LIKE_NAMES = ["lab/gen_", "lab/gen%", "lab/a%", "lab/%", "lab/_%", "%", "_", "lab/gen_1%",
              "lab/a%b%", "lab/____1", "genomics/run4_", "genomics%"]  # fmt: skip
#: The same and more, percent-encoded in the raw query string (decoded once by the server).
ENCODED_NAMES = {
    "genomics%2F%2A": 400, "gen%2A": 400, "%2A": 400, "genomics%2Frun4%3F": 400,
    "genomics%2Frun4%5B0-9%5D": 400, "genomics%2F..%2Fclimate%2Fx": 400,
    "%2e%2e/climate/x": 400, "genomics/%2e%2e/climate/x": 400, "lab%2F%2E%2E%2Fclimate%2Fx": 400,
    "genomics%252Frun42": 404, "genomics%252A": 404, "lab%2Fgen%25": 404, "lab/a%25": 404,
    "lab%2Fgen%5F": 404, "genomics%2Frun42%00": 400, "%252e%252e/climate/x": 404,
}  # fmt: skip


@pytest.mark.parametrize("name", GLOB_NAMES + DOT_NAMES)
@pytest.mark.parametrize(
    ("endpoint", "param"), [("dataset", "name"), ("lineage", "ref"), ("partitions", "name")]
)
def test_a_glob_or_dot_name_is_a_bad_name(client, world, endpoint, param, name):
    response = client.get(f"{API}/{endpoint}", params={param: name}, headers=world.headers("bob"))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] in ("BadName", "BadArgument")  # BadArgument: a NUL
    assert not leaks(response.text)


@pytest.mark.parametrize("name", LIKE_NAMES)
@pytest.mark.parametrize(
    ("endpoint", "param"), [("dataset", "name"), ("lineage", "ref"), ("partitions", "name")]
)
def test_percent_and_underscore_are_no_wildcards(client, world, endpoint, param, name):
    response = client.get(f"{API}/{endpoint}", params={param: name},
                          headers=world.headers("bob"))  # fmt: skip
    assert response.status_code == 404, response.text
    body = response.json()["error"]
    assert body == {"type": "UnknownDataset", "message": unknown(world, name, "bob")}


def unknown(world, name, user):
    return f"no dataset {name!r} in the catalog that user:{user} may read"  # never its path


@pytest.mark.parametrize(("query", "status"), sorted(ENCODED_NAMES.items()))
def test_an_encoded_name_reaches_no_more_than_the_plain_one(client, world, query, status):
    for target in (f"dataset?name={query}", f"lineage?ref={query}", f"partitions?name={query}"):
        response = raw(client, world, "bob", target)
        assert response.status_code == status, (target, response.text)
        assert not leaks(response.text)


WIDE_QUERIES = ["*", "%", "_", "gen*", "gen_1", "genx1", "a%b", "a%", "lab", "lab/*", "reads",
                "run 42", "climate", "genomics/../climate", "%2A", "%25", "x OR 1=1", "\"",
                "name:genomics", "NEAR(run 42)", "wgs", "* OR *", "table"]  # fmt: skip


@pytest.mark.parametrize("query", WIDE_QUERIES)
def test_search_finds_only_what_bob_may_read(client, world, query):
    response = client.get(f"{API}/search", params={"q": query}, headers=world.headers("bob"))
    assert response.status_code == 200, response.text
    names = {h["name"] for h in response.json()["hits"]}
    assert names <= set(READABLE_BY_BOB), names


@pytest.mark.parametrize(
    ("owner", "expected"),
    [("alice", {"shared/trimmed"}), ("carol", {"lab/gen_1", "lab/a%b"}), ("%", set()),
     ("_____", set()), ("*", set())],
)  # fmt: skip
def test_search_by_owner_finds_only_what_bob_may_read(client, world, owner, expected):
    response = client.get(f"{API}/search", params={"owner": owner}, headers=world.headers("bob"))
    assert {h["name"] for h in response.json()["hits"]} == expected


@pytest.mark.parametrize("tag", ["assay=wgs", "assay=*", "assay=%", "assay=w_s", "*=*"])
def test_search_by_tag_finds_only_what_bob_may_read(client, world, tag):
    response = client.get(f"{API}/search", params={"tag": tag}, headers=world.headers("bob"))
    assert response.status_code == 200 and response.json()["hits"] == []


def test_bob_lists_exactly_his_datasets(client, world):
    listed = raw(client, world, "bob", "datasets").json()["datasets"]
    assert listed == sorted(READABLE_BY_BOB)


@pytest.mark.parametrize("param", ["q", "format", "owner", "tag"])
def test_a_nul_in_a_search_parameter_is_a_bad_argument(client, world, param):
    value = "k=\x00" if param == "tag" else "run\x0042"
    response = client.get(f"{API}/search", params={param: value}, headers=world.headers("bob"))
    assert response.status_code == 400 and "holds a NUL character" in response.text


def test_a_repeated_parameter_is_refused_not_guessed(client, world):
    response = raw(client, world, "bob", "dataset?name=lab/gen_1&name=climate/x")
    assert response.status_code == 400 and "given 2 times" in response.text


# Paths bob might try for where and partitions: none reaches a hidden file or leaves the
# aif:// namespace.
BAD_PATHS = [
    "aif://both/run42/*", "aif://both/run4?/reads.fq", "aif://both/run4[0-9]/reads.fq",
    "aif://both/*/t.csv", "aif://both/lab/gen_1/*", "aif://both/lab/../run42/reads.fq",
    "aif://both/lab/gen_1/../../run42/reads.fq", "aif://both/%2e%2e/run42/reads.fq",
    "aif://both/lab/gen_1/%2e%2e/%2e%2e/run42/reads.fq", "aif://both/lab%2F..%2Frun42/reads.fq",
    "aif://both/run42%2Freads.fq", "aif:///etc/passwd", "file:///etc/passwd",
    "s3://bucket/run42/reads.fq", "aif://both/lab/gen_1/../../../../etc/passwd",
    "aif://both/lab/gen_1/t.csv\x00", "aif://both/lab\\..\\run42/reads.fq", "aif://",
    "aif://both/run42/reads.f%3F", "aif://both/run42/reads.f%2A",
]  # fmt: skip


@pytest.mark.parametrize("path", BAD_PATHS)
@pytest.mark.parametrize("endpoint", ["where", "partitions"])
def test_a_path_reaches_no_hidden_file_and_stays_in_aif(client, world, endpoint, path):
    response = client.get(f"{API}/{endpoint}", params={"path": path}, headers=world.headers("bob"))
    assert response.status_code in (400, 403, 404), response.text
    assert not leaks(response.text, path)
    if any(c in path.removeprefix("aif://") for c in "*?[") or "://" in path.removeprefix("aif://"):
        assert response.status_code == 400


@pytest.mark.parametrize("path", ["/etc/passwd", "file:///etc/passwd", "s3://b/k", "../x"])
def test_partitions_never_read_a_server_file(client, world, path):
    response = client.get(
        f"{API}/partitions", params={"path": path}, headers=world.headers("boss")
    )  # fmt: skip  (even for an admin)
    assert response.status_code in (400, 404), response.text
    assert "root:" not in response.text


def test_a_readable_file_is_planned_through_the_same_checks(client, world):
    response = client.get(f"{API}/partitions", params={"path": "aif://both/lab/gen_1/t.csv"},
                          headers=world.headers("bob"))  # fmt: skip
    assert response.status_code == 200 and response.json()["partitions"]


@pytest.mark.parametrize("endpoint", ["where", "partitions"])
def test_a_hidden_file_and_a_missing_one_are_refused_alike(client, world, endpoint):
    def ask(path):
        response = client.get(f"{API}/{endpoint}", params={"path": path},
                              headers=world.headers("bob"))  # fmt: skip
        return response.status_code, response.text.replace(path, "PATH")

    there, missing = ask("aif://both/climate/x/t.csv"), ask("aif://both/climate/x/nope.csv")
    nowhere = ask("aif://both/in-no-dataset/t.csv")
    assert there == missing == nowhere and there[0] == 404
    assert not leaks(there[1])


@pytest.mark.parametrize("endpoint", ["where", "partitions"])
def test_a_hidden_file_is_refused_as_missing_and_audited(client, world, endpoint):
    """``where`` and ``partitions`` said 403 "governed by a dataset user:bob may not see"
    of a hidden dataset's file and 404 of a path in no dataset: probing mapped where hidden
    data lives. Now both are 404 with the same words, and the refusal is still audited."""
    path = "aif://both/lab/genx1/t.csv"
    response = client.get(f"{API}/{endpoint}", params={"path": path},
                          headers=world.headers("bob"))  # fmt: skip
    assert response.status_code == 404, response.text
    assert response.json()["error"]["message"] == f"{path}: no such file or directory"
    with acting_as(Principal("boss")):
        rows = world.catalog.audit_log(5)
    assert any(r["principal"] == "user:bob" and r["target"] == path and not r["allowed"]
               for r in rows), rows  # fmt: skip


# -- tokens ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_tokens(world):
    """Tokens that must not authenticate, each a different reason."""
    from aifdata.catalog import create_token

    with acting_as(Principal("boss")):
        expired = create_token(world.catalog, "bob", expires_in=3600)
        revoked = create_token(world.catalog, "bob")
        revoke_token(world.catalog, revoked.token.id)
    expire(world.catalog, expired.token.id)
    bob = world.tokens["bob"]
    bob_id, bob_secret = bob.split("_", 2)[1:]
    alice_secret = world.tokens["alice"].split("_", 2)[2]
    return {
        "expired": expired.text,
        "revoked": revoked.text,
        "malformed": "hello",
        "malformed-prefix": bob.replace("aif_", "aiff_"),
        "unknown id": f"aif_{'f' * 16}_{bob_secret}",
        "another's secret": f"aif_{bob_id}_{alice_secret}",
        "truncated": bob[:-3],
        "padded": bob + "A",
        "sql": "aif_0000000000000000_' OR '1'='1' --xxxxxxxxxx",
        "admin's id": world.tokens["boss"].rsplit("_", 1)[0] + "_" + "A" * 43,
    }


TARGETS = ["dataset?name=climate/x", "dataset?name=climate/nope", "dataset?name=lab/gen_1",
           "lineage?ref=genomics/run42", "lineage?ref=genomics/nope", "audit", "whoami",
           "where?path=aif://both/climate/x/t.csv"]  # fmt: skip


def test_a_bad_token_gets_one_401_whatever_it_asks(client, world, bad_tokens):
    bodies = set()
    for why, token in bad_tokens.items():
        for target in TARGETS:
            response = client.get(f"{API}/{target}", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, (why, target, response.text)
            bodies.add(response.text)
    assert bodies == {'{"error":{"type":"InvalidToken","message":"invalid or expired token"}}'}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Bearer  "},
     {"Authorization": "Basic Ym9iOmJvYg=="}, {"Authorization": "Token aif_x"},
     {"Cookie": "aifdata_token="}],
    ids=["none", "empty", "bearer-alone", "bearer-blank", "basic", "other-scheme", "empty-cookie"],
)  # fmt: skip
def test_no_token_is_no_access(client, headers):
    for target in TARGETS:
        response = client.get(f"{API}/{target}", headers=headers)
        assert response.status_code == 401, (target, response.text)
        assert response.json()["error"]["type"] == "InvalidToken"


def test_a_bad_token_in_the_cookie_is_refused_alike(world, bad_tokens):
    client = TestClient(build_app(world.catalog, ServiceSettings(rate_per_token=1e6,
                                                                 burst=10**6)))  # fmt: skip
    for token in bad_tokens.values():
        client.cookies.set("aifdata_token", token)
        assert client.get(f"{API}/dataset?name=climate/x").status_code == 401


def test_a_revoked_token_stops_working_at_once(client, world):
    from aifdata.catalog import create_token

    with acting_as(Principal("boss")):
        made = create_token(world.catalog, "bob")
    headers = {"Authorization": f"Bearer {made.text}"}
    assert client.get(f"{API}/whoami", headers=headers).status_code == 200
    with acting_as(Principal("bob")):
        revoke_token(world.catalog, made.token.id)
    assert client.get(f"{API}/whoami", headers=headers).status_code == 401


def test_a_cookie_alone_changes_nothing(world):
    """A page on another site can make a browser send the cookie, not a header: a request
    that is not GET needs X-Requested-With with the cookie (not with a Bearer token)."""
    from aifdata.service import api_route

    def change(call):
        return {"changed": True}

    route = api_route(f"{API}/change", change, methods=["POST"])
    app = build_app(world.catalog, ServiceSettings(), extra_routes=[route])
    client = TestClient(app)
    client.cookies.set("aifdata_token", world.tokens["alice"])
    refused = client.post(f"{API}/change")
    assert refused.status_code == 403 and "X-Requested-With" in refused.text
    assert client.post(f"{API}/change", headers={"X-Requested-With": "aifdata"}).json() == {
        "changed": True
    }
    assert client.get(f"{API}/whoami").status_code == 200
    client.cookies.clear()
    assert client.post(f"{API}/change", headers=world.headers("alice")).status_code == 200


# -- hidden and missing datasets ---------------------------------------------------------


@pytest.mark.parametrize("hidden", HIDDEN_FROM_BOB)
@pytest.mark.parametrize("shape", ["dataset?name={}", "dataset?name={}&version=1",
                                   "lineage?ref={}", "lineage?ref={}@1",
                                   "partitions?name={}&n=2"])  # fmt: skip
def test_a_hidden_dataset_reads_as_a_missing_one(client, world, hidden, shape):
    missing = hidden + "-nope"
    there = raw(client, world, "bob", shape.format(hidden))
    gone = raw(client, world, "bob", shape.format(missing))
    assert there.status_code == gone.status_code == 404
    assert there.text == gone.text.replace(missing, hidden)
    assert not leaks(there.text)


def test_lineage_counts_a_hidden_output_and_never_names_it(client, world):
    body = raw(client, world, "bob", "lineage?ref=lab/gen_1").json()
    (entry,) = body["downstream"]["runs"]
    assert entry["run"]["outputs"] == [] and entry["run"]["hidden_outputs"] == 1
    assert entry["datasets"] == [] and "climate" not in str(body)


@pytest.mark.parametrize(
    ("user", "other", "owner"),
    [("alice", "climate/x", "carol"), ("carol", "genomics/run42", "alice")],
)
def test_a_hidden_datasets_owner_is_never_named(client, world, user, other, owner):
    for target in (f"dataset?name={other}", f"lineage?ref={other}"):
        response = raw(client, world, user, target)
        assert response.status_code == 404 and owner not in response.text


# -- who is audited ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "target", ["dataset?name=climate/x", "lineage?ref=climate/x", "where?path=aif://both/climate/x/t.csv",
               "partitions?path=aif://both/climate/x/t.csv", "partitions?name=climate/x", "audit"],
)  # fmt: skip
def test_the_audit_row_names_the_tokens_principal(client, world, monkeypatch, target):
    monkeypatch.setenv("AIFDATA_USER", "boss")  # the server process's own user, an admin
    monkeypatch.setenv("AIFDATA_GROUPS", "")
    with acting_as(Principal("boss")):
        before = world.catalog.audit_log(1)[0]["id"]
    response = raw(client, world, "bob", target)
    assert response.status_code in (403, 404)
    with acting_as(Principal("boss")):
        rows = [r for r in world.catalog.audit_log(50) if r["id"] > before]
    assert rows and {r["principal"] for r in rows} == {"user:bob"}
    assert all(r["allowed"] == 0 for r in rows)


# -- whatever bob types ------------------------------------------------------------------

#: Characters an attacker reaches for first, mixed with the names of hidden datasets.
_PIECES = st.sampled_from(
    ["*", "?", "[", "]", "!", "..", ".", "/", "%", "_", "%2A", "%2e", "%2F", "%25", "\\",
     "\x00", " ", "@1", "genomics", "run42", "climate", "x", "lab", "gen", "a", "b", "XYZ",
     "both", "aif://", "é", "\u2024"]
)  # fmt: skip
_TEXT = st.one_of(st.lists(_PIECES, max_size=8).map("".join), st.text(max_size=40))
FUZZ = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip


@FUZZ
@given(text=_TEXT)
def test_no_name_bob_types_reaches_a_hidden_dataset(client, world, text):
    for endpoint, param in (("dataset", "name"), ("lineage", "ref"), ("partitions", "name")):
        response = client.get(f"{API}/{endpoint}", params={param: text},
                              headers=world.headers("bob"))  # fmt: skip
        name = text.rpartition("@")[0] if param == "ref" and "@" in text else text
        if response.status_code == 200:
            assert name in READABLE_BY_BOB, (endpoint, text)
        else:
            assert response.status_code in (400, 404), (endpoint, text, response.text)
        assert not leaks(response.text, text)


@FUZZ
@given(text=_TEXT)
def test_no_query_bob_types_finds_a_hidden_dataset(client, world, text):
    response = client.get(f"{API}/search", params={"q": text}, headers=world.headers("bob"))
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        assert {h["name"] for h in response.json()["hits"]} <= set(READABLE_BY_BOB)


@FUZZ
@given(text=_TEXT)
def test_no_path_bob_types_reaches_a_hidden_file(client, world, text):
    for endpoint in ("where", "partitions"):
        path = text if text.startswith("aif://") else f"aif://both/{text}"
        response = client.get(f"{API}/{endpoint}", params={"path": path},
                              headers=world.headers("bob"))  # fmt: skip
        assert response.status_code in (200, 400, 403, 404, 422), (path, response.text)
        if response.status_code == 200:
            served = (response.json().get("path") or "").removeprefix("aif://")
            readable = ("both/lab/gen_1/", "both/lab/a-pct-b/", "both/trimmed/")
            assert served.startswith(readable), (path, served)


@FUZZ
@given(q=_TEXT, fmt=_TEXT, owner=_TEXT, key=_TEXT, value=_TEXT)
def test_no_search_filter_bob_types_finds_a_hidden_dataset(
    client, world, q, fmt, owner, key, value
):
    params = {"q": q, "format": fmt, "owner": owner, "tag": f"{key or 'k'}={value}"}
    response = client.get(f"{API}/search", params=params, headers=world.headers("bob"))
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        assert {h["name"] for h in response.json()["hits"]} <= set(READABLE_BY_BOB)
