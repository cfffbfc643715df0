"""``aifdata mcp``: the catalog's MCP tools through the ``mcp`` package's own client, over
stdio (the ``aifdata mcp`` command, as ``$AIFDATA_USER``) and over streamable HTTP (a real
uvicorn server on loopback, the endpoint routed at ``/mcp`` as ``aifdata serve`` routes it,
each request as its bearer token's principal).

alice owns ``lab/run1`` (``reads.fq`` and ``table.csv`` on the PFS tier of mount ``lab``)
and ``lab/trimmed``, made from it by a recorded run; carol holds a read grant on
``lab/run1``; bob holds none.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.routing import Route

import aifdata
from aifdata import AccessDenied, Catalog, Config
from aifdata.catalog import Principal
from aifdata.service import mcp_http

pytestmark = pytest.mark.e2e  # a server process (stdio) or a server on a socket (HTTP)

READS = 400  # FASTQ records in reads.fq (about 84 KB: one partition of a sample plan)
TOOLS = {
    "search_datasets", "describe_dataset", "where_is", "lineage", "plan_partitions",
    "read_sample",
}  # fmt: skip
TOKENS = {"tok-alice": "alice", "tok-bob": "bob", "tok-carol": "carol"}


def fastq(n: int) -> bytes:
    bases = "ACGT"
    return b"".join(
        f"@read{i}\n{''.join(bases[(i + j) % 4] for j in range(100))}\n+\n{'I' * 100}\n".encode()
        for i in range(n)
    )


@dataclass
class World:
    catalog: Catalog
    config: Config
    config_path: Path
    home: Path
    pfs_dir: Path

    def env(self, user: str) -> dict[str, str]:
        """The environment of an ``aifdata mcp`` process acting as ``user``."""
        return {
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
            "AIFDATA_HOME": str(self.home),
            "AIFDATA_CONFIG": str(self.config_path),
            "AIFDATA_USER": user,
            "AIFDATA_GROUPS": "",
        }

    def audit(self, action: str) -> list[tuple[str, str, int]]:
        """(principal, target, allowed) of the audit rows of ``action``, oldest first."""
        rows = self.catalog.conn.execute(
            "SELECT principal, target, allowed FROM audit WHERE action = ? ORDER BY id", (action,)
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]


@pytest.fixture
def world(isolated_home, pfs_dir, who, tmp_path, monkeypatch) -> World:
    config_path = tmp_path / "config.toml"
    config_path.write_text(f'[mounts.lab]\n[mounts.lab.pfs]\npath = "{pfs_dir}"\n')
    monkeypatch.setenv("AIFDATA_CONFIG", str(config_path))
    config = aifdata.load_config(config_path)
    who("boss")
    catalog = Catalog(isolated_home / "catalog.db", config=config)
    assert catalog.admins() == ["user:boss"]
    who("alice")
    (pfs_dir / "run1").mkdir()
    (pfs_dir / "run1" / "reads.fq").write_bytes(fastq(READS))
    (pfs_dir / "run1" / "table.csv").write_text("id,name\n1,ada\n2,grace\n3,edsger\n")
    catalog.ingest(
        "aif://lab/run1", "lab/run1", description="sequencer reads of run one",
        tags={"instrument": "novaseq"},
    )  # fmt: skip
    with aifdata.lineage.run("trim", inputs=["lab/run1"], catalog=catalog) as run:
        (pfs_dir / "trimmed").mkdir()
        (pfs_dir / "trimmed" / "reads.fq").write_bytes(fastq(10))
        run.output("lab/trimmed", source="aif://lab/trimmed")
    catalog.grant("carol", "read", "lab/run1")
    who("nobody")  # the test process's user: never whom a request acts as
    return World(catalog, config, config_path, isolated_home, pfs_dir)


# -- the two transports --------------------------------------------------------------


@contextlib.asynccontextmanager
async def stdio_session(world: World, user: str) -> AsyncIterator[ClientSession]:
    """A client session with ``python -m aifdata mcp`` run as ``user``."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "aifdata", "mcp"], env=world.env(user)
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@dataclass
class HttpServer:
    url: str


