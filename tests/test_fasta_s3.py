"""FASTA through ``aif://`` on S3: records and residue ranges planned and read, a ``.fai``
beside the object used (and refused once the object changed under it)."""

from __future__ import annotations

import pickle
import random

import pytest

pysam = pytest.importorskip("pysam")

import aifdata  # noqa: E402
from aifdata import FormatError  # noqa: E402
from aifdata.formats import RangeSource, get, read_all  # noqa: E402

URL = "aif://genomics/ref/genome.fa"


def genome(tmp_path):
    rng = random.Random(15)
    chrom = "".join(rng.choices("ACGTNacgt", k=400_003))
    contigs = ["".join(rng.choices("ACGT", k=rng.randint(0, 3000))) for _ in range(300)]
    text = ">chr1 the long one\n" + "".join(chrom[i : i + 60] + "\n" for i in range(0, 400_003, 60))
    for k, contig in enumerate(contigs):
        text += f">ctg{k}\n" + "".join(contig[i : i + 70] + "\n" for i in range(0, len(contig), 70))
    local = tmp_path / "genome.fa"
    local.write_text(text)
    with pysam.FastxFile(str(local)) as f:
        records = [(r.name, r.comment or "", r.sequence or "") for r in f]
    pysam.faidx(str(local))
    return local, chrom, records


def test_records_and_residue_ranges_through_aif_on_s3(genomics_fs, tmp_path):
    local, chrom, records = genome(tmp_path)
    genomics_fs.pipe("genomics/ref/genome.fa", local.read_bytes())
    plain = RangeSource(URL)
    unindexed = get("fasta").plan(plain, n=8)
    got = [tuple(r) for p in unindexed for r in p.read()]
    assert got == records

    genomics_fs.pipe("genomics/ref/genome.fa.fai", (tmp_path / "genome.fa.fai").read_bytes())
    indexed = RangeSource(URL)
    parts = get("fasta").plan(indexed, n=8)
    assert indexed.bytes_read < plain.bytes_read / 10  # a few bytes per boundary, no windows
    assert [tuple(r) for _, rs in read_all(parts) for r in rs] == records
    blobs = [pickle.dumps(p) for p in parts]
    assert all(len(b) < 1024 and b"secret" not in b for b in blobs)

    ranges = aifdata.partition(URL, n=5, by="residues", region="chr1:100001-400003")
    assert len(ranges) == 5
    assert "".join(s.sequence for p in ranges for s in p.read()) == chrom[100_000:]

    genomics_fs.pipe("genomics/ref/genome.fa", b">x\nACGT\n" + local.read_bytes())
    with pytest.raises(FormatError, match=r"genome\.fa\.fai: .*does not match"):
        aifdata.partition(URL, n=8)
    with pytest.raises(FormatError, match="changed since it was partitioned"):
        parts[0].read()
