"""ROOT partitions: every TTree and RNTuple, split on clusters, planned from metadata alone."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import pickle
from pathlib import Path

import pytest

uproot = pytest.importorskip("uproot")
ak = pytest.importorskip("awkward")
import numpy as np  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import aifdata  # noqa: E402
from aifdata import FormatError  # noqa: E402
from aifdata.formats import RangeSource, get, partition  # noqa: E402
from aifdata.formats.root import group_clusters  # noqa: E402

from .conftest import two_tier_toml  # noqa: E402

#: Real files from scikit-hep-testdata, shared by the team; read in place, never copied here.
ROOT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "root"
RNTUPLE_FILE = "test_int_multicluster_rntuple_v1-0-0-0.root"
COUNTS = (1, 2, 3, 7, 50)


def real(name: str) -> Path:
    path = ROOT_DIR / name
    if not path.is_file():
        pytest.skip(f"the real ROOT files are not here: {path} is absent (see {ROOT_DIR})")
    return path


def real_ttree_files() -> list[str]:
    names = sorted(p.name for p in ROOT_DIR.glob("*.root")) if ROOT_DIR.is_dir() else []
    return [name for name in names if name != RNTUPLE_FILE] or ["absent.root"]


class LoggedSource(RangeSource):
    """A RangeSource that keeps every byte range it reads."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.ranges: list[tuple[int, int]] = []

    def read(self, start: int, end: int) -> bytes:
        self.ranges.append((start, min(end, self.size)))
        return super().read(start, end)


def tree_names(f) -> dict[str, str]:
    """Path (highest cycle, no ';N') -> "ttree" / "rntuple" for every table in an open file."""
    kinds = {"TTree": "ttree", "ROOT::RNTuple": "rntuple"}
    return {
        key.rpartition(";")[0]: kinds[classname]
        for key, classname in f.classnames().items()
        if classname in kinds
    }


def reference(table) -> tuple[object, list[str] | None]:
    """uproot's own full read, and the branches it covers (None: all of them).

    A branch uproot cannot read in full is left out here and in the partitions alike.
    """
    try:
        return table.arrays(library="ak"), None
    except Exception:
        names = []
        for name in table.keys(recursive=True):
            try:
                table[name].array(library="ak")
            except Exception:
                continue
            names.append(name)
        return table.arrays(filter_name=names, library="ak"), names


def boundaries(table) -> list[int]:
    """Where a partition of ``table`` may start or end: uproot's cluster starts, plus the end."""
    total = int(table.num_entries)
    if hasattr(table, "common_entry_offsets"):
        starts = table.common_entry_offsets()
    else:
        starts = [s.num_first_entry for s in table.cluster_summaries]
    return sorted({0, total, *starts}) if total else [0]


def same(got, expected) -> bool:
    return len(got) == len(expected) and ak.array_equal(
        got, expected, equal_nan=True, same_content_types=False, check_regular=False
    )


def check_tiling(parts, tree: str, bounds: list[int], n: int) -> list:
    """The partitions of ``tree`` cover ``[0, entries)`` once, in order, cut only at ``bounds``."""
    mine = [p for p in parts if p["tree"] == tree]
    ranges = [(p["entry_start"], p["entry_stop"]) for p in mine]
    if bounds[-1] == 0:
        assert ranges == []
        return mine
    assert ranges[0][0] == 0 and ranges[-1][1] == bounds[-1]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert all(start < stop for start, stop in ranges)
    assert {edge for r in ranges for edge in r} <= set(bounds)  # never inside a cluster
    assert len(mine) == min(n, len(bounds) - 1)
    return mine


# -- real files -----------------------------------------------------------------