def authenticate(token: str) -> Principal:
    """The test's tokens: a known one names its user; any other is refused."""
    if token not in TOKENS:
        raise AccessDenied("no such token (or it was revoked)")
    return Principal(TOKENS[token])


@pytest.fixture
def http_server(world: World) -> Iterator[HttpServer]:
    """A uvicorn server on a free loopback port, serving a Starlette app that routes
    ``/mcp`` to the endpoint and runs its session manager in the app's lifespan."""
    endpoint = mcp_http(world.catalog, world.config, authenticate)
    app = Starlette(routes=[Route("/mcp", endpoint.app)], lifespan=endpoint.lifespan)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield HttpServer(f"http://127.0.0.1:{port}/mcp")
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextlib.asynccontextmanager
async def http_session(server: HttpServer, token: str) -> AsyncIterator[ClientSession]:
    """A client session with the HTTP endpoint, with ``token`` as its bearer token."""
    client = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with (
        client,
        streamable_http_client(server.url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """A tool's structured result; AssertionError naming its message when it failed."""
    result = await session.call_tool(tool, arguments)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert not result.is_error, text
    assert result.structured_content is not None
    assert json.loads(text) == result.structured_content  # the text is the same JSON
    return result.structured_content


async def refusal(session: ClientSession, tool: str, **arguments: Any) -> str:
    """The message of a tool call that failed (AssertionError when it did not)."""
    result = await session.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert "Traceback" not in text
    return text


# -- what an agent does, over each transport -----------------------------------------


async def tour(session: ClientSession) -> None:
    """Every tool once, as alice (the owner): what an agent finding and reading data does."""
    listed = await session.list_tools()
    assert {t.name for t in listed.tools} == TOOLS
    for tool in listed.tools:
        assert tool.description and len(tool.description) > 40
        assert tool.input_schema["type"] == "object"
        assert "ctx" not in tool.input_schema.get("properties", {})

    found = await call(session, "search_datasets", query="sequencer", limit=5)
    assert [r["name"] for r in found["results"]] == ["lab/run1"]

    run1 = await call(session, "describe_dataset", ref="lab/run1@1")
    assert (run1["ref"], run1["owner"], run1["tags"]) == (
        "lab/run1@1", "alice", {"instrument": "novaseq"}
    )  # fmt: skip
    assert run1["formats"] == ["csv", "fastq"]
    files = {f["path"]: f for f in run1["files"]}
    reads = fastq(READS)
    # the PFS copy, by its tier and aif:// path (never the server's own path)
    assert files["reads.fq"]["replicas"] == [{"tier": "pfs", "url": "aif://lab/run1/reads.fq"}]
    assert files["reads.fq"]["size"] == len(reads) == len(fastq(READS))
    assert files["reads.fq"]["checksum"].startswith("sha256:")
    assert files["reads.fq"]["read_url"] == "aif://lab/run1/reads.fq"
    assert files["reads.fq"]["format"] == "fastq"

    where = await call(session, "where_is", path="aif://lab/run1/reads.fq")
    assert where["tier"] == "pfs"
    assert where["url"] == "aif://lab/run1/reads.fq"

    graph = await call(session, "lineage", ref="lab/trimmed")
    [made] = graph["upstream"]["runs"]
    assert made["run"]["job"] == "trim"
    assert [d["dataset"] for d in made["datasets"]] == ["lab/run1"]
    used = await call(session, "lineage", ref="lab/run1", depth=1)
    assert [o["dataset"] for r in used["downstream"]["runs"] for o in r["run"]["outputs"]] == [
        "lab/trimmed"
    ]

    plan = await call(session, "plan_partitions", path="aif://lab/run1/reads.fq", n=4)
    spans = [(p["spec"]["start"], p["spec"]["end"]) for p in plan["partitions"]]
    assert plan["count"] == len(spans) == 4
    assert spans[0][0] == 0 and spans[-1][1] == len(reads)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))  # no gap, no overlap
    assert {p["format"] for p in plan["partitions"]} == {"fastq"}

    sample = await call(session, "read_sample", path="aif://lab/run1/reads.fq", limit=3)
    assert [r["name"] for r in sample["records"]] == ["read0", "read1", "read2"]
    assert sample["records"][0]["sequence"] == "ACGT" * 25
    assert sample["cut"] is True and "limit" in sample["why_cut"]  # 400 records, 3 read
    table = await call(session, "read_sample", path="aif://lab/run1/table.csv", limit=10)
    assert table["records"] == [
        {"id": "1", "name": "ada"},
        {"id": "2", "name": "grace"},
        {"id": "3", "name": "edsger"},
    ]  # fmt: skip  (CSV values are text)
    assert table["cut"] is False


