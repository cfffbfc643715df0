"""BAM in bench_formats: planning with and without the .bai, all partitions vs pysam.

A seeded, coordinate-sorted BAM of about ``--formats-mib`` MiB: 150 bp reads
(four CIGAR shapes, three tags, random qualities) made by pysam, laid end to
end in position order on 24 references, unmapped reads at the end, written
to one byte stream and compressed by htslib's BGZF (``pysam.tabix_compress``:
fixed-size blocks, so records run across block boundaries), then indexed by
``pysam.index``. Both files go to SeaweedFS; the measures:

* planning ``--partitions`` partitions without the index (split guessing),
  with it (the linear index's offsets, each checked), and of one region
  (``chr1``, a quarter as many): requests and bytes per partition;
* reading every partition of the unindexed plan (``read_all``) against pysam
  reading the whole file; pysam reads a local file, downloaded once before
  its timing (the note says so). Both sides make the same values: aifdata's
  ``read()`` builds each record's every field as a Python value (an
  :class:`~aifdata.formats.bam.Alignment`), so pysam's side asks its lazy
  ``AlignedSegment`` for the same ones (:data:`FIELDS`: name, flag, reference
  and position, mapping quality, CIGAR, mate, template length, sequence,
  qualities, reference end); the tags stay encoded on both sides (aifdata keeps
  their bytes, pysam its struct) until ``get_tags()``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import operator
import random
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

BUCKET = "aifdata-bench-formats"  # bench_formats' bucket, mounted as aif://bench
KEY = "aln/reads.bam"
URL = f"aif://bench/{KEY}"
REFS = 24
#: What pysam's side reads of each record: the fields aifdata's Alignment holds as values.
FIELDS = (
    "query_name", "flag", "reference_id", "reference_name", "reference_start",
    "mapping_quality", "cigarstring", "next_reference_id", "next_reference_name",
    "next_reference_start", "template_length", "query_sequence", "query_qualities",
    "reference_end",
)  # fmt: skip


def write_bam(path: Path, size: int, seed: int = 42) -> int:
    """About ``size`` bytes of sorted, indexed BAM at ``path``; returns the record count."""
    import pysam

    rng = random.Random(seed)
    header = {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [{"SN": f"chr{i + 1}", "LN": 200_000_000} for i in range(REFS)],
    }
    pool = _pool(header, rng)
    records = max(REFS, size // 190)  # about 190 compressed bytes per read
    per_ref = records // REFS
    raw = io.BytesIO()
    raw.write(_header_bytes(header))
    count = 0
    for ref in range(REFS):
        pos = 0
        for _ in range(per_ref):
            record = bytearray(pool[count % len(pool)])
            pos += rng.randint(0, 40)
            struct.pack_into("<ii", record, 4, ref, pos)
            struct.pack_into("<iii", record, 24, ref, pos + 200, 350)
            record[37:47] = b"%010d" % count  # the name: "r" + 10 digits, NUL
            raw.write(record)
            count += 1
    for k in range(per_ref // 10):  # unmapped, unplaced reads at the end
        record = bytearray(pool[k % len(pool)])
        struct.pack_into("<iiBBHHHi", record, 4, -1, -1, 12, 0, 4680, 0, 4, 150)
        struct.pack_into("<iii", record, 24, -1, -1, 0)
        record = record[:48] + record[48 + 4 * _cigar_ops(pool[k % len(pool)]) :]
        struct.pack_into("<i", record, 0, len(record) - 4)
        record[37:47] = b"%010d" % count
        raw.write(bytes(record))
        count += 1
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain.bam"
        plain.write_bytes(raw.getvalue())
        pysam.tabix_compress(str(plain), str(path), force=True)
    pysam.index(str(path))
    return count


def _cigar_ops(record: bytes) -> int:
    return int(struct.unpack_from("<H", record, 16)[0])


def _pool(header: dict[str, Any], rng: random.Random) -> list[bytes]:
    """Encoded records (pysam's bytes) of 2000 reads, names 11 bytes long."""
    import pysam

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pool.bam"
        with pysam.AlignmentFile(str(path), "wb", header=header) as out:
            for i in range(2000):
                a = pysam.AlignedSegment(out.header)
                a.query_name = f"r{i:010d}"
                a.query_sequence = "".join(rng.choices("ACGT", k=150))
                a.query_qualities = pysam.qualitystring_to_array(
                    "".join(chr(33 + rng.randint(2, 40)) for _ in range(150))
                )
                a.cigarstring = rng.choice(["150M", "5S145M", "100M2D50M", "70M1I79M"])
                a.flag = rng.choice([99, 147, 83, 163, 0, 16, 256, 2048])
                a.reference_id, a.reference_start = 0, i
                a.mapping_quality = rng.randint(0, 60)
                a.set_tags([("NM", rng.randint(0, 4)), ("AS", rng.randint(100, 150)),
                            ("RG", "lane1")])  # fmt: skip
                out.write(a)
        raw = gzip.decompress(path.read_bytes())
    l_text = struct.unpack_from("<i", raw, 4)[0]
    at = 8 + l_text
    n_ref = struct.unpack_from("<i", raw, at)[0]
    at += 4
    for _ in range(n_ref):
        at += 8 + struct.unpack_from("<i", raw, at)[0]
    pool = []
    while at < len(raw):
        size = 4 + struct.unpack_from("<i", raw, at)[0]
        pool.append(raw[at : at + size])
        at += size
    return pool


def _header_bytes(header: dict[str, Any]) -> bytes:
    text = "@HD\tVN:1.6\tSO:coordinate\n" + "".join(
        f"@SQ\tSN:{sq['SN']}\tLN:{sq['LN']}\n" for sq in header["SQ"]
    )
    out = [b"BAM\x01", struct.pack("<i", len(text)), text.encode(), struct.pack("<i", REFS)]
    for sq in header["SQ"]:
        name = sq["SN"].encode() + b"\0"
        out += [struct.pack("<i", len(name)), name, struct.pack("<i", sq["LN"])]
    return b"".join(out)


def _timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def _upload(server: Any, key: str, data: bytes) -> None:
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_chunksize=64 * 2**20, max_concurrency=4)
    server.client().upload_fileobj(io.BytesIO(data), BUCKET, key, Config=config)