@pytest.mark.parametrize("name", real_ttree_files())
def test_every_tree_of_every_real_file_reads_back_whole(name):
    path = real(name)
    with uproot.open(path) as f:
        kinds = tree_names(f)
        expected = {tree: (*reference(f[tree]), boundaries(f[tree])) for tree in kinds}
    assert expected, f"{name} holds no TTree"
    checked = set()  # a tree of one cluster gives the same partition for every n: check it once
    for n in COUNTS:
        parts = partition(str(path), n=n)
        assert [p.ordinal for p in parts] == list(range(len(parts)))
        assert all(p.format == "root" and p["kind"] == kinds[p["tree"]] for p in parts)
        for tree, (full, names, bounds) in expected.items():
            mine = check_tiling(parts, tree, bounds, n)
            ranges = (tree, *((p["entry_start"], p["entry_stop"]) for p in mine))
            if mine and ranges not in checked:
                got = ak.concatenate([p.read(branches=names) for p in mine])
                assert same(got, full), (name, tree, n)
                checked.add(ranges)


def test_a_real_file_with_many_trees_and_many_clusters():
    path = real("uproot-issue243-new.root")
    parts = partition(str(path), n=4)
    trees = [p["tree"] for p in parts]
    assert list(dict.fromkeys(trees)) == [
        "sig",
        "fullmassplane",
        "control",
        "sideband",
        "leptop_hadron",
        "hadtop",
        "top_multijet",
        "triggerList",
    ]
    assert trees.count("triggerList") == 4  # 14 clusters: 4 groups; the others are 1 cluster
    assert trees.count("sig") == 1


def test_the_real_rntuple_is_partitioned_by_its_clusters():
    path = real(RNTUPLE_FILE)
    with uproot.open(path) as f:
        ntuple = f["ntuple"]
        bounds = boundaries(ntuple)
        full = ntuple.arrays()["one_integers"].to_numpy()
    for n in (1, 3):
        parts = partition(str(path), n=n)
        assert {(p["tree"], p["kind"]) for p in parts} == {("ntuple", "rntuple")}
        check_tiling(parts, "ntuple", bounds, n)
    got = np.concatenate([p.read()["one_integers"].to_numpy() for p in parts])
    assert np.array_equal(got, full)  # a hundred million entries
    del got, full


