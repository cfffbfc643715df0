"""Every BGZF block and gzip member read is checked: what gzip refuses, aifdata refuses too.

Seeded BGZF FASTQ files, each with one bit flipped at a seeded offset, are read by
Python's gzip module and by aifdata (planned into partitions and read). Whenever gzip
refuses the bytes, aifdata must raise FormatError (never return records); whenever
both accept them, the records are the same. ``AIFDATA_BGZF_MUTANTS`` sets how many
mutants (default 1,000; a quarter as many plain gzip ones). Errors name the file, the
block or member, and the expected and actual CRC32 or ISIZE.
"""

from __future__ import annotations

import gzip
import os
import random
import re
import struct
import zlib
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("dnaio")

from aifdata import FormatError
from aifdata.codecs import _gzip_index as gzip_index
from aifdata.formats import RangeSource, partition

from .test_bgzf import bgzf, names
from .test_fastq import fastq_bytes, random_records, reference

MUTANTS = int(os.environ.get("AIFDATA_BGZF_MUTANTS", "1000"))
FILES = 10  # seeded files; the mutants are spread over them


def gzip_verdict(blob: bytes) -> bytes | None:
    """What Python's gzip module makes of ``blob``: its bytes, or None when it refuses."""
    try:
        return gzip.decompress(blob)
    except (OSError, EOFError, zlib.error):
        return None


def aifdata_verdict(path, n: int) -> list | None:
    """The records aifdata reads from ``path`` in ``n`` partitions, or None on FormatError."""
    try:
        return names(partition(str(path), n=n))
    except FormatError:
        return None


def originals() -> list[bytes]:
    """Small seeded BGZF FASTQ files (a few blocks of random sizes each)."""
    return [
        bgzf(fastq_bytes(random_records(100 + seed, 40, max_len=60)), block=1500, seed=seed)
        for seed in range(FILES)
    ]


def compare_with_gzip(tmp_path, files: list[bytes], count: int, seed: int) -> Counter[str]:
    """Flip one seeded bit in each of ``count`` copies of ``files`` (in turn); compare what
    gzip and aifdata make of each. Returns how many came out which way."""
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    for i in range(count):
        mutant = bytearray(files[i % len(files)])
        at = rng.randrange(len(mutant))
        mutant[at] ^= 1 << rng.randrange(8)
        path = tmp_path / f"m{i}.fq.gz"
        path.write_bytes(bytes(mutant))
        theirs = gzip_verdict(bytes(mutant))
        ours = aifdata_verdict(path, n=1 + i % 4)
        case = f"mutant {i} (file {i % len(files)}, byte {at})"
        if theirs is None:
            assert ours is None, f"{case}: gzip refuses it, aifdata returned records"
            outcomes["both refuse"] += 1
        elif ours is None:
            outcomes["aifdata alone refuses"] += 1  # stricter than gzip (e.g. the BGZF header)
        else:
            assert ours == reference(theirs), f"{case}: records differ from gzip's"
            outcomes["both accept, same records"] += 1
    return outcomes


def test_a_flipped_bit_that_gzip_refuses_aifdata_refuses(tmp_path):
    outcomes = compare_with_gzip(tmp_path, originals(), MUTANTS, seed=12)
    print(f"{MUTANTS} BGZF mutants: {dict(outcomes)}")
    assert outcomes["both refuse"] > MUTANTS // 2  # the mutations hit what gzip checks


def block_starts(blob: bytes) -> list[int]:
    starts, pos = [], 0
    while pos < len(blob):
        starts.append(pos)
        pos += struct.unpack_from("<H", blob, pos + 16)[0] + 1
    return starts


@pytest.fixture
def packed() -> tuple[bytes, list[int]]:
    blob = bgzf(fastq_bytes(random_records(5, 200)), block=3000)
    return blob, block_starts(blob)


def write_changed(tmp_path, blob: bytes, at: int, value: bytes):
    path = tmp_path / "bad.fq.gz"
    path.write_bytes(blob[:at] + value + blob[at + len(value) :])
    return path


def test_a_wrong_crc_names_the_file_the_block_and_both_values(tmp_path, packed):
    blob, starts = packed
    third = starts[2]
    end = starts[3]
    (crc,) = struct.unpack_from("<I", blob, end - 8)
    path = write_changed(tmp_path, blob, end - 8, struct.pack("<I", crc ^ 0x10))
    expected = (
        rf"bad\.fq\.gz: byte {third}: bad BGZF block: CRC32 expected {crc ^ 0x10:#010x}"
        rf" \(its trailer\), got {crc:#010x} from its \d+ inflated bytes"
    )
    with pytest.raises(FormatError, match=expected):
        names(partition(str(path), n=1))
    with pytest.raises(FormatError, match=expected):  # and in whichever partition holds it
        names(partition(str(path), n=4))


def test_a_wrong_isize_names_the_block_and_both_sizes(tmp_path, packed):
    blob, starts = packed
    end = starts[2]
    (isize,) = struct.unpack_from("<I", blob, end - 4)
    path = write_changed(tmp_path, blob, end - 4, struct.pack("<I", isize + 1))
    expected = (
        rf"bad\.fq\.gz: byte {starts[1]}: bad BGZF block: ISIZE expected {isize + 1}"
        rf" \(its trailer\), got {isize} inflated bytes"
    )
    with pytest.raises(FormatError, match=expected):
        names(partition(str(path), n=2))


