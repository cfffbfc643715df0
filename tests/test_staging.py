"""Replicas and staging: the catalog's checksums decide which copy ``aif://`` serves."""

from __future__ import annotations

import json
import os

import pytest

import aifdata
from aifdata import Catalog, CatalogError

from .conftest import two_tier_toml


@pytest.fixture
def setup(tmp_path, two_tier_fs, pfs_dir):
    catalog = Catalog(tmp_path / "catalog.db", config=two_tier_fs.config)
    fs = aifdata.filesystem(two_tier_fs.config, catalog=catalog)
    return catalog, fs, pfs_dir


def test_stale_same_size_copy_is_not_served_once_the_catalog_knows(setup):
    catalog, fs, pfs_dir = setup
    fs.pipe("both/run42/reads.fastq", b"GOOD-BYTES")  # written to S3, the write tier
    (pfs_dir / "run42").mkdir()
    (pfs_dir / "run42" / "reads.fastq").write_bytes(b"STALE-BYTE")  # same size, other bytes
    assert fs.where("both/run42/reads.fastq").tier == "pfs"  # the size rule alone is fooled

    catalog.ingest("aif://both/run42", "genomics/run42")
    route = fs.where("both/run42/reads.fastq")
    assert route.tier == "s3"
    assert ("pfs", "copy not verified by the catalog") in route.skipped
    assert "sha256:" in route.reason
    assert fs.cat("both/run42/reads.fastq") == b"GOOD-BYTES"

    report = catalog.stage("genomics/run42", to="pfs")
    assert report.copied == ("reads.fastq",)
    assert (pfs_dir / "run42" / "reads.fastq").read_bytes() == b"GOOD-BYTES"
    assert fs.where("both/run42/reads.fastq").tier == "pfs"
    assert fs.cat("both/run42/reads.fastq") == b"GOOD-BYTES"
    tiers = {t for t, _ in catalog.dataset("genomics/run42").files[0].replicas}
    assert tiers == {"s3", "pfs"}


def test_stage_copies_missing_files_and_records_replicas(setup):
    catalog, fs, pfs_dir = setup
    fs.pipe({f"both/set/f{i}.bin": bytes([i]) * (1000 + i) for i in range(12)})
    catalog.ingest("aif://both/set", "set")
    report = catalog.stage("set", to="pfs")
    assert len(report.copied) == 12 and report.present == ()
    assert report.bytes_copied == sum(1000 + i for i in range(12))
    assert (pfs_dir / "set" / "f3.bin").read_bytes() == bytes([3]) * 1003
    again = catalog.stage("set", to="pfs")
    assert again.copied == () and len(again.present) == 12
    assert {fs.where(f"both/set/f{i}.bin").tier for i in range(12)} == {"pfs"}


def test_copy_changed_after_staging_is_not_served(setup):
    catalog, fs, pfs_dir = setup
    fs.pipe("both/x/data.bin", b"0123456789")
    catalog.ingest("aif://both/x", "x")
    catalog.stage("x", to="pfs")
    target = pfs_dir / "x" / "data.bin"
    target.write_bytes(b"9876543210")  # same size, new bytes, new mtime
    os.utime(target, (1, 1))
    route = fs.where("both/x/data.bin")
    assert route.tier == "s3"
    assert ("pfs", "changed since the catalog checksummed it") in route.skipped
    assert fs.cat("both/x/data.bin") == b"0123456789"


def test_stage_refuses_a_source_that_no_longer_matches(setup):
    catalog, fs, pfs_dir = setup
    fs.pipe("both/y/a.bin", b"original")
    catalog.ingest("aif://both/y", "y")
    fs.pipe("both/y/a.bin", b"tampered")  # S3 copy changed behind the catalog's back
    with pytest.raises(CatalogError, match="differs from the catalog"):
        catalog.stage("y", to="pfs")
    assert not (pfs_dir / "y" / "a.bin").exists()


def test_stage_to_an_unknown_tier_lists_the_tiers(setup):
    catalog, fs, _ = setup
    fs.pipe("both/z/a.bin", b"1")
    catalog.ingest("aif://both/z", "z")
    with pytest.raises(aifdata.ConfigError, match="its tiers: pfs, s3"):
        catalog.stage("z", to="tape")


def test_cli_stage(setup, seaweedfs, tmp_path, capsysbinary):
    from aifdata.cli import main

    catalog, fs, pfs_dir = setup
    fs.pipe("both/c/one.bin", b"abc")
    catalog.ingest("aif://both/c", "c")
    config = tmp_path / "config.toml"
    s3_url = fs.config.mount("both").tier("s3").url
    config.write_text(two_tier_toml(seaweedfs, s3_url, pfs_dir, "both"))
    args = ["--config", str(config), "stage", "c", "--to", "pfs", "--catalog", str(catalog.path)]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsysbinary.readouterr()[0])
    assert report["copied"] == ["one.bin"]
    assert (pfs_dir / "c" / "one.bin").read_bytes() == b"abc"


