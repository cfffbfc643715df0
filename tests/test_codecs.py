"""Codecs under formats: one FASTQ format over plain, gzip and BGZF bytes, found by magic."""

from __future__ import annotations

import builtins
import functools
import gzip
import json
import pickle
import random
import zlib

import pytest

pytest.importorskip("dnaio")
pytest.importorskip("indexed_gzip")

from aifdata import FormatError, codecs, formats
from aifdata.codecs import Codec, Source, Stream, Text, find_start
from aifdata.formats import Partition, RangeSource, partition, read_all
from aifdata.formats.fastq import FastqFormat

from .test_bgzf import bgzf
from .test_fastq import fastq_bytes, random_records, reference, write

ENCODE = {
    "none": lambda data: data,
    "gzip": gzip.compress,
    "bgzf": lambda data: bgzf(data, block=5000, seed=1),
}
NAME = {"none": "reads.fq", "gzip": "reads.fq.gz", "bgzf": "reads.fastq.bgz"}


@functools.cache
def sample(codec: str) -> tuple[bytes, list[tuple[str, str, str]]]:
    """One FASTQ file's bytes in ``codec`` and dnaio's records of it (made once per run)."""
    data = fastq_bytes(random_records(17, 4000, at_rate=0.9))
    return ENCODE[codec](data), reference(data)


def records_of(parts) -> list[tuple[str, str, str]]:
    return [(r.name, r.sequence, r.qualities) for p in parts for r in p.read()]


@pytest.mark.parametrize("codec", ["none", "gzip", "bgzf"])
def test_the_codec_is_found_from_the_first_bytes(tmp_path, codec):
    data = fastq_bytes(random_records(1, 50))
    head = ENCODE[codec](data)[:4096]
    assert codecs.detect(head).name == codec
    assert codecs.get(codec).peek(head, "x").startswith(data[:100])
    url = write(tmp_path, "no-extension", ENCODE[codec](data))
    assert {p["codec"] for p in partition(url, n=3)} == {codec}  # by its bytes, not its name


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 64, 300])
@pytest.mark.parametrize("codec", ["none", "gzip", "bgzf"])
def test_format_fastq_reads_exactly_what_dnaio_reads_in_every_codec(tmp_path, codec, n):
    encoded, expected = sample(codec)
    url = write(tmp_path, NAME[codec], encoded)
    parts = partition(url, n=n, format="fastq")
    assert {(p.format, p["codec"]) for p in parts} == {("fastq", codec)}
    assert [p.ordinal for p in parts] == list(range(len(parts)))
    assert records_of(parts) == expected
    streamed = [(r.name, r.sequence, r.qualities) for _, rs in read_all(parts) for r in rs]
    assert streamed == expected


@pytest.mark.parametrize("codec", ["gzip", "bgzf"])
def test_partitions_planned_before_codecs_still_read(tmp_path, codec):
    """A partition pickled by the old ``fastq-gzip``/``fastq-bgzf`` formats: the old format
    name, a spec of ``start`` and ``end`` only (uncompressed bytes for gzip, block offsets
    for BGZF), as that code planned them."""
    records = random_records(23, 6000)
    url = write(tmp_path, "old.fastq.gz", ENCODE[codec](fastq_bytes(records)))
    planned = partition(url, n=9)
    old = [
        Partition.make(
            p.url, f"fastq-{codec}", p.ordinal, p.fingerprint, start=p["start"], end=p["end"]
        )
        for p in planned
    ]
    old = [pickle.loads(pickle.dumps(p)) for p in old]
    assert old[1].options == {"start": planned[1]["start"], "end": planned[1]["end"]}
    assert records_of(old) == records
    assert [(r.name, r.sequence, r.qualities) for _, rs in read_all(old) for r in rs] == records
    assert old[0].to_pandas()["name"].tolist() == [n for n, _, _ in records[: len(old[0].read())]]
    assert formats.get(f"fastq-{codec}") is formats.get("fastq")
    assert f"fastq-{codec}" not in formats.available()


def test_gzip_of_random_bytes_is_not_fastq_inside_gzip(tmp_path):
    noise = random.Random(3).randbytes(20_000)
    url = write(tmp_path, "noise.fastq.gz", gzip.compress(noise))
    for format in (None, "fastq", "fastq-bgzf"):
        with pytest.raises(FormatError) as caught:
            partition(url, n=2, format=format)
        message = str(caught.value)
        assert message.startswith(f"{url}: uncompressed byte 0: this is not fastq data inside gzip")
        assert "BGZF" not in message


def test_gzip_of_an_unknown_format_says_what_it_holds(tmp_path):
    url = write(tmp_path, "blob.gz", gzip.compress(b"%PDF-1.7\n" + bytes(300)))
    with pytest.raises(
        FormatError, match=r"blob\.gz: uncompressed byte 0: no format recognises what this gzip"
    ):
        partition(url)


def test_a_broken_gzip_header_names_the_file(tmp_path):
    url = write(tmp_path, "broken.fq.gz", b"\x1f\x8b\x08\x00" + bytes(6) + b"\xff" * 200)
    with pytest.raises(FormatError, match=r"broken\.fq\.gz: byte 0: a gzip header, but the data"):
        partition(url, n=2)


@pytest.mark.parametrize(
    ("name", "packed"),
    [
        ("zstd", b"\x28\xb5\x2f\xfd" + bytes(60)),
        ("bzip2", b"BZh91AY&SY" + bytes(60)),
        ("xz", b"\xfd7zXZ\x00" + bytes(60)),
    ],
)
def test_a_compression_without_a_codec_is_named(tmp_path, name, packed):
    url = write(tmp_path, f"reads.fastq.{name}", packed)
    pattern = rf"reads\.fastq\.{name}: byte 0: {name}-compressed data .*no codec reads {name}"
    for format in (None, "fastq"):
        with pytest.raises(FormatError, match=pattern):
            partition(url, format=format)
    assert codecs.detect(b"BZh is how this text starts\n").name == "none"  # not bzip2