def test_target_bytes_groups_clusters_by_compressed_size():
    path = real("uproot-issue412.root")
    with uproot.open(path) as f:
        compressed = f["test"].compressed_bytes
    parts = partition(str(path), target_bytes=compressed // 5 + 1)
    assert len(parts) == 5
    assert [p["entry_start"] for p in parts] == [0, 200_000, 400_000, 600_000, 800_000]
    assert len(partition(str(path))) == 1  # 64 MiB by default


# -- planning reads metadata only -----------------------------------------------


def basket_ranges(path: Path) -> list[tuple[int, int]]:
    """Byte ranges of every TBasket (key and data) in the file."""
    out = []
    with uproot.open(path) as f:
        for tree, kind in tree_names(f).items():
            if kind != "ttree":
                continue
            for branch in f[tree].itervalues(recursive=True):
                seeks, sizes = branch.member("fBasketSeek"), branch.member("fBasketBytes")
                out.extend(
                    (int(a), int(a) + int(b)) for a, b in zip(seeks, sizes, strict=True) if a and b
                )
    return out


def page_ranges(path: Path) -> list[tuple[int, int]]:
    """Byte ranges of every RNTuple page in the file."""
    out = set()
    with uproot.open(path) as f:
        for tree, kind in tree_names(f).items():
            if kind == "rntuple":
                for cluster in f[tree].page_link_list:
                    for column in cluster:
                        for page in column.pages:
                            loc = page.locator
                            out.add((loc.offset, loc.offset + loc.num_bytes))
    return sorted(out)


def overlap(reads, data) -> int:
    return sum(max(0, min(b, d) - max(a, c)) for a, b in reads for c, d in data)


def plan_logged(path: Path, n: int = 8) -> tuple[LoggedSource, list]:
    source = LoggedSource(str(path))
    return source, get("root").plan(source, n=n)


def test_planning_the_biggest_real_file_reads_no_basket():
    files = sorted(ROOT_DIR.glob("*.root"), key=lambda p: p.stat().st_size)
    path = real(files[-1].name if files else "absent.root")
    source, parts = plan_logged(path)
    size = path.stat().st_size
    baskets = basket_ranges(path)
    assert parts and baskets
    assert source.bytes_read < size / 20
    assert overlap(source.ranges, baskets) == 0
    assert source.bytes_read + sum(b - a for a, b in baskets) <= size
    assert source.requests <= 8


@pytest.mark.parametrize("name", real_ttree_files())
def test_planning_any_real_file_reads_no_basket(name):
    path = real(name)
    source, _ = plan_logged(path)
    assert overlap(source.ranges, basket_ranges(path)) == 0


def many_baskets_file(path: Path, baskets: int = 100, per_basket: int = 2000) -> Path:
    rng = np.random.default_rng(5)
    with uproot.recreate(path) as f:
        tree = f.mktree("events", {"x": np.float64, "i": np.int64})
        ntuple = f.mkrntuple("ntuple", {"x": np.float64})
        for _ in range(baskets):
            x = rng.normal(size=per_basket)
            tree.extend({"x": x, "i": rng.integers(0, 2**62, per_basket)})
            ntuple.extend({"x": x})
    return path


def test_planning_a_file_of_many_baskets_reads_only_metadata(tmp_path):
    path = many_baskets_file(tmp_path / "many.root")
    size = path.stat().st_size
    source, parts = plan_logged(path, n=10)
    assert [p["kind"] for p in parts] == ["ttree"] * 10 + ["rntuple"] * 10
    assert source.bytes_read < size / 50
    assert overlap(source.ranges, basket_ranges(path)) == 0
    assert overlap(source.ranges, page_ranges(path)) == 0
    # each partition reads about its own share of the data, not the whole file
    reads = []
    for part in parts:
        counted = RangeSource(str(path))
        part.read(source=counted)
        reads.append(counted.bytes_read)
    assert max(reads) < size / 5
    assert sum(reads) < 1.5 * size


def test_later_partitions_of_a_file_read_only_their_data(tmp_path):
    """The metadata read for the first partition is kept: the others read only baskets."""
    path = many_baskets_file(tmp_path / "kept.root")
    parts = get("root").plan(RangeSource(str(path)), n=6)
    ttree = [p for p in parts if p["kind"] == "ttree"]
    baskets = basket_ranges(path)
    sources = [LoggedSource(str(path)) for _ in ttree]
    for part, source in zip(ttree, sources, strict=True):
        part.read(source=source)
    metadata_reads = [[r for r in src.ranges if overlap([r], baskets) == 0] for src in sources]
    assert metadata_reads[0]  # the first partition reads the header and the tree metadata
    assert not any(metadata_reads[1:])  # the others read (merged runs of) baskets only
    os.utime(path, ns=(1, 1))  # the same bytes, another mtime: another version
    fresh = LoggedSource(str(path))
    parts = get("root").plan(RangeSource(str(path)), n=6)
    parts[1].read(source=fresh)
    assert any(overlap([r], baskets) == 0 for r in fresh.ranges)  # its metadata read afresh


# -- generated files ------------------------------------------------------------

entry = st.tuples(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(width=64),  # NaN and infinities too
    st.lists(st.floats(width=32), max_size=4),
)
chunks_strategy = st.lists(st.lists(entry, max_size=12), min_size=1, max_size=8)


def columns(chunk: list) -> dict:
    counts = [len(j) for _, _, j in chunk]
    flat = np.array([v for _, _, j in chunk for v in j], dtype=np.float32)
    return {
        "i": np.array([i for i, _, _ in chunk], dtype=np.int64),
        "x": np.array([x for _, x, _ in chunk], dtype=np.float64),
        "j": ak.unflatten(flat, np.array(counts, dtype=np.int64)),
    }


def write_generated(path: Path, chunks: list) -> None:
    """A TTree at the top, one in a subdirectory, and an RNTuple: one basket/cluster a chunk."""
    types = {"i": np.int64, "x": np.float64, "j": "var * float32"}
    with uproot.recreate(path) as f:
        top = f.mktree("events", types)
        nested = f.mkdir("dir").mktree("more", types)
        ntuple = f.mkrntuple("ntuple", types)
        for chunk in chunks:
            data = columns(chunk)
            top.extend(data)
            nested.extend(data)
            if chunk:  # uproot writes no empty RNTuple cluster
                ntuple.extend(data)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chunks=chunks_strategy, n=st.integers(min_value=1, max_value=12))