@pytest.fixture
def home_catalog(isolated_home, two_tier_fs):
    """The catalog at ``$AIFDATA_HOME/catalog.db``, the one every reader finds."""
    aifdata.AifFileSystem.clear_instance_cache()
    return Catalog(config=two_tier_fs.config), two_tier_fs.config


def _names(parts, config) -> list[tuple[str, str, str]]:
    return [(r.name, r.sequence, r.qualities) for p in parts for r in p.read(config=config)]


def test_partitions_planned_before_staging_read_the_staged_copy(home_catalog):
    pytest.importorskip("dnaio")
    from aifdata.formats import RangeSource, partition

    from .test_fastq import fastq_bytes, random_records

    catalog, config = home_catalog
    fs = aifdata.filesystem(config)
    records = random_records(4, 500)
    fs.pipe("both/run/reads.fq", fastq_bytes(records))
    catalog.ingest("aif://both/run", "run")
    parts = partition("aif://both/run/reads.fq", n=3, config=config)
    assert "#sha256:" in parts[0].fingerprint  # the catalog's checksum names the version
    catalog.stage("run", to="pfs")
    assert RangeSource("aif://both/run/reads.fq", config).info["tier"] == "pfs"
    assert _names(parts, config) == records  # the verified replica: the same version
    fs.pipe("both/run/reads.fq", fastq_bytes(records[:-1]))  # a new version on S3
    with pytest.raises(aifdata.FormatError, match="changed since it was partitioned"):
        parts[0].read(config=config)


def test_a_stale_replica_refreshed_after_planning_is_a_new_version(two_tier_fs, pfs_dir):
    """Without a catalog the size rule serves a stale same-size copy; what was
    planned on it must not be read from the refreshed copy (nor its gzip index reused)."""
    pytest.importorskip("indexed_gzip")
    import gzip
    import time

    from aifdata.formats import partition

    from .test_fastq import fastq_bytes, random_records

    config = two_tier_fs.config
    records = random_records(1, 300)
    older = [(n, ("T" + s[1:]) if s else s, q) for n, s, q in records]  # same lengths
    # stored (level 0) deflate: the same size for bytes of the same length
    good, stale = (gzip.compress(fastq_bytes(r), 0, mtime=0) for r in (records, older))
    assert len(good) == len(stale) and good != stale
    two_tier_fs.pipe("both/g/reads.fq.gz", good)
    (pfs_dir / "g").mkdir()
    (pfs_dir / "g" / "reads.fq.gz").write_bytes(stale)
    assert two_tier_fs.where("both/g/reads.fq.gz").tier == "pfs"
    old = partition("aif://both/g/reads.fq.gz", n=2, config=config)  # on the stale bytes
    assert _names(old, config) == older
    time.sleep(0.01)
    (pfs_dir / "g" / "reads.fq.gz").write_bytes(good)  # refreshed: a new mtime
    for part in old:
        with pytest.raises(aifdata.FormatError, match="changed since it was partitioned"):
            part.read(config=config)
    parts = partition("aif://both/g/reads.fq.gz", n=2, config=config)
    assert _names(parts, config) == records


def test_staging_a_pfs_only_file_to_the_write_tier_keeps_its_partitions(home_catalog, pfs_dir):
    pytest.importorskip("dnaio")
    from aifdata.formats import partition

    from .test_fastq import fastq_bytes, random_records

    catalog, config = home_catalog
    records = random_records(6, 400)
    (pfs_dir / "only").mkdir()
    (pfs_dir / "only" / "reads.fq").write_bytes(fastq_bytes(records))
    catalog.ingest("aif://both/only", "only")
    parts = partition("aif://both/only/reads.fq", n=3, config=config)
    catalog.stage("only", to="s3")
    assert _names(parts, config) == records


def test_a_replica_of_an_older_version_is_not_served(setup):
    catalog, fs, pfs_dir = setup
    fs.pipe("both/v/data.bin", b"version one")
    catalog.ingest("aif://both/v", "v")
    catalog.stage("v", to="pfs")
    assert fs.where("both/v/data.bin").tier == "pfs"
    fs.pipe("both/v/data.bin", b"version two")  # the same size, on the write tier
    route = fs.where("both/v/data.bin")  # the catalog does not know version two yet
    assert route.tier == "s3" and fs.cat("both/v/data.bin") == b"version two"
    catalog.ingest("aif://both/v", "v")  # now it does; the PFS copy is still version one
    route = fs.where("both/v/data.bin")
    assert route.tier == "s3" and fs.cat("both/v/data.bin") == b"version two"
    assert ("pfs", "another version than the write tier 's3' holds") in route.skipped
    catalog.stage("v", to="pfs")
    assert fs.where("both/v/data.bin").tier == "pfs"
    assert (pfs_dir / "v" / "data.bin").read_bytes() == b"version two"
