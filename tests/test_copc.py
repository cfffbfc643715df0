"""COPC partitions: runs of octree nodes from the hierarchy, each point once, as laspy queries.

laspy reads COPC but cannot write it, so :func:`write_copc` below is a tiny writer for the
tests: points go to octree nodes (a node's points lie in its cube), each node is one LAZ
chunk compressed by lazrs (laszip's variable-size chunks), and the hierarchy is one root
page, optionally with the subtrees of one level in child pages. Real files: laspy's own
``simple.copc.laz`` and ``simple_with_page.copc.laz`` (written by PDAL; four levels).
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import pytest

laspy = pytest.importorskip("laspy")
lazrs = pytest.importorskip("lazrs")
import numpy as np  # noqa: E402
from laspy.vlrs.vlrlist import VLRList  # noqa: E402

from aifdata import FormatError  # noqa: E402
from aifdata.formats import RangeSource, detect, get, partition, read_all  # noqa: E402

from ._realdata import RealFile  # noqa: E402

COUNTS = (1, 2, 3, 5, 8, 17)
BSD = "BSD-2-Clause (laspy's LICENSE.txt)"
SIMPLE = RealFile(
    "laspy", "2.7.0", "tests/data/simple.copc.laz",
    "c94fa8dfe14ce7bff074231ce9e8aa36f7200342a4ff675c2902205f40e72728", BSD,
)  # fmt: skip
WITH_PAGE = RealFile(
    "laspy", "2.7.0", "tests/data/simple_with_page.copc.laz",
    "f99e0dc8dd57662eb83b6781cea42c66885433d3bd5dd68769303deb1dda9990", BSD,
)  # fmt: skip
ENTRY = struct.Struct("<iiiiQii")
EVLR_HEADER = 60


# -- a tiny COPC writer -------------------------------------------------------------------


def cloud(count: int, point_format: int = 6, seed: int = 0) -> object:
    """Seeded points in a 1000 x 1000 x 100 m box (denser towards one corner)."""
    header = laspy.LasHeader(version="1.4", point_format=point_format)
    header.scales = np.array([0.01, 0.01, 0.01])
    header.offsets = np.array([500_000.0, 5_000_000.0, 0.0])
    las = laspy.LasData(header)
    rng = np.random.default_rng(seed)
    las.x = 500_000 + 1000 * rng.random(count) ** 2
    las.y = 5_000_000 + 1000 * rng.random(count)
    las.z = 100 * rng.random(count)
    las.intensity = rng.integers(0, 2**16, count)
    las.classification = rng.integers(0, 20, count)
    las.gps_time = np.arange(count) + rng.random(count)  # unique: a sort key
    return las


def write_copc(path: Path, las, depth: int = 3, page_level: int | None = None, seed: int = 1):  # type: ignore[no-untyped-def]
    """Write ``las`` as COPC: each point in a random level 0..depth, in the node of that level
    whose cube holds it; nodes written in a shuffled order."""
    points = las.points
    n = len(points)
    x, y, z = (np.asarray(points.x), np.asarray(points.y), np.asarray(points.z))
    mins = np.array([x.min(), y.min(), z.min()])
    maxs = np.array([x.max(), y.max(), z.max()])
    center = (mins + maxs) / 2
    half = float((maxs - mins).max() / 2 + 1.0)
    rng = np.random.default_rng(seed)
    level = np.minimum(rng.geometric(0.35, n) - 1, depth)
    cells = [((c - (m - half)) / (2 * half) * 2**depth).astype(int).clip(0, 2**depth - 1)
             for c, m in zip((x, y, z), center, strict=True)]  # fmt: skip
    keys: dict[tuple[int, int, int, int], list[int]] = {}
    for i in range(n):
        shift = depth - int(level[i])
        key = (int(level[i]), *(int(c[i]) >> shift for c in cells))
        keys.setdefault(key, []).append(i)  # type: ignore[arg-type]
    order = list(keys)
    rng.shuffle(order)  # type: ignore[arg-type]
    fmt = las.header.point_format
    vlr = lazrs.LazVlr.new_for_compression(fmt.id, fmt.num_extra_bytes, True)
    header = las.header
    info = laspy.VLR("copc", 1, "copc info", b"\0" * 160)
    header.vlrs = VLRList([info, laspy.vlrs.known.LasZipVlr(vlr.record_data())])
    header.point_count = n
    header.are_points_compressed = True
    header.mins, header.maxs = mins, maxs
    out = io.BytesIO()
    header.write_to(out)
    start = out.tell() + 8
    compressor = lazrs.LasZipCompressor(out, vlr)
    raw = points.array
    chunks = [np.frombuffer(raw[keys[k]].tobytes(), np.uint8) for k in order]
    compressor.compress_chunks(chunks)
    compressor.done()
    data = bytearray(out.getvalue())
    table_at = struct.unpack_from("<q", data, header.offset_to_point_data)[0]
    sizes = lazrs.read_chunk_table_only(io.BytesIO(bytes(data[table_at:])), vlr)
    entries, at = {}, start
    for key, (count, size) in zip(order, sizes, strict=False):
        entries[key] = (at, size, count)
        at += size
    evlr_at = len(data)
    pages = hierarchy(entries, page_level, evlr_at + EVLR_HEADER)
    payload = b"".join(pages)
    evlr = struct.pack("<H16sHQ32s", 0, b"copc", 1000, len(payload), b"EPT hierarchy")
    data += evlr + payload
    header_size = struct.unpack_from("<H", data, 94)[0]
    copc = struct.pack("<5dQQ2d", *center, half, half / 64, evlr_at + EVLR_HEADER, len(pages[0]),
                       0.0, 0.0) + b"\0" * 88  # fmt: skip
    data[header_size + 54 : header_size + 54 + 160] = copc
    struct.pack_into("<QI", data, 235, evlr_at, 1)  # start of the first EVLR, one EVLR
    path.write_bytes(bytes(data))
    return path


def hierarchy(entries, page_level, at):  # type: ignore[no-untyped-def]
    """Hierarchy pages: the root page first; with ``page_level``, each node of that level and
    its subtree in a child page of its own, named in the root page by a -1 entry."""

    def pack(key, value):  # type: ignore[no-untyped-def]
        return ENTRY.pack(*key, *value)

    entries = dict(entries)
    for level, x, y, z in list(entries):  # a node's ancestors have entries, if no points
        for up in range(1, level + 1):
            entries.setdefault((level - up, x >> up, y >> up, z >> up), (0, 0, 0))
    if page_level is None:
        return [b"".join(pack(k, v) for k, v in sorted(entries.items()))]
    top = {k: v for k, v in entries.items() if k[0] < page_level}
    subtrees: dict = {}
    for key, value in entries.items():
        if key[0] >= page_level:
            shift = key[0] - page_level
            root = (page_level, key[1] >> shift, key[2] >> shift, key[3] >> shift)
            subtrees.setdefault(root, []).append(pack(key, value))
    root_size = ENTRY.size * (len(top) + len(subtrees))
    pages, offset = [], at + root_size
    pointers = {}
    for root, packed in sorted(subtrees.items()):
        page = b"".join(packed)
        pointers[root] = (offset, len(page), -1)
        pages.append(page)
        offset += len(page)
    ensure_parents = {**top, **pointers}
    first = b"".join(pack(k, v) for k, v in sorted(ensure_parents.items()))
    assert len(first) == root_size
    return [first, *pages]


# -- comparing with laspy ------------------------------------------------------------------


def rows(array: np.ndarray) -> np.ndarray:
    """Raw point records, sorted (nodes come in any order)."""
    return np.sort(array, order=["gps_time", "X", "Y", "Z"])


def query(path: Path, **options) -> np.ndarray:  # type: ignore[no-untyped-def]
    with laspy.CopcReader.open(str(path)) as reader:
        return rows(reader.query(**options).array)


def union(parts) -> np.ndarray:  # type: ignore[no-untyped-def]
    return rows(np.concatenate([p.read().array for p in parts]))


def laspy_bounds(bounds):  # type: ignore[no-untyped-def]
    """``(xmin, ymin, xmax, ymax[, zmin, zmax])`` as laspy's ``Bounds``."""
    if bounds is None:
        return None
    mins, maxs = [bounds[0], bounds[1]], [bounds[2], bounds[3]]
    if len(bounds) == 6:
        mins.append(bounds[4])
        maxs.append(bounds[5])
    return laspy.copc.Bounds(np.array(mins), np.array(maxs))


