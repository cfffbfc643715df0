"""FASTQ partitions: exact (every record once), small plans, clear errors."""

from __future__ import annotations

import functools
import io
import itertools
import json
import multiprocessing
import pickle
import random
from pathlib import Path

import pytest

dnaio = pytest.importorskip("dnaio")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import aifdata  # noqa: E402
from aifdata import FormatError  # noqa: E402
from aifdata.formats import RangeSource, partition  # noqa: E402
from aifdata.formats.fastq import BOUNDARY_WINDOW, HEAD_BYTES, record_start  # noqa: E402

QUALITY = "".join(chr(c) for c in range(33, 127))


def fastq_bytes(records) -> bytes:
    return "".join(f"@{n}\n{s}\n+\n{q}\n" for n, s, q in records).encode()


def reference(data: bytes) -> list[tuple[str, str, str]]:
    with dnaio.open(io.BytesIO(data), fileformat="fastq") as reader:
        return [(r.name, r.sequence, r.qualities) for r in reader]


def random_records(seed: int, count: int, max_len: int = 150, at_rate: float = 0.5) -> list:
    """``count`` seeded FASTQ records (each set made once per run: many tests share them)."""
    return list(_random_records(seed, count, max_len, at_rate))


@functools.cache
def _random_records(seed: int, count: int, max_len: int, at_rate: float) -> tuple:
    rng = random.Random(seed)
    # rng.choice(QUALITY) per character, inlined (the same draws, without a call per character)
    getrandbits, k = rng.getrandbits, len(QUALITY)
    bits = k.bit_length()
    out = []
    for i in range(count):
        n = rng.randint(0, max_len)
        chars = []
        for _ in range(n):
            r = getrandbits(bits)
            while r >= k:
                r = getrandbits(bits)
            chars.append(QUALITY[r])
        quality = "".join(chars)
        if n and rng.random() < at_rate:
            quality = "@" + quality[1:]  # quality lines that start with '@' are common
        sequence = "".join(rng.choices("ACGTN", k=n))
        out.append((f"read{i} lane={rng.randint(1, 8)}", sequence, quality))
    return tuple(out)


records_strategy = st.lists(
    st.integers(min_value=0, max_value=40).flatmap(
        lambda n: st.tuples(
            st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=12),
            st.text(alphabet="ACGTN", min_size=n, max_size=n),
            st.one_of(
                st.text(alphabet=QUALITY, min_size=n, max_size=n),
                st.text(alphabet="@+I#", min_size=n, max_size=n),  # headers look-alikes
            ),
        )
    ),
    min_size=1,
    max_size=60,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=records_strategy, n=st.integers(min_value=1, max_value=40))
def test_partitions_union_is_exactly_the_file(tmp_path, records, n):
    data = fastq_bytes(records)
    path = tmp_path / "reads.fq"
    path.write_bytes(data)
    parts = partition(str(path), n=n)
    got = [(r.name, r.sequence, r.qualities) for p in parts for r in p.read()]
    assert got == reference(data)
    assert [p.ordinal for p in parts] == list(range(len(parts)))
    assert parts[0]["start"] == 0 and parts[-1]["end"] == len(data)
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(parts))


def test_every_byte_offset_snaps_to_the_next_record(tmp_path):
    records = random_records(3, 300, max_len=30, at_rate=0.9)
    data = fastq_bytes(records)
    path = tmp_path / "r.fq"
    path.write_bytes(data)
    starts, pos = [], 0
    for n, s, q in records:
        starts.append(pos)
        pos += len(f"@{n}\n{s}\n+\n{q}\n")
    source = RangeSource(str(path))
    following = iter([*starts, len(data)])
    expected = next(following)
    for offset in range(1, len(data)):
        while expected < offset:
            expected = next(following)
        assert record_start(source, offset) == expected, offset


@pytest.mark.parametrize("n", [1, 2, 16, 256])
def test_larger_files_and_many_partitions(tmp_path, n):
    records = random_records(7, 20_000)
    data = fastq_bytes(records)
    path = tmp_path / "big.fastq"
    path.write_bytes(data)
    parts = partition(str(path), n=n)
    assert len(parts) == n
    assert [(r.name, r.sequence, r.qualities) for p in parts for r in p.read()] == records


def test_planning_reads_at_most_64_kib_per_boundary(tmp_path):
    path = tmp_path / "plan.fq"
    path.write_bytes(fastq_bytes(random_records(11, 40_000)))
    source = RangeSource(str(path))
    parts = aifdata.formats.get("fastq").plan(source, n=8)
    boundaries = len(parts) - 1
    assert boundaries == 7
    assert source.bytes_read <= boundaries * BOUNDARY_WINDOW + HEAD_BYTES
    assert source.requests == boundaries + 1
    assert source.bytes_read < path.stat().st_size / 10


def test_reads_longer_than_the_window_still_split_exactly(tmp_path):
    records = random_records(5, 40, max_len=200_000)
    data = fastq_bytes(records)
    path = tmp_path / "long.fq"
    path.write_bytes(data)
    parts = partition(str(path), n=30)
    assert [(r.name, r.sequence, r.qualities) for p in parts for r in p.read()] == records


