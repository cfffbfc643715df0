"""The CLI's ``cat``, ``ls`` and ``cp`` on the storage's own URLs and paths: inside a
governed location they are checked like ``aif://``; outside every mount they are as before.

The mount ``both`` has a PFS tier and a write tier (a second PFS directory in the
unit lane, S3 in the s3 lane); alice owns ``genomics/run42`` at ``aif://both/run42``;
``scratch/`` is open space; bob holds no grant.
"""

from __future__ import annotations

import pytest

import aifdata
from aifdata import Catalog
from aifdata.cli import main

DATA = b"@r1\nACGT\n+\nIIII\n"


@pytest.fixture
def world(isolated_home, tiers, who, tmp_path):
    """The default catalog (the one ``aif://`` enforces), the config file, the tiers."""
    config = tmp_path / "config.toml"
    config.write_text(tiers.toml("both"))
    who("boss")
    catalog = Catalog(isolated_home / "catalog.db", config=aifdata.load_config(config))
    assert catalog.admins() == ["user:boss"]
    fs = aifdata.filesystem(catalog.config, catalog=catalog)
    who("alice")
    fs.pipe("both/run42/reads.fq", DATA)
    fs.pipe("both/scratch/notes.txt", b"open space")
    (tiers.pfs_dir / "run42").mkdir()
    (tiers.pfs_dir / "run42" / "reads.fq").write_bytes(DATA)  # a PFS copy too
    catalog.ingest("aif://both/run42", "genomics/run42")
    return catalog, str(config)


def cli(config: str, *args: str) -> int:
    return main(["--config", config, *args])


def refusals(catalog: Catalog, user: str) -> list[str]:
    rows = catalog.conn.execute(
        "SELECT target FROM audit WHERE principal = ? AND allowed = 0", (f"user:{user}",)
    ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.parametrize("tier", ["pfs", "write"])
def test_cat_of_a_dataset_by_its_storage_url_is_refused_without_a_grant(
    world, tiers, who, capfd, tier
):
    catalog, config = world
    url = tiers.url(tiers.write if tier == "write" else "pfs", "run42/reads.fq")
    who("bob")
    assert cli(config, "cat", url) == 4
    out, err = capfd.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert url in err and "aif://both/run42/reads.fq" in err
    assert "genomics/run42" not in err  # bob may not see the dataset: it is not named
    assert refusals(catalog, "bob") == ["aif://both/run42/reads.fq"]
    who("alice")
    assert cli(config, "cat", url) == 0
    assert capfd.readouterr().out.encode() == DATA


def test_a_granted_principal_reads_the_storage_url(world, tiers, who, capfd):
    catalog, config = world
    who("alice")
    catalog.grant("bob", "read", "genomics/run42")
    who("bob")
    assert cli(config, "cat", tiers.url(tiers.write, "run42/reads.fq")) == 0
    assert capfd.readouterr().out.encode() == DATA


def test_ls_of_a_tier_hides_what_the_principal_may_not_read(world, tiers, who, capfd):
    _, config = world
    root = tiers.url(tiers.write, "").rstrip("/")
    who("bob")
    assert cli(config, "ls", root) == 0
    shown = capfd.readouterr().out.split()
    assert any(line.endswith("scratch/") for line in shown)
    assert not any("run42" in line for line in shown)
    assert cli(config, "ls", "-r", root) == 0
    shown = capfd.readouterr().out.split()
    assert any(line.endswith("scratch/notes.txt") for line in shown)
    assert not any("run42" in line for line in shown)
    assert cli(config, "ls", f"{root}/run42") == 4
    who("alice")
    assert cli(config, "ls", "-r", root) == 0
    assert any(line.endswith("run42/reads.fq") for line in capfd.readouterr().out.split())


def test_cp_out_of_or_into_a_dataset_by_its_storage_url_is_refused(
    world, tiers, who, tmp_path, capfd
):
    _, config = world
    local = tmp_path / "local.fq"
    local.write_bytes(DATA)
    root = tiers.url(tiers.write, "").rstrip("/")
    who("bob")
    assert cli(config, "cp", "-q", f"{root}/run42/reads.fq", str(tmp_path / "out.fq")) == 4
    assert not (tmp_path / "out.fq").exists()
    assert cli(config, "cp", "-q", "-r", root, str(tmp_path / "all")) == 4  # run42 is inside
    assert not (tmp_path / "all").exists()
    assert cli(config, "cp", "-q", str(local), f"{root}/run42/planted.fq") == 4
    assert cli(config, "cp", "-q", str(local), f"{root}/run42/") == 4
    assert "may not write" in capfd.readouterr().err
    # open space stays open
    assert cli(config, "cp", "-q", f"{root}/scratch/notes.txt", str(tmp_path / "n.txt")) == 0
    assert (tmp_path / "n.txt").read_bytes() == b"open space"


def test_a_symlink_into_a_tier_is_checked_as_its_target(world, tiers, who, tmp_path):
    _, config = world
    link = tmp_path / "elsewhere"
    link.symlink_to(tiers.pfs_dir / "run42")
    who("bob")
    assert cli(config, "cat", str(link / "reads.fq")) == 4
    assert cli(config, "ls", str(link)) == 4


def test_a_dataset_outside_every_mount_is_governed_where_it_lives(world, who, tmp_path, capfd):
    catalog, config = world
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "reads.fq").write_bytes(DATA)
    who("alice")
    catalog.ingest(str(raw), "genomics/raw")
    who("bob")
    assert cli(config, "cat", str(raw / "reads.fq")) == 4
    err = capfd.readouterr().err  # bob may not read it: the dataset is not named
    assert "governed by a dataset user:bob may not see" in err and "genomics/raw" not in err
    assert cli(config, "ls", str(tmp_path)) == 0
    assert "raw" not in [
        line.rstrip("/").rsplit("/", 1)[-1] for line in capfd.readouterr().out.split()
    ]