def cube(key, path: Path) -> tuple[float, ...]:  # type: ignore[no-untyped-def]
    """A node's cube, computed as laspy does."""
    with laspy.CopcReader.open(str(path)) as reader:
        info = reader.copc_info
    root = laspy.copc.Bounds(info.center - info.halfsize, info.center + info.halfsize)
    voxel = laspy.copc.VoxelKey()
    voxel.level, voxel.x, voxel.y, voxel.z = key
    found = voxel.bounds(root)
    return (*found.mins, *found.maxs)


def check_exact(path: Path, target_bytes: int, **plan) -> list:  # type: ignore[no-untyped-def]
    """Every plan's partitions hold each point ``query`` gives once, and nothing else."""
    level = None if plan.get("max_level") is None else range(0, plan["max_level"] + 1)
    expected = query(path, bounds=laspy_bounds(plan.get("bounds")), level=level)
    plugin = get("copc")
    plans = [plugin.plan(RangeSource(str(path)), n=n, **plan) for n in COUNTS]
    plans.append(plugin.plan(RangeSource(str(path)), target_bytes=target_bytes, **plan))
    for parts in plans:
        assert [p.ordinal for p in parts] == list(range(len(parts)))
        assert all(len(pickle.dumps(p)) < 1024 for p in parts)
        keys = [node.key for p in parts for node in plugin.nodes(p)]
        assert len(keys) == len(set(keys))  # no node twice
        assert np.array_equal(union(parts), expected)
    return plans


