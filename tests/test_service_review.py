"""An adversarial review of ``aifdata serve``: what a token for a user with few grants
tried, and each hole it found (each test failed before its fix).

bob may read lab/gen_1, lab/a%b and shared/* (see tests/_serving.py). Here a site's data
steward also made ``shared/everything``, a dataset whose location is the whole mount, so
it holds the files of datasets hidden from bob.
"""

from __future__ import annotations

import dataclasses
import time
import uuid

import anyio
import httpx
import pytest
from starlette.testclient import TestClient

import aifdata
from aifdata import Catalog
from aifdata._paths import clean_path
from aifdata.catalog import Principal, acting_as
from aifdata.service import ServiceSettings, build_app
from aifdata.service._mcp_tools import CatalogTools
from aifdata.service._uploads import STAGING

from ._serving import CSV, READS, make_world

API = "/api/v1"
#: The files of the datasets hidden from bob (inside ``shared/everything``'s location).
HIDDEN_FILES = (
    "aif://both/run42/reads.fq", "aif://both/climate/x/t.csv", "aif://both/lab/genx1/t.csv",
    "aif://both/lab/aXYZb/t.csv", "aif://both/climate/derived/t.csv",
)  # fmt: skip


IN_FLIGHT, COMMITTED = "0123456789abcdef", "fedcba9876543210"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = make_world(tmp_path_factory.mktemp("review"))
    with acting_as(Principal("boss")):
        world.catalog.ingest("aif://both", "shared/everything")
        fs = aifdata.filesystem(world.config, catalog=world.catalog)
        # an upload of alice's in flight, and one committed (a dataset bob may read)
        fs.pipe(f"both/{STAGING}/{IN_FLIGHT}.json", b'{"dataset": "genomics/run42"}')
        fs.pipe(f"both/{STAGING}/{IN_FLIGHT}/reads.fq", READS)
        fs.pipe(f"both/{STAGING}/{COMMITTED}/t.csv", CSV)
        world.catalog.ingest(f"aif://both/{STAGING}/{COMMITTED}", "shared/committed")
    return world


@pytest.fixture(scope="module")
def client(world):
    return TestClient(build_app(world.catalog, ServiceSettings(rate_per_token=1e6, burst=10**6)))


# -- a dataset that holds another's files ------------------------------------------------


def test_a_file_of_a_hidden_dataset_is_refused_by_path(client, world):
    response = client.get(f"{API}/partitions", params={"path": HIDDEN_FILES[0]},
                          headers=world.headers("bob"))  # fmt: skip
    assert response.status_code in (403, 404)


def test_a_dataset_plan_reads_no_file_the_caller_may_not_read(client, world):
    """A plan of a dataset's files is read through the same gate as a plan of one path:
    ``partitions?name=`` planned (read) the files of the datasets hidden inside it."""
    response = client.get(f"{API}/partitions", params={"name": "shared/everything"},
                          headers=world.headers("bob"))  # fmt: skip
    planned = {p["url"] for p in response.json().get("partitions", [])}
    assert not planned & set(HIDDEN_FILES), sorted(planned & set(HIDDEN_FILES))
    assert response.status_code in (403, 404), response.text


def test_a_dataset_plan_still_plans_what_the_caller_may_read(client, world):
    response = client.get(f"{API}/partitions", params={"name": "shared/trimmed", "n": 2},
                          headers=world.headers("bob"))  # fmt: skip
    assert response.status_code == 200, response.text
    assert {p["url"] for p in response.json()["partitions"]} == {"aif://both/trimmed/reads.fq"}


def test_the_owner_plans_the_whole_dataset(client, world):
    response = client.get(f"{API}/partitions", params={"name": "shared/everything"},
                          headers=world.headers("boss"))  # fmt: skip
    assert response.status_code == 200, response.text
    assert set(HIDDEN_FILES) <= {p["url"] for p in response.json()["partitions"]}


def hidden_names():
    """The file names of the datasets hidden from bob, as a dataset listing names them."""
    return {f.removeprefix("aif://both/") for f in HIDDEN_FILES}