def test_a_changed_data_byte_is_caught_by_the_crc_or_by_inflating(tmp_path, packed):
    """A byte changed inside the deflate data: inflate fails or the CRC does not match."""
    blob, starts = packed
    at = starts[1] + 18 + 40
    path = write_changed(tmp_path, blob, at, bytes([blob[at] ^ 0x20]))
    with pytest.raises(FormatError, match=re.escape(f"bad.fq.gz: byte {starts[1]}: bad BGZF")):
        names(partition(str(path), n=1))


def test_an_extra_field_length_other_than_bgzf_s_is_not_a_block(tmp_path, packed):
    """htslib's rule: a BGZF header has exactly the 6-byte ``BC`` extra field."""
    blob, starts = packed
    path = write_changed(tmp_path, blob, starts[1] + 10, struct.pack("<H", 14))
    assert gzip_verdict(path.read_bytes()) is None  # gzip would read its deflate data elsewhere
    with pytest.raises(FormatError, match=rf"byte {starts[1]}: expected a BGZF block header"):
        names(partition(str(path), n=1))


# The gzip codec (one long stream or several members, read through a stored index)


def stored_members(tmp_path, data: bytes, members: int) -> tuple[str, list[tuple[int, int]]]:
    """``data`` as ``members`` gzip members of stored (uncompressed) deflate blocks, where
    a changed byte inflates to a changed byte; and each member's (start, end) in the file."""
    step = -(-len(data) // members)
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    blobs = [gzip.compress(chunk, compresslevel=0, mtime=0) for chunk in chunks]
    path = tmp_path / "stored.fq.gz"
    path.write_bytes(b"".join(blobs))
    bounds, at = [], 0
    for blob in blobs:
        bounds.append((at, at + len(blob)))
        at += len(blob)
    return str(path), bounds


def change_in_place(url: str, at: int, value: bytes) -> None:
    """Bytes changed with the file's size and mtime kept: its stored index still applies."""
    path = Path(url)
    stat = path.stat()
    raw = path.read_bytes()
    path.write_bytes(raw[:at] + value + raw[at + len(value) :])
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.fixture(params=["isal", "zlib"])
def indexed(request, tmp_path, monkeypatch):
    """A 3-member gzip FASTQ file and its index, read through ISA-L or through zlib."""
    pytest.importorskip("indexed_gzip")
    if request.param == "isal":
        pytest.importorskip("isal")
    else:
        monkeypatch.setattr(gzip_index, "_inflater", lambda: zlib)
    data = fastq_bytes(random_records(21, 600))
    url, bounds = stored_members(tmp_path, data, members=3)
    source = RangeSource(url)
    return data, url, bounds, gzip_index.load_or_build(source)


def test_a_gzip_member_read_whole_is_checked_against_its_crc(indexed):
    data, url, bounds, index = indexed
    start, end = bounds[1]
    middle = (start + end) // 2
    raw = Path(url).read_bytes()
    change_in_place(url, middle, bytes([raw[middle] ^ 0x04]))
    assert gzip_verdict(Path(url).read_bytes()) is None
    source = RangeSource(url)
    expected = (
        r"stored\.fq\.gz: byte \d+ \(a gzip member's deflate data\): CRC32 expected"
        r" 0x[0-9a-f]{8} \(its trailer\), got 0x"
    )
    with pytest.raises(FormatError, match=expected):
        gzip_index.read_range(source, index, 0, len(data))
    # the file changed, so its index is built again: the build refuses it (with the oldest
    # indexed_gzip the pyproject allows, in its own words)
    refused = r"stored\.fq\.gz: .*(CRC32 expected|not a readable gzip)"
    with pytest.raises(FormatError, match=refused):
        names(partition(url, n=1))


def test_a_gzip_member_read_whole_is_checked_against_its_isize(indexed):
    data, url, bounds, index = indexed
    end = bounds[0][1]
    (isize,) = struct.unpack_from("<I", Path(url).read_bytes(), end - 4)
    change_in_place(url, end - 4, struct.pack("<I", isize + 2))
    expected = rf"ISIZE expected {isize + 2} \(its trailer\), got {isize} inflated bytes"
    with pytest.raises(FormatError, match=expected):
        gzip_index.read_range(RangeSource(url), index, 10, len(data) - 10)


def test_an_undamaged_multi_member_gzip_file_reads_through_the_checks(indexed):
    data, url, _, index = indexed
    assert gzip_index.read_range(RangeSource(url), index, 0, len(data)) == data
    assert names(partition(url, n=5)) == reference(data)


def test_a_flipped_bit_in_plain_gzip_that_gzip_refuses_aifdata_refuses(tmp_path):
    """The same comparison for plain gzip files (one member, or three), read through an index."""
    pytest.importorskip("indexed_gzip")
    files = []
    for seed in range(4):
        data = fastq_bytes(random_records(300 + seed, 40, max_len=60))
        files.append(gzip.compress(data, mtime=0))
        thirds = [data[i * len(data) // 3 : (i + 1) * len(data) // 3] for i in range(3)]
        files.append(b"".join(gzip.compress(t, mtime=0) for t in thirds))
    outcomes = compare_with_gzip(tmp_path, files, MUTANTS // 4, seed=13)
    print(f"{MUTANTS // 4} gzip mutants: {dict(outcomes)}")
    assert outcomes["both refuse"] > MUTANTS // 8