# -- synthetic hard cases --------------------------------------------------------------------


def test_several_levels_each_point_once(tmp_path):
    path = write_copc(tmp_path / "levels.copc.laz", cloud(20_000), depth=4)
    plans = check_exact(path, target_bytes=20_000)
    levels = {node.key[0] for p in plans[0] for node in get("copc").nodes(p)}
    assert levels == {0, 1, 2, 3, 4}
    assert [len(parts) for parts in plans[:-1]] == list(COUNTS)


def test_the_writer_reaches_every_point(tmp_path):
    # 5,000 points down to level 5 still make ~500 nodes of level 5, behind the 128 child
    # pages of level 3 (as 20,000 did): the case laspy 2.5 missed, at 2/5 of the nodes to read
    las = cloud(5_000, seed=12)
    path = write_copc(tmp_path / "all.copc.laz", las, depth=5, page_level=3)
    written = rows(las.points.array)
    with laspy.CopcReader.open(str(path)) as reader:
        assert sum(e.point_count == -1 for e in reader.root_page.entries.values()) > 100
    parts = partition(str(path), n=3)
    ours = union(parts)
    assert sum(p["points"] for p in parts) == 5_000
    assert np.array_equal(ours, written), (
        f"aifdata's partitions give {len(ours):,} points, not the 5,000 written: aifdata is wrong"
    )
    theirs = query(path)
    assert np.array_equal(theirs, written), (
        f"laspy {laspy.__version__}'s CopcReader.query gives {len(theirs):,} points, not the"
        " 5,000 written, while aifdata's partitions give all 5,000: laspy's reader is wrong"
        " (laspy 2.5 is known to miss the points behind child hierarchy pages)"
    )


def test_child_hierarchy_pages(tmp_path):
    path = write_copc(tmp_path / "pages.copc.laz", cloud(8_000, point_format=7, seed=2),
                      depth=3, page_level=2)  # fmt: skip
    with laspy.CopcReader.open(str(path)) as reader:
        assert any(e.point_count == -1 for e in reader.root_page.entries.values())
    check_exact(path, target_bytes=10_000)