def test_a_dataset_lists_none_of_the_files_of_datasets_hidden_inside_it(client, world):
    """``dataset?name=shared/everything`` listed the names and checksums of the files of
    every dataset inside its location, hidden from bob or not: now they are counted."""
    response = client.get(f"{API}/dataset", params={"name": "shared/everything"},
                          headers=world.headers("bob"))  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    listed = {f["path"] for f in body["files"]}
    assert not listed & hidden_names(), sorted(listed & hidden_names())
    assert "trimmed/reads.fq" in listed and "lab/gen_1/t.csv" in listed
    assert body["hidden_files"] == len(HIDDEN_FILES) and body["file_count"] == len(listed)
    assert "run42" not in response.text and "genx1" not in response.text


def test_the_owner_lists_every_file_of_the_dataset(client, world):
    response = client.get(f"{API}/dataset", params={"name": "shared/everything"},
                          headers=world.headers("boss"))  # fmt: skip
    body = response.json()
    assert hidden_names() <= {f["path"] for f in body["files"]} and body["hidden_files"] == 0


def test_describe_dataset_lists_none_of_the_hidden_files(world):
    tools = CatalogTools(world.catalog, world.config)
    with acting_as(Principal("bob")):
        described = tools.describe_dataset("shared/everything")
    listed = {f["path"] for f in described["files"]}
    assert not listed & hidden_names() and "trimmed/reads.fq" in listed
    assert described["hidden_files"] == len(HIDDEN_FILES)


def web_page(world, user):
    from aifdata.service import WEB_ROUTES

    app = build_app(world.catalog, ServiceSettings(rate_per_token=1e6, burst=10**6),
                    extra_routes=WEB_ROUTES)  # fmt: skip
    return TestClient(app, cookies={"aifdata_token": world.tokens[user]})


def test_the_dataset_page_lists_none_of_the_hidden_files(world):
    response = web_page(world, "bob").get("/datasets/shared/everything")
    assert response.status_code == 200, response.text
    assert "trimmed/reads.fq" in response.text
    assert not [name for name in hidden_names() if name in response.text]
    assert f"{len(HIDDEN_FILES)} hidden" in response.text


# -- answers name no server path: a PFS tier's directory -------------------------------------


def test_where_names_a_local_copy_by_its_aif_path(client, world):
    """``where`` answered the PFS copy's path on the server (its tier directories)."""
    path = "aif://both/trimmed/reads.fq"
    response = client.get(f"{API}/where", params={"path": path}, headers=world.headers("bob"))
    assert response.status_code == 200, response.text
    assert (response.json()["tier"], response.json()["url"]) == ("archive", path)
    assert str(world.root) not in response.text


def test_a_dataset_names_its_local_replicas_by_tier_and_aif_path(client, world):
    response = client.get(f"{API}/dataset", params={"name": "shared/trimmed"},
                          headers=world.headers("bob"))  # fmt: skip
    assert response.status_code == 200, response.text
    assert str(world.root) not in response.text
    [f] = response.json()["files"]
    assert f["replicas"] and {r["url"] for r in f["replicas"]} == {"aif://both/trimmed/reads.fq"}


def test_the_mcp_tools_name_no_server_path(world):
    tools = CatalogTools(world.catalog, world.config)
    with acting_as(Principal("bob")):
        answers = [tools.where_is("aif://both/trimmed/reads.fq"),
                   tools.describe_dataset("shared/trimmed"),
                   tools.plan_partitions("aif://both/trimmed/reads.fq", n=2)]  # fmt: skip
    assert answers[0]["url"] == "aif://both/trimmed/reads.fq"
    assert str(world.root) not in repr(answers)


def test_the_dataset_page_names_no_server_path(world):
    response = web_page(world, "bob").get("/datasets/shared/trimmed")
    assert response.status_code == 200 and str(world.root) not in response.text


def test_the_mcp_tools_refuse_a_hidden_file_as_a_missing_one(world):
    tools = CatalogTools(world.catalog, world.config)
    for tool in ("where_is", "plan_partitions", "read_sample"):
        with acting_as(Principal("bob")), pytest.raises(FileNotFoundError) as hidden:
            getattr(tools, tool)(HIDDEN_FILES[0])
        with acting_as(Principal("bob")), pytest.raises(FileNotFoundError) as missing:
            getattr(tools, tool)("aif://both/run42/nothing.fq")
        assert str(hidden.value) == str(missing.value).replace("nothing.fq", "reads.fq")


# -- the upload area, inside a dataset's location ------------------------------------------

IN_FLIGHT_PATHS = [f"aif://both/{STAGING}/{IN_FLIGHT}.json",
                   f"aif://both/{STAGING}/{IN_FLIGHT}/reads.fq"]  # fmt: skip


