"""mzML partitions: runs of spectra from the offset index (checked) or one scan, exact
against pyteomics spectrum by spectrum."""

from __future__ import annotations

import base64
import gzip
import pickle
import re
import struct
import warnings
import zlib
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
try:  # imported here, not in a test: importing psims starts a process (platform's uname)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # psims warns that hdf5plugin (for mzMLb) is missing
        from psims.mzml.writer import MzMLWriter
        from pyteomics import mzml
except ImportError:  # pyteomics reads mzML only with psims installed
    MzMLWriter = mzml = None
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from aifdata import FormatError  # noqa: E402
from aifdata.formats import (  # noqa: E402
    RangeSource,
    _psi,
    get,
    partition,
    read_all,
)

from ._realdata import RealFile  # noqa: E402

COUNTS = (1, 2, 3, 5, 8, 17)

EXAMPLE = RealFile(
    "pymzml", "2.6.1", "tests/data/example.mzML",
    "8ad9c6517e85397149f84f42bd458029b6523c96cc83de4987c53f2c67d2425d", "MIT",
)  # fmt: skip
BSA1 = RealFile(
    "pymzml", "2.6.1", "tests/data/BSA1.mzML.gz",
    "b335d4fa6909f923d77ea63181ce6c93d9015450cb98f57c1bf1667ed4c41199", "MIT",
)  # fmt: skip
CHROMATOGRAMS = RealFile(
    "pymzml", "2.6.1", "tests/data/mini.chrom.mzML",
    "684d0325cd53298020ee9cfc3ce09f9c0b27e8928baaeb4fe4c7cb10e1fe4b94", "MIT",
)  # fmt: skip
MATCHMS = RealFile(
    "matchms", "0.33.1", "tests/testdata/testdata.mzml",
    "106fd91b87478516355ff1224518bbca75d1e5e082ae5bdb0e590ead9f6bcbb5", "Apache-2.0",
)  # fmt: skip


# -- a writer of mzML, with a correct offset index -----------------------------------


def _array(values, kind: str, bits: int, compress: bool) -> str:
    raw = np.asarray(values, f"<f{bits // 8}").tobytes()
    raw = zlib.compress(raw) if compress else raw
    accession, name = ("MS:1000514", "m/z") if kind == "mz" else ("MS:1000515", kind)
    precision = "MS:1000521" if bits == 32 else "MS:1000523"
    compression = ("MS:1000574", "zlib") if compress else ("MS:1000576", "no")
    text = base64.b64encode(raw).decode()
    return (
        f'<binaryDataArray encodedLength="{len(text)}">\n'
        f'<cvParam cvRef="MS" accession="{precision}" name="{bits}-bit float" value=""/>\n'
        f'<cvParam cvRef="MS" accession="{compression[0]}" name="{compression[1]} compression"'
        ' value=""/>\n'
        f'<cvParam cvRef="MS" accession="{accession}" name="{name} array" value=""/>\n'
        f"<binary>{text}</binary>\n</binaryDataArray>\n"
    )


def spectrum_xml(i: int, mz, intensity, bits=64, compress=True, seconds=False) -> str:
    unit = 'unitAccession="UO:0000010" unitName="second"' if seconds else (
        'unitAccession="UO:0000031" unitName="minute"'
    )  # fmt: skip
    return (
        f'      <spectrum index="{i}" id="scan={i + 1}" defaultArrayLength="{len(mz)}">\n'
        f'<cvParam cvRef="MS" accession="MS:1000511" name="ms level" value="{1 + i % 2}"/>\n'
        f'<scanList count="1"><scan><cvParam cvRef="MS" accession="MS:1000016"'
        f' name="scan start time" value="{0.5 * i}" {unit}/></scan></scanList>\n'
        f'<binaryDataArrayList count="2">\n{_array(mz, "mz", bits, compress)}'
        f"{_array(intensity, 'intensity', 32 if bits == 32 else 64, compress)}"
        "</binaryDataArrayList>\n      </spectrum>\n"
    )


def chromatogram_xml() -> str:
    times = (
        _array(np.arange(5.0), "mz", 64, False)
        .replace("MS:1000514", "MS:1000595")
        .replace("m/z array", "time array")
    )
    return (
        '    <chromatogramList count="1">\n      <chromatogram index="0" id="TIC"'
        f' defaultArrayLength="5">\n<binaryDataArrayList count="2">\n{times}'
        f"{_array(np.ones(5), 'intensity', 64, False)}</binaryDataArrayList>\n"
        "      </chromatogram>\n    </chromatogramList>\n"
    )


