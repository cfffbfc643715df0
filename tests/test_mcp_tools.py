"""The MCP tools without a transport (unit lane): the MCP server in this process, records
as bounded JSON, the path rule, the bearer header, and one audit row per call.

alice owns ``lab/run1`` (``reads.fq`` on the PFS tier of mount ``lab``); bob holds no
grant.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

import anyio
import numpy as np
import pytest
from mcp.server.mcpserver.exceptions import ToolError

import aifdata
from aifdata import BadURL, Catalog, one_line
from aifdata.catalog import Principal
from aifdata.service import mcp_server
from aifdata.service._mcp_http import _bearer
from aifdata.service._mcp_tools import (
    MAX_SAMPLE_READ_BYTES,
    SAMPLE_PLAN_PARTITIONS,
    logical_path,
    sample_plan_size,
)
from aifdata.service._mcp_values import MAX_ITEMS, MAX_STRING, jsonable

FASTQ = b"".join(f"@r{i}\nACGT\n+\nIIII\n".encode() for i in range(20))


@pytest.fixture
def catalog(isolated_home, pfs_dir, who, tmp_path) -> Catalog:
    config_path = tmp_path / "config.toml"
    config_path.write_text(f'[mounts.lab]\n[mounts.lab.pfs]\npath = "{pfs_dir}"\n')
    who("boss")
    catalog = Catalog(isolated_home / "catalog.db", config=aifdata.load_config(config_path))
    assert catalog.admins() == ["user:boss"]
    who("alice")
    (pfs_dir / "run1").mkdir()
    (pfs_dir / "run1" / "reads.fq").write_bytes(FASTQ)
    (pfs_dir / "run1" / "genome.fa").write_text(">chr1\n" + "ACGTACGTAC\n" * 100)
    catalog.ingest("aif://lab/run1", "lab/run1", description="reads")
    who("nobody")  # the process's own user: never the one a tool call acts as
    return catalog


def call(catalog: Catalog, user: str, tool: str, **arguments: Any) -> Any:
    server = mcp_server(catalog, catalog.config, lambda _ctx: Principal(user))

    async def main() -> Any:
        return await server.call_tool(tool, arguments)

    return anyio.run(main)


def mcp_rows(catalog: Catalog) -> list[tuple[str, str, str, int]]:
    rows = catalog.conn.execute(
        "SELECT principal, action, target, allowed FROM audit WHERE action LIKE 'mcp:%' ORDER BY id"
    ).fetchall()
    return [tuple(r) for r in rows]


def test_each_call_acts_as_its_principal_and_leaves_one_audit_row(catalog):
    result = call(catalog, "alice", "describe_dataset", ref="lab/run1")
    assert result.structured_content["owner"] == "alice"
    call(catalog, "alice", "read_sample", path="lab/run1/reads.fq", limit=2)
    with pytest.raises(ToolError) as refused:
        call(catalog, "bob", "describe_dataset", ref="lab/run1")
    assert "no dataset 'lab/run1'" in str(refused.value) and "user:bob" in str(refused.value)
    assert mcp_rows(catalog) == [
        ("user:alice", "mcp:describe_dataset", "lab/run1", 1),
        ("user:alice", "mcp:read_sample", "lab/run1/reads.fq", 1),
        ("user:bob", "mcp:describe_dataset", "lab/run1", 0),
    ]


def test_a_sample_says_where_it_was_cut(catalog):
    sample = call(catalog, "alice", "read_sample", path="aif://lab/run1/reads.fq", limit=5)
    data = sample.structured_content
    assert [r["name"] for r in data["records"]] == ["r0", "r1", "r2", "r3", "r4"]
    assert data["cut"] is True and data["why_cut"].startswith("limit")
    whole = call(catalog, "alice", "read_sample", path="aif://lab/run1/reads.fq", limit=100)
    assert whole.structured_content["count"] == 20
    assert whole.structured_content["cut"] is False
    with pytest.raises(ToolError, match="partition 1 of a sample plan of 1"):
        call(catalog, "alice", "read_sample", path="aif://lab/run1/reads.fq", partition=1)


def test_library_errors_come_back_as_one_line_without_a_traceback(catalog):
    with pytest.raises(ToolError) as missing:
        call(catalog, "alice", "where_is", path="aif://lab/run1/nothing.fq")
    message = str(missing.value)
    assert "aif://lab/run1/nothing.fq" in message and "\n" not in message
    assert "Traceback" not in message


@pytest.mark.parametrize(
    ("path", "logical"),
    [("aif://lab/a.fq", "lab/a.fq"), ("lab/a.fq", "lab/a.fq"), ("/lab/a.fq/", "lab/a.fq")],
)
def test_paths_are_aif_paths(path, logical):
    assert logical_path(path) == logical


@pytest.mark.parametrize("path", ["s3://bucket/key", "file:///etc/passwd", "aif://", ""])
def test_other_schemes_and_empty_paths_are_refused(path):
    with pytest.raises(BadURL):
        logical_path(path)


def test_a_sample_plan_stays_small_to_make_and_to_read():
    mib = 2**20
    assert sample_plan_size(0) == 1
    assert sample_plan_size(10) == 1
    assert sample_plan_size(3 * mib) == 3
    assert sample_plan_size(4 * 1024 * mib) == SAMPLE_PLAN_PARTITIONS
    huge = 100 * 1024**3
    assert huge / sample_plan_size(huge) <= MAX_SAMPLE_READ_BYTES


@dataclasses.dataclass
class Point:
    x: int
    label: bytes


def test_records_become_bounded_json():
    structured = np.zeros(3, dtype=[("a", "i4"), ("b", "f8")])
    values = {
        "int": np.int64(7),
        "float": np.float32(0.5),
        "nan": float("nan"),
        "bytes": b"ACGT",
        "when": datetime.date(2026, 1, 2),
        "point": Point(1, b"x"),
        "small": np.arange(3),
        "big": np.arange(1000).reshape(10, 100),
        "rows": structured,
        "long": "x" * (MAX_STRING + 10),
        "many": list(range(MAX_ITEMS + 5)),
    }
    out = jsonable(values)
    json.dumps(out)  # plain JSON all through
    assert out["int"] == 7 and out["float"] == 0.5 and out["nan"] == "nan"
    assert out["bytes"] == "ACGT" and out["when"] == "2026-01-02"
    assert out["point"] == {"x": 1, "label": "x"}
    assert out["small"] == [0, 1, 2]
    assert out["big"]["shape"] == [10, 100] and out["big"]["cut"] is True
    assert len(out["big"]["first"]) == MAX_ITEMS
    assert out["rows"] == [{"a": 0, "b": 0.0}] * 3
    assert out["long"].endswith("(10 more characters cut)")
    assert out["many"][-1] == "… (5 more items cut)" and len(out["many"]) == MAX_ITEMS + 1


def test_one_line_of_an_os_error_names_the_file():
    assert one_line(FileNotFoundError(2, "No such file or directory", "x.fq")) == (
        "x.fq: no such file or directory"
    )
    assert one_line(ValueError("first\nsecond")) == "ValueError: first"  # as the CLI says


@pytest.mark.parametrize(
    ("header", "token"),
    [(b"Bearer abc", "abc"), (b"bearer  abc ", "abc"), (b"Basic abc", None), (b"Bearer", None)],
)
def test_the_bearer_token_is_read_from_the_authorization_header(header, token):
    assert _bearer({"headers": [(b"authorization", header)]}) == token
    assert _bearer({"headers": []}) is None


def test_where_is_names_the_tier_that_serves_each_copy(isolated_home, tiers, who, tmp_path):
    """A file only on the write tier (S3 in the s3 lane) is served from there; once the PFS
    holds the same bytes, from the PFS, as ``aifdata where`` says."""
    config_path = tmp_path / "config.toml"
    config_path.write_text(tiers.toml("both"))
    who("alice")
    catalog = Catalog(isolated_home / "catalog.db", config=aifdata.load_config(config_path))
    tiers.place("run/a.fq", write=FASTQ)
    catalog.ingest("aif://both/run", "lab/run")
    first = call(catalog, "alice", "where_is", path="aif://both/run/a.fq").structured_content
    assert first["tier"] == tiers.write
    s3 = tiers.url(tiers.write, "run/a.fq")  # an s3:// URL stays; a PFS path is not shown
    assert first["url"] == (s3 if s3.startswith("s3://") else "aif://both/run/a.fq")
    tiers.place("run/a.fq", pfs=FASTQ)
    catalog.stage("lab/run", "pfs")
    second = call(catalog, "alice", "where_is", path="aif://both/run/a.fq").structured_content
    assert (second["tier"], second["url"]) == ("pfs", "aif://both/run/a.fq")


def test_a_plan_made_in_worker_threads_acts_as_the_caller(catalog):
    """Planning snaps boundaries in a thread pool: its reads are the caller's, not the
    process's (``nobody`` here, who may read nothing of alice's)."""
    plan = call(catalog, "alice", "plan_partitions", path="aif://lab/run1/reads.fq", n=4)
    assert plan.structured_content["count"] == 4
    with pytest.raises(ToolError, match=r"reads\.fq: no such file or directory"):
        call(catalog, "bob", "plan_partitions", path="aif://lab/run1/reads.fq", n=4)


def test_a_format_plan_option_reaches_the_plug_in(catalog):
    genome = "aif://lab/run1/genome.fa"
    whole = call(catalog, "alice", "plan_partitions", path=genome, n=4).structured_content
    assert whole["count"] == 1  # one sequence: FASTA cuts between records
    cut = call(catalog, "alice", "plan_partitions", path=genome, n=4, by="residues")
    assert cut.structured_content["count"] == 4
    sample = call(catalog, "alice", "read_sample", path=genome, by="residues", limit=1)
    assert sample.structured_content["partitions_in_sample_plan"] == 1  # 1 KB: one partition
    with pytest.raises(ToolError, match="the fastq format takes no option 'region'"):
        call(catalog, "alice", "plan_partitions", path="aif://lab/run1/reads.fq", region="chr1")


def test_a_description_lists_at_most_max_files(catalog):
    described = call(catalog, "alice", "describe_dataset", ref="lab/run1", max_files=1)
    data = described.structured_content
    assert (data["file_count"], len(data["files"]), data["files_cut"]) == (2, 1, True)
    assert data["files"][0]["path"] == "genome.fa"  # files in path order


def test_without_pandas_a_sample_holds_the_records_as_they_come(catalog, monkeypatch):
    from aifdata.formats.fastq import FastqFormat

    def no_pandas(*args: Any, **kwargs: Any) -> Any:
        raise ImportError("No module named 'pandas'")

    monkeypatch.setattr(FastqFormat, "to_pandas", no_pandas)
    sample = call(catalog, "alice", "read_sample", path="aif://lab/run1/reads.fq", limit=2)
    first, second = sample.structured_content["records"]
    assert "r0" in first and "ACGT" in first and "r1" in second