def test_generated_trees_split_exactly_on_clusters(tmp_path, chunks, n):
    path = tmp_path / "generated.root"
    write_generated(path, chunks)
    with uproot.open(path) as f:
        kinds = tree_names(f)
        expected = {tree: (f[tree].arrays(), boundaries(f[tree])) for tree in kinds}
    assert kinds == {"events": "ttree", "dir/more": "ttree", "ntuple": "rntuple"}
    total = sum(map(len, chunks))
    for count in sorted({n, 100}):  # 100: one partition per cluster
        parts = partition(str(path), n=count)
        assert [p.ordinal for p in parts] == list(range(len(parts)))
        for tree, (full, bounds) in expected.items():
            assert bounds[-1] == total
            mine = check_tiling(parts, tree, bounds, count)
            assert all(p["kind"] == kinds[tree] for p in mine)
            if mine:
                assert same(ak.concatenate([p.read() for p in mine]), full)


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=1000), min_size=1, max_size=60),
    count=st.integers(min_value=1, max_value=80),
)
def test_group_clusters_keeps_cluster_edges_and_the_count(sizes, count):
    offsets = [0, *itertools.accumulate(sizes)]
    bounds = group_clusters(offsets, count)
    assert bounds[0] == 0 and bounds[-1] == offsets[-1]
    assert set(bounds) <= set(offsets)
    assert all(a < b for a, b in itertools.pairwise(bounds))
    assert len(bounds) - 1 == min(count, len(sizes))


def test_group_clusters_balances_equal_clusters():
    assert group_clusters(list(range(0, 1001, 10)), 4) == [0, 250, 500, 750, 1000]
    assert group_clusters([0, 1, 2, 1000], 2) == [0, 2, 1000]  # nearest edge to 500
    assert group_clusters([0], 5) == []


def test_a_tree_with_no_entries_has_no_partitions(tmp_path):
    path = tmp_path / "empty.root"
    with uproot.recreate(path) as f:
        f.mktree("nothing", {"x": np.float64})
        f["full"] = {"x": np.arange(5.0)}
    parts = partition(str(path), n=3)
    assert [(p["tree"], p["entry_start"], p["entry_stop"]) for p in parts] == [("full", 0, 5)]


# -- reading --------------------------------------------------------------------


def test_branch_selection_returns_only_those_fields(tmp_path):
    path = many_baskets_file(tmp_path / "sel.root", baskets=4, per_basket=100)
    part = partition(str(path), n=2)[1]
    assert part["tree"] == "events"
    assert part.read(branches=["x"]).fields == ["x"]
    assert part.read(branches="i").fields == ["i"]
    assert sorted(part.read().fields) == ["i", "x"]
    arrays = part.read(branches=["i"], library="np")
    assert list(arrays) == ["i"] and len(arrays["i"]) == 200
    with pytest.raises(KeyError, match="has no branch 'nope'"):
        part.read(branches=["x", "nope"])
    with pytest.raises(TypeError, match="takes no option as_arrow"):
        part.read(as_arrow=True)
    ntuple_part = partition(str(path), n=1)[1]
    assert ntuple_part["kind"] == "rntuple"
    assert ntuple_part.read(branches=["x"]).fields == ["x"]


def test_real_branch_selection_with_a_pattern():
    path = real("uproot-HZZ.root")
    part = partition(str(path), n=1)[0]
    got = part.read(branches=["Muon_*", "NJet"])
    assert set(got.fields) == {
        "NJet",
        *(f"Muon_{x}" for x in ("Px", "Py", "Pz", "E", "Charge", "Iso")),
    }
    with uproot.open(path) as f:
        assert same(got["Muon_Px"], f["events"]["Muon_Px"].array())