def mzml_bytes(spectra_xml: list[str], indexed: bool = True, chromatograms: bool = True) -> bytes:
    """A whole mzML document (an indexed one with correct offsets)."""
    head = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        + ('<indexedmzML xmlns="http://psi.hupo.org/ms/mzml">\n' if indexed else "")
        + '<mzML xmlns="http://psi.hupo.org/ms/mzml" version="1.1.0">\n'
        '  <cvList count="1"><cv id="MS" fullName="PSI-MS" URI="x"/></cvList>\n'
        '  <run id="r1">\n'
        f'    <spectrumList count="{len(spectra_xml)}" defaultDataProcessingRef="dp">\n'
    ).encode()
    out = bytearray(head)
    offsets = []
    for i, text in enumerate(spectra_xml):
        out += b"      "
        offsets.append((f"scan={i + 1}", len(out)))
        out += text.lstrip().encode()
    out += b"    </spectrumList>\n"
    chrom_at = len(out)
    if chromatograms:
        out += chromatogram_xml().encode()
    out += b"  </run>\n</mzML>\n"
    if not indexed:
        return bytes(out)
    at = len(out)
    out += b'<indexList count="2">\n<index name="spectrum">\n'
    for ref, offset in offsets:
        out += f'<offset idRef="{ref}">{offset}</offset>\n'.encode()
    out += b'</index>\n<index name="chromatogram">\n'
    if chromatograms:
        out += f'<offset idRef="TIC">{chrom_at + 24}</offset>\n'.encode()
    out += f"</index>\n</indexList>\n<indexListOffset>{at}</indexListOffset>\n".encode()
    out += b"<fileChecksum>0</fileChecksum>\n</indexedmzML>\n"
    return bytes(out)


def random_spectra(count: int, seed: int = 1, large: int | None = None, **options) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        k = 0 if i % 7 == 3 else int(rng.integers(1, 60))
        if large is not None and i == count // 2:
            k = large
        mz = np.sort(rng.uniform(100, 2000, k))
        out.append(spectrum_xml(i, mz, rng.uniform(0, 1e6, k), **options))
    return out


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


# -- the reference --------------------------------------------------------------------


def reference(path: str) -> list[dict]:
    if mzml is None:
        pytest.skip("the reference needs pyteomics and psims (pip install pyteomics psims)")
    with mzml.read(path) as reader:
        return list(reader)


def minutes(spectrum: dict) -> float | None:
    scans = spectrum.get("scanList", {}).get("scan", [{}])
    value = scans[0].get("scan start time")
    if value is None:
        return None
    unit = getattr(value, "unit_info", "minute")
    return float(value) / 60 if unit == "second" else float(value)


def assert_same(got, expected) -> None:
    assert [s.id for s in got] == [s["id"] for s in expected]
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.index == theirs["index"]
        assert mine.ms_level == theirs.get("ms level")
        assert mine.scan_start_time == pytest.approx(minutes(theirs))
        np.testing.assert_array_equal(mine.mz, theirs.get("m/z array", np.empty(0)))
        np.testing.assert_array_equal(mine.intensity, theirs.get("intensity array", np.empty(0)))


