"""HDF5 for bench_formats: planning cost, partitions vs h5py, kerchunk references vs h5py.

A synthetic chunked HDF5 file (``--formats-mib`` MiB of float32, chunks of
1 MiB, gzip level 1 + shuffle) on SeaweedFS, read through ``aif://``:

* planning ``--partitions / 4`` row ranges: requests, bytes, time;
* every partition read (``read_all``) vs h5py reading the whole variable from
  one fsspec file object over ``aif://`` (rows/s and the ratio);
* ``aifdata.refs.write`` (kerchunk's ``SingleHdf5ToZarr``) time, and xarray
  reading the variable through the references vs the same h5py read.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

from aifdata import _seaweedfs

BUCKET = "aifdata-bench-formats"  # the bucket bench_formats makes and mounts as ``bench``
KEY = "climate/chunked.h5"
URL = f"aif://bench/{KEY}"
COLUMNS = 256
CHUNK_ROWS = 1024  # 1 MiB of float32 per chunk


def synthetic(mib: int) -> tuple[bytes, int]:
    """The file's bytes and its row count: a smooth field plus noise, rounded (gzip finds
    something to take out, as in real climate data)."""
    import h5py
    import numpy as np

    rows = max(CHUNK_ROWS, mib * 2**20 // (COLUMNS * 4))
    rng = np.random.default_rng(11)
    base = np.sin(np.linspace(0, 20, COLUMNS, dtype="f4"))
    data = np.empty((rows, COLUMNS), "f4")
    for start in range(0, rows, 8 * CHUNK_ROWS):
        block = data[start : start + 8 * CHUNK_ROWS]
        noise = rng.normal(0, 0.1, block.shape).astype("f4")
        block[:] = np.round(280 + 10 * base + noise, 2)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_dataset("temperature", data=data, chunks=(CHUNK_ROWS, COLUMNS),
                         compression="gzip", compression_opts=1, shuffle=True)  # fmt: skip
    return buffer.getvalue(), rows


def best(fn, repeat: int):  # type: ignore[no-untyped-def]
    """(seconds, result) of the fastest of ``repeat`` runs."""
    runs = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        result = fn()
        runs.append((time.perf_counter() - start, result))
    return min(runs, key=lambda run: run[0])


def bench_hdf5(
    server: _seaweedfs.SeaweedFS, home: Path, args: argparse.Namespace
) -> tuple[list[tuple], list[tuple]]:
    import fsspec
    import h5py
    from boto3.s3.transfer import TransferConfig

    import aifdata.refs
    from aifdata.formats import RangeSource, get, read_all

    data, rows = synthetic(args.formats_mib)
    server.client().upload_fileobj(io.BytesIO(data), BUCKET, KEY,
                                   Config=TransferConfig(multipart_threshold=2**40))  # fmt: skip
    source = RangeSource(URL)
    n = max(1, args.partitions // 4)
    plan_s, parts = best(lambda: get("hdf5").plan(source, n=n), 1)
    plans = [("hdf5", f"{args.formats_mib} MiB array, gzip", len(parts), source.requests,
              source.bytes_read, plan_s)]  # fmt: skip

    def ours() -> int:
        return sum(len(array) for _, array in read_all(parts, prefetch=args.prefetch))

    def peer() -> int:
        with fsspec.open(URL, "rb") as raw, h5py.File(raw, "r") as f:
            return len(f["temperature"][:])

    peer_s, peer_n = best(peer, args.repeat)
    ours_s, ours_n = best(ours, args.repeat)
    assert ours_n == peer_n == rows
    refs_url = f"aif://bench/{KEY}.refs.json"
    refs_s, written = best(lambda: aifdata.refs.write(URL, refs_url, overwrite=True), 1)

    def through_refs() -> int:
        return len(aifdata.refs.open(refs_url, mask_and_scale=False)["temperature"].values)

    xr_s, xr_n = best(through_refs, args.repeat)
    assert xr_n == rows
    mib = len(data) / 2**20
    print(f"  hdf5: {len(parts)} partitions {rows / ours_s:,.0f} rows/s, h5py {rows / peer_s:,.0f};"
          f" refs {refs_s:.2f} s, xarray via refs {rows / xr_s:,.0f} rows/s")  # fmt: skip
    note = f"{mib:.1f} MiB file, {COLUMNS} float32 columns, 1 MiB chunks, gzip 1 + shuffle"
    return [
        ("HDF5 partitions, all", f"{len(parts)} partitions", rows / ours_s, "rows/s", note),
        ("HDF5 one h5py read via aif://", "peer", rows / peer_s, "rows/s", "fsspec file object"),
        ("  ratio partitions / h5py", "", peer_s / ours_s, "x", ""),
        ("HDF5 refs (kerchunk) written", f"{written.references} keys", refs_s, "s", "json"),
        ("HDF5 xarray via refs", "aif:// chunks", rows / xr_s, "rows/s", "zarr over refs"),
        ("  ratio refs / h5py", "", peer_s / xr_s, "x", ""),
    ], plans  # fmt: skip
