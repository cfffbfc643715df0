"""HDF5 files that start with a user block: planned, read and checked for truncation.

A user block (512, 1024, 2048, 4096, ... bytes of anything) may come before the
superblock. h5py writes one with ``userblock_size=``: the superblock's base address
is then the block's size and its end-of-file address counts from the file's start.
A user block put in front of a finished file later keeps base address 0, and HDF5
moves every address by the difference when it opens the file.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
h5py = pytest.importorskip("h5py")

import aifdata  # noqa: E402
from aifdata import FormatError  # noqa: E402
from aifdata.formats import get, partition  # noqa: E402
from aifdata.formats.hdf5 import end_of_file  # noqa: E402

DATA = np.arange(20_000, dtype="f8").reshape(2000, 10)


def write(path: Path, userblock: int = 0, libver: str = "earliest") -> Path:
    options = {"userblock_size": userblock} if userblock else {}
    with h5py.File(path, "w", libver=libver, **options) as f:
        f.create_dataset("x", data=DATA, chunks=(100, 10), compression="gzip")
    if userblock:
        raw = bytearray(path.read_bytes())
        raw[:16] = b"# a user block\n\x00"  # what a user block holds is the user's
        path.write_bytes(bytes(raw))
    return path


def read_back(path: Path, n: int) -> np.ndarray:
    parts = partition(str(path), n=n)
    assert len(parts) == min(n, 20)  # 20 chunks of rows
    assert parts[0]["row_start"] == 0 and parts[-1]["row_stop"] == len(DATA)
    assert all(a["row_stop"] == b["row_start"] for a, b in itertools.pairwise(parts))
    return np.concatenate([p.read() for p in parts])


@pytest.mark.parametrize("libver", ["earliest", "latest"])  # superblock versions 0 and 3
@pytest.mark.parametrize("userblock", [512, 2048, 4096, 65536, 131072])
def test_a_file_with_a_user_block_reads_exactly(tmp_path, userblock, libver):
    path = write(tmp_path / "ub.h5", userblock, libver)
    for n in (1, 3, 8):
        np.testing.assert_array_equal(read_back(path, n), DATA)


@pytest.mark.parametrize("userblock", [512, 4096, 131072])
def test_a_truncated_file_with_a_user_block_is_refused_naming_its_end(tmp_path, userblock):
    whole = write(tmp_path / "whole.h5", userblock).read_bytes()
    cut = tmp_path / "cut.h5"
    for missing in (1, 100, 5000):
        cut.write_bytes(whole[:-missing])
        size = len(whole) - missing
        with pytest.raises(
            FormatError,
            match=rf"cut\.h5: byte {size}: the file ends at byte {size}, but its HDF5"
            rf" superblock \(at byte {userblock}\) says it runs to byte {len(whole)}",
        ):
            partition(str(cut), n=2)


@pytest.mark.parametrize("libver", ["earliest", "latest"])
def test_a_user_block_put_in_front_later_counts_from_the_base_address(tmp_path, libver):
    """A finished file (base address 0) with 512 bytes put in front: its addresses, the
    end-of-file one too, count from the superblock; being 100 bytes short is truncation."""
    plain = write(tmp_path / "plain.h5", 0, libver).read_bytes()
    path = tmp_path / "front.h5"
    path.write_bytes(b"U" * 512 + plain)
    np.testing.assert_array_equal(read_back(path, 3), DATA)
    path.write_bytes(b"U" * 512 + plain[:-100])
    size = 512 + len(plain) - 100
    with pytest.raises(
        FormatError,
        match=rf"front\.h5: byte {size}: the file ends at byte {size}, but its HDF5 superblock"
        rf" \(at byte 512\) says it runs to byte {512 + len(plain)} \(truncated\?\)",
    ):
        partition(str(path), n=2)


@pytest.mark.parametrize("libver", ["earliest", "latest"])
def test_end_of_file_counts_the_user_block_once(tmp_path, libver):
    written = write(tmp_path / "w.h5", 4096, libver).read_bytes()
    assert end_of_file(written[4096 : 4096 + 64], 4096) == len(written)
    plain = write(tmp_path / "p.h5", 0, libver).read_bytes()
    assert end_of_file(plain[:64]) == end_of_file(plain[:64], 0) == len(plain)
    assert end_of_file(plain[:64], 1024) == 1024 + len(plain)  # base 0, found at 1024


def test_a_large_user_block_is_looked_past_for_files_named_as_hdf5(tmp_path):
    path = write(tmp_path / "big.nc", 8192)
    head = path.read_bytes()[:4096]
    plugin = get("hdf5")
    assert plugin.sniff(head, str(path))
    assert aifdata.formats.detect(str(path), head) is plugin
    assert not plugin.sniff(head, "big.bin")  # nothing in the first bytes says HDF5
    assert not plugin.sniff(b"CDF\x01" + bytes(5000), "old.nc")  # netCDF-3 stays refused
    np.testing.assert_array_equal(read_back(path, 4), DATA)


def test_a_named_file_with_no_signature_anywhere_is_still_refused_at_byte_0(tmp_path):
    path = tmp_path / "fake.h5"
    path.write_bytes(b"no signature here " * 2000)
    with pytest.raises(FormatError, match=r"fake\.h5: byte 0: this is not an HDF5 file"):
        partition(str(path))


def test_references_to_a_file_with_a_large_user_block(tmp_path):
    pytest.importorskip("kerchunk")
    pytest.importorskip("xarray")
    import h5py

    from aifdata import refs

    path = write(tmp_path / "ub.h5", 4096)
    if h5py.version.hdf5_version_tuple < (1, 14, 4):  # chunk addresses without the user block
        with pytest.raises(FormatError, match=r"ub\.h5: a user block of 4096 bytes .* 1\.14\.4"):
            refs.write(str(path))
        return
    written = refs.write(str(path))
    ds = refs.open(written.output, mask_and_scale=False)
    np.testing.assert_array_equal(ds["x"].values, DATA)