def test_bounds_and_max_level_choose_nodes_and_points_as_laspy_does(tmp_path):
    path = write_copc(tmp_path / "query.copc.laz", cloud(20_000, seed=3), depth=4, page_level=2)
    check_exact(path, 10_000, bounds=(500_100.0, 5_000_200.0, 500_400.0, 5_000_600.0))
    check_exact(path, 10_000, bounds=(500_100.0, 5_000_200.0, 500_400.0, 5_000_600.0, 10.0, 30.0))
    check_exact(path, 10_000, max_level=1)
    parts = check_exact(path, 10_000, bounds=(500_000.0, 5_000_000.0, 500_300.0, 5_000_300.0),
                        max_level=2)[0]  # fmt: skip
    for p in parts:  # each partition's extent is the union of its nodes' cubes
        xmin, ymin, zmin, xmax, ymax, zmax = p["extent"]
        assert xmin <= 500_300.0 and ymin <= 5_000_300.0 and zmin < zmax
        assert xmax >= 500_000.0 and ymax >= 5_000_000.0
        cubes = [cube(node.key, path) for node in get("copc").nodes(p)]
        assert p["extent"] == (*np.min(cubes, axis=0)[:3], *np.max(cubes, axis=0)[3:])


def test_a_query_outside_the_cloud_plans_nothing(tmp_path):
    path = write_copc(tmp_path / "far.copc.laz", cloud(1_000), depth=2)
    assert get("copc").plan(RangeSource(str(path)), n=4, bounds=(0.0, 0.0, 10.0, 10.0)) == []
    with pytest.raises(ValueError, match="bounds must be"):
        get("copc").plan(RangeSource(str(path)), bounds=(0.0, 1.0, 2.0))
    with pytest.raises(ValueError, match="max_level"):
        get("copc").plan(RangeSource(str(path)), max_level=-1)


def test_large_runs_of_nodes_are_named_by_first_and_last_key(tmp_path):
    path = write_copc(tmp_path / "many.copc.laz", cloud(20_000, seed=4), depth=3)
    parts = partition(str(path), n=2)
    assert all("span" in p.options and "nodes" not in p.options for p in parts)
    assert all(len(pickle.dumps(p)) < 1024 for p in parts)
    assert np.array_equal(union(parts), query(path))
    small = partition(str(path), n=200)
    assert sum("nodes" in p.options for p in small) > len(small) // 2  # few nodes: listed
    assert np.array_equal(union(small), query(path))


def test_planning_reads_the_header_and_hierarchy_only(tmp_path):
    path = write_copc(tmp_path / "cost.copc.laz", cloud(20_000, seed=5), depth=4, page_level=1)
    source = RangeSource(str(path))
    parts = get("copc").plan(source, n=8)
    with laspy.CopcReader.open(str(path)) as reader:
        pages = 1 + sum(e.point_count == -1 for e in reader.root_page.entries.values())
    assert source.requests == 1 + 1 + 1  # the header, the root page, the child pages at once
    assert source.requests <= 1 + pages
    assert len(parts) == 8
    reading = RangeSource(str(path))
    got = get("copc").read(parts[3], source=reading)
    assert len(got) == parts[3]["points"]


def test_the_name_and_the_first_vlr_pick_copc(tmp_path):
    path = write_copc(tmp_path / "pick.copc.laz", cloud(100), depth=1)
    head = path.read_bytes()[:4096]
    assert detect("a.copc.laz", head).name == "copc"
    assert detect("a.laz", head).name == "las"  # a plain name: read as LAZ (variable chunks)
    assert detect("a.bin", head).name == "copc"
    as_laz = partition(str(path), format="las", n=3)
    assert np.array_equal(np.concatenate([p.read().array for p in as_laz]),
                          laspy.read(path).points.array)  # fmt: skip
    plain = tmp_path / "plain.laz"
    cloud(100).write(plain)
    with pytest.raises(FormatError, match="first VLR is not the COPC info VLR"):
        partition(str(plain), format="copc")


def test_read_all_and_to_pandas(tmp_path):
    path = write_copc(tmp_path / "frame.copc.laz", cloud(5_000, seed=6), depth=3)
    parts = partition(str(path), n=4)
    got = np.concatenate([points.array for _, points in read_all(parts)])
    assert np.array_equal(rows(got), query(path))
    frame = parts[0].to_pandas()
    assert len(frame) == parts[0]["points"]
    assert {"x", "y", "z", "intensity", "classification", "gps_time"} <= set(frame.columns)


# -- malformed files -------------------------------------------------------------------------


