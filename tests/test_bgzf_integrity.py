"""Every BGZF block is checked: a flipped bit that gzip refuses, aifdata refuses too.

Seeded BGZF FASTQ files, each with one bit flipped at a seeded offset, are read by
Python's gzip module and by aifdata (planned into partitions and read). Whenever gzip
refuses the bytes, aifdata must raise FormatError (never return records); whenever
both accept them, the records are the same. ``AIFDATA_BGZF_MUTANTS`` sets how many
mutants (default 1,000).
"""

from __future__ import annotations

import gzip
import os
import random
import re
import struct
import zlib
from collections import Counter

import pytest

pytest.importorskip("dnaio")

from aifdata import FormatError
from aifdata.formats import partition

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


def test_a_flipped_bit_that_gzip_refuses_aifdata_refuses(tmp_path):
    rng = random.Random(12)
    files = originals()
    outcomes: Counter[str] = Counter()
    for i in range(MUTANTS):
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
