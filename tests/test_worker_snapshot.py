"""Workers without the catalog file: ``$AIFDATA_CATALOG`` names a Parquet snapshot.

A cluster's workers usually get the mount table and a snapshot (``aifdata export``), not
the SQLite file. With the snapshot they route as the catalog does: a same-size stale copy
on the PFS is skipped, as it is where the catalog file is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import aifdata
from aifdata import AifFileSystem, Catalog, CatalogError, NotFound, _synthetic

pytest.importorskip("pyarrow", reason="snapshots are Parquet (extra: dataframe)")


@pytest.fixture
def login_node(tiers, tmp_path, monkeypatch):
    """A dataset ingested and staged to the PFS, its catalog exported as a snapshot; then the
    PFS copy overwritten by other bytes of the same size (a stale copy). Returns the snapshot."""
    tiers.place("run42/reads.fastq", write=_synthetic.fastq(200, seed=1))
    config = tmp_path / "config.toml"
    config.write_text(tiers.toml("both"))
    monkeypatch.setenv("AIFDATA_CONFIG", str(config))
    monkeypatch.setenv("AIFDATA_CATALOG", str(tmp_path / "catalog.db"))  # the login node's
    catalog = Catalog(tmp_path / "catalog.db")
    catalog.ingest("aif://both/run42", "genomics/run42")
    catalog.stage("genomics/run42", to="pfs")
    snapshot = tmp_path / "snapshot"
    catalog.export(str(snapshot))
    stale = tiers.pfs_dir / "run42" / "reads.fastq"
    good = stale.read_bytes()
    stale.write_bytes(good.replace(b"ACGT", b"TTTT", 1))
    assert stale.read_bytes() != good and stale.stat().st_size == len(good)
    AifFileSystem.clear_instance_cache()
    return snapshot, good, tiers.write


def worker_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's environment: the same mount table, no catalog file."""
    home = tmp_path / "worker-home"
    home.mkdir()
    monkeypatch.setenv("AIFDATA_HOME", str(home))
    monkeypatch.delenv("AIFDATA_CATALOG")
    AifFileSystem.clear_instance_cache()


def test_a_worker_with_only_the_snapshot_skips_a_stale_same_size_copy(
    login_node, tmp_path, monkeypatch
):
    snapshot, good, write_tier = login_node
    worker_home(tmp_path, monkeypatch)
    blind = aifdata.filesystem()
    assert blind.catalog is None
    assert blind.where("both/run42/reads.fastq").tier == "pfs"  # the size rule alone is fooled
    assert blind.cat("both/run42/reads.fastq") != good

    monkeypatch.setenv("AIFDATA_CATALOG", str(snapshot))
    AifFileSystem.clear_instance_cache()
    fs = aifdata.filesystem()
    assert fs.catalog is not None and fs.catalog.read_only
    route = fs.where("both/run42/reads.fastq")
    assert route.tier == write_tier
    assert route.skipped == (("pfs", "changed since the catalog checksummed it"),)
    assert fs.cat("both/run42/reads.fastq") == good


def test_partitions_read_on_a_worker_with_the_snapshot_are_the_files_records(
    login_node, tmp_path, monkeypatch
):
    snapshot, good, _ = login_node
    parts = aifdata.partition("aif://both/run42/reads.fastq", n=3)  # planned with the catalog
    worker_home(tmp_path, monkeypatch)
    monkeypatch.setenv("AIFDATA_CATALOG", str(snapshot))
    records = [r for p in parts for r in p.read()]
    assert len(records) == 200
    assert (
        b"".join(f"@{r.name}\n{r.sequence}\n+\n{r.qualities}\n".encode() for r in records) == good
    )


def test_the_snapshot_is_read_only_on_a_worker(login_node, tmp_path, monkeypatch):
    snapshot, _, _ = login_node
    worker_home(tmp_path, monkeypatch)
    monkeypatch.setenv("AIFDATA_CATALOG", str(snapshot))
    catalog = Catalog()
    assert catalog.read_only
    assert catalog.dataset("genomics/run42").files[0].path == "reads.fastq"
    with pytest.raises(CatalogError, match="snapshot is read-only"):
        catalog.ingest("aif://both/run42", "other")


def test_aifdata_catalog_naming_nothing_is_an_error_naming_it(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-snapshot"
    monkeypatch.setenv("AIFDATA_CATALOG", str(missing))
    with pytest.raises(NotFound, match=r"\$AIFDATA_CATALOG names .*no-such-snapshot"):
        Catalog()
    missing.mkdir()  # a directory, but no snapshot in it
    with pytest.raises(CatalogError, match=r"_snapshot\.json is missing"):
        Catalog()


def test_a_worker_without_any_catalog_never_reads_a_stale_copy_as_a_partition(
    login_node, tmp_path, monkeypatch
):
    parts = aifdata.partition("aif://both/run42/reads.fastq", n=2)  # planned with the catalog
    assert "#sha256:" in parts[0].fingerprint
    worker_home(tmp_path, monkeypatch)  # no catalog at all: the stale PFS copy is routed to
    with pytest.raises(aifdata.FormatError) as error:
        parts[0].read()
    assert "changed since it was partitioned" in str(error.value)
    assert "$AIFDATA_CATALOG" in str(error.value)
