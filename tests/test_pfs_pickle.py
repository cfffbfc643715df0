"""A file opened for reading from a PFS tier pickles as fsspec's local file does (Dask and
PyTorch ship open files to their workers): the copy reopens the file at the same position."""

from __future__ import annotations

import pickle

import pytest
from fsspec.implementations.local import LocalFileSystem

import aifdata

DATA = bytes(range(256)) * 64


@pytest.fixture
def both(pfs_fs, pfs_dir):
    """The same file opened through aif:// (a PFS tier) and through fsspec's local filesystem."""
    pfs_fs.pipe("aif://pfsonly/d/x.bin", DATA)
    ours = pfs_fs.open("aif://pfsonly/d/x.bin", "rb")
    theirs = LocalFileSystem().open(str(pfs_dir / "d" / "x.bin"), "rb")
    yield ours, theirs
    ours.close()
    theirs.close()


def test_an_open_pfs_file_pickles_like_a_local_one(both):
    for f in both:
        f.seek(1000)
        f.read(10)
    copies = [pickle.loads(pickle.dumps(f)) for f in both]
    assert [c.tell() for c in copies] == [1010, 1010]
    assert copies[0].read() == copies[1].read() == DATA[1010:]
    assert [f.read(5) for f in both] == [DATA[1010:1015]] * 2  # the originals read on alone
    for c in copies:
        c.close()


def test_a_pickled_file_at_the_start_and_at_the_end(both):
    ours, theirs = both
    assert pickle.loads(pickle.dumps(ours)).read() == pickle.loads(pickle.dumps(theirs)).read()
    ours.seek(0, 2)
    theirs.seek(0, 2)
    assert pickle.loads(pickle.dumps(ours)).read() == pickle.loads(pickle.dumps(theirs)).read()


def test_a_closed_file_refuses_to_pickle_as_a_local_one_does(both):
    for f in both:
        f.close()
        with pytest.raises(ValueError):
            pickle.dumps(f)


def test_the_copy_opens_through_the_tier_and_fails_as_a_read_does(pfs_fs, pfs_dir):
    pfs_fs.pipe("aif://pfsonly/gone.bin", DATA)
    data = pickle.dumps(pfs_fs.open("aif://pfsonly/gone.bin", "rb"))
    (pfs_dir / "gone.bin").unlink()
    with pytest.raises(aifdata.NotFound, match=r"gone\.bin"):
        pickle.loads(data)
