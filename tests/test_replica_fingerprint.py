"""A staged PFS copy is known by what ``os.utime`` cannot set back (inode, device, ctime),
and sealed with its checksum where the file system has extended attributes.

One byte flipped in the copy with its mtime restored: routing hashes the copy again,
finds other bytes, marks it bad (one warning) and serves the write tier's bytes.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import warnings

import pytest

import aifdata
from aifdata import Catalog
from aifdata.catalog._schema import MIGRATIONS

GOOD = b"ACGT" * 5000 + b"\n"
HAS_XATTR = hasattr(os, "setxattr")


@pytest.fixture(params=["xattr", "no-xattr"])
def xattrs(request, monkeypatch):
    """Both paths: the file system keeps user attributes, or has none (tmpfs without them)."""
    if request.param == "xattr":
        if not HAS_XATTR:
            pytest.skip("no extended attributes on this platform")
        return True

    def unsupported(*args, **kwargs):
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", unsupported, raising=False)
    monkeypatch.setattr(os, "getxattr", unsupported, raising=False)
    return False


@pytest.fixture
def staged(tiers, tmp_path, xattrs):
    """``ds`` ingested from the write tier and staged to the PFS tier."""
    catalog = Catalog(tmp_path / "catalog.db", config=tiers.fs.config)
    fs = aifdata.filesystem(tiers.fs.config, catalog=catalog)
    tiers.place("ds/reads.fastq", write=GOOD)
    catalog.ingest("aif://both/ds", "ds")
    catalog.stage("ds", to="pfs")
    copy = tiers.pfs_dir / "ds" / "reads.fastq"
    assert fs.where("both/ds/reads.fastq").tier == "pfs"
    return catalog, fs, copy


def flip_one_byte_keep_mtime(path, offset=100):
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_a_flipped_byte_with_its_mtime_restored_is_never_served(staged):
    _catalog, fs, copy = staged
    flip_one_byte_keep_mtime(copy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = fs.cat("both/ds/reads.fastq")
    assert data == GOOD, "the copy with the flipped byte was served"
    assert [w.category for w in caught] == [RuntimeWarning]  # one warning, naming the copy
    assert str(copy) in str(caught[0].message) and "marked bad" in str(caught[0].message)
    route = fs.where("both/ds/reads.fastq")  # held bad now: skipped without a warning
    assert route.tier != "pfs"
    assert any(t == "pfs" and "bad" in why for t, why in route.skipped)
    with fs.open("both/ds/reads.fastq", "rb") as f:
        assert f.read() == GOOD


def test_a_bad_copy_is_replaced_by_the_next_stage(staged):
    catalog, fs, copy = staged
    flip_one_byte_keep_mtime(copy)
    with pytest.warns(RuntimeWarning):
        fs.where("both/ds/reads.fastq")
    report = catalog.stage("ds", to="pfs")
    assert report.copied == ("reads.fastq",)
    assert copy.read_bytes() == GOOD
    route = fs.where("both/ds/reads.fastq")
    assert route.tier == "pfs" and route.skipped == ()


def test_a_metadata_change_costs_one_hash_then_the_copy_serves_again(staged, xattrs):
    _catalog, fs, copy = staged
    os.chmod(copy, 0o640)  # moves the ctime, not the bytes
    route = fs.where("both/ds/reads.fastq")
    assert route.tier == "pfs"
    assert "hashed again" in route.reason
    again = fs.where("both/ds/reads.fastq")  # the new ctime is recorded: no second hash
    assert again.tier == "pfs" and "unchanged since" in again.reason
    assert fs.cat("both/ds/reads.fastq") == GOOD
    if xattrs:
        from aifdata.connectors._seal import read_seal

        assert read_seal(str(copy))[0] == route.checksum


def test_the_seal_names_the_checksum_where_the_file_system_keeps_attributes(staged, xattrs):
    from aifdata.connectors._seal import SEAL_ATTRIBUTE, read_seal

    catalog, _fs, copy = staged
    checksum = catalog.dataset("ds").files[0].checksum
    if xattrs:
        sealed = read_seal(str(copy))
        assert sealed is not None and sealed[0] == checksum
        assert os.getxattr(copy, SEAL_ATTRIBUTE).decode().startswith(checksum + " ")
    else:
        assert read_seal(str(copy)) is None
    row = catalog.conn.execute(
        "SELECT inode, device, ctime_ns, bad FROM replicas WHERE tier = 'pfs'"
    ).fetchone()
    st = os.stat(copy)
    assert tuple(row) == (st.st_ino, st.st_dev, st.st_ctime_ns, None)


def test_a_copy_replaced_by_another_file_with_the_same_mtime_is_hashed_again(staged):
    _catalog, fs, copy = staged
    st = os.stat(copy)
    other = copy.with_name("other")
    other.write_bytes(GOOD[:-1] + b"X")  # same size, another inode
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, copy)
    with pytest.warns(RuntimeWarning, match="marked bad"):
        assert fs.cat("both/ds/reads.fastq") == GOOD


def test_an_old_catalog_opens_and_gains_the_new_columns(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:3]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    catalog = Catalog(path)
    columns = {r[1] for r in catalog.conn.execute("PRAGMA table_info(replicas)")}
    assert {"inode", "device", "ctime_ns", "checked", "bad"} <= columns
    version = catalog.conn.execute("PRAGMA user_version").fetchone()[0]
    assert version == len(MIGRATIONS)


PFS_ONLY = pytest.mark.parametrize("tiers", ["archive"], ids=["pfs+pfs"], indirect=True)


@PFS_ONLY
def test_a_copy_recorded_before_fingerprints_is_hashed_before_it_serves(tiers, tmp_path):
    """Ingest records a PFS copy by size and mtime: with a byte flipped and the mtime put
    back, the only copy is refused, not served."""
    catalog = Catalog(tmp_path / "catalog.db", config=tiers.fs.config)
    fs = aifdata.filesystem(tiers.fs.config, catalog=catalog)
    tiers.place("only/reads.fastq", pfs=GOOD)  # on the PFS tier alone
    catalog.ingest("aif://both/only", "only")
    copy = tiers.pfs_dir / "only" / "reads.fastq"
    flip_one_byte_keep_mtime(copy)
    with (
        pytest.warns(RuntimeWarning, match="marked bad"),
        pytest.raises(aifdata.NotFound, match="no good copy"),
    ):
        fs.cat("both/only/reads.fastq")
    with pytest.raises(aifdata.NotFound, match="held bad"):  # recorded: no second hash
        fs.cat("both/only/reads.fastq")


@PFS_ONLY
def test_a_busy_catalog_does_not_hold_up_the_read(tiers, tmp_path, monkeypatch):
    """Another writer holds the catalog: the bad copy is still skipped; the verdict
    waits for the next read."""
    from aifdata.catalog import _verify

    monkeypatch.setattr(_verify, "VERDICT_WAIT_S", 0.05)
    catalog = Catalog(tmp_path / "catalog.db", config=tiers.fs.config)
    fs = aifdata.filesystem(tiers.fs.config, catalog=catalog)
    tiers.place("ds/reads.fastq", write=GOOD)
    catalog.ingest("aif://both/ds", "ds")
    catalog.stage("ds", to="pfs")
    flip_one_byte_keep_mtime(tiers.pfs_dir / "ds" / "reads.fastq")
    other = sqlite3.connect(catalog.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.warns(RuntimeWarning, match="marked bad"):
            assert fs.cat("both/ds/reads.fastq") == GOOD
    finally:
        other.execute("ROLLBACK")
        other.close()
    with pytest.warns(RuntimeWarning, match="marked bad"):  # found again, recorded now
        assert fs.cat("both/ds/reads.fastq") == GOOD
    bad = catalog.conn.execute("SELECT bad FROM replicas WHERE tier = 'pfs'").fetchone()[0]
    assert bad and "hashed again" in bad


def test_a_local_copy_is_known_by_inode_and_ctime_on_any_node():
    from aifdata._router import ReplicaRecord
    from aifdata.connectors import FileStat

    record = ReplicaRecord(4, "sha256:aa", 1.0, None, inode=7, device=1, ctime_ns=10)
    assert record.matches(FileStat(4, 1.0, None, 7, 1, 10))
    assert record.matches(FileStat(4, 1.0, None, 7, 99, 10))  # another client node's device
    assert not record.matches(FileStat(4, 1.0, None, 7, 1, 11))  # a write, mtime put back
    assert record.worth_rehashing(FileStat(4, 1.0, None, 7, 1, 11))
    assert not record.matches(FileStat(4, 1.0, None, 8, 1, 10))  # another file in its place
    assert not record.worth_rehashing(FileStat(4, 2.0, None, 7, 1, 11))  # openly changed
    legacy = ReplicaRecord(4, "sha256:aa", 1.0, None)  # recorded before fingerprints
    assert not legacy.matches(FileStat(4, 1.0, None, 7, 1, 10))
    assert legacy.worth_rehashing(FileStat(4, 1.0, None, 7, 1, 10))