def test_target_bytes_and_arrow(tmp_path):
    pa = pytest.importorskip("pyarrow")
    records = random_records(2, 5000)
    path = tmp_path / "t.fq"
    path.write_bytes(fastq_bytes(records))
    parts = partition(str(path), target_bytes=100_000)
    assert len(parts) == -(-path.stat().st_size // 100_000)
    table = pa.concat_tables([p.read(as_arrow=True) for p in parts])
    assert table.column_names == ["name", "sequence", "quality"]
    assert table.num_rows == len(records)
    assert table.column("quality").to_pylist() == [q for _, _, q in records]


@pytest.mark.timeout(60)
def test_more_partitions_than_bytes_or_than_allowed(tmp_path):
    """A huge ``n`` once planned for minutes; each partition holds a byte at least."""
    from aifdata.formats._base import MAX_PARTITIONS

    data = fastq_bytes(random_records(6, 3))
    path = tmp_path / "tiny.fq"
    path.write_bytes(data)
    parts = partition(str(path), n=MAX_PARTITIONS)
    assert len(parts) == 3 and sum(len(p.read()) for p in parts) == 3
    with pytest.raises(ValueError, match="at most 1,000,000"):
        partition(str(path), n=MAX_PARTITIONS + 1)
    big = tmp_path / "big.fq"
    big.write_bytes(data * 400_000)  # about 20 MB
    with pytest.raises(ValueError, match="choose a larger target"):
        partition(str(big), target_bytes=1)


def test_a_partition_is_small_frozen_and_picklable(tmp_path):
    path = tmp_path / "p.fq"
    path.write_bytes(fastq_bytes(random_records(1, 100)))
    part = partition(str(path), n=3)[1]
    blob = pickle.dumps(part)
    assert len(blob) < 1024
    assert pickle.loads(blob) == part
    with pytest.raises(AttributeError):
        part.ordinal = 5  # type: ignore[misc]
    assert "start" in repr(part)


def test_a_changed_file_is_not_read_with_an_old_plan(tmp_path):
    path = tmp_path / "c.fq"
    path.write_bytes(fastq_bytes(random_records(1, 100)))
    part = partition(str(path), n=2)[0]
    path.write_bytes(fastq_bytes(random_records(2, 120)))
    with pytest.raises(FormatError, match="changed since it was partitioned"):
        part.read()


def _read_in_fresh_process(blob: bytes) -> int:
    return len(pickle.loads(blob).read())


def test_partitions_read_in_a_fresh_process_from_s3(genomics_fs):
    records = random_records(9, 3000)
    genomics_fs.pipe("genomics/run42/reads.fastq", fastq_bytes(records))
    parts = aifdata.partition("aif://genomics/run42/reads.fastq", n=8)
    assert len(parts) == 8
    blobs = [pickle.dumps(p) for p in parts]
    assert all(b"secret" not in b and len(b) < 1024 for b in blobs)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        counts = pool.map(_read_in_fresh_process, blobs)
    assert sum(counts) == len(records)


# -- bad input ----------------------------------------------------------------


def write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def read_all(url: str, n: int = 3, **kw) -> list:
    return [r for p in partition(url, n=n, **kw) for r in p.read()]


@pytest.mark.timeout(60)
def test_truncated_file_names_the_offset(tmp_path):
    good = fastq_bytes(random_records(1, 50))
    url = write(tmp_path, "trunc.fq", good + b"@last\nACGT\n+\nII")
    with pytest.raises(FormatError, match=r"trunc\.fq: byte \d+: .*truncated\?"):
        read_all(url)


@pytest.mark.timeout(60)
def test_unequal_sequence_and_quality_lengths(tmp_path):
    records = random_records(1, 30)
    bad_at = len(fastq_bytes(records))
    url = write(tmp_path, "len.fq", fastq_bytes([*records, ("bad", "ACGT", "III")]))
    offset = bad_at + len("@bad/ACGT/+/")
    with pytest.raises(FormatError, match=rf"len\.fq: byte {offset}: .*differ"):
        read_all(url, n=1)


@pytest.mark.timeout(60)
def test_binary_garbage_is_refused_at_byte_0(tmp_path):
    url = write(tmp_path, "garbage.fq", random.Random(0).randbytes(100_000))
    with pytest.raises(FormatError, match=r"garbage\.fq: byte 0"):
        partition(url, n=4)


@pytest.mark.timeout(60)
def test_garbage_after_a_good_start_is_refused_with_its_offset(tmp_path):
    good = fastq_bytes(random_records(1, 20))
    url = write(tmp_path, "mixed.fq", good + b"\x00\x01garbage\xff" * 1000)
    with pytest.raises(FormatError, match=r"mixed\.fq: byte \d+"):
        read_all(url, n=4)


@pytest.mark.timeout(60)
def test_wrapped_multiline_fastq_is_an_error(tmp_path):
    url = write(tmp_path, "wrapped.fq", b"@r1\nACGT\nACGT\n+\nIIII\nIIII\n")
    with pytest.raises(FormatError, match=r"wrapped\.fq: byte 9: .*'\+' line.*wrapped"):
        read_all(url, n=1)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("bad", [" ", "\x7f", "\x1f"])
def test_quality_outside_33_126_is_an_error(tmp_path, bad):
    url = write(tmp_path, "q.fq", fastq_bytes([("ok", "AC", "II"), ("r2", "ACG", f"I{bad}I")]))
    with pytest.raises(FormatError, match=r"q\.fq: byte 22: quality characters"):
        read_all(url, n=1)


@pytest.mark.parametrize("bad", [" ", "\t"])
def test_a_bad_quality_byte_is_found_among_headers_with_spaces(tmp_path, bad):
    """Headers may hold spaces and tabs; the same byte in a quality line is still an error."""
    records = [(f"r{i} lane=1\tx", "ACGT", "IIII") for i in range(50)]
    records[37] = ("r37 lane=1\tx", "ACGT", f"II{bad}I")
    url = write(tmp_path, "h.fq", fastq_bytes(records))
    with pytest.raises(FormatError, match=r"h\.fq: byte \d+: .*'r37 lane=1\\tx'"):
        read_all(url, n=1)
    records[37] = ("r37 lane=1\tx", "ACGT", "IIII")
    assert len(read_all(write(tmp_path, "ok.fq", fastq_bytes(records)), n=3)) == 50


def test_a_format_forced_on_the_wrong_file(tmp_path):
    url = write(tmp_path, "image.tif", b"II*\x00" + bytes(200))
    with pytest.raises(FormatError, match=r"image\.tif: byte 0: this is not fastq data"):
        partition(url, format="fastq")
    unknown = write(tmp_path, "blob.bin", b"\x89PNG\r\n" + bytes(200))
    with pytest.raises(FormatError, match=r"blob\.bin: byte 0: no format recognises it"):
        partition(unknown)
    with pytest.raises(FormatError, match="no format 'genbank'"):
        partition(unknown, format="genbank")
    assert isinstance(FormatError("x"), ValueError)


def test_empty_file_has_no_partitions(tmp_path):
    assert partition(write(tmp_path, "empty.fq", b""), n=4, format="fastq") == []


def test_ingest_sniffs_formats_and_a_dataset_partitions_its_files(two_tier_fs, tmp_path):
    catalog = aifdata.Catalog(tmp_path / "c.db", config=two_tier_fs.config)
    a, b = random_records(1, 2000), random_records(2, 500)
    two_tier_fs.pipe(
        {
            "both/run1/a.fastq": fastq_bytes(a),
            "both/run1/b.fq": fastq_bytes(b),
            "both/run1/no-extension": fastq_bytes(b),
            "both/run1/readme.txt": b"hello",
        }
    )
    ds = catalog.ingest("aif://both/run1", "genomics/run1")
    assert {f.path: f.format for f in ds.files} == {
        "a.fastq": "fastq",
        "b.fq": "fastq",
        "no-extension": "fastq",  # sniffed from its bytes
        "readme.txt": "unknown",
    }
    assert [h.name for h in catalog.search("", format="fastq")] == ["genomics/run1"]
    unhashed = catalog.ingest("aif://both/run1", "genomics/by-name", checksum=False)
    assert {f.path: f.format for f in unhashed.files}["no-extension"] == "unknown"

    two_tier_fs.rm("both/run1/readme.txt")
    ds = catalog.ingest("aif://both/run1", "genomics/run1")
    assert ds.urls(two_tier_fs.config)[0] == "aif://both/run1/a.fastq"
    parts = ds.partitions(n=12, config=two_tier_fs.config)
    assert 12 <= len(parts) <= 14  # shared out by size, at least one per file
    assert sum(len(p.read(config=two_tier_fs.config)) for p in parts) == len(a) + 2 * len(b)


def test_cli_formats_and_partition(tmp_path, capsys):
    from aifdata.cli import main

    assert main(["formats"]) == 0
    assert any(line.startswith("fastq ") for line in capsys.readouterr().out.splitlines())
    assert main(["formats", "--json"]) == 0
    listed = {f["name"]: f for f in json.loads(capsys.readouterr().out)}
    assert listed["fastq"]["extensions"] == [".fastq", ".fq"]
    url = write(tmp_path, "cli.fq", fastq_bytes(random_records(4, 3000)))
    assert main(["partition", url, "--n", "4", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["ordinal"] for r in rows] == [0, 1, 2, 3]
    assert rows[0]["spec"]["start"] == 0 and rows[-1]["spec"]["end"] == Path(url).stat().st_size
    assert main(["partition", url, "--target-bytes", "100000"]) == 0
    out = capsys.readouterr()
    assert "partition(s) of" in out.err and out.out.splitlines()[0].split()[2] == "start=0"
    bad = write(tmp_path, "bad.fq", b"not fastq at all\n")
    assert main(["partition", bad, "--n", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.fq: byte 0: this is not fastq data" in err[0]
    assert main(["partition", url, "--n", "2", "--target-bytes", "5"]) == 2
