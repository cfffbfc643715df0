"""``aifdata serve`` as a real uvicorn process on a loopback port, driven over HTTP."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from aifdata.catalog import Principal, acting_as, create_token
from aifdata.cli import main

from ._serving import READABLE_BY_BOB, expire, make_world, serving, world_toml

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("serve-process"))


@pytest.fixture(scope="module", params=[1, 2], ids=["1 worker", "2 workers"])
def server(world, request):
    service = f"rate_per_token = 1000\nburst = 1000\nworkers = {request.param}"
    with serving(world, service) as running:
        yield running


def get(server, world, user, target, token=None):
    headers = {"Authorization": f"Bearer {token or world.tokens[user]}"}
    return httpx.get(f"{server.url}/api/v1/{target}", headers=headers, timeout=30)


def test_the_endpoints_answer_over_http(server, world):
    assert get(server, world, "bob", "whoami").json()["principal"] == "user:bob"
    assert get(server, world, "bob", "datasets").json()["datasets"] == sorted(READABLE_BY_BOB)
    body = get(server, world, "alice", "dataset?name=genomics/run42").json()
    assert body["files"][0]["served_by"] == "archive"
    parts = get(server, world, "alice", "partitions?path=aif://both/run42/reads.fq&n=3").json()
    assert len(parts["partitions"]) == 3
    assert get(server, world, "bob", "dataset?name=climate/x").status_code == 404
    assert get(server, world, "bob", "audit").status_code == 403


def test_the_audit_names_the_token_not_the_servers_user(server, world):
    """The server runs with ``$AIFDATA_USER=boss`` (an admin): bob's refused request is
    recorded as bob's, and bob gets bob's answer."""
    assert get(server, world, "bob", "dataset?name=climate/x").status_code == 404
    assert get(server, world, "bob", "where?path=aif://both/climate/x/t.csv").status_code == 404
    rows = get(server, world, "boss", "audit?limit=2").json()["audit"]
    assert [(r["principal"], r["allowed"]) for r in rows] == [("user:bob", 0)] * 2
    assert {r["target"] for r in rows} == {"climate/x", "aif://both/climate/x/t.csv"}


def test_a_token_revoked_with_the_cli_fails_on_the_next_request(server, world, monkeypatch):
    with acting_as(Principal("boss")):
        made = create_token(world.catalog, "bob", label="revoke me")
    assert get(server, world, "bob", "whoami", token=made.text).status_code == 200
    monkeypatch.setenv("AIFDATA_USER", "bob")  # bob revokes his own token
    catalog = str(world.catalog.path)
    assert main(["token", "revoke", made.token.id, "--catalog", catalog]) == 0
    refused = get(server, world, "bob", "whoami", token=made.text)
    assert refused.status_code == 401
    assert refused.json() == {
        "error": {"type": "InvalidToken", "message": "invalid or expired token"}
    }


def test_an_expired_token_is_refused(server, world):
    with acting_as(Principal("boss")):
        made = create_token(world.catalog, "bob", expires_in="1h")
    assert get(server, world, "bob", "whoami", token=made.text).status_code == 200
    expire(world.catalog, made.token.id)  # an hour later
    assert get(server, world, "bob", "whoami", token=made.text).status_code == 401


def test_sixteen_clients_at_once_each_see_their_own_grants(server, world):
    users = ["alice", "bob", "carol", "boss"] * 8
    with acting_as(Principal("boss")):
        everything = world.catalog.datasets()

    def ask(user):
        return user, get(server, world, user, "datasets").json()["datasets"]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, users))
    for user, names in answers:
        if user == "bob":
            assert names == sorted(READABLE_BY_BOB)
        elif user == "boss":
            assert names == everything
        else:
            assert "climate/x" in names if user == "carol" else "climate/x" not in names


def test_the_service_table_sets_the_limits(world):
    with serving(world, "rate_per_token = 0.01\nburst = 2\nmax_request_bytes = 1000") as server:
        headers = {"Authorization": f"Bearer {world.tokens['carol']}"}
        url = f"{server.url}/api/v1/whoami"
        assert [httpx.get(url, headers=headers).status_code for _ in range(2)] == [200, 200]
        limited = httpx.get(url, headers=headers)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        big = httpx.post(url, headers=headers, content=b"x" * 2000)
        assert big.status_code == 413
        assert big.json()["error"]["message"] == "request body larger than 1,000 bytes"


def test_a_bad_service_table_stops_serve_with_one_line(world, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(world_toml(world, "rate_per_token = 0\n"))
    done = subprocess.run(
        [sys.executable, "-m", "aifdata", "--config", str(config), "serve", "--catalog",
         str(world.catalog.path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 5
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("aifdata: error: ") and "service.rate_per_token" in line


def test_serve_speaks_https_with_the_services_certificate(world, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    table = f'tls_certfile = "{cert}"\ntls_keyfile = "{key}"'
    with serving(world, table, scheme="https") as server:
        headers = {"Authorization": f"Bearer {world.tokens['bob']}"}
        trusted = ssl.create_default_context(cafile=str(cert))
        response = httpx.get(f"{server.url}/api/v1/whoami", headers=headers, verify=trusted)
        assert response.json()["principal"] == "user:bob"
        with pytest.raises(httpx.TransportError):  # no plain HTTP on that port
            httpx.get(server.url.replace("https:", "http:") + "/api/v1/whoami", timeout=5)


def test_the_mcp_tools_are_served_at_mcp_as_the_tokens_principal(server, world):
    """``aifdata serve`` serves the MCP tools at /mcp (streamable HTTP): the mcp package's
    own client, with bob's token, finds only what bob may read, and the audit names bob."""
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async def search_as_bob() -> dict:
        client = create_mcp_http_client(headers={"Authorization": f"Bearer {world.tokens['bob']}"})
        async with (
            client,
            streamable_http_client(f"{server.url}/mcp", http_client=client) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            result = await session.call_tool("search_datasets", {"query": "lab", "limit": 50})
            assert not result.is_error
            assert result.structured_content is not None
            return result.structured_content

    import anyio

    found = anyio.run(search_as_bob)
    names = {hit["name"] for hit in found["results"]}
    assert names and names <= set(READABLE_BY_BOB)
    rows = get(server, world, "boss", "audit?limit=20").json()["audit"]
    assert any(r["action"] == "mcp:search_datasets" and r["principal"] == "user:bob" for r in rows)
    refused = httpx.post(
        f"{server.url}/mcp", json={}, headers={"Authorization": "Bearer aif_x_y"}, timeout=30
    )
    assert refused.status_code == 401


def test_stopping_serve_stops_every_worker(world):
    with serving(world, "workers = 2") as running:
        assert httpx.get(f"{running.url}/api/v1/whoami", timeout=30).status_code == 401
        workers = children_of(running.process.pid)
        assert len(workers) >= 2  # uvicorn's workers (and multiprocessing's helper)
    assert running.process.returncode is not None
    deadline = time.monotonic() + 10  # multiprocessing's helper ends once its pipe closes
    while alive(workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(workers) == []


def alive(pids: list[int]) -> list[str]:
    """What is left of ``pids``: each live process's command line."""
    found = []
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            if "State:\tZ" not in status:
                found.append(Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " "))
        except FileNotFoundError:
            pass
    return found


def children_of(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    return [int(c) for t in tasks.iterdir() for c in (t / "children").read_text().split()]