@pytest.mark.parametrize("path", IN_FLIGHT_PATHS)
@pytest.mark.parametrize("endpoint", ["info", "where", "partitions"])
def test_an_upload_in_flight_is_read_by_no_one(client, world, endpoint, path):
    """Bytes uploaded for a dataset hidden from bob (and the upload's manifest) were
    readable by bob while in flight, through a dataset located at the mount's root."""
    response = client.get(f"{API}/{endpoint}", params={"path": path},
                          headers=world.headers("bob"))  # fmt: skip
    assert response.status_code == 404, response.text


def test_a_listing_of_the_upload_area_shows_committed_uploads_only(client, world):
    response = client.get(f"{API}/ls", params={"path": f"aif://both/{STAGING}"},
                          headers=world.headers("bob"))  # fmt: skip
    assert response.status_code == 200, response.text
    names = [e["name"] for e in response.json()["entries"]]
    assert names == [f"both/{STAGING}/{COMMITTED}"]


def test_a_committed_upload_is_read_as_its_dataset(client, world):
    response = client.get(f"{API}/info", params={"path": f"aif://both/{STAGING}/{COMMITTED}/t.csv"},
                          headers=world.headers("bob"))  # fmt: skip
    assert response.status_code == 200 and response.json()["size"] == len(CSV)


@pytest.mark.parametrize("tool", ["where_is", "plan_partitions", "read_sample"])
def test_the_mcp_tools_read_no_upload_in_flight(world, tool):
    tools = CatalogTools(world.catalog, world.config)
    with acting_as(Principal("bob")), pytest.raises(FileNotFoundError):
        getattr(tools, tool)(IN_FLIGHT_PATHS[1])


# -- errors name nothing of the server's -------------------------------------------------


@pytest.fixture(scope="module")
def site_client(world):
    """The service over a mount table read from a file on the server."""
    config = dataclasses.replace(world.config, source="/srv/secret/aifdata-site.toml")
    catalog = Catalog(world.root / "catalog.db", config=config)
    return TestClient(build_app(catalog, ServiceSettings(rate_per_token=1e6, burst=10**6)))


@pytest.mark.parametrize("endpoint", ["info", "ls", "where", "partitions"])
def test_a_path_outside_every_mount_names_no_server_file(site_client, world, endpoint):
    response = site_client.get(f"{API}/{endpoint}", params={"path": "aif://nomount/x"},
                               headers=world.headers("bob"))  # fmt: skip
    assert response.status_code == 404, response.text
    assert "/srv/secret" not in response.text


@pytest.mark.parametrize("tool", ["where_is", "plan_partitions", "read_sample"])
def test_an_mcp_path_outside_every_mount_names_no_server_file(world, tool):
    config = dataclasses.replace(world.config, source="/srv/secret/aifdata-site.toml")
    tools = CatalogTools(Catalog(world.root / "catalog.db", config=config), config)
    with acting_as(Principal("bob")), pytest.raises(FileNotFoundError) as refused:
        getattr(tools, tool)("aif://nomount/x")
    assert "/srv/secret" not in str(refused.value)


# -- /mcp: bad tokens are slowed per client address, as on the API -------------------------

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "review", "version": "0"}},
}  # fmt: skip


def from_address(app):
    """``app`` seeing each request come from the address its ``X-Test-Client`` names."""

    async def addressed(scope, receive, send):
        if scope["type"] == "http":
            named = dict(scope["headers"]).get(b"x-test-client")
            if named:
                scope = {**scope, "client": (named.decode(), 1)}
        await app(scope, receive, send)

    return addressed


BAD = "Bearer aif_0000000000000000_" + "x" * 43


@pytest.fixture
def mcp_client(world):
    """The service with /mcp, a bad token's bucket holding 3 requests per address."""
    app = build_app(world.catalog, ServiceSettings(rate_per_token=0.001, burst=3), mcp=True)
    with TestClient(from_address(app)) as client:
        yield client


def test_bad_tokens_on_mcp_from_one_address_lock_out_no_other(world, mcp_client):
    """Every /mcp request was identified as client address "": one client's bad tokens
    emptied the one shared bucket, and every MCP client (good tokens too) got 401."""
    attacker = {**MCP_HEADERS, "Authorization": BAD, "X-Test-Client": "10.0.0.66"}
    for _ in range(6):
        assert mcp_client.post("/mcp", json=INITIALIZE, headers=attacker).status_code in (401, 429)
    honest = {**MCP_HEADERS, **world.headers("carol"), "X-Test-Client": "10.0.0.7"}
    response = mcp_client.post("/mcp", json=INITIALIZE, headers=honest)
    assert response.status_code == 200, response.text


