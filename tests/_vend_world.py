"""A site with an S3 tier behind a real ``aifdata serve`` process, for the tests of
presigned URLs, uploads and the ``service`` tier kind (and ``benchmarks/bench_serve.py``).

The mount ``both`` reads its PFS tier first and writes to S3 (the session's SeaweedFS).

==================  =======  ===================================================
dataset             owner    who else
==================  =======  ===================================================
genomics/run42      alice    bob reads (grant on ``genomics/*``)
genomics/local      alice    bob reads; its one file is on the PFS tier only
genomics/staged     alice    bob reads; staged to the PFS tier (verified copies on both)
genomics/inbox      alice    bob writes (uploads land here as new versions)
climate/x           carol    nobody: bob is refused it as if it did not exist
==================  =======  ===================================================
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

import aifdata
from aifdata import Catalog, _seaweedfs
from aifdata.catalog import Principal, acting_as, create_token

READS = b"".join(b"@r%d\nACGTACGT\n+\nIIIIIIII\n" % i for i in range(4000))
CSV = b"t,v\n1,2\n3,4\n"
#: Files of genomics/run42 whose names hold glob characters and a percent sign: literal.
ODD = {"odd/a*b.txt": b"star", "odd/q?.txt": b"question", "odd/[x].txt": b"bracket",
       "odd/p%41.txt": b"percent"}  # fmt: skip


@dataclass
class Site:
    root: Path
    config_path: Path
    catalog_path: Path
    s3_url: str
    pfs: Path
    server: _seaweedfs.SeaweedFS
    tokens: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def catalog(self) -> Catalog:
        return Catalog(self.catalog_path, config=aifdata.load_config(self.config_path))

    def env(self) -> dict[str, str]:
        """The server's environment: the site's config, no AWS settings of the caller."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AIFDATA_CONFIG=str(self.config_path), AIFDATA_HOME=str(self.root / "home"),
                   AIFDATA_USER="server-process")  # fmt: skip
        return env

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


def config_toml(server: _seaweedfs.SeaweedFS, s3_url: str, pfs: Path) -> str:
    options = "\n".join(f'{k} = "{v}"' for k, v in server.storage_options.items())
    return f"""
[mounts.both]
read_order = ["pfs", "s3"]
write_tier = "s3"
[mounts.both.s3]
url = "{s3_url}"
{options}
retry_budget = 60
[mounts.both.pfs]
path = "{pfs}"

[service]
rate_per_token = 100000
burst = 100000
presign_max_expiry = 600
presign_default_expiry = 300
"""


def make_site(root: Path, server: _seaweedfs.SeaweedFS, s3_url: str) -> Site:
    """The site of the module docstring under ``root`` (no server started)."""
    pfs = root / "pfs"
    pfs.mkdir(parents=True)
    (root / "home").mkdir()
    config_path = root / "config.toml"
    config_path.write_text(config_toml(server, s3_url, pfs))
    site = Site(root, config_path, root / "catalog.db", s3_url, pfs, server)
    catalog = site.catalog()
    fs = aifdata.filesystem(catalog.config, catalog=catalog)
    with acting_as(Principal("boss")):
        assert catalog.admins() == ["user:boss"]
    with acting_as(Principal("alice")):
        fs.pipe("both/run42/reads.fq", READS)
        for rel, data in ODD.items():
            fs.pipe(f"both/run42/{rel}", data)
        catalog.ingest("aif://both/run42", "genomics/run42", description="reads of run 42")
        (pfs / "local").mkdir()
        (pfs / "local" / "only-here.csv").write_bytes(CSV)
        catalog.ingest("aif://both/local", "genomics/local", description="a PFS-only table")
        fs.pipe("both/staged/a.bin", READS[:999])
        catalog.ingest("aif://both/staged", "genomics/staged", description="also on the PFS")
        catalog.stage("genomics/staged", "pfs")
        fs.pipe("both/inbox/first.csv", CSV)
        catalog.ingest("aif://both/inbox", "genomics/inbox", description="uploads arrive here")
    with acting_as(Principal("carol")):
        fs.pipe("both/climate/t.csv", CSV)
        catalog.ingest("aif://both/climate", "climate/x", description="carol's table")
    with acting_as(Principal("boss")):
        catalog.grant("bob", "read", "genomics/*")
        catalog.grant("bob", "write", "genomics/inbox")
        for user in ("boss", "alice", "bob", "carol"):
            site.tokens[user] = create_token(catalog, f"user:{user}", label="test").text
    catalog.close()
    return site


def start_server(site: Site, timeout: float = 60.0) -> None:
    """Run ``aifdata serve`` over the site on a free loopback port; wait until it answers."""
    site.port = _seaweedfs.free_ports(1)[0]
    log = open(site.root / "serve.log", "wb")  # noqa: SIM115 - the process writes it
    site.process = subprocess.Popen(
        [sys.executable, "-m", "aifdata", "serve", "--catalog", str(site.catalog_path),
         "--port", str(site.port)],
        env=site.env(), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if site.process.poll() is not None:
            raise RuntimeError(f"aifdata serve exited: {(site.root / 'serve.log').read_text()}")
        try:
            httpx.get(f"{site.base}/api/v1/whoami", timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    site.stop()
    raise RuntimeError(f"aifdata serve did not answer within {timeout} s")