def every_plan(url: str, total: int) -> list:
    """Plans for every n in COUNTS and one target_bytes plan, each checked to tile the
    spectra exactly once; the spectra of the last."""
    plans = [partition(url, n=n) for n in COUNTS]
    plans.append(partition(url, target_bytes=max(1, total // 4)))
    for parts in plans:
        spectra = [s for p in parts for s in p.read()]
        counts = [p["count"] for p in parts]
        assert sum(counts) == len(spectra) and all(counts)
        assert [p["first"] for p in parts] == [sum(counts[:i]) for i in range(len(parts))]
        assert all(len(pickle.dumps(p)) < 1024 for p in parts)
        yield parts, spectra


# -- synthetic hard cases ----------------------------------------------------------------


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("compress", [True, False], ids=["zlib", "plain"])
@pytest.mark.parametrize("indexed", [True, False], ids=["indexed", "scanned"])
def test_every_plan_reads_what_pyteomics_reads(tmp_path, bits, compress, indexed):
    spectra = random_spectra(40, bits=bits, compress=compress, seconds=not indexed)
    url = write(tmp_path / "run.mzML", mzml_bytes(spectra, indexed=indexed))
    expected = reference(url)
    assert len(expected) == 40
    for parts, got in every_plan(url, Path(url).stat().st_size):
        assert {p["planned_by"] for p in parts} == {"index" if indexed else "scan"}
        assert_same(got, expected)


def test_planning_an_indexed_file_takes_a_few_requests_whatever_n(tmp_path):
    url = write(tmp_path / "run.mzML", mzml_bytes(random_spectra(300, seed=2)))
    size = Path(url).stat().st_size
    for n in (1, 8, 40):
        source = RangeSource(url)
        parts = get("mzml").plan(source, n=n)
        assert len(parts) == n and parts[0]["planned_by"] == "index"
        # head, tail (which holds this index), around the first spectrum, the last one
        assert source.requests <= 4, source.requests
        assert source.bytes_read < 2 * 64 * 2**10 + 8000 and source.bytes_read < size
        assert all(len(pickle.dumps(p)) < 1024 for p in parts)
    checked = RangeSource(url)
    parts = get("mzml").plan(checked, n=40, check_splits=True)
    assert checked.requests <= 4 + 39 and parts[0]["planned_by"] == "index"


def test_a_wrong_offset_inside_the_index(tmp_path):
    """One offset of the index points 3 bytes off: reading its partition refuses it, and
    planning with check_splits sees it and scans."""
    data = mzml_bytes(random_spectra(10, seed=6))
    found = re.search(rb'<offset idRef="scan=5">(\d+)</offset>', data)
    wrong = int(found.group(1)) + 3
    data = data.replace(found.group(0), b'<offset idRef="scan=5">%d</offset>' % wrong)
    url = write(tmp_path / "off.mzML", data)
    parts = partition(url, n=10)
    assert parts[4]["start"] == wrong and parts[4]["planned_by"] == "index"
    with pytest.raises(FormatError, match=rf"{re.escape(url)}: byte {wrong}: expected a <spec"):
        parts[4].read()
    checked = get("mzml").plan(RangeSource(url), n=10, check_splits=True)
    assert checked[4]["planned_by"] == "scan" and f"byte {wrong}:" in checked[4]["why"]
    assert [s.index for p in checked for s in p.read()] == list(range(10))


def test_a_very_large_spectrum_and_empty_ones(tmp_path):
    spectra = random_spectra(9, seed=3, large=600_000, compress=False)  # a 13 MB <binary>
    url = write(tmp_path / "big.mzML", mzml_bytes(spectra))
    parts = partition(url, n=5)
    got = [s for p in parts for s in p.read()]
    assert max(len(s.mz) for s in got) == 600_000 and min(len(s.mz) for s in got) == 0
    assert_same(got, reference(url))


def test_chromatograms_are_not_read_as_spectra(tmp_path):
    url = write(tmp_path / "c.mzML", mzml_bytes(random_spectra(5), chromatograms=True))
    parts = partition(url, n=2)
    assert parts[-1]["end"] < Path(url).read_bytes().index(b"<chromatogramList")
    assert [s.id for p in parts for s in p.read()] == [f"scan={i + 1}" for i in range(5)]


def test_without_lxml_the_standard_library_parses(tmp_path, monkeypatch):
    monkeypatch.setattr(_psi, "_parser", lambda: None)  # as if lxml were absent
    url = write(tmp_path / "run.mzML", mzml_bytes(random_spectra(20, seed=14)))
    assert_same([s for p in partition(url, n=3) for s in p.read()], reference(url))
    bad, at = corrupt(tmp_path, b"<scanList", b"<scanL<st")
    with pytest.raises(FormatError, match=rf"{re.escape(bad)}: byte \d+: not well-formed XML") as e:
        partition(bad, n=1)[0].read()
    assert at < int(re.search(r"byte (\d+)", str(e.value)).group(1)) < at + 400


def test_read_all_fetches_neighbours_together_and_tables_have_a_row_per_spectrum(tmp_path):
    url = write(tmp_path / "run.mzML", mzml_bytes(random_spectra(30, seed=4)))
    parts = partition(url, n=4)
    together = [s.id for _, spectra in read_all(parts) for s in spectra]
    assert together == [f"scan={i + 1}" for i in range(30)]
    plugin = get("mzml")
    frame = plugin.to_pandas(parts[1])
    assert list(frame.columns) == ["id", "index", "ms_level", "scan_start_time", "mz", "intensity"]
    assert len(frame) == parts[1]["count"]
    table = plugin.to_arrow(parts[1])
    assert table.num_rows == parts[1]["count"]
    first = parts[1].read()[0]
    assert table.column("mz")[0].as_py() == first.mz.tolist()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(0, 40), min_size=0, max_size=30),
    n=st.integers(1, 40),
    indexed=st.booleans(),
    target=st.one_of(st.none(), st.integers(200, 20_000)),
)
def test_any_split_gives_every_spectrum_once(tmp_path_factory, sizes, n, indexed, target):
    rng = np.random.default_rng(len(sizes))
    spectra = [spectrum_xml(i, np.arange(k, dtype="f8"), rng.uniform(0, 9, k)) for i, k in
               enumerate(sizes)]  # fmt: skip
    path = tmp_path_factory.mktemp("prop") / "p.mzML"
    url = write(path, mzml_bytes(spectra, indexed=indexed, chromatograms=bool(len(sizes) % 2)))
    parts = partition(url, n=None if target else n, target_bytes=target)
    got = [s for p in parts for s in p.read()]
    assert [s.index for s in got] == list(range(len(sizes)))
    assert [len(s.mz) for s in got] == sizes


@pytest.mark.parametrize("indexed", [True, False], ids=["indexed", "scanned"])
def test_a_gzipped_file_reads_like_the_plain_one(tmp_path, indexed):
    data = mzml_bytes(random_spectra(40, seed=12), indexed=indexed)
    plain = write(tmp_path / "run.mzML", data)
    url = write(tmp_path / "run.mzML.gz", gzip.compress(data, 1))
    expected = reference(plain)
    for n in COUNTS:
        parts = partition(url, n=n)
        assert {(p["codec"], p["planned_by"]) for p in parts} == {
            ("gzip", "index" if indexed else "scan")
        }
        assert_same([s for _, got in read_all(parts) for s in got], expected)
    assert get("mzml").matches_name(url)


def bgzf(data: bytes, block: int = 4000) -> bytes:
    """``data`` in BGZF blocks (gzip members with the BC extra field), then the empty one."""
    out = []
    pieces = [data[pos : pos + block] for pos in range(0, len(data), block)]
    for chunk in [*pieces, b""]:
        deflate = zlib.compressobj(1, zlib.DEFLATED, -15)
        body = deflate.compress(chunk) + deflate.flush()
        header = b"\x1f\x8b\x08\x04" + struct.pack("<IBBH", 0, 0, 255, 6) + b"BC"
        out += [header + struct.pack("<HH", 2, len(body) + 25) + body]
        out += [struct.pack("<II", zlib.crc32(chunk), len(chunk))]
    return b"".join(out)


def test_a_bgzf_file_is_read_as_gzip(tmp_path):
    data = mzml_bytes(random_spectra(30, seed=13))
    url = write(tmp_path / "run.mzML.gz", bgzf(data))
    parts = partition(url, n=4)
    assert {(p["codec"], p["planned_by"]) for p in parts} == {("gzip", "index")}
    assert_same([s for p in parts for s in p.read()], reference(write(tmp_path / "r.mzML", data)))


def test_another_compression_is_refused(tmp_path):
    import bz2

    url = write(tmp_path / "run.mzML.bz2", bz2.compress(mzml_bytes(random_spectra(3))))
    with pytest.raises(FormatError, match=rf"{re.escape(url)}: byte 0"):
        partition(url, n=2, format="mzml")


def test_an_index_written_by_psims(tmp_path):
    """psims (the PSI's mzML writer) writes the index: planning uses it as it is."""
    if MzMLWriter is None:
        pytest.skip("psims is not installed")
    rng = np.random.default_rng(10)
    path = tmp_path / "psims.mzML"
    with warnings.catch_warnings(), MzMLWriter(path.open("wb"), close=True) as out:
        warnings.simplefilter("ignore")  # psims warns of the sections this minimal file lacks
        out.controlled_vocabularies()
        with out.run(id="r"), out.spectrum_list(count=60):
            for i in range(60):
                k = 0 if i % 9 == 4 else int(rng.integers(1, 300))
                out.write_spectrum(
                    np.sort(rng.uniform(100, 2000, k)), rng.uniform(0, 1e5, k),
                    id=f"scan={i + 1}", params=[{"ms level": 1 + i % 3}],
                    scan_start_time=i * 0.25, compression="zlib" if i % 2 else "none",
                )  # fmt: skip
    url = str(path)
    expected = reference(url)
    for parts, got in every_plan(url, path.stat().st_size):
        assert {p["planned_by"] for p in parts} == {"index"}
        assert_same(got, expected)


def test_offsets_at_the_indentation_before_each_spectrum(tmp_path):
    data = mzml_bytes(random_spectra(12, seed=11))
    data = re.sub(rb'(<offset idRef="scan=\d+">)(\d+)<', lambda m: m.group(1) + b"%d<" % (
        int(m.group(2)) - 6), data)  # fmt: skip
    url = write(tmp_path / "indent.mzML", data)
    expected = reference(url)  # once: the file does not change between plans
    for parts, got in every_plan(url, len(data)):
        assert {p["planned_by"] for p in parts} == {"index"}
        assert_same(got, expected)
    checked = get("mzml").plan(RangeSource(url), n=5, check_splits=True)
    assert checked[0]["planned_by"] == "index"


# -- an index that does not match its file ------------------------------------------------


def stale(tmp_path: Path) -> tuple[str, int]:
    """An indexed file edited before its third spectrum after its spectrum offsets were
    written (its indexListOffset is right)."""
    data = mzml_bytes(random_spectra(10, seed=5))
    at = data.index(b'<spectrum index="2"')
    edit = b"<!-- an edit -->\n"
    edited = data[:at] + edit + data[at:]
    offset = int(re.search(rb"<indexListOffset>(\d+)<", edited).group(1))
    edited = edited.replace(b">%d<" % offset, b">%d<" % (offset + len(edit)))
    return write(tmp_path / "stale.mzML", edited), at


def test_a_stale_index_falls_back_to_a_scan_and_says_why(tmp_path):
    url, at = stale(tmp_path)
    parts = partition(url, n=5)
    assert re.fullmatch(
        r"byte \d+: the offset index says a spectrum starts here.*", parts[0]["why"]
    )
    assert int(parts[0]["why"].split()[1].rstrip(":")) > at
    assert {p["planned_by"] for p in parts} == {"scan"}
    assert [s.index for p in parts for s in p.read()] == list(range(10))


def test_a_stale_index_is_refused_when_required(tmp_path):
    url, _ = stale(tmp_path)
    with pytest.raises(FormatError, match=rf"{re.escape(url)}: byte \d+: .*does not match"):
        get("mzml").plan(RangeSource(url), n=5, index="require")


def test_an_index_missing_a_middle_spectrum_is_refused_on_reading(tmp_path):
    data = mzml_bytes(random_spectra(10, seed=6))
    data = re.sub(rb'<offset idRef="scan=5">\d+</offset>\n', b"", data)  # offsets still right
    url = write(tmp_path / "gap.mzML", data)
    parts = partition(url, n=1)
    assert parts[0]["count"] == 9
    with pytest.raises(FormatError, match=rf"{re.escape(url)}: bytes \d+\.\.\d+: expected 9"):
        parts[0].read()


def test_an_index_missing_the_last_spectrum_is_seen_when_planning(tmp_path):
    data = mzml_bytes(random_spectra(10, seed=6), chromatograms=False)
    data = re.sub(rb'<offset idRef="scan=10">\d+</offset>\n', b"", data)
    url = write(tmp_path / "short.mzML", data)
    parts = partition(url, n=3)
    assert parts[0]["planned_by"] == "scan" and "does not list" in parts[0]["why"]
    assert sum(len(p.read()) for p in parts) == 10


def test_a_file_changed_after_planning_is_not_read(tmp_path):
    path = tmp_path / "run.mzML"
    url = write(path, mzml_bytes(random_spectra(6)))
    parts = partition(url, n=2)
    write(path, mzml_bytes(random_spectra(7)))
    with pytest.raises(FormatError, match="changed since it was partitioned"):
        parts[0].read()


# -- malformed input -------------------------------------------------------------------------


def test_not_mzml_is_refused_at_byte_0(tmp_path):
    url = write(tmp_path / "x.mzML", b"<?xml version='1.0'?><html><body/></html>")
    with pytest.raises(FormatError, match=rf"{re.escape(url)}: byte 0: this is not mzML"):
        partition(url, n=2)
    url = write(tmp_path / "y.mzML", b"\x00\x01 binary")
    with pytest.raises(FormatError, match="byte 0"):
        partition(url, n=2)


def test_a_truncated_file_is_refused(tmp_path):
    whole = mzml_bytes(random_spectra(10, seed=7))
    url = write(tmp_path / "cut.mzML", whole[: len(whole) * 2 // 3])
    with pytest.raises(FormatError, match=rf"{re.escape(url)}: byte \d+: .*truncated"):
        partition(url, n=2)
    plain = mzml_bytes(random_spectra(10, seed=7), indexed=False)
    url = write(tmp_path / "cut2.mzML", plain[: len(plain) * 2 // 3])
    with pytest.raises(FormatError, match=rf"{re.escape(url)}: byte \d+: .*truncated"):
        partition(url, n=2)


def corrupt(tmp_path: Path, old: bytes, new: bytes, spectrum: int = 4) -> tuple[str, int]:
    spectra = random_spectra(8, seed=8)
    data = mzml_bytes(spectra)
    at = data.index(f'<spectrum index="{spectrum}"'.encode())
    inside = data.index(old, at)
    # keep the length, so the index still matches
    data = data[:inside] + new.ljust(len(old), b"A")[: len(old)] + data[inside + len(old) :]
    return write(tmp_path / "bad.mzML", data), at


def test_bad_base64_names_the_spectrum(tmp_path):
    url, at = corrupt(tmp_path, b"<binary>eJ", b"<binary>!!")
    parts = partition(url, n=1)
    with pytest.raises(FormatError, match=rf"{re.escape(url)}: byte {at}: .*not base64"):
        parts[0].read()


def test_bad_zlib_names_the_spectrum(tmp_path):
    url, at = corrupt(tmp_path, b"<binary>eJ", b"<binary>AA")
    with pytest.raises(FormatError, match=rf"{re.escape(url)}: byte {at}: .*not zlib"):
        partition(url, n=1)[0].read()


def test_broken_xml_names_the_byte(tmp_path):
    url, at = corrupt(tmp_path, b"<scanList", b"<scanL<st")
    with pytest.raises(FormatError, match=rf"{re.escape(url)}: byte \d+: not well-formed XML") as e:
        partition(url, n=1)[0].read()
    where = int(re.search(r"byte (\d+)", str(e.value)).group(1))
    assert at < where < at + 400  # inside the broken spectrum, near the broken tag


def test_numpress_without_pynumpress_is_refused_naming_the_cvparam(tmp_path, monkeypatch):
    monkeypatch.setattr(_psi, "_pynumpress", lambda: None)
    url, at = corrupt(tmp_path, b'accession="MS:1000574"', b'accession="MS:1002312"')
    with pytest.raises(FormatError, match=rf"byte {at}: .*MS-Numpress linear.*MS:1002312.*pip"):
        partition(url, n=1)[0].read()


NUMPRESS_NAMES = {
    "MS:1002312": "MS-Numpress linear prediction compression",
    "MS:1002314": "MS-Numpress short logged float compression",
    "MS:1002747": "MS-Numpress positive integer compression followed by zlib compression",
}


def numpress_array(values, kind: str, accession: str) -> str:
    pynumpress = pytest.importorskip("pynumpress")
    values = np.asarray(values, "f8")
    if accession == "MS:1002312":
        raw = pynumpress.encode_linear(values, pynumpress.optimal_linear_fixed_point(values))
    elif accession == "MS:1002314":
        raw = pynumpress.encode_slof(values, pynumpress.optimal_slof_fixed_point(values))
    else:
        raw = zlib.compress(pynumpress.encode_pic(values).tobytes())
    text = base64.b64encode(bytes(raw)).decode()
    array = "MS:1000514" if kind == "mz" else "MS:1000515"
    return (
        f'<binaryDataArray encodedLength="{len(text)}">\n'
        '<cvParam cvRef="MS" accession="MS:1000523" name="64-bit float" value=""/>\n'
        f'<cvParam cvRef="MS" accession="{accession}" name="{NUMPRESS_NAMES[accession]}"'
        ' value=""/>\n'
        f'<cvParam cvRef="MS" accession="{array}" name="{"m/z" if kind == "mz" else kind} array"'
        f' value=""/>\n<binary>{text}</binary>\n</binaryDataArray>\n'
    )


@pytest.mark.parametrize("coding", ["MS:1002314", "MS:1002747"], ids=["slof", "pic+zlib"])
def test_numpress_arrays_are_decoded_with_pynumpress(tmp_path, coding):
    rng = np.random.default_rng(15)
    spectra = []
    for i in range(12):
        k = 0 if i == 5 else int(rng.integers(1, 200))
        mz = np.sort(rng.uniform(100, 2000, k))
        intensity = np.round(rng.uniform(0, 1e5, k))
        text = spectrum_xml(i, mz, intensity)
        start = text.index("<binaryDataArrayList")
        end = text.index("</binaryDataArrayList>")
        arrays = numpress_array(mz, "mz", "MS:1002312") + numpress_array(
            intensity, "intensity", coding
        )
        spectra.append(text[:start] + '<binaryDataArrayList count="2">\n' + arrays + text[end:])
    url = write(tmp_path / "np.mzML", mzml_bytes(spectra))
    expected = reference(url)
    for n in (1, 5):
        got = [s for p in partition(url, n=n) for s in p.read()]
        assert_same(got, expected)
    assert got[3].mz.dtype == np.dtype("<f8") and len(got[5].mz) == 0


def test_imzml_is_not_taken_for_mzml(tmp_path):
    data = mzml_bytes(random_spectra(2)).replace(
        b"<run", b'<fileContent><cvParam cvRef="IMS" accession="IMS:1000080" value="0"/>'
        b"</fileContent><run", 1,
    )  # fmt: skip
    url = write(tmp_path / "image.mzML", data)
    assert not get("mzml").sniff(data[:4096], url)
    with pytest.raises(FormatError, match="imzML"):
        partition(url, n=2, format="mzml")


# -- real files ---------------------------------------------------------------------------


def test_a_real_file_whose_index_misses_a_spectrum(real_file):
    """pymzml's example.mzML: its index lists 10 of its 11 spectra (and points its
    chromatogram at a spectrum): planning sees it and scans."""
    url = str(real_file(EXAMPLE))
    expected = reference(url)
    assert len(expected) == 11
    for parts, got in every_plan(url, Path(url).stat().st_size):
        assert {p["planned_by"] for p in parts} == {"scan"}
        assert "does not list" in parts[0]["why"]
        assert_same(got, expected)


def test_a_real_file_whose_index_points_past_its_end(real_file):
    """matchms' testdata.mzml was cut from a larger file, index and all."""
    url = str(real_file(MATCHMS))
    expected = reference(url)
    with pytest.raises(FormatError, match=r"byte \d+: indexListOffset \d+ is past the end"):
        get("mzml").plan(RangeSource(url), n=2, index="require")
    for parts, got in every_plan(url, Path(url).stat().st_size):
        assert parts[0]["planned_by"] == "scan"
        assert_same(got, expected)


def test_a_real_file_without_an_index(real_file, tmp_path):
    """pymzml's BSA1 (1684 spectra, times in seconds), gunzipped here: planned by one scan."""
    url = write(tmp_path / "BSA1.mzML", gzip.decompress(real_file(BSA1).read_bytes()))
    expected = reference(url)
    assert len(expected) == 1684
    source = RangeSource(url)
    parts = get("mzml").plan(source, n=8)
    assert {p["planned_by"] for p in parts} == {"scan"} and "why" not in parts[0].options
    for _, got in every_plan(url, Path(url).stat().st_size):
        assert_same(got, expected)


def test_a_real_gzipped_file(real_file, tmp_path):
    """pymzml's BSA1.mzML.gz as it is: planned by one scan of the uncompressed bytes."""
    path = real_file(BSA1)
    expected = reference(write(tmp_path / "BSA1.mzML", gzip.decompress(path.read_bytes())))
    for n in (1, 5, 17):
        parts = partition(str(path), n=n)
        assert {(p["codec"], p["planned_by"]) for p in parts} == {("gzip", "scan")}
        assert_same([s for p in parts for s in p.read()], expected)


def test_a_real_file_of_chromatograms_only_has_no_spectrum(real_file):
    url = str(real_file(CHROMATOGRAMS))
    assert partition(url, n=3) == []


# -- over S3 -------------------------------------------------------------------------------


@pytest.mark.s3
def test_an_indexed_mzml_on_s3_through_aif(s3_fs, tmp_path):
    data = mzml_bytes(random_spectra(50, seed=9))
    local = write(tmp_path / "run.mzML", data)
    s3_fs.pipe("s3only/ms/run.mzML", data)
    url = "aif://s3only/ms/run.mzML"
    source = RangeSource(url, s3_fs.config)
    parts = get("mzml").plan(source, n=6)
    assert len(parts) == 6 and parts[0]["planned_by"] == "index"
    assert source.requests <= 4 + 5
    got = [s for _, spectra in read_all(parts, config=s3_fs.config) for s in spectra]
    assert_same(got, reference(local))


# -- index attributes in either quote; an index without spectra; long headers ----------


def test_an_index_whose_attributes_use_single_quotes(tmp_path):
    data = mzml_bytes(random_spectra(30, seed=21))
    quoted = data.replace(b'<index name="spectrum">', b"<index name='spectrum'>")
    quoted = quoted.replace(b'<index name="chromatogram">', b"<index  name = 'chromatogram' >")
    assert quoted != data
    url = write(tmp_path / "q.mzML", quoted)
    expected = reference(url)
    assert len(expected) == 30
    for parts, got in every_plan(url, len(quoted)):
        assert {p["planned_by"] for p in parts} == {"index"}
        assert_same(got, expected)


@pytest.mark.parametrize("how", ["empty", "renamed"])
def test_an_index_listing_no_spectrum_of_a_file_with_spectra_is_scanned(tmp_path, how):
    data = mzml_bytes(random_spectra(12, seed=22))
    a = data.index(b'<index name="spectrum">') + len(b'<index name="spectrum">')
    b = data.index(b"</index>", a)
    if how == "empty":  # same length: the indexListOffset still points at the list
        data = data[:a] + b" " * (b - a) + data[b:]
    else:
        data = data.replace(b'<index name="spectrum">', b'<index name="spectra!">')
    url = write(tmp_path / "e.mzML", data)
    expected = reference(url)
    parts = partition(url, n=3)
    assert len(parts) == 3 and {p["planned_by"] for p in parts} == {"scan"}
    assert "lists no spectrum" in parts[0]["why"]
    assert_same([s for p in parts for s in p.read()], expected)
    with pytest.raises(FormatError, match=r"e\.mzML: byte \d+: the offset index lists no"):
        get("mzml").plan(RangeSource(url), n=3, index="require")


def test_an_indexed_file_without_spectra_plans_no_partition_from_its_index(tmp_path):
    url = write(tmp_path / "none.mzML", mzml_bytes([]))
    source = RangeSource(url)
    assert get("mzml").plan(source, n=3) == []
    assert source.requests <= 2


GROUPS = (
    b'<referenceableParamGroupList count="1"><referenceableParamGroup id="g">'
    b'<cvParam cvRef="MS" accession="MS:1000511" name="ms level" value="2"/>'
    b"</referenceableParamGroup></referenceableParamGroupList>\n"
)
LEVEL_1 = b'<cvParam cvRef="MS" accession="MS:1000511" name="ms level" value="1"/>'


def long_header(spectra: list[str], indexed: bool, before_groups: bytes, groups=GROUPS) -> bytes:
    """A file whose spectra take their MS level from a group listed after ``before_groups``
    (the offsets of an indexed file stay right: spectra and index move together)."""
    data = mzml_bytes(spectra, indexed=False).replace(
        LEVEL_1, b'<referenceableParamGroupRef ref="g"/>'
    )
    data = data.replace(b'  <run id="r1">', before_groups + groups + b'  <run id="r1">')
    if not indexed:
        return data
    # rebuild the index over the new bytes
    body = data.replace(b"<mzML ", b'<indexedmzML xmlns="http://psi.hupo.org/ms/mzml">\n<mzML ', 1)
    at = len(body)
    offsets = [m.start() for m in re.finditer(rb"<spectrum ", body)]
    index = b'<indexList count="1">\n<index name="spectrum">\n' + b"".join(
        b'<offset idRef="scan=%d">%d</offset>\n' % (i + 1, o) for i, o in enumerate(offsets)
    )
    index += b"</index>\n</indexList>\n<indexListOffset>%d</indexListOffset>\n" % at
    return body + index + b"<fileChecksum>0</fileChecksum>\n</indexedmzML>\n"


@pytest.mark.parametrize("indexed", [True, False], ids=["indexed", "scanned"])
@pytest.mark.parametrize("where", ["comment", "fileDescription"])
def test_parameter_groups_after_the_first_64_kib(tmp_path, indexed, where):
    filler = b"<!--" + b"x" * 70_000 + b"-->\n"
    if where == "fileDescription":
        contact = b'<cvParam cvRef="MS" accession="MS:1000586" name="contact name" value="%s"/>\n'
        filler = (
            b"  <fileDescription><fileContent/>\n"
            + b"".join(contact % (b"n%05d" % i) for i in range(1000))
            + b"  </fileDescription>\n"
        )
    data = long_header(random_spectra(20, seed=23), indexed, filler)
    assert data.index(b"<referenceableParamGroupList") > 64 * 2**10
    url = write(tmp_path / "g.mzML", data)
    expected = reference(url)
    assert {s.get("ms level") for s in expected} == {2}
    for parts, got in every_plan(url, len(data)):
        assert {p["planned_by"] for p in parts} == {"index" if indexed else "scan"}
        assert_same(got, expected)


def test_a_parameter_group_list_that_never_closes_is_refused(tmp_path):
    data = long_header(
        random_spectra(3), False, b"", groups=GROUPS[: -len(b"</referenceableParamGroupList>\n")]
    )
    url = write(tmp_path / "open.mzML", data[: data.index(b"<spectrum ")])
    at = data.index(b"<referenceableParamGroupList")
    with pytest.raises(
        FormatError, match=rf"open\.mzML: byte {at}: <referenceableParamGroupList> does not close"
    ):
        partition(url, n=2)


def test_planning_does_not_read_the_chromatograms(tmp_path):
    data = mzml_bytes(random_spectra(50, seed=24), chromatograms=False)
    one = chromatogram_xml()
    one = one[one.index("<chromatogram ") : one.index("</chromatogramList>")]
    each = [one.replace('index="0" id="TIC"', f'index="{i}" id="c{i}"') for i in range(20)]
    big = "".join(  # 20 chromatograms of 200 KB each (an SRM file's are many and large)
        [f'    <chromatogramList count="{len(each)}">\n']
        + [c + "<!--" + "y" * 200_000 + "-->\n" for c in each]
        + ["    </chromatogramList>\n"]
    ).encode()
    at = data.index(b"  </run>")
    old_list = int(re.search(rb"<indexListOffset>(\d+)<", data).group(1))
    data = data[:at] + big + data[at:]
    data = data.replace(
        b"<indexListOffset>%d<" % old_list, b"<indexListOffset>%d<" % (old_list + len(big))
    )
    url = write(tmp_path / "srm.mzML", data)
    assert len(data) > 4_000_000
    for n in (1, 5, 17):
        source = RangeSource(url)
        parts = get("mzml").plan(source, n=n)
        assert parts[0]["planned_by"] == "index" and sum(p["count"] for p in parts) == 50
        assert source.requests <= 5, source.requests
        assert source.bytes_read < 2 * 64 * 2**10 + 64 * 2**10, source.bytes_read
    assert_same([s for p in parts for s in p.read()], reference(url))


def test_a_gzipped_files_uncompressed_reads_are_counted(tmp_path):
    from aifdata.formats.mzml import Inflated

    url = write(tmp_path / "run.mzML.gz", gzip.compress(mzml_bytes(random_spectra(5)), 1))
    inflated = Inflated(RangeSource(url))
    assert len(inflated.read(10, 110)) == 100
    assert (inflated.requests, inflated.bytes_read) == (1, 100)
