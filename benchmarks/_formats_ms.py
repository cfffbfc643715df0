"""Mass spectrometry formats for bench_formats: an indexed mzML and an imzML image on S3.

``bench_ms(server, home, args)`` writes, seeded:

* an indexed mzML of about ``args.mzml_mib`` MiB (default 100; 64-bit m/z and 32-bit
  intensities, zlib, 500 peaks per spectrum), then plans it from its index, plans the
  same spectra without an index (one scan), and reads every partition against pyteomics
  reading the whole object (fetched whole through ``aif://``, parsed from memory); a
  quarter-size mzML without an index is planned by one scan;
* a processed-mode imzML of ``args.imzml_pixels`` pixels (default 100 x 100, 200 peaks
  each) with pyimzML's writer, then plans it (one stream of the imzML) and reads every
  partition against pyimzML's parser on the whole dataset (both files downloaded once to
  ``home``, since ImzMLParser reads a local path).

It returns ``(rows, plans)`` in the shapes of ``benchmarks/bench_formats.py``: rows
``(measure, case, value, unit, note)`` and plans ``(format, case, partitions, requests,
bytes_read, seconds)``.
"""

from __future__ import annotations

import argparse
import base64
import io
import time
import zlib
from pathlib import Path
from typing import Any

import aifdata
from aifdata import _seaweedfs
from aifdata.formats import RangeSource, get, read_all

BUCKET = "aifdata-bench-formats"  # the bucket bench_formats mounts as aif://bench


def bench_ms(
    server: _seaweedfs.SeaweedFS, home: Path, args: argparse.Namespace
) -> tuple[list[tuple], list[tuple]]:
    rows: list[tuple] = []
    plans: list[tuple] = []
    _mzml(server, args, rows, plans)
    _imzml(server, home, args, rows, plans)
    return rows, plans


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def _best(fn: Any, repeat: int) -> tuple[float, Any]:
    return min((_timed(fn) for _ in range(repeat)), key=lambda r: r[0])


def _upload(server: _seaweedfs.SeaweedFS, key: str, data: bytes) -> None:
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_chunksize=64 * 2**20, max_concurrency=4)
    server.client().upload_fileobj(io.BytesIO(data), BUCKET, key, Config=config)


# -- mzML -------------------------------------------------------------------------------


def _array(values: Any, accession: str, name: str, precision: str, bits: int) -> bytes:
    text = base64.b64encode(zlib.compress(values.tobytes(), 1)).decode()
    return (
        f'<binaryDataArray encodedLength="{len(text)}">'
        f'<cvParam cvRef="MS" accession="{precision}" name="{bits}-bit float" value=""/>'
        '<cvParam cvRef="MS" accession="MS:1000574" name="zlib compression" value=""/>'
        f'<cvParam cvRef="MS" accession="{accession}" name="{name}" value=""/>'
        f"<binary>{text}</binary></binaryDataArray>\n"
    ).encode()


