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

import pytest

pytest.importorskip("indexed_gzip")

from aifdata import FormatError
from aifdata.codecs import _gzip_index as gzip_index
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
