"""How many requests of one token ``aifdata serve`` runs at once, in process (Starlette's
TestClient): past ``max_in_flight_per_token`` a request gets 429, on the JSON API, the web
page and /mcp alike, and a request that timed out keeps its slot until its worker thread
really ends; an MCP tool call past the request timeout is a tool error."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from starlette.testclient import TestClient

from aifdata._errors import RateLimited
from aifdata.service import ServiceSettings, api_route, build_app
from aifdata.service._limits import InFlight
from aifdata.service._mcp_tools import CatalogTools
from aifdata.service._web import WEB_ROUTES

from ._serving import make_world

API = "/api/v1"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
               "clientInfo": {"name": "in-flight", "version": "0"}},
}  # fmt: skip
SEARCH = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
          "params": {"name": "search_datasets", "arguments": {"query": "reads"}}}  # fmt: skip


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path / "world")


@pytest.fixture
def gate():
    """An event the blocking handler waits on, set at the end of every test."""
    release = threading.Event()
    yield release
    release.set()


def serving(world, gate, mcp=False, **settings):
    """The service with a ``/blocked`` endpoint that waits for ``gate``, and the web page."""

    def blocked(call):
        gate.wait(60)
        return {"done": True}

    limits = {"rate_per_token": 1e6, "burst": 10**6, **settings}
    app = build_app(world.catalog, ServiceSettings(**limits),
                    [api_route(f"{API}/blocked", blocked), *WEB_ROUTES], mcp=mcp)  # fmt: skip
    return app, TestClient(app)


def running(app, world, user):
    """How many of ``user``'s token's requests hold a slot."""
    return app.state.service.in_flight.running(world.tokens[user].split("_")[1])


def wait_until(condition):
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.01)


def refused(response):
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    return response


@pytest.mark.unit
def test_a_slot_is_given_back_when_its_last_holder_lets_go():
    limits = InFlight(2)
    first, second = limits.enter("t"), limits.enter("t")
    with pytest.raises(RateLimited, match="at most 2 of one token"):
        limits.enter("t")
    limits.enter("other").release()
    held = first.hold()  # a worker thread that outlives its request
    first.release()
    assert limits.running("t") == 2
    held.release()
    second.release()
    assert limits.running("t") == 0 and limits.running("other") == 0
    with pytest.raises(RuntimeError):
        first.hold()


def test_the_ninth_request_of_a_token_at_once_is_429_and_another_token_still_gets_through(
    world, gate
):
    app, client = serving(world, gate, max_in_flight_per_token=8)
    with client, ThreadPoolExecutor(8) as pool:
        eight = [pool.submit(client.get, f"{API}/blocked", headers=world.headers("alice"))
                 for _ in range(8)]  # fmt: skip
        wait_until(lambda: running(app, world, "alice") == 8)
        ninth = refused(client.get(f"{API}/whoami", headers=world.headers("alice")))
        assert set(ninth.json()) == {"error"} and ninth.json()["error"]["type"] == "RateLimited"
        assert "at most 8 of one token" in ninth.json()["error"]["message"]
        refused(client.get("/", headers=world.headers("alice")))  # the web page too
        assert client.get(f"{API}/whoami", headers=world.headers("bob")).status_code == 200
        assert client.get("/", headers=world.headers("bob")).status_code == 200
        gate.set()
        assert [f.result().status_code for f in eight] == [200] * 8
    assert running(app, world, "alice") == 0
    assert client.get(f"{API}/whoami", headers=world.headers("alice")).status_code == 200


def test_a_timed_out_request_holds_its_slot_until_its_thread_ends(world, gate):
    app, client = serving(world, gate, max_in_flight_per_token=1, request_timeout=0.2)
    with client:
        timed_out = client.get(f"{API}/blocked", headers=world.headers("alice"))
        assert timed_out.status_code == 504, timed_out.text
        assert running(app, world, "alice") == 1  # its worker thread still runs
        refused(client.get(f"{API}/whoami", headers=world.headers("alice")))
        assert client.get(f"{API}/whoami", headers=world.headers("bob")).status_code == 200
        gate.set()
        wait_until(lambda: running(app, world, "alice") == 0)
        assert client.get(f"{API}/whoami", headers=world.headers("alice")).status_code == 200


def test_an_mcp_tool_call_past_the_timeout_is_a_tool_error_and_holds_its_slot(
    world, gate, monkeypatch
):
    real = CatalogTools.search_datasets

    def slow(self, *args, **kwargs):
        gate.wait(60)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(CatalogTools, "search_datasets", slow)
    app, client = serving(world, gate, mcp=True, max_in_flight_per_token=1, request_timeout=0.3)
    alice, bob = ({**MCP_HEADERS, **world.headers(user)} for user in ("alice", "bob"))
    with client:
        answer = client.post("/mcp", json=SEARCH, headers=alice)
        assert answer.status_code == 200, answer.text
        result = answer.json()["result"]
        assert result["isError"] is True
        assert "search_datasets took longer than 0.3 s" in result["content"][0]["text"]
        assert running(app, world, "alice") == 1  # the tool's thread still runs
        refused(client.post("/mcp", json=INITIALIZE, headers=alice))
        refused(client.get(f"{API}/whoami", headers=world.headers("alice")))
        assert client.post("/mcp", json=INITIALIZE, headers=bob).status_code == 200
        gate.set()
        wait_until(lambda: running(app, world, "alice") == 0)
        answer = client.post("/mcp", json=SEARCH, headers=alice)
        assert answer.status_code == 200 and answer.json()["result"]["isError"] is False