def test_stdio_every_tool_as_the_process_user(world):
    async def main() -> None:
        async with stdio_session(world, "alice") as session:
            await tour(session)

    anyio.run(main)
    audit = world.audit("mcp:describe_dataset")
    assert audit == [("user:alice", "lab/run1@1", 1)]  # $AIFDATA_USER, one row per call
    assert len(world.audit("mcp:read_sample")) == 2
    assert len(world.audit("mcp:lineage")) == 2


def test_http_every_tool_as_the_token_principal(world, http_server):
    async def main() -> None:
        async with http_session(http_server, "tok-alice") as session:
            await tour(session)

    anyio.run(main)
    assert world.audit("mcp:where_is") == [("user:alice", "aif://lab/run1/reads.fq", 1)]
    assert not [
        row
        for row in world.catalog.conn.execute("SELECT principal FROM audit")
        if row[0] == "user:nobody"
    ]  # fmt: skip  (the server process's own user)
    assert world.audit("mcp:search_datasets") == [("user:alice", "sequencer", 1)]


# -- grants ---------------------------------------------------------------------------


async def grants_apply(session_of: Any) -> None:
    """bob (no grant) is refused lab/run1 in the words an unknown dataset gets; carol
    (granted) reads it; neither sees lab/trimmed in a search."""
    async with session_of("bob") as bob:
        hidden = await refusal(bob, "describe_dataset", ref="lab/run1")
        unknown = await refusal(bob, "describe_dataset", ref="lab/nothing")
        assert hidden == unknown.replace("lab/nothing", "lab/run1")
        assert "no dataset 'lab/run1'" in hidden and "alice" not in hidden
        lineage_hidden = await refusal(bob, "lineage", ref="lab/run1")
        lineage_unknown = await refusal(bob, "lineage", ref="lab/nothing")
        assert lineage_hidden == lineage_unknown.replace("lab/nothing", "lab/run1")
        assert (await call(bob, "search_datasets", query="sequencer"))["results"] == []
        for tool in ("where_is", "plan_partitions", "read_sample"):
            message = await refusal(bob, tool, path="aif://lab/run1/reads.fq")
            missing = await refusal(bob, tool, path="aif://lab/run1/nothing.fq")
            assert message == missing.replace("nothing.fq", "reads.fq")  # as if not there
            assert "aif://lab/run1/reads.fq: no such file or directory" in message
            assert "lab/run1 " not in message and "alice" not in message  # never named
    async with session_of("carol") as carol:
        assert (await call(carol, "describe_dataset", ref="lab/run1"))["file_count"] == 2
        sample = await call(carol, "read_sample", path="aif://lab/run1/reads.fq", limit=1)
        assert sample["count"] == 1
        assert await refusal(carol, "describe_dataset", ref="lab/trimmed")


def test_stdio_a_dataset_without_a_grant_is_refused_as_an_unknown_one(world):
    anyio.run(grants_apply, lambda user: stdio_session(world, user))
    refused = [row for row in world.audit("mcp:describe_dataset") if not row[2]]
    assert ("user:bob", "lab/run1", 0) in refused and ("user:bob", "lab/nothing", 0) in refused


def test_http_a_dataset_without_a_grant_is_refused_as_an_unknown_one(world, http_server):
    tokens = {name: token for token, name in TOKENS.items()}
    anyio.run(grants_apply, lambda user: http_session(http_server, tokens[user]))
    assert ("user:bob", "aif://lab/run1/reads.fq", 0) in world.audit("mcp:read_sample")
    assert ("user:carol", "aif://lab/run1/reads.fq", 1) in world.audit("mcp:read_sample")


