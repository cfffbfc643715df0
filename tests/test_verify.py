"""``aifdata verify``: a scrub hashes every recorded copy again, marks the bad ones in the
catalog (routing skips them at once), reports the missing ones, and exits non-zero."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

import aifdata
from aifdata import AccessDenied, Catalog
from aifdata.cli import app

from .conftest import S3_ONLY

GOOD = b"@r1\nACGTACGTAC\n+\nIIIIIIIIII\n" * 50
OTHER = b"\x00" * 700

PFS_ONLY = pytest.mark.parametrize("tiers", ["archive"], ids=["pfs+pfs"], indirect=True)


@pytest.fixture
def world(home_catalog, tiers, tmp_path, monkeypatch):
    """``ds`` (one file) and ``other`` (one file), ingested from the write tier and staged
    to the PFS tier; the mount table in a file, as the CLI reads it."""
    config = tmp_path / "config.toml"
    config.write_text(tiers.toml("both"))
    monkeypatch.setenv("AIFDATA_CONFIG", str(config))
    catalog = Catalog(home_catalog, config=tiers.fs.config)
    tiers.place("ds/reads.fastq", write=GOOD)
    tiers.place("other/blob.bin", write=OTHER)
    for name in ("ds", "other"):
        catalog.ingest(f"aif://both/{name}", name)
        catalog.stage(name, to="pfs")
    return catalog, tiers


def verify(*args: str) -> tuple[int, str, str]:
    """Run ``aifdata verify ARGS`` in this process: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, ["verify", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def flip_one_byte_keep_mtime(path, offset=10):
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x20
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@PFS_ONLY
def test_good_copies_pass_and_exit_zero(world):
    code, out, err = verify("--json")
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True
    assert (report["checked"], report["bad"], report["missing"]) == (4, 0, 0)  # 2 files x 2 tiers
    assert report["bytes_hashed"] == 2 * (len(GOOD) + len(OTHER))
    assert err == ""  # no progress bar with --json


@PFS_ONLY
def test_a_flipped_byte_is_found_marked_bad_and_skipped_by_routing(world):
    catalog, tiers = world
    copy = tiers.pfs_dir / "ds" / "reads.fastq"
    flip_one_byte_keep_mtime(copy)
    code, out, _ = verify("ds", "--json")
    assert code == 1
    report = json.loads(out)
    assert (report["checked"], report["bad"], report["missing"]) == (2, 1, 0)
    (problem,) = report["problems"]
    assert (problem["state"], problem["tier"], problem["url"]) == ("bad", "pfs", str(copy))
    assert problem["dataset"] == "ds@1" and problem["path"] == "reads.fastq"
    # marked in the catalog: routing skips the copy at once, without hashing it again
    fs = aifdata.filesystem(tiers.fs.config, catalog=catalog)
    route = fs.where("both/ds/reads.fastq")
    assert route.tier == tiers.write
    assert fs.cat("both/ds/reads.fastq") == GOOD
    # a stage puts a good copy back, and the next scrub is clean
    assert catalog.stage("ds", to="pfs").copied == ("reads.fastq",)
    assert verify("ds")[0] == 0
    assert fs.where("both/ds/reads.fastq").tier == "pfs"


@PFS_ONLY
def test_the_human_summary_names_each_problem(world):
    _, tiers = world
    (tiers.pfs_dir / "other" / "blob.bin").unlink()
    code, out, _ = verify()
    assert code == 1
    lines = out.strip().splitlines()
    assert lines[0].startswith("MISSING  other@1  blob.bin  [pfs]")
    assert lines[-1] == (
        f"4 copies checked, {len(GOOD) * 2 + len(OTHER):,} bytes hashed, 0 bad, 1 missing"
    )


@PFS_ONLY
def test_tier_and_prefix_narrow_the_scrub(world):
    _, tiers = world
    flip_one_byte_keep_mtime(tiers.pfs_dir / "ds" / "reads.fastq")
    code, out, _ = verify("--tier", tiers.write, "--json")
    assert code == 0 and json.loads(out)["checked"] == 2
    code, out, _ = verify("aif://both/other", "--json")
    assert code == 0 and json.loads(out)["checked"] == 2
    code, out, _ = verify("aif://both/ds", "--tier", "pfs", "--json")
    assert code == 1 and json.loads(out)["checked"] == 1


@PFS_ONLY
def test_verify_needs_read_on_what_it_scrubs(world, monkeypatch):
    monkeypatch.setenv("AIFDATA_USER", "mallory")
    monkeypatch.setenv("AIFDATA_GROUPS", "")
    with pytest.raises(AccessDenied, match="that user:mallory may read"):
        verify("ds")
    with pytest.raises(AccessDenied):
        verify("aif://both/ds")
    code, out, _ = verify("--json")  # every dataset mallory may read: none
    assert code == 0 and json.loads(out)["checked"] == 0


@PFS_ONLY
def test_a_missing_dataset_is_not_found_and_a_mistyped_tier_is_refused(world):
    with pytest.raises(aifdata.NotFound):
        verify("nope")
    with pytest.raises(aifdata.ConfigError, match=r"no tier .pfss.*its tiers: archive, pfs"):
        verify("ds", "--tier", "pfss")


@PFS_ONLY
def test_progress_counts_every_byte_hashed(world):
    catalog, _ = world
    seen: list[int] = []
    report = catalog.verify("other", progress=seen.append)
    assert report.ok and sum(seen) == report.bytes_hashed == 2 * len(OTHER)


@PFS_ONLY
def test_clean_removes_stale_temporaries_beside_the_copies(world, monkeypatch):
    from aifdata.connectors import _atomic

    _, tiers = world
    asked: list[str] = []

    def remove_stale_temporaries(directory):
        asked.append(os.fspath(directory))
        return [os.path.join(directory, ".x.aif-tmp")]

    monkeypatch.setattr(
        _atomic, "remove_stale_temporaries", remove_stale_temporaries, raising=False
    )
    code, out, _ = verify("ds", "--clean", "--json")
    assert code == 0
    pfs_dir = os.path.realpath(tiers.pfs_dir / "ds")
    assert pfs_dir in asked
    assert os.path.join(pfs_dir, ".x.aif-tmp") in json.loads(out)["cleaned"]


@PFS_ONLY
def test_clean_reaches_a_directory_a_killed_stage_made_before_its_first_copy(world, monkeypatch):
    from aifdata.connectors import _atomic

    catalog, tiers = world
    tiers.place("fresh/a.bin", write=b"abc")
    catalog.ingest("aif://both/fresh", "fresh")  # not staged: no PFS copy recorded
    (tiers.pfs_dir / "fresh").mkdir()  # the killed stage made the directory, no copy yet
    asked: list[str] = []

    def remove_stale_temporaries(directory):
        asked.append(os.fspath(directory))
        return []

    monkeypatch.setattr(
        _atomic, "remove_stale_temporaries", remove_stale_temporaries, raising=False
    )
    assert verify("fresh", "--clean", "--tier", "pfs")[0] == 0
    assert asked == [os.path.realpath(tiers.pfs_dir / "fresh")]


@PFS_ONLY
def test_clean_removes_a_dead_writers_temporary_file_and_keeps_a_live_ones(world):
    from aifdata.connectors import _atomic

    _, tiers = world
    directory = tiers.pfs_dir / "ds"
    dead_pid = 4_999_999  # above any pid_max: no such process
    dead = (
        directory / f".half.bin.{_atomic.host_token()}.{dead_pid}.1.0123abcd{_atomic.TEMP_SUFFIX}"
    )
    dead.write_bytes(b"partial")
    live = _atomic.AtomicWriter(str(directory / "being-written.bin"))
    live.write(b"x")
    live.flush()
    try:
        code, out, _ = verify("ds", "--clean", "--json")
        assert code == 0
        assert json.loads(out)["cleaned"] == [os.path.realpath(dead)]
        assert not dead.exists()
        assert len(list(directory.glob(f"*{_atomic.TEMP_SUFFIX}"))) == 1  # the live one
    finally:
        live.close()


@S3_ONLY
def test_a_changed_s3_object_is_found_and_the_pfs_copy_serves(world):
    catalog, tiers = world
    fs = aifdata.filesystem(tiers.fs.config, catalog=False)
    tampered = bytearray(GOOD)
    tampered[5] ^= 0x20
    fs.pipe("both/ds/reads.fastq", bytes(tampered))  # same size, new ETag, other bytes
    code, out, _ = verify("ds", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["bad"] == 1 and report["problems"][0]["url"].startswith("s3://")
    governed = aifdata.filesystem(tiers.fs.config, catalog=catalog)
    route = governed.where("both/ds/reads.fastq")
    assert route.tier == "pfs"
    assert governed.cat("both/ds/reads.fastq") == GOOD


def test_copies_outside_every_mount_are_checked_too(tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "a.txt").write_bytes(b"alpha" * 100)
    catalog = Catalog(tmp_path / "catalog.db", config=aifdata.Config(()))
    catalog.ingest(str(loose), "loose")
    assert catalog.verify("loose").ok
    flip_one_byte_keep_mtime(loose / "a.txt")
    report = catalog.verify("loose")
    assert [(p.state, p.url) for p in report.problems] == [("bad", str(loose / "a.txt"))]
    assert report.checked == 1 and report.bytes_hashed == 500


def test_clean_sweeps_each_tree_once():
    from aifdata.catalog._verify import _outermost

    dirs = ["/p/ds/sub", "/p/ds", "/p/other", "/p/ds2", "/p/ds/sub/deeper"]
    assert _outermost(dirs) == ["/p/ds", "/p/ds2", "/p/other"]