def test_a_partition_is_small_frozen_and_picklable(tmp_path):
    path = many_baskets_file(tmp_path / "p.root", baskets=6, per_basket=50)
    part = partition(str(path), n=3)[1]
    blob = pickle.dumps(part)
    assert len(blob) < 1024
    assert pickle.loads(blob) == part
    with pytest.raises(AttributeError):
        part.ordinal = 5  # type: ignore[misc]
    assert "entry_start=100" in repr(part)


def _read_in_fresh_process(blob: bytes) -> tuple[int, float]:
    array = pickle.loads(blob).read(branches=["x"])
    return len(array), float(ak.sum(array["x"]))


def test_partitions_read_in_a_fresh_process(tmp_path):
    path = many_baskets_file(tmp_path / "spawn.root", baskets=8, per_basket=500)
    parts = partition(str(path), n=4)
    blobs = [pickle.dumps(p) for p in parts if p["kind"] == "ttree"]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_read_in_fresh_process, blobs)
    with uproot.open(path) as f:
        x = f["events"]["x"].array(library="np")
    assert sum(n for n, _ in results) == len(x) == 4000
    assert sum(s for _, s in results) == pytest.approx(float(x.sum()))


def test_partitions_plan_and_read_through_aif_on_s3(
    seaweedfs, bucket, pfs_dir, tmp_path, monkeypatch
):
    local = many_baskets_file(tmp_path / "s3.root", baskets=20, per_basket=1000)
    config = tmp_path / "config.toml"
    config.write_text(two_tier_toml(seaweedfs, f"s3://{bucket}/data", pfs_dir, "physics"))
    monkeypatch.setenv("AIFDATA_CONFIG", str(config))
    fs = aifdata.filesystem(str(config), catalog=False)
    fs.pipe("physics/run1/events.root", local.read_bytes())
    url = "aif://physics/run1/events.root"
    source = RangeSource(url)
    parts = get("root").plan(source, n=5)
    assert source.bytes_read < local.stat().st_size / 20
    assert aifdata.partition(url, n=5) == parts
    with uproot.open(local) as f:
        full = f["events"].arrays()
    got = ak.concatenate([p.read() for p in parts if p["tree"] == "events"])
    assert same(got, full)


def test_a_changed_file_is_not_read_with_an_old_plan(tmp_path):
    path = many_baskets_file(tmp_path / "c.root", baskets=2, per_basket=10)
    part = partition(str(path), n=2)[0]
    many_baskets_file(path, baskets=3, per_basket=10)
    with pytest.raises(FormatError, match="changed since it was partitioned"):
        part.read()


# -- bad input ------------------------------------------------------------------


def write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.timeout(60)
def test_a_file_that_is_not_root_is_refused_at_byte_0(tmp_path):
    url = write(tmp_path, "x.root", b"this is not ROOT data at all\n" * 100)
    with pytest.raises(FormatError, match=r"x\.root: byte 0: this is not a ROOT file: expected"):
        partition(url, n=2)
    with pytest.raises(FormatError, match=r"x\.root: byte 0: this is not a ROOT file"):
        partition(url, n=2, format="root")


@pytest.mark.timeout(60)
def test_a_truncated_file_is_refused_naming_the_file(tmp_path):
    data = many_baskets_file(tmp_path / "whole.root", baskets=10, per_basket=500).read_bytes()
    half = len(data) // 2
    url = write(tmp_path, "half.root", data[:half])
    with pytest.raises(FormatError, match=rf"half\.root: byte {half}: .*truncated\?"):
        partition(url, n=3)
    url = write(tmp_path, "stub.root", data[:30])
    with pytest.raises(FormatError, match=r"stub\.root: byte 30: the file ends at byte 30, but"):
        partition(url, n=3)
    url = write(tmp_path, "tiny.root", data[:10])
    with pytest.raises(FormatError, match=r"tiny\.root: byte 10: .*inside its ROOT header"):
        partition(url, n=3)


