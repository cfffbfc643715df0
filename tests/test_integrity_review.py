"""Fixes of a review of the integrity work (issue 12, items 4 and 6).

* gzip: a byte flipped in place with the mtime set back is never read as altered
  records (the index notices the rewrite; reads check each span they inflate whole);
* a write-tier copy that differs from the catalog does not win over a verified replica;
* the temporary-file sweeps remove only aifdata's own temporary files.
"""

from __future__ import annotations

import gzip
import os
import random
import time

import pytest

pytest.importorskip("indexed_gzip")

import aifdata
from aifdata import FormatError
from aifdata.catalog._store import temporary_name
from aifdata.codecs import _gzip_index as gzip_index
from aifdata.connectors import _atomic
from aifdata.formats import RangeSource, partition

from .test_fastq import fastq_bytes, random_records

# --- 1. gzip: every span a read inflates whole is checked ------------------------------------


@pytest.fixture
def small_spacing(monkeypatch):
    """Checkpoints every 64 KiB, so a test-sized file has many spans."""
    monkeypatch.setattr(gzip_index, "SPACING", 64 * 2**10)


def _records(url: str, n: int) -> list:
    return [(r.name, r.sequence, r.qualities) for p in partition(url, n=n) for r in p.read()]


def _mutants(tmp_path, count: int, seed: int):
    """A single-member FASTQ.gz over many checkpoints, its records, and mutants of it
    that the gzip module refuses (one bit flipped past the first third)."""
    data = fastq_bytes(random_records(21, 6000))
    packed = gzip.compress(data, compresslevel=6, mtime=0)
    assert len(data) > 4 * 64 * 2**10  # many checkpoints with the test's spacing
    rng, mutants = random.Random(seed), []
    while len(mutants) < count:
        mutant = bytearray(packed)
        mutant[rng.randrange(len(packed) // 3, len(packed) - 100)] ^= 1 << rng.randrange(8)
        try:
            gzip.decompress(bytes(mutant))
        except (OSError, EOFError, ValueError, __import__("zlib").error):
            mutants.append(bytes(mutant))
    return packed, mutants


def _rewrite_keeping_mtime(path, payload: bytes) -> None:
    with open(path, "r+b") as out:  # in place: the same inode
        out.write(payload)
    os.utime(path, ns=(10**18, 10**18))


def _never_altered(tmp_path, n: int, mutants, path, expected) -> tuple[int, int]:
    refused = same = 0
    for mutant in mutants:
        _rewrite_keeping_mtime(path, mutant)
        try:
            got = _records(str(path), n)
        except FormatError:
            refused += 1
            continue
        assert got == expected, "a damaged gzip file was read as altered records"
        same += 1
    return refused, same


@pytest.mark.parametrize("n", [4, 7])
def test_a_flipped_bit_with_mtime_set_back_is_refused(tmp_path, small_spacing, n):
    """The reviewer's case: index built, one bit flipped in place, mtime restored."""
    packed, mutants = _mutants(tmp_path, 12, seed=n)
    path = tmp_path / "x.fq.gz"
    path.write_bytes(packed)
    os.utime(path, ns=(10**18, 10**18))
    expected = _records(str(path), n)  # builds and stores the index
    refused, _ = _never_altered(tmp_path, n, mutants, path, expected)
    assert refused == len(mutants)  # the rewrite is seen: the new build checks the trailer


def test_a_rewrite_changes_the_index_key_of_a_local_file(tmp_path):
    path = tmp_path / "x.fq.gz"
    path.write_bytes(gzip.compress(b"@a\nA\n+\nI\n", mtime=0))
    os.utime(path, ns=(10**18, 10**18))
    before = gzip_index.version_key(RangeSource(str(path)))
    _rewrite_keeping_mtime(path, gzip.compress(b"@b\nA\n+\nI\n", mtime=0))
    after = RangeSource(str(path))
    assert after.version == RangeSource(str(path)).version  # size and mtime: unchanged
    assert gzip_index.version_key(after) != before


@pytest.mark.parametrize("n", [3, 4])
def test_reads_check_spans_when_the_change_is_unseen(tmp_path, small_spacing, monkeypatch, n):
    """Where the version cannot show the change (a key of size and mtime only), the
    span CRCs stored in the index still refuse every mutant that partitions read whole."""
    monkeypatch.setattr(gzip_index, "version_key", lambda source: source.version)
    packed, mutants = _mutants(tmp_path, 16, seed=100 + n)
    path = tmp_path / "x.fq.gz"
    path.write_bytes(packed)
    os.utime(path, ns=(10**18, 10**18))
    expected = _records(str(path), n)
    index = gzip_index.load_or_build(RangeSource(str(path)))
    assert len(index.crcs) == len(index.points) + 1 and None not in index.crcs
    refused, same = _never_altered(tmp_path, n, mutants, path, expected)
    assert refused + same == len(mutants) and refused >= len(mutants) - 1


def test_a_span_check_names_the_file_and_span(tmp_path, small_spacing, monkeypatch):
    monkeypatch.setattr(gzip_index, "version_key", lambda source: source.version)
    data = fastq_bytes(random_records(5, 4000))
    path = tmp_path / "y.fq.gz"
    path.write_bytes(gzip.compress(data, mtime=0))
    source = RangeSource(str(path))
    index = gzip_index.load_or_build(source)
    assert gzip_index.read_range(source, index, 0, index.size) == data
    forged = list(index.crcs)
    forged[2] ^= 1
    bad = gzip_index.GzipIndex(index.url, index.fingerprint, index.size, index.points,
                               index.path, tuple(forged))  # fmt: skip
    u = index.offsets
    with pytest.raises(FormatError, match=rf"y\.fq\.gz: uncompressed bytes {u[1]}-{u[2]}"):
        gzip_index.read_range(source, bad, u[1] + 5, u[2] + 5)
    assert gzip_index.read_range(source, bad, u[1] + 5, u[2] - 5)  # a part: not checkable


def test_an_index_of_the_old_layout_is_rebuilt(tmp_path, small_spacing):
    path = tmp_path / "z.fq.gz"
    path.write_bytes(gzip.compress(fastq_bytes(random_records(6, 3000)), mtime=0))
    source = RangeSource(str(path))
    stored = gzip_index.load_or_build(source).path
    stored.write_bytes(b"aifdata-gzip-index 1\n" + stored.read_bytes().split(b"\n", 1)[1])
    os.utime(stored, ns=(10**9, 10**9))  # not the cached parse
    index = gzip_index.load_or_build(RangeSource(str(path)))
    assert index.crcs and stored.read_bytes().startswith(b"aifdata-gzip-index 2\n")


# --- 3. the temporary-file sweeps remove only aifdata's own files ---------------------------

TWO_DAYS = 2 * 24 * 3600


def _users_files(directory) -> list:
    """Files of a user whose names end in .aif-tmp, two days unchanged."""
    directory.mkdir(parents=True, exist_ok=True)
    made = []
    for name in ("results.aif-tmp", ".x.aif-tmp", "x.y.aif-tmp", ".notes.2024-run.aif-tmp"):
        path = directory / name
        path.write_bytes(b"mine")
        old = time.time() - TWO_DAYS
        os.utime(path, (old, old))
        made.append(path)
    return made


def _dead_aifdata_leftover(directory):
    """An aifdata temporary file of a writer on this host that has exited."""
    path = directory / f".half.bin.{_atomic.host_token()}.4999999.12345.0123abcd.aif-tmp"
    path.write_bytes(b"half")
    return path


def test_ingest_of_a_local_tree_removes_none_of_a_users_files(tmp_path, monkeypatch):
    monkeypatch.setenv("AIFDATA_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(_atomic, "_swept", {})
    src = tmp_path / "src"
    mine = _users_files(src / "mine")
    ours = _dead_aifdata_leftover(src / "mine")
    ds = aifdata.Catalog().ingest(str(src), "lab/src")
    assert all(p.read_bytes() == b"mine" for p in mine)
    assert ours.exists()  # an ingest reads its source: it removes nothing
    assert sorted(f.path for f in ds.files) == sorted(f"mine/{p.name}" for p in mine)


def test_a_copy_into_the_directory_and_a_clean_keep_a_users_files(tmp_path, monkeypatch):
    monkeypatch.setattr(_atomic, "_swept", {})
    out = tmp_path / "out"
    mine = _users_files(out)
    ours = _dead_aifdata_leftover(out)
    (tmp_path / "a.txt").write_bytes(b"a")
    aifdata.copy(str(tmp_path / "a.txt"), f"{out}/", config=aifdata.Config(()))
    assert (out / "a.txt").read_bytes() == b"a" and not ours.exists()
    ours = _dead_aifdata_leftover(out)
    assert _atomic.remove_stale_temporaries(out) == [str(ours)]  # what verify --clean runs
    assert all(p.read_bytes() == b"mine" for p in mine)


def test_only_aifdata_names_age_out():
    old = time.time() - TWO_DAYS
    other_host = ".a.bin.elsewhere-1234abcd.77.88.0123abcd.aif-tmp"
    assert _atomic.is_stale(other_host, old)  # another host's, two days unchanged
    assert _atomic.is_stale(".a.bin.k2j_x9qz.aif-tmp", old)  # an older version's mkstemp
    for name in ("results.aif-tmp", ".x.aif-tmp", ".a.bin.toolong12.aif-tmp", "a.b.aif-tmp"):
        assert not _atomic.is_stale(name, old), name


def test_long_host_names_that_differ_past_the_cut_get_different_tokens(monkeypatch):
    tokens = set()
    for host in ("train-statefulset-for-genomics-10", "train-statefulset-for-genomics-11"):
        monkeypatch.setattr(_atomic.socket, "gethostname", lambda host=host: host)
        token = _atomic.host_token()
        assert _atomic._HOST_TOKEN.fullmatch(token) and token.startswith("train-statefulset")
        tokens.add(token)
    assert len(tokens) == 2


def test_the_catalogs_temporary_names_carry_their_owner(tmp_path):
    name = temporary_name(tmp_path / "catalog.db").name
    owner = _atomic.TempOwner.of_name(name)
    assert owner is not None and owner.pid == os.getpid() and owner.gone() is False
