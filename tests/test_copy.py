"""``aifdata.copy``: cp's planning rules from Python, between aif://, s3://, memory:// and local
paths, with local targets written atomically."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import pytest
from fsspec.callbacks import Callback
from fsspec.implementations.local import LocalFileSystem

import aifdata
from aifdata import AifDataError, AifFileSystem, BadURL, CopiedFile

from .conftest import s3_tier


@pytest.fixture
def config(pfs_dir: Path) -> aifdata.Config:
    """One mount, ``lab``, on a PFS directory."""
    return aifdata.Config((aifdata.Mount("lab", (aifdata.Tier.pfs(pfs_dir),)),))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A local directory ``src`` with ``a.txt`` and ``sub/b.txt``."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha")
    (src / "sub" / "b.txt").write_bytes(b"beta")
    return src


def test_a_file_is_copied_to_a_new_name_and_reported(config, tmp_path, pfs_dir):
    local = tmp_path / "reads.fastq"
    local.write_bytes(b"@r1\nACGT\n+\nIIII\n")
    copied = aifdata.copy(local, "aif://lab/run1/reads.fq", config=config)
    assert copied == [CopiedFile(str(local), "aif://lab/run1/reads.fq", 16)]
    assert (pfs_dir / "run1" / "reads.fq").read_bytes() == local.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - the record is frozen
        copied[0].size = 0  # type: ignore[misc]


def test_a_destination_ending_in_slash_or_an_existing_directory_receives_by_name(
    config, tmp_path, pfs_dir
):
    local = tmp_path / "one.bin"
    local.write_bytes(b"1" * 100)
    aifdata.copy(str(local), "aif://lab/in/", config=config)
    assert (pfs_dir / "in" / "one.bin").read_bytes() == b"1" * 100
    (pfs_dir / "existing").mkdir()
    [done] = aifdata.copy(str(local), "aif://lab/existing", config=config)
    assert done.destination == "aif://lab/existing/one.bin"
    back = tmp_path / "back"
    back.mkdir()
    [done] = aifdata.copy("aif://lab/existing/one.bin", back, config=config)
    assert done == CopiedFile("aif://lab/existing/one.bin", str(back / "one.bin"), 100)
    assert (back / "one.bin").read_bytes() == b"1" * 100


def test_a_directory_needs_recursive_and_lands_below_its_name_or_as_the_new_name(
    config, tree, pfs_dir
):
    with pytest.raises(IsADirectoryError, match="use -r"):
        aifdata.copy(tree, "aif://lab/", config=config)
    assert not list(pfs_dir.iterdir())  # refused before anything was written
    copied = aifdata.copy(tree, "aif://lab/", recursive=True, config=config)
    assert [c.destination for c in copied] == ["aif://lab/src/a.txt", "aif://lab/src/sub/b.txt"]
    assert [c.size for c in copied] == [5, 4]
    aifdata.copy("aif://lab/src", str(tree.parent / "again"), recursive=True, config=config)
    assert (tree.parent / "again" / "a.txt").read_bytes() == b"alpha"
    assert (tree.parent / "again" / "sub" / "b.txt").read_bytes() == b"beta"


def test_several_sources_go_into_the_destination_by_name(config, tree, pfs_dir):
    sources = [tree / "a.txt", str(tree / "sub" / "b.txt")]
    copied = aifdata.copy(sources, "aif://lab/both", config=config)
    assert [c.destination for c in copied] == ["aif://lab/both/a.txt", "aif://lab/both/b.txt"]
    assert sorted(p.name for p in (pfs_dir / "both").iterdir()) == ["a.txt", "b.txt"]
    with pytest.raises(ValueError, match="no source"):
        aifdata.copy([], "aif://lab/x", config=config)


def test_a_local_file_is_not_copied_onto_itself(config, tmp_path):
    local = tmp_path / "same.txt"
    local.write_bytes(b"keep me")
    with pytest.raises(AifDataError, match="same file"):
        aifdata.copy(local, local, config=config)
    with pytest.raises(AifDataError, match="same file"):
        aifdata.copy(local, f"{tmp_path}/", config=config)
    assert local.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pfs", "same.txt"]


class _Counting(Callback):
    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.sizes: list[int] = []
        self.fail_after = fail_after

    def set_size(self, size: int) -> None:
        self.sizes.append(size)
        super().set_size(size)

    def relative_update(self, inc: int = 1) -> None:
        super().relative_update(inc)
        if self.fail_after is not None and self.value >= self.fail_after:
            raise KeyboardInterrupt  # the user gave up part-way


def test_the_callback_gets_the_planned_total_then_every_byte(config, tree):
    progress = _Counting()
    aifdata.copy(tree, "aif://lab/p/", recursive=True, config=config, callback=progress)
    assert progress.sizes == [9]
    assert progress.value == 9


def test_a_local_destination_keeps_its_old_bytes_when_the_copy_stops(config, tmp_path, pfs_dir):
    (pfs_dir / "new.txt").write_bytes(b"new bytes")
    target = tmp_path / "out" / "kept.txt"
    target.parent.mkdir()
    target.write_bytes(b"old bytes")
    with pytest.raises(KeyboardInterrupt):
        aifdata.copy("aif://lab/new.txt", target, config=config, callback=_Counting(1))
    assert target.read_bytes() == b"old bytes"
    assert [p.name for p in target.parent.iterdir()] == ["kept.txt"]  # no temporary left
    aifdata.copy("aif://lab/new.txt", target, config=config)
    assert target.read_bytes() == b"new bytes"


def test_urls_of_a_mounted_fsspec_tier_copy_to_and_from_a_mount(pfs_dir):
    root = f"memory://copy-{uuid.uuid4().hex[:8]}"
    config = aifdata.Config(
        (
            aifdata.Mount("lab", (aifdata.Tier.pfs(pfs_dir),)),
            aifdata.Mount("mem", (aifdata.Tier.fsspec(f"{root}/d"),)),
        )
    )
    memory = fsspec.filesystem("memory")
    memory.pipe(f"{root}/d/in/x.bin", b"xyz")
    try:
        [done] = aifdata.copy(f"{root}/d/in/x.bin", "aif://lab/m/", config=config)
        source = memory.unstrip_protocol(memory._strip_protocol(f"{root}/d/in/x.bin"))
        assert done == CopiedFile(source, "aif://lab/m/x.bin", 3)  # fsspec's spelling
        assert (pfs_dir / "m" / "x.bin").read_bytes() == b"xyz"
        aifdata.copy("aif://lab/m", f"{root}/d/out", recursive=True, config=config)
        assert memory.cat(f"{root}/d/out/x.bin") == b"xyz"
        assert aifdata.copy("aif://mem/out/x.bin", "aif://mem/again.bin", config=config)
        assert memory.cat(f"{root}/d/again.bin") == b"xyz"
    finally:
        memory.rm(root, recursive=True)


def test_url_to_fs_names_the_filesystem_of_each_kind_of_url(config, tmp_path):
    fs, path = aifdata.url_to_fs("aif://lab/a/./b.txt", config)
    assert isinstance(fs, AifFileSystem) and path == "lab/a/b.txt"
    fs, path = aifdata.url_to_fs(tmp_path / "x", config)
    assert isinstance(fs, LocalFileSystem) and path == str(tmp_path / "x")
    with pytest.raises(BadURL, match="did you mean aif://"):
        aifdata.url_to_fs("aif:/lab/x", config)


# -- S3 (the shared SeaweedFS server) -----------------------------------------


@pytest.fixture
def s3_config(seaweedfs, bucket, pfs_dir) -> aifdata.Config:
    """Mount ``both``: PFS read first, S3 the write tier; and ``lab`` on a second PFS dir."""
    lab = pfs_dir.parent / "lab"
    lab.mkdir()
    return aifdata.Config(
        (
            aifdata.Mount(
                "both",
                (aifdata.Tier.pfs(pfs_dir), s3_tier(seaweedfs, bucket)),
                read_order=("pfs", "s3"),
                write_tier="s3",
            ),
            aifdata.Mount("lab", (aifdata.Tier.pfs(lab),)),
        )
    )


def test_s3_urls_and_aif_paths_copy_both_ways(s3_config, bucket, tree, tmp_path):
    copied = aifdata.copy(tree, f"s3://{bucket}/data/raw/", recursive=True, config=s3_config)
    assert [c.destination for c in copied] == [
        f"s3://{bucket}/data/raw/src/a.txt",
        f"s3://{bucket}/data/raw/src/sub/b.txt",
    ]
    fs = aifdata.filesystem(s3_config, catalog=False)
    assert fs.cat("both/raw/src/sub/b.txt") == b"beta"  # the mount's S3 tier holds it
    back = tmp_path / "back"
    aifdata.copy(f"s3://{bucket}/data/raw/src", back, recursive=True, config=s3_config)
    assert (back / "sub" / "b.txt").read_bytes() == b"beta"


def test_aif_to_aif_across_mounts_reads_the_routed_copy(s3_config, pfs_dir):
    fs = aifdata.filesystem(s3_config, catalog=False)
    fs.pipe("both/r/one.txt", b"on s3")
    (pfs_dir / "r").mkdir()
    (pfs_dir / "r" / "one.txt").write_bytes(b"on pf")  # same size: the PFS copy is read
    [done] = aifdata.copy("aif://both/r/one.txt", "aif://lab/", config=s3_config)
    assert done == CopiedFile("aif://both/r/one.txt", "aif://lab/one.txt", 5)
    assert (pfs_dir.parent / "lab" / "one.txt").read_bytes() == b"on pf"
