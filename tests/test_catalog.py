"""The catalog: store, datasets and versions, ingest (all-or-nothing), concurrency."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os

import pytest

import aifdata
from aifdata import Catalog, CatalogError, IngestError, NotFound
from aifdata.catalog import CHECKSUM_ALGORITHM, is_network_filesystem


@pytest.fixture
def catalog(catalog_url, two_tier_fs):
    return Catalog(catalog_url, config=two_tier_fs.config)


def make_tree(root, files):
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_store_uses_wal_on_local_disk_and_a_schema_version(tmp_path):
    cat = Catalog(tmp_path / "c.db")
    assert cat.datasets() == []
    assert cat.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert cat.conn.execute("PRAGMA user_version").fetchone()[0] >= 1
    assert not is_network_filesystem(tmp_path)


def test_rollback_journal_when_forced(tmp_path, monkeypatch):
    monkeypatch.setenv("AIFDATA_CATALOG_JOURNAL", "delete")
    cat = Catalog(tmp_path / "c.db")
    assert cat.conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_ingest_local_directory_makes_version_one(catalog, tmp_path):
    src = make_tree(tmp_path / "run42", {"a.fastq": b"@r\nA\n+\nI\n", "sub/b.bin": b"\x00" * 1000})
    ds = catalog.ingest(str(src), "genomics/run42", description="first run", tags={"site": "x"})
    assert ds.name == "genomics/run42" and ds.version == 1
    assert [f.path for f in ds.files] == ["a.fastq", "sub/b.bin"]
    assert ds.files[1].size == 1000
    assert ds.files[1].checksum.startswith(f"{CHECKSUM_ALGORITHM}:")
    assert [f.format for f in ds.files] == ["fastq", "unknown"]  # sniffed by the registry
    assert ds.tags == {"site": "x"}
    assert ds.owner == aifdata.catalog.current_user()
    assert ds.files[0].replicas[0][1] == str(src / "a.fastq")


def test_unchanged_data_makes_no_new_version_and_changed_data_does(catalog, tmp_path):
    src = make_tree(tmp_path / "d", {"x.txt": b"one"})
    assert catalog.ingest(str(src), "d").version == 1
    assert catalog.ingest(str(src), "d").version == 1
    (src / "x.txt").write_bytes(b"two")
    assert catalog.ingest(str(src), "d").version == 2
    assert catalog.versions("d") == [1, 2]
    assert catalog.dataset("d", 1).files[0].checksum != catalog.dataset("d", 2).files[0].checksum
    with pytest.raises(NotFound, match="versions: 1, 2"):
        catalog.dataset("d", 7)


def test_ingest_from_s3_and_aif(catalog, two_tier_fs, seaweedfs, bucket):
    two_tier_fs.pipe({"both/raw/r1.bin": b"1" * 10, "both/raw/r2.bin": b"2" * 20})
    via_aif = catalog.ingest("aif://both/raw", "raw/aif")
    assert [(f.path, f.size) for f in via_aif.files] == [("r1.bin", 10), ("r2.bin", 20)]
    assert via_aif.files[0].replicas[0][0] == "s3"
    via_s3 = catalog.ingest(f"s3://{bucket}/data/raw/", "raw/s3")
    assert [f.checksum for f in via_s3.files] == [f.checksum for f in via_aif.files]
    assert via_s3.files[0].etag


def test_failed_ingest_records_nothing_and_names_the_file(catalog, tmp_path, monkeypatch):
    from aifdata.catalog import _ingest

    src = make_tree(tmp_path / "bad", {"ok.txt": b"fine", "zz.txt": b"later"})
    catalog.ingest(str(src), "bad")
    (src / "ok.txt").write_bytes(b"changed")
    real = _ingest._Located.read_many

    def flaky(self, reader, paths):
        found = real(self, reader, paths)
        for path in paths:
            if path.endswith("zz.txt"):
                found[path] = ConnectionResetError("connection dropped mid-read")
        return found

    monkeypatch.setattr(_ingest._Located, "read_many", flaky)
    with pytest.raises(IngestError) as info:
        catalog.ingest(str(src), "bad")
    assert str(src / "zz.txt") in str(info.value)
    assert "nothing was recorded" in str(info.value)
    assert catalog.versions("bad") == [1]
    assert catalog.dataset("bad").files[0].size == len(b"fine")
    with pytest.raises(IngestError):
        catalog.ingest(str(src), "new-dataset")
    assert "new-dataset" not in catalog.datasets()


def test_a_large_file_failing_mid_stream_records_nothing(catalog, tmp_path, monkeypatch):
    from aifdata.catalog import _ingest

    big = b"x" * (_ingest._SMALL + 1)
    src = make_tree(tmp_path / "big", {"big.bin": big, "small.bin": b"s"})
    ds = catalog.ingest(str(src), "big")
    assert ds.files[0].checksum == f"sha256:{hashlib.sha256(big).hexdigest()}"
    (src / "small.bin").write_bytes(b"t")

    def broken(self, reader, path):
        raise ConnectionResetError("dropped")

    monkeypatch.setattr(_ingest._Located, "stream", broken)
    with pytest.raises(IngestError, match=r"big\.bin: cannot read it"):
        catalog.ingest(str(src), "big")
    assert catalog.versions("big") == [1]


def test_ingest_without_checksums(catalog, two_tier_fs, tmp_path, capsysbinary):
    two_tier_fs.pipe({"both/fast/a.bin": b"a" * 10, "both/fast/b.bin": b"b" * 20})
    ds = catalog.ingest("aif://both/fast", "fast", checksum=False)
    assert [(f.path, f.size, f.checksum) for f in ds.files] == [
        ("a.bin", 10, ""),
        ("b.bin", 20, ""),
    ]
    assert all(f.etag for f in ds.files)
    assert catalog.ingest("aif://both/fast", "fast", checksum=False).version == 1  # unchanged
    fs = aifdata.filesystem(two_tier_fs.config, catalog=catalog)
    route = fs.where("both/fast/a.bin")
    assert route.tier == "s3" and "size and mtime/ETag" in route.reason
    two_tier_fs.pipe("both/fast/a.bin", b"A" * 10)  # same size, new ETag
    assert catalog.ingest("aif://both/fast", "fast", checksum=False).version == 2
    assert catalog.ingest("aif://both/fast", "fast").files[0].checksum.startswith("sha256:")

    from aifdata.cli import main

    src = make_tree(tmp_path / "fast2", {"x.bin": b"x"})
    args = ["ingest", str(src), "-d", "fast2", "--no-checksum", "--json"]
    capsysbinary.readouterr()
    assert main([*args, "--catalog", str(catalog.path)]) == 0
    shown = json.loads(capsysbinary.readouterr()[0])
    assert {f["checksum"] for f in shown["files"]} == {""}


def test_missing_source_is_not_found(catalog, tmp_path):
    with pytest.raises(NotFound, match="nothing to ingest"):
        catalog.ingest(str(tmp_path / "nowhere"), "x")
    assert catalog.datasets() == []


def test_open_dataset_reads_the_default_catalog(isolated_home, tmp_path):
    src = make_tree(tmp_path / "s", {"f": b"123"})
    Catalog().ingest(str(src), "defaults/one")
    assert aifdata.open_dataset("defaults/one").files[0].size == 3


def _ingest_worker(args):
    db, root, name = args
    cat = Catalog(db)
    cat.ingest(root, name)
    return name


def test_eight_processes_ingest_into_one_catalog(tmp_path, catalog_url):
    db = catalog_url
    jobs = []
    for i in range(8):
        root = make_tree(
            tmp_path / f"src{i}", {f"f{j}.bin": bytes([i, j]) * 100 for j in range(20)}
        )
        jobs.append((str(db), str(root), f"parallel/d{i}"))
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        assert sorted(pool.map(_ingest_worker, jobs)) == sorted(j[2] for j in jobs)
    cat = Catalog(db)
    assert len(cat.datasets()) == 8
    rows = cat.conn.execute("SELECT count(*) FROM files").fetchone()[0]
    assert rows == 8 * 20


def test_cli_ingest_and_show(tmp_path, capsysbinary):

    from aifdata.cli import main

    src = make_tree(tmp_path / "cli-src", {"a.txt": b"alpha", "b/c.txt": b"gamma"})
    db = str(tmp_path / "cli.db")
    code = main(["ingest", str(src), "--dataset", "cli/demo", "--tag", "k=v", "--catalog", db])
    out, err = capsysbinary.readouterr()
    assert code == 0, err
    assert b"cli/demo@1: 2 file(s), 10 bytes" in out
    code = main(["show", "cli/demo@1", "--catalog", db, "--json"])
    shown = json.loads(capsysbinary.readouterr()[0])
    assert [f["path"] for f in shown["files"]] == ["a.txt", "b/c.txt"]
    assert shown["tags"] == {"k": "v"}
    code = main(["show", "cli/none", "--catalog", db])
    assert code == 3
    assert b"no dataset 'cli/none'" in capsysbinary.readouterr()[1]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_parquet_snapshot_round_trip(catalog, tmp_path, seaweedfs, bucket, where):
    pytest.importorskip("pyarrow")
    src = make_tree(tmp_path / "snap-src", {"a.bin": b"a" * 10, "d/b.bin": b"b" * 20})
    catalog.ingest(str(src), "snap/one", tags={"kind": "test"})
    (src / "a.bin").write_bytes(b"changed")
    catalog.ingest(str(src), "snap/one")
    dest = str(tmp_path / "snapshot") if where == "local" else f"s3://{bucket}/snapshot"
    written = catalog.export(dest)
    assert len(written) == len(aifdata.catalog._parquet.TABLES)
    snap = Catalog.from_parquet(dest, config=catalog.config)
    assert snap.read_only
    assert snap.datasets() == ["snap/one"]
    assert snap.versions("snap/one") == [1, 2]
    old, new = snap.dataset("snap/one", 1), snap.dataset("snap/one")
    assert [f.path for f in new.files] == ["a.bin", "d/b.bin"]
    assert old.files[0].checksum == catalog.dataset("snap/one", 1).files[0].checksum
    assert new.tags == {"kind": "test"}
    with pytest.raises(aifdata.CatalogError, match="read-only"):
        snap.ingest(str(src), "snap/two")


def test_parquet_tables_are_plain_parquet(catalog, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    src = make_tree(tmp_path / "pq-src", {"x": b"12345"})
    catalog.ingest(str(src), "pq")
    catalog.export(str(tmp_path / "out"))
    files = pq.read_table(tmp_path / "out" / "files.parquet").to_pylist()
    assert files[0]["path"] == "x" and files[0]["size"] == 5
    assert files[0]["checksum"].startswith("sha256:")
    assert pq.read_table(tmp_path / "out" / "tags.parquet").num_rows == 0


def test_from_parquet_without_a_snapshot_says_so(tmp_path):
    with pytest.raises(aifdata.CatalogError, match="no catalog snapshot"):
        Catalog.from_parquet(str(tmp_path))


def test_cli_export(tmp_path, capsysbinary):
    pytest.importorskip("pyarrow")
    from aifdata.cli import main

    src = make_tree(tmp_path / "e-src", {"f.txt": b"x"})
    db = str(tmp_path / "e.db")
    assert main(["ingest", str(src), "-d", "e", "--catalog", db]) == 0
    assert main(["export", str(tmp_path / "snap"), "--catalog", db]) == 0
    assert b"wrote 9 tables" in capsysbinary.readouterr()[0]
    assert Catalog.from_parquet(str(tmp_path / "snap")).datasets() == ["e"]


@pytest.fixture
def searchable(catalog, tmp_path):
    entries = {
        "genomics/run42": ("Illumina reads of run 42", {"site": "bsc", "kind": "fastq"}),
        "genomics/run43": ("Illumina reads of run 43", {"site": "cineca"}),
        "climate/era5-subset": ("Reanalysis of temperature, genomics-free", {"site": "bsc"}),
        "physics/higgs": ("ROOT ntuples from the Higgs to four leptons search", {}),
    }
    for i, (name, (description, tags)) in enumerate(entries.items()):
        src = make_tree(tmp_path / f"s{i}", {"f.bin": bytes([i])})
        catalog.ingest(str(src), name, description=description, tags=tags, owner=f"user{i % 2}")
    return catalog


@pytest.mark.parametrize("fts", [True, False])
def test_search_ranks_names_first_and_filters(searchable, fts):
    from aifdata.catalog._search import has_full_text, search

    conn = searchable.conn
    if fts and not has_full_text(conn):
        pytest.skip("this SQLite has no FTS5; the fallback is tested below")

    def names(query, **kw):
        return [h.name for h in search(conn, query, use_fts=fts, **kw)]

    assert set(names("genomics")[:2]) == {"genomics/run42", "genomics/run43"}
    assert names("genomics")[-1] == "climate/era5-subset"  # a description match ranks lower
    assert names("illumina run42") == ["genomics/run42"]
    assert names("gen") == names("genomics")  # prefixes count
    assert names("higgs leptons") == ["physics/higgs"]
    assert sorted(names("", tags={"site": "bsc"})) == ["climate/era5-subset", "genomics/run42"]
    assert names("genomics", owner="user1") == ["genomics/run43"]
    assert "genomics/run42" in names("genomics", format="unknown")
    assert names("genomics", format="fastq") == []
    assert names("nothing-like-this") == []


def test_search_cli_json(searchable, capsysbinary):

    from aifdata.cli import main

    code = main(["search", "run", "--tag", "site=bsc", "--json", "--catalog", str(searchable.path)])
    assert code == 0
    hits = json.loads(capsysbinary.readouterr()[0])
    assert [h["name"] for h in hits] == ["genomics/run42"]
    assert hits[0]["tags"] == {"site": "bsc", "kind": "fastq"}


def test_search_works_on_a_parquet_snapshot(searchable, tmp_path):
    pytest.importorskip("pyarrow")
    searchable.export(str(tmp_path / "snap"))
    snap = Catalog.from_parquet(str(tmp_path / "snap"))
    assert [h.name for h in snap.search("higgs")] == ["physics/higgs"]


def test_the_version_ingest_returns_is_the_one_it_recorded(catalog, tmp_path):
    src = make_tree(tmp_path / "rows", {"a.bin": b"a", "d/b.bin": b"bb", "d/c d.bin": b"c"})
    os.utime(src / "a.bin", (1.0, 1234567890.123456))
    made = catalog.ingest(str(src), "rows")
    assert catalog.dataset("rows").files == made.files  # from memory == from the tables
    assert made.files[0].mtime == 1234567890.123456


@pytest.mark.parametrize(
    "name",
    ["", "   ", " padded", "../x", "/abs", "a//b", "a/./b", "trailing/", "a*b", "x@3", "tab\tname",
     "n" * 300],
    ids=lambda n: repr(n)[:20],
)  # fmt: skip
def test_a_dataset_name_grants_cannot_name_is_refused_before_anything_is_read(
    catalog, tmp_path, name
):
    src = make_tree(tmp_path / "named", {"a.bin": b"a"})
    with pytest.raises(aifdata.BadName, match=r"dataset name .* is not valid"):
        catalog.ingest(str(src), name)
    assert catalog.datasets() == []


def test_cli_refuses_a_missing_catalog_and_a_bad_version(tmp_path, capsys):
    from aifdata.cli import main

    missing = str(tmp_path / "nowhere" / "catalog.db")
    for args in (["search", "x"], ["show", "x"], ["policy", "list"], ["lineage", "x"]):
        assert main([*args, "--catalog", missing]) == 3, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no catalog at" in err
    assert not (tmp_path / "nowhere").exists()
    src = make_tree(tmp_path / "one", {"a.bin": b"a"})
    made = str(tmp_path / "made.db")
    assert main(["ingest", str(src), "-d", "one", "--catalog", made]) == 0  # ingest creates it
    capsys.readouterr()
    for args in (["show", "one@abc"], ["stage", "one@abc", "--to", "pfs"]):
        assert main([*args, "--catalog", made]) != 0
        err = capsys.readouterr().err
        assert "expected NAME or NAME@VERSION" in err and "ValueError" not in err


def test_a_file_that_is_not_a_catalog_is_named(tmp_path):
    other = tmp_path / "reads.fastq"
    other.write_bytes(b"@r1\nACGT\n+\nIIII\n" * 100)
    with pytest.raises(CatalogError, match=r"reads\.fastq: not an aifdata catalog"):
        Catalog(other).datasets()  # the file is opened on first use
    assert other.read_bytes() == b"@r1\nACGT\n+\nIIII\n" * 100