def test_fastq_names_with_codec_endings_are_fastq():
    fastq = formats.get("fastq")
    for path in ("a.fastq.gz", "a.FQ.GZ", "a.fq.bgz", "a.fastq"):
        assert fastq.matches_name(path), path
    assert not fastq.matches_name("a.gz") and not fastq.matches_name("a.tif.gz")
    assert fastq.codecs == ("none", "gzip", "bgzf")
    assert formats.get("geotiff").codecs == ("none",)


def test_a_codec_missing_its_library_says_what_to_install(tmp_path, monkeypatch):
    from aifdata.codecs import _registry

    monkeypatch.setitem(_registry.REGISTRY.entry_points(), "toy", "aifdata_test_no_such_module:Toy")
    with pytest.raises(FormatError, match=r"codec 'toy' needs aifdata_test_no_such_module"):
        codecs.get("toy")
    assert codecs.detect(b"plain text").name == "none"  # a codec that does not load claims nothing

    real_import = builtins.__import__

    def no_indexed_gzip(name, *args, **kwargs):
        if name == "indexed_gzip":
            raise ImportError("not here", name=name)
        return real_import(name, *args, **kwargs)

    url = write(tmp_path, "r.fq.gz", gzip.compress(fastq_bytes(random_records(2, 50))))
    monkeypatch.setattr(builtins, "__import__", no_indexed_gzip)
    with pytest.raises(FormatError, match=r"needs indexed_gzip .*pip install 'aifdata\[formats\]'"):
        partition(url, n=2)


def test_an_unknown_codec_is_named():
    with pytest.raises(FormatError, match="no codec 'lz4'; known codecs: bgzf, gzip, none"):
        codecs.get("lz4")


# -- a third-party codec ------------------------------------------------------


class ZlibCodec(Codec):
    """A toy: a raw zlib stream (``78 9c``), decompressed whole, split in memory."""

    name = "toy-zlib"
    extensions = (".zz",)

    def sniff(self, head: bytes) -> bool:
        return head[:2] == b"\x78\x9c"

    def peek(self, head: bytes, url: str) -> bytes:
        return zlib.decompressobj().decompress(head)

    def open(self, source: Source) -> Stream:
        return _Whole(source.url, zlib.decompress(source.read(0, source.size)))


class _Whole(Stream):
    def __init__(self, url: str, data: bytes) -> None:
        self.url, self.data, self.extent = url, data, len(data)

    @property
    def size(self) -> int:
        return self.extent

    def read(self, start: int, end: int) -> bytes:
        return self.data[max(0, start) : end]

    def snap(self, offset, boundary):  # type: ignore[no-untyped-def]
        return find_start(self, offset, boundary)

    def text(self, start, end, boundary, raw=None):  # type: ignore[no-untyped-def]
        return Text(self.url, self.data[start:end], start, last=end >= self.extent)


class ToyFastq(FastqFormat):
    name = "fastq-toy"
    codecs = (*FastqFormat.codecs, "toy-zlib")


def test_a_third_party_codec_serves_an_existing_text_format(tmp_path, monkeypatch):
    from aifdata.codecs import _registry as codec_registry
    from aifdata.formats import _registry as format_registry

    for registry in (codec_registry.REGISTRY, format_registry.REGISTRY):
        monkeypatch.setattr(registry, "_loaded", dict(registry._loaded))
    codecs.register(ZlibCodec)
    formats.register(ToyFastq)
    records = random_records(31, 2000)
    url = write(tmp_path, "reads.fq.zz", zlib.compress(fastq_bytes(records)))
    parts = partition(url, n=5)
    assert {(p.format, p["codec"]) for p in parts} == {("fastq-toy", "toy-zlib")}
    assert records_of(parts) == records
    with pytest.raises(FormatError, match=r"reads\.fq\.zz: byte 0: toy-zlib data; the fastq"):
        partition(url, format="fastq")  # plain fastq does not list the toy codec


def test_cli_formats_shows_each_formats_codecs(capsys):
    from aifdata.cli import main

    assert main(["formats", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["fastq"]["codecs"] == ["none", "gzip", "bgzf"]
    assert rows["root"]["codecs"] == ["none"]
    assert main(["formats"]) == 0
    lines = capsys.readouterr().out.splitlines()
    fastq_line = next(line for line in lines if line.startswith("fastq "))
    assert fastq_line.split()[1:7] == [".fastq", ".fq", "none", "gzip", "bgzf", "FASTQ"]


def test_planning_a_compressed_file_reads_little_once_indexed(tmp_path):
    data = fastq_bytes(random_records(5, 20_000))
    url = write(tmp_path, "p.fq.gz", gzip.compress(data))
    partition(url, n=4)  # builds the index
    source = RangeSource(url)
    parts = formats.get("fastq").plan(source, n=4)
    assert len(parts) == 4 and source.requests == 4  # the head, then one read per boundary


def test_read_all_finds_each_bgzf_boundary_in_the_bytes_it_holds(tmp_path, monkeypatch):
    records = random_records(29, 6000)
    url = write(tmp_path, "run.fq.gz", bgzf(fastq_bytes(records), block=3000, seed=2))
    parts = partition(url, n=12)
    requests = []
    real = RangeSource.read
    monkeypatch.setattr(RangeSource, "read", lambda s, a, b: requests.append(a) or real(s, a, b))
    got = [(r.name, r.sequence, r.qualities) for _, rs in read_all(parts) for r in rs]
    assert got == records
    assert len(requests) == 1  # the one grid block: no read past a partition's end
