"""A catalog with datasets, grants, lineage and tokens for the tests of ``aifdata serve``
(the API, the web page, the MCP server).

``boss`` made the catalog (admin). The mount ``both`` is two local directories (``pfs``
read first, ``archive`` the write tier), so the world needs no server.

==================  =======  ==================================================
dataset             owner    who else may read it
==================  =======  ==================================================
genomics/run42      alice    nobody (bob is refused it as if it did not exist)
shared/trimmed      alice    bob (grant on ``shared/*``); made from genomics/run42
climate/x           carol    nobody
lab/gen_1           carol    bob (a grant on that exact name: ``_`` is no wildcard)
lab/genx1           carol    nobody (what a LIKE-style ``_`` would let bob see)
lab/a%b             carol    bob (a grant on that exact name: ``%`` is no wildcard)
lab/aXYZb           carol    nobody (what a LIKE-style ``%`` would let bob see)
climate/derived     carol    nobody; made from lab/gen_1 (bob sees a hidden output)
==================  =======  ==================================================
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

import aifdata
from aifdata import Catalog, lineage
from aifdata._seaweedfs import free_ports
from aifdata.catalog import Principal, acting_as, create_token
from aifdata.catalog._store import write_transaction

READS = b"".join(b"@r%d\nACGTACGT\n+\nIIIIIIII\n" % i for i in range(200))
CSV = b"t,v\n1,2\n3,4\n"
#: Datasets bob must never see, nor learn that they exist.
HIDDEN_FROM_BOB = ("genomics/run42", "climate/x", "lab/genx1", "lab/aXYZb", "climate/derived")
#: Datasets bob may read.
READABLE_BY_BOB = ("lab/a%b", "lab/gen_1", "shared/trimmed")


@dataclass
class World:
    catalog: Catalog
    config: aifdata.Config
    root: Path
    #: user -> the text of a live token of theirs
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


def make_world(root: Path, catalog_at: str | Path | None = None) -> World:
    """The world of the module docstring under ``root`` (its catalog at ``catalog_at``: a
    SQLite file or a PostgreSQL URL; default ``root/catalog.db``)."""
    pfs, archive = root / "pfs", root / "archive"
    pfs.mkdir(parents=True)
    archive.mkdir()
    mount = aifdata.Mount(
        "both",
        (aifdata.Tier.pfs(pfs), aifdata.Tier.pfs(archive, name="archive")),
        read_order=("pfs", "archive"),
        write_tier="archive",
    )
    config = aifdata.Config((mount,))
    catalog = Catalog(catalog_at or root / "catalog.db", config=config)
    fs = aifdata.filesystem(config, catalog=catalog)
    world = World(catalog, config, root)
    with acting_as(Principal("boss")):
        assert catalog.admins() == ["user:boss"]  # made now, by boss
    with acting_as(Principal("alice")):
        fs.pipe("both/run42/reads.fq", READS)
        catalog.ingest("aif://both/run42", "genomics/run42", description="reads of run 42",
                       tags={"assay": "wgs"})  # fmt: skip
        with lineage.run("trim", inputs=["genomics/run42"], catalog=catalog) as run:
            fs.pipe("both/trimmed/reads.fq", READS[: len(READS) // 2])
            run.output("shared/trimmed", source="aif://both/trimmed")
    with acting_as(Principal("carol")):
        for name, where in [
            ("climate/x", "climate/x"), ("lab/gen_1", "lab/gen_1"), ("lab/genx1", "lab/genx1"),
            ("lab/a%b", "lab/a-pct-b"), ("lab/aXYZb", "lab/aXYZb"),
        ]:  # fmt: skip
            fs.pipe(f"both/{where}/t.csv", CSV)
            catalog.ingest(f"aif://both/{where}", name, description=f"table {name} of reads")
        with lineage.run("model", inputs=["lab/gen_1"], catalog=catalog) as run:
            fs.pipe("both/climate/derived/t.csv", CSV)
            run.output("climate/derived", source="aif://both/climate/derived")
    with acting_as(Principal("boss")):
        catalog.grant("bob", "read", "shared/*")
        catalog.grant("bob", "read", "lab/gen_1")
        catalog.grant("bob", "read", "lab/a%b")
        for user in ("boss", "alice", "bob", "carol"):
            world.tokens[user] = create_token(catalog, f"user:{user}", label="test").text
    return world


@contextlib.contextmanager
def fresh_schema(dsn: str) -> Iterator[str]:
    """The URL of an empty PostgreSQL catalog in a schema of its own on the server ``dsn``,
    dropped afterwards (for a world shared by a module's tests)."""
    import psycopg

    schema = f"serve_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    glue = "&" if "?" in dsn else "?"
    try:
        yield f"{dsn}{glue}options=-csearch_path%3D{schema}"
    finally:
        with contextlib.suppress(psycopg.Error), psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def expire(catalog: Catalog, token_id: str) -> None:
    """Make a token's expiry a moment before it was made (as if its lifetime had passed)."""
    with write_transaction(catalog.conn) as conn:
        conn.execute("UPDATE tokens SET expires = created - 1 WHERE id = ?", (token_id,))


def world_toml(world: World, service: str = "") -> str:
    """The world's mount table as a config file, with ``service`` as its ``[service]`` table."""
    text = f"""
[mounts.both]
read_order = ["pfs", "archive"]
write_tier = "archive"
[mounts.both.pfs]
path = "{world.root / "pfs"}"
[mounts.both.archive]
kind = "pfs"
path = "{world.root / "archive"}"
"""
    return text + (f"\n[service]\n{service}\n" if service else "")


@dataclass
class Server:
    """``aifdata serve`` running as a process on a loopback port."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def serving(
    world: World, service: str = "", user: str = "boss", scheme: str = "http"
) -> Iterator[Server]:
    """Run ``aifdata serve`` over the world's catalog, as the OS-level ``user`` (what
    ``$AIFDATA_USER`` says in the server process), until the block ends (``scheme``
    https when ``service`` names a certificate)."""
    (port,) = free_ports(1)
    config = world.root / "serve.toml"
    config.write_text(world_toml(world, service))
    log = world.root / f"serve-{port}.log"
    env = {**os.environ, "AIFDATA_USER": user, "AIFDATA_GROUPS": "",
           "AIFDATA_CONFIG": str(config)}  # fmt: skip
    argv = [sys.executable, "-m", "aifdata", "serve", "--port", str(port),
            "--catalog", str(world.catalog.path)]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(process, f"{scheme}://127.0.0.1:{port}", log)
    try:
        _wait_until_up(server)
        yield server
    finally:
        server.stop()


def _wait_until_up(server: Server, patience: float = 60.0) -> None:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"aifdata serve exited: {server.log.read_text()}")
        try:
            httpx.get(f"{server.url}/api/v1/whoami", timeout=2.0, verify=False)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"aifdata serve did not answer in {patience} s: {server.log.read_text()}")
