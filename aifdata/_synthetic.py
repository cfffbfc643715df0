"""Seeded synthetic files in the formats aifdata partitions: for the demo and notebooks.

Each writer returns the bytes of a small but real file: FASTQ whose quality
lines often start with '@', a tiled GeoTIFF with georeferencing (UTM zone 33N,
10 m pixels), a ROOT file with a TTree written by uproot, a VCF with
multi-allelic lines, and a LAZ point cloud written by laspy.
"""

from __future__ import annotations

import io
import random
import tempfile
from pathlib import Path

#: EPSG code, origin (x, y) and pixel size of the synthetic GeoTIFF.
GEOTIFF_EPSG = 32633
GEOTIFF_ORIGIN = (500_000.0, 4_600_000.0)
GEOTIFF_PIXEL = 10.0


def fastq(records: int, seed: int = 0, length: int = 100) -> bytes:
    """``records`` FASTQ records of about ``length`` bases (half the quality lines start '@')."""
    rng = random.Random(seed)
    out = []
    for i in range(records):
        n = rng.randint(length // 2, length)
        sequence = "".join(rng.choices("ACGT", k=n))
        quality = "".join(chr(rng.randint(35, 74)) for _ in range(n))
        if rng.random() < 0.5:
            quality = "@" + quality[1:]
        out.append(f"@read{i} lane={1 + i % 8}\n{sequence}\n+\n{quality}\n")
    return "".join(out).encode()


def geotiff(side: int = 1024, tile: int = 256, seed: int = 0) -> bytes:
    """A ``side`` x ``side`` uint16 GeoTIFF in zlib tiles, with a geotransform and a CRS."""
    import numpy as np
    import tifffile

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    terrain = 1000 + 400 * np.sin(6 * x) * np.cos(4 * y) + rng.normal(0, 20, (side, side))
    pixel, (east, north) = GEOTIFF_PIXEL, GEOTIFF_ORIGIN
    geokeys = (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, GEOTIFF_EPSG)
    extratags = [
        (33550, "d", 3, (pixel, pixel, 0.0), False),  # ModelPixelScale
        (33922, "d", 6, (0.0, 0.0, 0.0, east, north, 0.0), False),  # ModelTiepoint
        (34735, "H", len(geokeys), geokeys, False),  # GeoKeyDirectory
    ]
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        terrain.astype("uint16"),
        tile=(tile, tile),
        compression="zlib",
        extratags=extratags,
    )
    return buffer.getvalue()


def root(entries: int = 100_000, seed: int = 0, basket: int = 10_000) -> bytes:
    """A ROOT file with a TTree ``events`` (px, py, pz, nhits), in baskets of ``basket``."""
    import numpy as np
    import uproot

    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="aifdata-synthetic-") as tmp:
        path = Path(tmp) / "events.root"
        with uproot.recreate(path) as f:
            tree = f.mktree("events", {"px": "f8", "py": "f8", "pz": "f8", "nhits": "i4"})
            for start in range(0, entries, basket):
                k = min(basket, entries - start)
                tree.extend(
                    {
                        "px": rng.normal(size=k),
                        "py": rng.normal(size=k),
                        "pz": rng.normal(size=k),
                        "nhits": rng.integers(0, 50, k, dtype="i4"),
                    }
                )
        return path.read_bytes()


def vcf(records: int, samples: int = 4, seed: int = 0, contigs: int = 3) -> bytes:
    """A VCF 4.2 of ``records`` variants over ``contigs`` contigs, with ``samples`` genotype
    columns; about one line in five is multi-allelic."""
    rng = random.Random(seed)
    names = [f"chr{c + 1}" for c in range(contigs)]
    header = [
        "##fileformat=VCFv4.2",
        *(f"##contig=<ID={name},length=100000000>" for name in names),
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Total depth">',
        '##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#"
        + "\t".join(
            ["CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"]
            + [f"S{s + 1}" for s in range(samples)]
        ),
    ]
    lines = []
    per_contig = -(-records // contigs)
    for i in range(records):
        contig = names[min(i // per_contig, contigs - 1)]
        pos = 1000 + (i % per_contig) * 97 + rng.randint(0, 50)
        ref = rng.choice("ACGT")
        alts = rng.sample([b for b in "ACGT" if b != ref], 2 if rng.random() < 0.2 else 1)
        af = ",".join(f"{rng.random():.3f}" for _ in alts)
        genotypes = [f"{rng.randint(0, len(alts))}/{rng.randint(0, len(alts))}"
                     for _ in range(samples)]  # fmt: skip
        info = f"DP={rng.randint(5, 200)};AF={af}"
        fields = [contig, str(pos), f"rs{i}", ref, ",".join(alts), f"{rng.uniform(10, 99):.1f}"]
        lines.append("\t".join([*fields, "PASS", info, "GT", *genotypes]))
    return ("\n".join(header + lines) + "\n").encode()


def laz(points: int, seed: int = 0, compressed: bool = True) -> bytes:
    """A LAS 1.4 point cloud (point format 6) of ``points`` points on a hilly 1 km square,
    LAZ-compressed by laspy's lazrs backend unless ``compressed=False``."""
    import laspy
    import numpy as np

    rng = np.random.default_rng(seed)
    header = laspy.LasHeader(point_format=6, version="1.4")
    header.offsets = np.array([GEOTIFF_ORIGIN[0], GEOTIFF_ORIGIN[1], 0.0])
    header.scales = np.array([0.01, 0.01, 0.01])
    cloud = laspy.LasData(header)
    x = rng.uniform(0, 1000, points)
    y = rng.uniform(0, 1000, points)
    cloud.x = GEOTIFF_ORIGIN[0] + x
    cloud.y = GEOTIFF_ORIGIN[1] + y
    cloud.z = 100 + 20 * np.sin(x / 90) * np.cos(y / 120) + rng.normal(0, 0.3, points)
    cloud.intensity = rng.integers(0, 4096, points, dtype=np.uint16)
    cloud.classification = rng.choice(np.array([1, 2, 5, 6], dtype=np.uint8), points)
    cloud.gps_time = np.sort(rng.uniform(0, 3600, points))
    out = io.BytesIO()
    cloud.write(out, do_compress=compressed)
    return out.getvalue()