# -- the HTTP endpoint's door ---------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer tok-mallory"}, {"Authorization": "Basic dG9rLWFsaWNl"},
     {"Authorization": "Bearer"}],
    ids=["none", "unknown", "not-bearer", "empty"],
)  # fmt: skip
def test_http_without_a_good_token_is_401_before_any_mcp(world, http_server, headers):
    initialize = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "1"}},
    }  # fmt: skip
    accept = {"Accept": "application/json, text/event-stream", **headers}
    response = httpx.post(http_server.url, json=initialize, headers=accept, timeout=30)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["type"] == "InvalidToken"  # as the API says it
    assert "lab/run1" not in response.text


def test_http_the_mcp_client_with_a_bad_token_gets_nothing(world, http_server):
    async def main() -> None:
        async with http_session(http_server, "tok-mallory") as session:
            await session.list_tools()

    with pytest.raises(BaseExceptionGroup) as caught:  # the client's task groups
        anyio.run(main)
    assert caught.group_contains(MCPError, match="error response", depth=None)
    assert world.audit("mcp:search_datasets") == []


# -- bounds and bad input -------------------------------------------------------------


def test_http_samples_and_plans_are_bounded_and_bad_input_is_one_line(world, http_server, who):
    long = world.pfs_dir / "run1" / "wide.csv"
    long.write_text("id,text\n" + "".join(f"{i},{'x' * 5000}\n" for i in range(50)))
    who("alice")
    world.catalog.ingest("aif://lab/run1", "lab/run1")  # a new version, with wide.csv
    who("nobody")

    async def main() -> None:
        async with http_session(http_server, "tok-alice") as alice:
            wide = await call(alice, "read_sample", path="aif://lab/run1/wide.csv", limit=100)
            assert 0 < wide["count"] < 50 and wide["cut"] is True
            assert "bytes" in wide["why_cut"]
            assert len(json.dumps(wide["records"])) <= 64 * 1024
            assert "characters cut" in wide["records"][0]["text"]  # 5000 > 2000 kept
            too_many = await refusal(alice, "plan_partitions", path="aif://lab/run1/reads.fq",
                                     target_bytes=1)  # fmt: skip
            assert "at most 10,000" in too_many
            both = await refusal(alice, "plan_partitions", path="aif://lab/run1/reads.fq",
                                 n=2, target_bytes=10)  # fmt: skip
            assert "give n or target_bytes, not both" in both
            local = await refusal(alice, "read_sample", path=str(world.pfs_dir / "run1/reads.fq"))
            # a server path is not a way around aif:// (and the refusal names no server file)
            assert "no such file or directory" in local and "mount table" not in local
            s3 = await refusal(alice, "where_is", path="s3://bucket/key")
            assert "aif:// paths only" in s3
            bad_ref = await refusal(alice, "describe_dataset", ref="lab/run1@zero")
            assert "NAME@VERSION" in bad_ref
            over = await refusal(alice, "read_sample", path="aif://lab/run1/reads.fq", limit=1000)
            assert "limit" in over  # the schema's bound

    anyio.run(main)


def test_http_concurrent_calls_each_act_as_their_own_token(world, http_server):
    """Requests of three tokens at once: each answer and audit row is its own caller's."""
    answers: dict[tuple[str, int], bool] = {}

    async def one(token: str, i: int) -> None:
        async with http_session(http_server, token) as session:
            result = await session.call_tool("describe_dataset", {"ref": "lab/run1"})
            answers[TOKENS[token], i] = not result.is_error

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for i in range(3):
                for token in TOKENS:
                    group.start_soon(one, token, i)

    anyio.run(main)
    assert answers == {(user, i): user != "bob" for user in TOKENS.values() for i in range(3)}
    rows = world.audit("mcp:describe_dataset")
    assert sorted(rows) == sorted(
        (f"user:{user}", "lab/run1", int(user != "bob"))
        for user in TOKENS.values()
        for _ in range(3)
    )
