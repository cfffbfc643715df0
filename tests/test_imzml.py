"""imzML partitions: runs of pixels over the .ibd, exact against pyimzML pixel by pixel."""

from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
ImzMLWriter = pytest.importorskip("pyimzml.ImzMLWriter").ImzMLWriter
ImzMLParser = pytest.importorskip("pyimzml.ImzMLParser").ImzMLParser

from aifdata import FormatError  # noqa: E402
from aifdata.formats import RangeSource, get, partition, read_all  # noqa: E402
from aifdata.formats import imzml as imzml_format  # noqa: E402
from aifdata.formats._base import KeptMetadata  # noqa: E402

from ._realdata import RealFile  # noqa: E402

COUNTS = (1, 2, 3, 5, 8, 17)


def imzy(name: str, sha256: str) -> RealFile:
    return RealFile("imzy", "0.3.0", f"tests/_test_data/{name}", sha256, "BSD-3-Clause")


#: The imzML project's own example images (Thermo RAW converted), as imzy ships them.
REAL = {
    "Example_Continuous": (
        imzy("Example_Continuous.imzML",
             "04237b10d61db093d2c5529f380d676d400383e8cbe55b3fe0e09bb97ae2ea8e"),
        imzy("Example_Continuous.ibd",
             "e8f2fefb1a0b6947b9ad78c773d20c1381f7728e060010c8d2f174ac414ff099"),
    ),
    "Example_Processed": (
        imzy("Example_Processed.imzML",
             "066671590f01d4820b7ac5bd1f669d23dca04a91e40c08a35f7d0c6d6c729480"),
        imzy("Example_Processed.ibd",
             "1a5410dd26e844f714b53db7506d8474a40af37323bf19396df68ea7733ded9a"),
    ),
}  # fmt: skip


def write_image(
    path: Path,
    mode: str,
    width: int = 7,
    height: int = 5,
    mz_dtype=np.float64,
    intensity_dtype=np.float32,
    seed: int = 1,
    compressed: bool = False,
) -> str:
    """An image written by pyimzML's own writer (processed: spectra of 1 to 79 peaks)."""
    rng = np.random.default_rng(seed)
    shared = np.sort(rng.uniform(100, 1000, 50)).astype(mz_dtype)
    from pyimzml.compression import NoCompression, ZlibCompression

    packing = ZlibCompression() if compressed else NoCompression()
    with ImzMLWriter(str(path), mode=mode, mz_dtype=mz_dtype, intensity_dtype=intensity_dtype,
                     mz_compression=packing, intensity_compression=packing) as writer:  # fmt: skip
        for number in range(width * height):
            x, y = number % width + 1, number // width + 1
            if mode == "continuous":
                mz = shared
            else:
                k = int(rng.integers(1, 80))
                mz = np.sort(rng.uniform(100, 1000, k)).astype(mz_dtype)
            intensity = rng.uniform(0, 1e4, len(mz)).astype(intensity_dtype)
            writer.addSpectrum(mz, intensity, (x, y, 1))
    return str(path)


def assert_same(pixels, path: str) -> None:
    parser = ImzMLParser(path)
    assert [p.index for p in pixels] == list(range(len(parser.coordinates)))
    for pixel in pixels:
        x, y, z = parser.coordinates[pixel.index]
        assert (pixel.x, pixel.y) == (x, y)
        assert pixel.z in (z, None)
        mz, intensity = parser.getspectrum(pixel.index)
        np.testing.assert_array_equal(pixel.mz, mz)
        np.testing.assert_array_equal(pixel.intensity, intensity)
        assert pixel.mz.dtype == mz.dtype and pixel.intensity.dtype == intensity.dtype