def test_bad_tokens_on_mcp_count_against_the_address_on_the_api(world, mcp_client):
    """The attacker's address is slowed on the API after its bad tokens on /mcp."""
    attacker = {**MCP_HEADERS, "Authorization": BAD, "X-Test-Client": "10.0.0.66"}
    for _ in range(3):
        mcp_client.post("/mcp", json=INITIALIZE, headers=attacker)
    response = mcp_client.get(f"{API}/whoami", headers=attacker)
    assert response.status_code == 429, response.text


# -- uploads: a committed version's bytes ---------------------------------------------------


@pytest.fixture(scope="module")
def site(_seaweedfs_session, session_bucket, tmp_path_factory):
    """A real ``aifdata serve`` over SeaweedFS (tests/_vend_world.py)."""
    from ._vend_world import make_site, start_server

    root = tmp_path_factory.mktemp("review-vend")
    made = make_site(
        root, _seaweedfs_session, f"s3://{session_bucket}/review-{uuid.uuid4().hex[:8]}"
    )
    start_server(made)
    yield made
    made.stop()


def test_a_put_url_cannot_change_a_committed_version(site):
    """After commit, the upload's PUT URL writes only into the dead staging prefix: the
    version's bytes are a copy no URL names."""
    api = f"{site.base}{API}"
    started = httpx.post(f"{api}/uploads", headers=site.headers("bob"), timeout=30, json={
        "dataset": "genomics/inbox", "files": [{"path": "a.csv", "size": len(CSV)}]})  # fmt: skip
    assert started.status_code == 200, started.text
    upload, url = started.json()["upload"], started.json()["files"][0]["url"]
    assert httpx.put(url, content=CSV).status_code == 200
    done = httpx.post(f"{api}/uploads/{upload}/commit", headers=site.headers("bob"), timeout=60)
    assert done.status_code == 200, done.text
    forged = b"t,v\n6,6\n6,6\n"
    assert len(forged) == len(CSV)
    httpx.put(url, content=forged)
    with acting_as(Principal("bob")):
        ds = site.catalog().dataset("genomics/inbox", done.json()["version"])
        fs = aifdata.filesystem(aifdata.load_config(site.config_path), catalog=site.catalog())
        assert fs.cat(clean_path(ds.urls(fs.config)[0])) == CSV


# -- a body sent slowly ---------------------------------------------------------------------


def post_slowly(app, path, headers=()):
    """POST to ``path`` a body that never ends (the first byte, then nothing): the status
    the app answers (a guard fails the test when it does not answer at all)."""
    import anyio

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("10.0.0.9", 1), "server": ("testserver", 80),
        "headers": [(b"host", b"testserver"), (b"content-length", b"100"), *headers],
    }  # fmt: skip
    sent, started = [], False

    async def receive():
        nonlocal started
        if not started:
            started = True
            return {"type": "http.request", "body": b"{", "more_body": True}
        await anyio.sleep_forever()

    async def send(message):
        sent.append(message)

    async def main():
        with anyio.fail_after(20):  # a guard against a hang, not a measure of time
            await app(scope, receive, send)

    anyio.run(main)
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


@pytest.mark.parametrize(
    ("path", "headers"),
    [("/api/v1/presign", [(b"authorization", b"Bearer aif_0000000000000000_" + b"x" * 43)]),
     ("/api/v1/uploads", [(b"authorization", b"Bearer whatever")]),
     ("/login", [(b"content-type", b"application/x-www-form-urlencoded")])],
)  # fmt: skip
def test_a_body_that_never_ends_is_cut_off_at_the_request_timeout(world, path, headers):
    """A request body was read with no time limit (before the token was checked): a client
    without a token could hold connections open for ever, a byte at a time."""
    from aifdata.service import WEB_ROUTES

    settings = ServiceSettings(request_timeout=0.5)
    app = build_app(world.catalog, settings, extra_routes=WEB_ROUTES)
    assert post_slowly(app, path, headers) in (408, 504)


# -- errors name no server file: the catalog's location -------------------------------------