def mzml_payload(
    size: int, peaks: int = 500, seed: int = 11, indexed: bool = True
) -> tuple[bytes, int]:
    """About ``size`` bytes of mzML (with a correct offset index when ``indexed``)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = bytearray(b'<?xml version="1.0" encoding="utf-8"?>\n')
    if indexed:
        out += b'<indexedmzML xmlns="http://psi.hupo.org/ms/mzml">\n'
    out += b'<mzML xmlns="http://psi.hupo.org/ms/mzml" version="1.1.0">\n<run id="bench">\n'
    out += b'<spectrumList count="0" defaultDataProcessingRef="dp">\n'
    offsets = []
    i = 0
    while len(out) < size:
        mz = np.sort(rng.uniform(100, 2000, peaks))
        intensity = rng.uniform(0, 1e6, peaks).astype("<f4")
        offsets.append(len(out))
        out += (
            f'<spectrum index="{i}" id="scan={i + 1}" defaultArrayLength="{peaks}">'
            f'<cvParam cvRef="MS" accession="MS:1000511" name="ms level" value="{1 + i % 2}"/>'
            '<scanList count="1"><scan><cvParam cvRef="MS" accession="MS:1000016"'
            f' name="scan start time" value="{i * 0.01:.3f}" unitAccession="UO:0000031"'
            ' unitName="minute"/></scan></scanList><binaryDataArrayList count="2">\n'
        ).encode()
        out += _array(mz, "MS:1000514", "m/z array", "MS:1000523", 64)
        out += _array(intensity, "MS:1000515", "intensity array", "MS:1000521", 32)
        out += b"</binaryDataArrayList></spectrum>\n"
        i += 1
    out += b"</spectrumList>\n</run>\n</mzML>\n"
    if indexed:
        at = len(out)
        out += b'<indexList count="1"><index name="spectrum">\n'
        for k, offset in enumerate(offsets):
            out += f'<offset idRef="scan={k + 1}">{offset}</offset>\n'.encode()
        out += f"</index></indexList>\n<indexListOffset>{at}</indexListOffset>\n".encode()
        out += b"</indexedmzML>\n"
    return bytes(out), i


def _mzml(server: Any, args: argparse.Namespace, rows: list, plans: list) -> None:
    mib = getattr(args, "mzml_mib", None) or getattr(args, "formats_mib", 100)
    parts_wanted = getattr(args, "partitions", 256)
    repeat = getattr(args, "repeat", 2)
    data, spectra = mzml_payload(mib * 2**20)
    _upload(server, "ms/run.mzML", data)
    plain, _ = mzml_payload(max(1, mib // 4) * 2**20, indexed=False)
    _upload(server, "ms/run-noindex.mzML", plain)
    del plain
    url = "aif://bench/ms/run.mzML"
    size = len(data)
    del data
    plugin = get("mzml")
    for case, where, n in (
        (f"{mib} MiB, index", url, parts_wanted),
        (f"{mib} MiB, planned again", url, 16),  # what the first plan found is kept
        (
            f"{max(1, mib // 4)} MiB, no index: a scan",
            "aif://bench/ms/run-noindex.mzML",
            parts_wanted,
        ),
    ):
        source = RangeSource(where)
        seconds, parts = _timed(lambda s=source, n=n: plugin.plan(s, n=n))
        plans.append(("mzml", case, len(parts), source.requests, source.bytes_read, seconds))
        per = source.bytes_read / 2**10 / max(len(parts), 1)
        rows.append((f"mzML plan ({case})", f"{len(parts)} partitions", seconds * 1e3, "ms",
                     f"{source.requests} requests, {per:.1f} KiB per partition"))  # fmt: skip
    parts = plugin.plan(RangeSource(url), n=16)

    def ours() -> int:
        return sum(len(spectra) for _, spectra in read_all(parts))

    def pyteomics_whole() -> int:
        from pyteomics import mzml

        whole = aifdata.filesystem(catalog=False).cat_file(url)
        with mzml.read(io.BytesIO(whole)) as reader:
            return sum(1 for _ in reader)

    peer_s, peer_n = _best(pyteomics_whole, repeat)
    ours_s, ours_n = _best(ours, repeat)
    assert ours_n == peer_n == spectra, (ours_n, peer_n, spectra)
    print(f"  mzml: {len(parts)} partitions {spectra / ours_s:,.0f} spectra/s,"
          f" pyteomics {spectra / peer_s:,.0f}")  # fmt: skip
    rows += [
        ("mzML partitions, all", f"{len(parts)} partitions", spectra / ours_s, "spec/s",
         f"{size / ours_s / 1e6:.0f} MB/s, {spectra} spectra"),
        ("mzML one pyteomics read", "peer", spectra / peer_s, "spec/s", "whole object, in memory"),
        ("  ratio partitions / pyteomics", "", peer_s / ours_s, "x", ""),
    ]  # fmt: skip


# -- imzML ------------------------------------------------------------------------------


def _imzml(server: Any, home: Path, args: argparse.Namespace, rows: list, plans: list) -> None:
    import numpy as np
    from pyimzml.ImzMLParser import ImzMLParser
    from pyimzml.ImzMLWriter import ImzMLWriter

    side = getattr(args, "imzml_side", None) or min(100, 8 * getattr(args, "formats_mib", 128))
    repeat = getattr(args, "repeat", 2)
    rng = np.random.default_rng(13)
    local = home / "image.imzML"
    with ImzMLWriter(str(local), mode="processed", mz_dtype=np.float64,
                     intensity_dtype=np.float32) as writer:  # fmt: skip
        for number in range(side * side):
            mz = np.sort(rng.uniform(100, 1000, 200))
            writer.addSpectrum(mz, rng.uniform(0, 1e4, 200).astype("f4"),
                               (number % side + 1, number // side + 1, 1))  # fmt: skip
    _upload(server, "msi/image.imzML", local.read_bytes())
    _upload(server, "msi/image.ibd", local.with_suffix(".ibd").read_bytes())
    url = "aif://bench/msi/image.imzML"
    pixels = side * side
    plugin = get("imzml")
    first = RangeSource(url)
    seconds, parts = _timed(lambda: plugin.plan(first, n=16))
    case = f"{pixels} pixels, processed"
    plans.append(("imzml", case, len(parts), first.requests, first.bytes_read, seconds))
    rows.append(("imzML plan (streams the imzML)", f"{len(parts)} partitions", seconds * 1e3,
                 "ms", f"{first.requests} requests, {first.bytes_read / 2**10:.0f} KiB"))  # fmt: skip

    def ours() -> int:
        return sum(len(got) for _, got in read_all(parts))

    def pyimzml_whole() -> int:
        fs = aifdata.filesystem(catalog=False)
        target = home / "peer"
        target.mkdir(exist_ok=True)
        for suffix in (".imzML", ".ibd"):
            (target / f"image{suffix}").write_bytes(fs.cat_file(url.replace(".imzML", suffix)))
        parser = ImzMLParser(str(target / "image.imzML"))
        for i in range(len(parser.coordinates)):
            parser.getspectrum(i)
        return len(parser.coordinates)

    peer_s, peer_n = _best(pyimzml_whole, repeat)
    ours_s, ours_n = _best(ours, repeat)
    assert ours_n == peer_n == pixels, (ours_n, peer_n, pixels)
    print(f"  imzml: {len(parts)} partitions {pixels / ours_s:,.0f} pixels/s,"
          f" pyimzML {pixels / peer_s:,.0f}")  # fmt: skip
    rows += [
        ("imzML partitions, all", f"{len(parts)} partitions", pixels / ours_s, "pix/s",
         "metadata kept from planning"),
        ("imzML one pyimzML parse", "peer", pixels / peer_s, "pix/s",
         "both files downloaded, then parsed"),
        ("  ratio partitions / pyimzML", "", peer_s / ours_s, "x", ""),
    ]  # fmt: skip
