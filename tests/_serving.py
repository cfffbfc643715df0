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
==================  =======  ==================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import aifdata
from aifdata import Catalog, lineage
from aifdata.catalog import Principal, acting_as, create_token

READS = b"".join(b"@r%d\nACGTACGT\n+\nIIIIIIII\n" % i for i in range(200))
CSV = b"t,v\n1,2\n3,4\n"
#: Datasets bob must never see, nor learn that they exist.
HIDDEN_FROM_BOB = ("genomics/run42", "climate/x", "lab/genx1", "lab/aXYZb")
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


def make_world(root: Path) -> World:
    """The world of the module docstring under ``root``."""
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
    catalog = Catalog(root / "catalog.db", config=config)
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
        catalog.grant("bob", "read", "lab/gen_1")
        catalog.grant("bob", "read", "lab/a%b")
    with acting_as(Principal("boss")):
        catalog.grant("bob", "read", "shared/*")
        for user in ("boss", "alice", "bob", "carol"):
            world.tokens[user] = create_token(catalog, f"user:{user}", label="test").text
    return world