def every_plan(url: str):
    size = Path(url[: -len(".imzML")] + ".ibd").stat().st_size
    plans = [partition(url, n=n) for n in COUNTS]
    plans.append(partition(url, target_bytes=max(1, size // 5)))
    for parts in plans:
        assert [p.ordinal for p in parts] == list(range(len(parts)))
        assert [p["first"] for p in parts[1:]] == [p["stop"] for p in parts[:-1]]
        assert all(len(pickle.dumps(p)) < 1024 for p in parts)
        yield parts, [pixel for p in parts for pixel in p.read()]


@pytest.mark.parametrize("mode", ["continuous", "processed"])
@pytest.mark.parametrize(
    "dtypes", [(np.float64, np.float32), (np.float32, np.float64)], ids=["mz64", "mz32"]
)
def test_every_plan_reads_what_pyimzml_reads(tmp_path, mode, dtypes):
    url = write_image(tmp_path / "image.imzML", mode, mz_dtype=dtypes[0], intensity_dtype=dtypes[1])
    for parts, pixels in every_plan(url):
        assert {p["mode"] for p in parts} == {mode}
        assert_same(pixels, url)
    if mode == "continuous":  # one shared m/z array
        pixels = [px for p in partition(url, n=3) for px in p.read()]
        assert len({id(px.mz) for px in pixels}) == 3


@pytest.mark.parametrize("mode", ["continuous", "processed"])
def test_zlib_compressed_arrays(tmp_path, mode):
    """pyimzML writes zlib arrays but its parser does not inflate them: the reference is
    pyimzML on the same image written plain."""
    url = write_image(tmp_path / "z.imzML", mode, compressed=True, seed=3)
    plain = write_image(tmp_path / "p.imzML", mode, seed=3)
    assert b"MS:1000574" in Path(url).read_bytes()
    for _, pixels in every_plan(url):
        assert_same(pixels, plain)


def test_empty_pixels(tmp_path):
    """pyimzML's writer cannot write an empty spectrum: every fourth pixel is emptied here."""
    url = write_image(tmp_path / "image.imzML", "processed")
    path = Path(url)
    text = path.read_text("iso-8859-1")
    spectra = text.split("<spectrum ")
    for i in range(1, len(spectra), 4):
        spectra[i] = re.sub(r'(name="external (array|encoded) length" value=")\d+"', r'\g<1>0"',
                            spectra[i])  # fmt: skip
    path.write_text("<spectrum ".join(spectra), "iso-8859-1")
    for _, pixels in every_plan(url):
        assert sum(len(px.mz) == 0 for px in pixels) == 9
        assert_same(pixels, url)


def test_reading_in_a_process_that_did_not_plan_reads_the_pixels_xml_range(tmp_path, monkeypatch):
    url = write_image(tmp_path / "image.imzML", "processed", width=20, height=10)
    parts = partition(url, n=4)
    monkeypatch.setattr(imzml_format, "_KEPT", KeptMetadata())  # as in a fresh worker
    source = RangeSource(url)
    pixels = get("imzml").read(parts[2], source=source)
    part = parts[2]
    assert source.requests == 1 and source.bytes_read == part["xml_end"] - part["xml_start"]
    assert_same([*(px for p in parts[:2] for px in p.read()), *pixels,
                 *parts[3].read()], url)  # fmt: skip


def test_planning_streams_the_imzml_once_and_keeps_it(tmp_path):
    url = write_image(tmp_path / "image.imzML", "processed", width=30, height=30)
    first = RangeSource(url)
    get("imzml").plan(first, n=8)
    assert first.requests <= 4  # head, the stream (one read here), the .ibd's UUID
    again = RangeSource(url)
    parts = get("imzml").plan(again, n=17)
    assert again.requests <= 2 and len(parts) == 17


def test_reading_fetches_the_ibd_in_few_requests(tmp_path, monkeypatch):
    url = write_image(tmp_path / "image.imzML", "processed", width=20, height=20)
    parts = partition(url, n=4)
    reads = []
    real = RangeSource.read

    def counting(self, start, end):
        reads.append((self.url, start, end))
        return real(self, start, end)

    monkeypatch.setattr(RangeSource, "read", counting)
    for p in parts:
        reads.clear()
        p.read()
        assert len([r for r in reads if r[0].endswith(".ibd")]) == 1


def test_read_all_and_tables(tmp_path):
    url = write_image(tmp_path / "image.imzML", "continuous")
    parts = partition(url, n=3)
    assert [px.index for _, pixels in read_all(parts) for px in pixels] == list(range(35))
    frame = get("imzml").to_pandas(parts[1])
    assert list(frame.columns) == ["index", "x", "y", "z", "mz", "intensity"]
    assert len(frame) == parts[1]["stop"] - parts[1]["first"]
    table = get("imzml").to_arrow(parts[1])
    assert table.num_rows == len(frame)
    assert table.column("intensity")[0].as_py() == parts[1].read()[0].intensity.tolist()


# -- a wrong .ibd, malformed metadata -----------------------------------------------------


def test_an_ibd_of_another_imzml_is_refused_naming_both(tmp_path):
    url = write_image(tmp_path / "a.imzML", "processed", seed=1)
    write_image(tmp_path / "b.imzML", "processed", seed=1)
    shutil.copy(tmp_path / "b.ibd", tmp_path / "a.ibd")  # same layout, other UUID
    ibd = str(tmp_path / "a.ibd")
    with pytest.raises(FormatError) as caught:
        partition(url, n=2)
    message = str(caught.value)
    assert message.startswith(f"{ibd}: byte 0: UUID ") and url in message
    assert "belongs to another imzML" in message


def test_a_short_ibd_is_refused(tmp_path):
    url = write_image(tmp_path / "a.imzML", "processed")
    ibd = tmp_path / "a.ibd"
    ibd.write_bytes(ibd.read_bytes()[:-100])
    with pytest.raises(FormatError, match=rf"{re.escape(str(ibd))}: byte \d+: .*truncated"):
        partition(url, n=2)


def test_an_ibd_changed_after_planning_is_not_read(tmp_path):
    url = write_image(tmp_path / "a.imzML", "processed")
    parts = partition(url, n=2)
    ibd = tmp_path / "a.ibd"
    ibd.write_bytes(ibd.read_bytes() + b"\0" * 8)
    with pytest.raises(FormatError, match=rf"{re.escape(str(ibd))}: changed since"):
        parts[0].read()


def test_a_missing_ibd_is_refused(tmp_path):
    url = write_image(tmp_path / "a.imzML", "processed")
    (tmp_path / "a.ibd").unlink()
    with pytest.raises(FormatError, match=rf"{re.escape(url)}: no binary file beside it"):
        partition(url, n=2)


def test_a_truncated_imzml_is_refused(tmp_path):
    url = write_image(tmp_path / "a.imzML", "processed")
    path = Path(url)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(FormatError, match=rf"{re.escape(url)}: byte \d+: .*truncated"):
        partition(url, n=2)


def test_broken_metadata_names_the_byte(tmp_path):
    url = write_image(tmp_path / "a.imzML", "processed")
    path = Path(url)
    data = path.read_bytes()
    at = data.index(b'accession="IMS:1000102"', data.index(b"<spectrum ") + 1)
    path.write_bytes(data[:at] + b"<" + data[at + 1 :])
    with pytest.raises(FormatError, match=rf"{re.escape(url)}: byte \d+: not well-formed XML"):
        partition(url, n=2)
    negative = re.sub(rb'(name="external offset" value=")(\d+)"', rb'\g<1>-\2"', data, count=3)
    path.write_bytes(negative)
    with pytest.raises(FormatError, match=rf"{re.escape(url)}: byte \d+: a negative external"):
        partition(url, n=2)
    path.write_bytes(b"<?xml version='1.0'?><html/>")
    with pytest.raises(FormatError, match=rf"{re.escape(url)}: byte 0: this is not imzML"):
        partition(url, n=2)


# -- real files ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REAL))
def test_the_imzml_example_images(real_file, name):
    """The imzML project's example images, continuous and processed, as imzy ships them."""
    xml, ibd = REAL[name]
    url = str(real_file(xml))
    assert real_file(ibd).parent == Path(url).parent
    for _, pixels in every_plan(url):
        assert len(pixels) == 9
        assert_same(pixels, url)


# -- over S3 -------------------------------------------------------------------------------


@pytest.mark.s3
def test_an_image_on_s3_through_aif(s3_fs, tmp_path):
    url = write_image(tmp_path / "image.imzML", "processed", width=12, height=9)
    s3_fs.pipe("s3only/msi/image.imzML", Path(url).read_bytes())
    s3_fs.pipe("s3only/msi/image.ibd", (tmp_path / "image.ibd").read_bytes())
    remote = "aif://s3only/msi/image.imzML"
    parts = get("imzml").plan(RangeSource(remote, s3_fs.config), n=5)
    assert len(parts) == 5
    pixels = [px for _, got in read_all(parts, config=s3_fs.config) for px in got]
    assert_same(pixels, url)


def test_sources_made_without_the_initialiser_have_all_it_sets(tmp_path):
    """The .ibd beside an imzML and a gzipped mzML's uncompressed view are RangeSources
    built on the filesystem already resolved: each has everything RangeSource sets."""
    import gzip

    from aifdata.formats.mzml import Inflated

    url = write_image(tmp_path / "a.imzML", "continuous")
    plain = RangeSource(url)
    wanted = set(vars(plain))
    ibd = imzml_format.ibd_source(plain)
    assert wanted <= set(vars(ibd)) and ibd.path.endswith(".ibd")
    assert ibd.read(0, 16) and (ibd.requests, ibd.bytes_read) == (1, 16)
    gz = tmp_path / "x.mzML.gz"
    gz.write_bytes(gzip.compress(b"<mzML>" + b" " * 1000 + b"</mzML>"))
    inflated = Inflated(RangeSource(str(gz)))
    assert wanted <= set(vars(inflated))
    assert inflated.head(6) == b"<mzML>" and inflated.requests == 1