def test_outside_every_mount_and_dataset_nothing_changes(world, who, tmp_path, capfd):
    _, config = world
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"mine")
    who("bob")
    assert cli(config, "cat", str(plain)) == 0
    assert capfd.readouterr().out == "mine"
    assert cli(config, "cp", "-q", str(plain), str(tmp_path / "copy.txt")) == 0
    assert (tmp_path / "copy.txt").read_bytes() == b"mine"


def test_a_symlink_in_open_space_to_a_governed_mount_is_checked_as_its_target(
    world, tiers, who, tmp_path
):
    catalog, config = world
    other = tmp_path / "zz-other"  # sorts after the PFS tier: every spelling counts
    other.mkdir()
    (other / "secret.txt").write_bytes(b"governed by a pattern")
    with open(config, "a") as f:
        f.write(f'\n[mounts.other.pfs]\npath = "{other}"\n')
    who("boss")
    catalog.grant("alice", "read", "other/*")
    link = tiers.pfs_dir / "scratch" / "link.txt"  # open space of the mount both
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(other / "secret.txt")
    who("bob")
    assert cli(config, "cat", str(link)) == 4
    assert cli(config, "cat", str(other / "secret.txt")) == 4
    who("alice")
    assert cli(config, "cat", str(link)) == 0


@pytest.mark.parametrize("tier", ["pfs", "write"])
def test_partition_and_convert_of_a_dataset_by_its_storage_url_are_checked(
    world, tiers, who, capfd, tier, tmp_path
):
    catalog, config = world
    url = tiers.url(tiers.write if tier == "write" else "pfs", "run42/reads.fq")
    who("bob")
    assert cli(config, "partition", url, "--n", "2") == 4
    assert cli(config, "convert", url, str(tmp_path / "out.zarr")) == 4
    err = capfd.readouterr().err
    assert err.count("\n") == 2 and "genomics/run42" not in err
    assert refusals(catalog, "bob") == ["aif://both/run42/reads.fq"] * 2
    assert not (tmp_path / "out.zarr").exists()
    who("alice")
    assert cli(config, "partition", url, "--n", "2") == 0
    assert "1 partition(s)" in capfd.readouterr().err


def test_convert_into_a_dataset_by_its_storage_path_needs_write(world, tiers, who, capfd):
    _, config = world
    who("bob")
    source = tiers.url("pfs", "scratch-source.tif")  # open space; its bytes never read
    dest = tiers.url("pfs", "run42/out.zarr")
    assert cli(config, "convert", source, dest) == 4
    assert "may not write" in capfd.readouterr().err
    assert not (tiers.pfs_dir / "run42" / "out.zarr").exists()