def root_page_at(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    size = struct.unpack_from("<H", data, 94)[0]
    return struct.unpack_from("<QQ", data, size + 54 + 40)  # type: ignore[return-value]


def test_a_root_page_that_is_not_whole_entries_is_refused(tmp_path):
    path = write_copc(tmp_path / "page.copc.laz", cloud(1_000), depth=2)
    data = bytearray(path.read_bytes())
    size = struct.unpack_from("<H", data, 94)[0]
    length = root_page_at(path)[1]
    struct.pack_into("<Q", data, size + 54 + 48, length - 5)
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"page\.copc\.laz: byte \d+: .*root hierarchy page"):
        partition(str(path))


def test_a_corrupt_hierarchy_entry_names_its_byte(tmp_path):
    path = write_copc(tmp_path / "entry.copc.laz", cloud(1_000), depth=2)
    offset = root_page_at(path)[0]
    data = bytearray(path.read_bytes())
    struct.pack_into(
        "<Q", data, offset + 16, len(data) + 10
    )  # the first node's chunk: past the end
    path.write_bytes(bytes(data))
    with pytest.raises(
        FormatError, match=rf"entry\.copc\.laz: byte {offset}: corrupt COPC hierarchy"
    ):
        partition(str(path))


def test_a_child_page_past_the_end_is_refused(tmp_path):
    path = write_copc(tmp_path / "child.copc.laz", cloud(3_000), depth=3, page_level=1)
    offset, length = root_page_at(path)
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + length, ENTRY.size):
        if ENTRY.unpack_from(data, i)[-1] == -1:
            struct.pack_into("<Q", data, i + 16, len(data) - 16)  # a page running past the end
            break
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"child\.copc\.laz: byte \d+: corrupt COPC hierarchy"):
        partition(str(path))


def test_a_node_with_more_points_than_the_file_is_refused(tmp_path):
    path = write_copc(tmp_path / "count.copc.laz", cloud(1_000), depth=2)
    offset = root_page_at(path)[0]
    data = bytearray(path.read_bytes())
    struct.pack_into("<i", data, offset + 28, 2**31 - 1)  # lazrs would decode for minutes
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=rf"count\.copc\.laz: byte {offset}: corrupt COPC"):
        partition(str(path))


def test_partitions_read_where_nothing_is_kept(tmp_path, monkeypatch):
    """As in a fresh worker process: a partition pickled, and no header, chunk table or
    hierarchy page kept from planning."""
    from aifdata.formats import _lidar as las
    from aifdata.formats._base import KeptMetadata

    from .test_las import cloud as las_cloud
    from .test_las import write_variable_chunks

    copc = write_copc(tmp_path / "fresh.copc.laz", cloud(20_000, seed=8), depth=3, page_level=2)
    laz = write_variable_chunks(tmp_path / "fresh.laz", las_cloud(6, 20_000, extra=False),
                                [100] * 200)  # fmt: skip
    plans = [partition(str(copc), n=2), partition(str(laz), n=1)]
    assert "span" in plans[0][0].options and "sizes" not in plans[1][0].options
    wire = pickle.dumps(plans)
    monkeypatch.setattr(las, "_KEPT", KeptMetadata())
    copc_parts, laz_parts = pickle.loads(wire)
    assert np.array_equal(union(copc_parts), query(copc))
    source = RangeSource(str(laz))
    got = get("las").read(laz_parts[0], source=source)
    assert np.array_equal(got.array, laspy.read(laz).points.array)
    assert source.requests == 3  # the header, the chunk table, the points


def test_wrong_magic(tmp_path):
    path = tmp_path / "magic.copc.laz"
    data = write_copc(tmp_path / "ok.copc.laz", cloud(100), depth=1).read_bytes()
    path.write_bytes(b"LAZ!" + data[4:])
    with pytest.raises(FormatError, match=r"magic\.copc\.laz: byte 0: .*'LASF'"):
        partition(str(path))