@pytest.mark.timeout(60)
def test_a_real_file_truncated_to_half_is_refused(tmp_path):
    data = real("uproot-HZZ.root").read_bytes()
    url = write(tmp_path, "hzz-half.root", data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"hzz-half\.root: byte \d+: .*truncated"):
        partition(url, n=2)


@pytest.mark.timeout(60)
def test_corrupt_baskets_and_metadata_are_format_errors(tmp_path):
    path = many_baskets_file(tmp_path / "good.root", baskets=4, per_basket=2000)
    data = bytearray(path.read_bytes())
    seek, end = basket_ranges(path)[1]
    data[seek + 100 : end - 100] = bytes(end - seek - 200)  # zero the compressed data
    url = write(tmp_path, "bad-basket.root", bytes(data))
    parts = partition(url, n=4)
    with pytest.raises(FormatError, match=r"bad-basket\.root: byte \d+: cannot read entries"):
        for part in parts:
            part.read()
    meta = bytearray(path.read_bytes())
    with uproot.open(path) as f:
        key = f.key("events")
        start = key.data_cursor.index
        meta[start : start + key.data_compressed_bytes] = b"\x07" * key.data_compressed_bytes
    url = write(tmp_path, "bad-meta.root", bytes(meta))
    with pytest.raises(FormatError, match=r"bad-meta\.root: byte \d+: cannot read"):
        partition(url, n=2)


@pytest.mark.timeout(60)
def test_root_forced_on_a_fastq_file(tmp_path):
    url = write(tmp_path, "reads.fq", b"@r1\nACGT\n+\nIIII\n" * 50)
    with pytest.raises(FormatError, match=r"reads\.fq: byte 0: this is not a ROOT file"):
        partition(url, n=2, format="root")
    assert isinstance(FormatError("x"), ValueError)


def test_the_registry_finds_root_by_name_and_by_magic(tmp_path):
    plugin = get("root")
    assert plugin.name == "root" and plugin.extensions == (".root",) and plugin.description
    path = many_baskets_file(tmp_path / "m.root", baskets=2, per_basket=10)
    renamed = write(tmp_path, "no-extension", path.read_bytes())
    assert [p.format for p in partition(renamed, n=1)] == ["root", "root"]
    assert aifdata.formats.detect("x.root") is plugin
    with pytest.raises(ValueError, match="n must be at least 1"):
        partition(str(path), n=0)


def test_a_dataframe_has_a_row_per_entry_with_jagged_branches_as_lists():
    pytest.importorskip("pandas")
    import aifdata.dask

    path = str(real("uproot-HZZ.root"))
    parts = partition(path, n=3)
    with uproot.open(path) as f:
        whole = f["events"].arrays(["NJet", "Jet_Px"], library="np")
    frames = [p.to_pandas(branches=["NJet", "Jet_Px"]) for p in parts]
    assert [list(f.columns) for f in frames] == [["NJet", "Jet_Px"]] * len(parts)
    joined = [row for f in frames for row in f.itertuples()]
    assert [i for i, _, _ in joined] == list(range(len(whole["NJet"])))  # the entry numbers
    assert [n for _, n, _ in joined] == whole["NJet"].tolist()
    assert [list(px) for _, _, px in joined] == [list(px) for px in whole["Jet_Px"]]
    frame = aifdata.dask.to_dataframe(parts)
    assert frame.npartitions == len(parts) and len(frame) == len(whole["NJet"])


def test_a_dataframe_of_several_trees_is_refused_with_their_names():
    pytest.importorskip("dask.dataframe")
    import aifdata.dask

    parts = partition(str(real("uproot-issue243-new.root")), n=8)  # eight trees, one file
    with pytest.raises(ValueError, match=r"kinds of table .*'sig'.* make one DataFrame per kind"):
        aifdata.dask.to_dataframe(parts)
    sig = [p for p in parts if p["tree"] == "sig"]
    assert len(aifdata.dask.to_dataframe(sig)) == sum(
        p["entry_stop"] - p["entry_start"] for p in sig
    )