@pytest.mark.parametrize(
    "target", ["dataset?name=climate/x", "dataset?name=climate/nope", "lineage?ref=climate/x@1"]
)
def test_a_refusal_names_not_the_catalogs_file(client, world, target):
    """ "no dataset 'climate/x' in /srv/.../catalog.db that user:bob may read": every
    refusal of a dataset told any token holder where the catalog lives on the server (on
    PostgreSQL: its host, user and database)."""
    response = client.get(f"{API}/{target}", headers=world.headers("bob"))
    assert response.status_code == 404, response.text
    assert str(world.root) not in response.text, response.text


def test_the_web_page_names_not_the_catalogs_file(world):
    from aifdata.service import WEB_ROUTES

    app = build_app(world.catalog, ServiceSettings(), extra_routes=WEB_ROUTES)
    page = TestClient(app, cookies={"aifdata_token": world.tokens["bob"]})
    response = page.get("/datasets/climate/x")
    assert response.status_code == 404 and str(world.root) not in response.text


def test_an_mcp_tool_names_not_the_catalogs_file(world):
    from mcp.server.mcpserver.exceptions import ToolError

    from aifdata.service._mcp import _Tools

    tools = _Tools(CatalogTools(world.catalog, world.config), world.catalog,
                   lambda _ctx: Principal("bob"))  # fmt: skip
    with pytest.raises(ToolError) as refused:
        anyio.run(tools.describe_dataset, None, "climate/x")
    assert "no dataset 'climate/x'" in str(refused.value)
    assert str(world.root) not in str(refused.value)


# -- a presigned URL outliving its token ----------------------------------------------------


def short_token(site, seconds):
    from aifdata.catalog import create_token

    with acting_as(Principal("boss")):
        return create_token(site.catalog(), "user:bob", expires_in=seconds).text


def test_a_presigned_get_lives_no_longer_than_its_token(site):
    """A token expiring in 60 s minted GET URLs living the service's cap (600 s here): a
    bearer credential longer-lived than the token that made it."""
    token = short_token(site, 60)
    response = httpx.post(f"{site.base}{API}/presign", timeout=30,
                          headers={"Authorization": f"Bearer {token}"},
                          json={"path": "aif://both/run42/reads.fq", "expires": 600})  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["expires_in"] <= 60


def test_a_presigned_put_lives_no_longer_than_its_token(site):
    token = short_token(site, 60)
    response = httpx.post(f"{site.base}{API}/uploads", timeout=30,
                          headers={"Authorization": f"Bearer {token}"},
                          json={"dataset": "genomics/inbox", "expires": 600,
                                "files": [{"path": "x.csv", "size": 3}]})  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["expires_at"] <= time.time() + 60
    assert "X-Amz-Expires=600" not in response.json()["files"][0]["url"]


def test_mcp_says_too_many_requests_as_the_api_does(world, mcp_client):
    """A client slowed down on /mcp was told 401 (its token refused), so a well-behaved
    client dropped a good token instead of waiting: now 429 with Retry-After."""
    attacker = {**MCP_HEADERS, "Authorization": BAD, "X-Test-Client": "10.0.0.99"}
    for _ in range(3):
        mcp_client.post("/mcp", json=INITIALIZE, headers=attacker)
    response = mcp_client.post("/mcp", json=INITIALIZE, headers=attacker)
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"]["type"] == "RateLimited"  # the API's shape


def test_a_catalog_fault_on_mcp_is_a_500_that_names_no_location(world, monkeypatch):
    """A fault while checking a token (the catalog locked, its server down) is not a
    refused token (401, which tells a client to drop it), and its text (naming the
    catalog's file, or a PostgreSQL host and user) stays in the server's log."""
    from aifdata import CatalogError
    from aifdata.service import _calls

    where = str(world.catalog.path)

    def down(catalog, text):
        raise CatalogError(f"{where}: cannot open the catalog: database is locked")

    monkeypatch.setattr(_calls, "verify_token", down)
    app = build_app(world.catalog, ServiceSettings(), mcp=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/mcp", json=INITIALIZE,
                               headers={**MCP_HEADERS, "Authorization": BAD})  # fmt: skip
        api = client.get(f"{API}/whoami", headers={"Authorization": BAD})
    assert response.status_code == api.status_code == 500
    assert response.json() == api.json()
    assert where not in response.text and "catalog.db" not in response.text