def bench_bam(server: Any, home: Path, args: argparse.Namespace) -> tuple[list[tuple], list[tuple]]:
    import pysam

    from aifdata.formats import RangeSource, get, read_all

    size = max(1, args.formats_mib) * 2**20
    local = home / "reads.bam"
    print(f"writing about {size >> 20} MiB of BAM with pysam ...", flush=True)
    records = write_bam(local, size)
    data = local.read_bytes()
    _upload(server, KEY, data)
    _upload(server, KEY + ".bai", Path(str(local) + ".bai").read_bytes())
    local.unlink()
    bam = get("bam")
    count = max(2, args.partitions)
    plans: list[tuple] = []
    rows: list[tuple] = []
    chosen = None
    for case, options in (
        ("no index (guessed)", {"n": count, "index": False}),
        ("with .bai", {"n": count}),
        ("region chr1, with .bai", {"n": max(2, count // 4), "region": "chr1"}),
    ):
        source = RangeSource(URL)
        _forget(bam, source)
        seconds, parts = _timed(lambda o=options, s=source: bam.plan(s, **o))
        chosen = chosen or parts
        per = max(1, len(parts))
        plans.append(("bam", case, len(parts), source.requests, source.bytes_read, seconds))
        rows.append((f"BAM plan, {case}", f"{len(parts)} partitions",
                     source.requests / per, "req/part",
                     f"{source.bytes_read / per / 2**10:.0f} KiB/partition,"
                     f" {seconds * 1e3:.0f} ms"))  # fmt: skip
        print(f"  bam plan {case}: {len(parts)} partitions, {source.requests} requests,"
              f" {source.bytes_read / 2**10:.0f} KiB, {seconds * 1e3:.0f} ms")  # fmt: skip
    assert chosen is not None

    def ours() -> int:
        return sum(len(records) for _, records in read_all(chosen, prefetch=args.prefetch))

    download_s, _ = _timed(lambda: local.write_bytes(_fetch(URL)))
    Path(str(local) + ".bai").unlink(missing_ok=True)

    values = operator.attrgetter(*FIELDS)

    def peer() -> int:
        with pysam.AlignmentFile(str(local), check_sq=False) as f:
            return sum(1 for r in f.fetch(until_eof=True) if values(r))

    peer_s, peer_n = min((_timed(peer) for _ in range(args.repeat)), key=lambda r: r[0])
    ours_s, ours_n = min((_timed(ours) for _ in range(args.repeat)), key=lambda r: r[0])
    assert ours_n == peer_n == records, (ours_n, peer_n, records)
    local.unlink()
    print(f"  bam read: {len(chosen)} partitions {records / ours_s:,.0f} rec/s,"
          f" pysam whole file {records / peer_s:,.0f} rec/s")  # fmt: skip
    rows += [
        ("BAM read, all partitions", f"{len(chosen)} partitions", records / ours_s, "rec/s",
         f"{len(data) / ours_s / 1e6:.0f} MB/s compressed, {records:,} records"),
        ("BAM read, pysam whole file", "peer", records / peer_s, "rec/s",
         f"a local copy (downloaded once in {download_s:.1f} s, not timed)"),
        ("  ratio partitions / pysam", "", peer_s / ours_s, "x",
         f"both make the same {len(FIELDS)} fields of every record"),
    ]  # fmt: skip
    return rows, plans


def _forget(bam: Any, source: Any) -> None:
    """Drop what this process kept of the file (header, index), so planning is measured
    cold, as a fresh process would plan."""
    from aifdata.formats import bam as module

    module._KEPT.slot(source).clear()


def _fetch(url: str) -> bytes:
    import aifdata

    return bytes(aifdata.filesystem(catalog=False).cat_file(url))