# -- real files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("real", [SIMPLE, WITH_PAGE], ids=lambda r: r.name)
def test_real_copc_files_from_laspy(real_file, real):
    path = real_file(real)
    plans = check_exact(path, target_bytes=4_096)
    assert {node.key[0] for p in plans[0] for node in get("copc").nodes(p)} == {0, 1, 2, 3}
    with laspy.CopcReader.open(str(path)) as reader:
        mins, maxs = reader.header.mins, reader.header.maxs
    middle = (mins + maxs) / 2
    box = (mins[0], mins[1], middle[0], middle[1])
    check_exact(path, 4_096, bounds=box)
    check_exact(path, 4_096, bounds=box, max_level=2)


# -- over S3 -----------------------------------------------------------------------------------


def test_copc_and_laz_through_aif_on_s3(s3_fs, tmp_path):
    path = write_copc(tmp_path / "s3.copc.laz", cloud(6_000, seed=7), depth=3, page_level=2)
    s3_fs.pipe("s3only/lidar/tile.copc.laz", path.read_bytes())
    laz = tmp_path / "s3.laz"
    cloud(6_000, seed=7).write(laz)
    s3_fs.pipe("s3only/lidar/tile.laz", laz.read_bytes())
    url = "aif://s3only/lidar/tile.copc.laz"
    source = RangeSource(url, s3_fs.config)
    parts = get("copc").plan(source, n=5)
    assert source.requests == 3 and len(parts) == 5
    got = np.concatenate([get("copc").read(p, config=s3_fs.config).array for p in parts])
    assert np.array_equal(rows(got), query(path))
    laz_parts = partition("aif://s3only/lidar/tile.laz", n=3, config=s3_fs.config)
    assert [p.format for p in laz_parts] == ["las"]  # one chunk of 50,000 points
    got = get("las").read(laz_parts[0], config=s3_fs.config).array
    assert np.array_equal(got, laspy.read(laz).points.array)
    assert len(got) == 6_000


# -- fuzzing --------------------------------------------------------------------------------


def test_mutated_las_laz_and_copc_files_give_points_or_a_format_error(tmp_path):
    """No mutated file crashes, hangs or aborts the process (lazrs aborts on some input
    it is handed unchecked): each one reads or raises FormatError."""
    from hypothesis import strategies as st

    from .test_fuzz import fuzz_file, mutated
    from .test_las import cloud as las_cloud
    from .test_las import write

    blobs = [
        write(las_cloud(3, 3_000, extra=False), tmp_path / "a.laz").read_bytes(),
        write(las_cloud(6, 500), tmp_path / "b.las", evlr=True).read_bytes(),
        write_copc(tmp_path / "c.copc.laz", cloud(2_000), depth=2, page_level=1).read_bytes(),
    ]
    edits = [mutated(blob) for blob in blobs]
    edits += [mutated(blob[:1024]).map(lambda head, b=blob: head + b[1024:]) for blob in blobs]
    edits += [mutated(blob[-600:]).map(lambda tail, b=blob: b[:-600] + tail) for blob in blobs]
    names = ["cloud.laz", "cloud.las", "tile.copc.laz", "cloud.bin"]
    fuzz_file("las, laz, copc", st.one_of(edits), names, [None, None, "las", "copc"])


def test_partitions_of_a_long_url_and_a_checksum_stay_under_1_kb(tmp_path):
    from .test_las import LONG_URL, LongNamed

    url = LONG_URL.removesuffix("/tttt.laz") + ".copc.laz"  # tiles.copc.laz
    assert len(url) == 200
    path = write_copc(tmp_path / "long.copc.laz", cloud(20_000, seed=9), depth=4)
    box = (500_050.5, 5_000_100.25, 500_900.75, 5_000_950.5, 1.125, 99.875)
    plugin = get("copc")
    for plan in ({}, {"bounds": box, "max_level": 3}):
        level = None if plan.get("max_level") is None else range(0, plan["max_level"] + 1)
        expected = query(path, bounds=laspy_bounds(plan.get("bounds")), level=level)
        listed = 0
        for n in (2, 17, 40, 100, 300):
            parts = plugin.plan(LongNamed(path, url), n=n, **plan)
            assert all(len(pickle.dumps(p)) < 1024 for p in parts), (plan, n)
            listed += sum("nodes" in p.options for p in parts)
            got = rows(np.concatenate([plugin.read(p, LongNamed(path, url)).array for p in parts]))
            assert np.array_equal(got, expected), (plan, n)
        assert listed, plan  # runs of few nodes still list them
