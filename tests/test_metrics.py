"""Tier metrics: counted per read in memory, added up in the catalog per flush, per
dataset and tier; ``aifdata stats`` as a table, JSON and Prometheus text."""

from __future__ import annotations

import json
import uuid

import fsspec
import pytest

import aifdata
from aifdata._router import Route
from aifdata.cli import main
from aifdata.managed import Manager, TierStats, _metrics, by_dataset, stats


@pytest.fixture
def managed(tmp_path, catalog_url, monkeypatch):
    """Mount ``m``: a PFS tier read first, a remote (in-memory) write tier, hydrate on
    read (but nothing hydrates: the counting is under test, the tier each read takes
    is what routing says); datasets ``ds/one`` (two files) and ``ds/two`` (one)
    ingested, and a file of no dataset."""
    monkeypatch.setattr(Manager, "serve", lambda self, router, rel, route, *, whole: route)
    root = f"memory://aifdata-{uuid.uuid4().hex[:8]}"
    pfs = tmp_path / "pfs"
    pfs.mkdir()
    config = aifdata.parse_config(
        f'[mounts.m]\nhydrate = "on-read"\nread_order = ["pfs", "fsspec"]\n'
        f'write_tier = "fsspec"\n[mounts.m.fsspec]\nurl = "{root}/data"\n'
        f'[mounts.m.pfs]\npath = "{pfs}"\n'
    )
    catalog = aifdata.Catalog(catalog_url, config=config)
    fs = aifdata.filesystem(config, catalog=catalog)
    fs.pipe({"m/one/a.bin": b"a" * 100, "m/one/b.bin": b"b" * 50, "m/two/c.bin": b"c" * 7})
    fs.pipe("m/loose.bin", b"x" * 3)
    catalog.ingest("aif://m/one", "ds/one")
    catalog.ingest("aif://m/two", "ds/two")
    yield fs, catalog, pfs
    memory = fsspec.filesystem("memory")
    if memory.exists(root):
        memory.rm(root, recursive=True)


def _rows(catalog, dataset=None):
    return {(r.dataset, r.tier): r for r in stats(catalog, dataset)}


def test_reads_are_counted_per_dataset_and_tier_and_added_at_flush(managed):
    fs, catalog, _ = managed
    manager = fs._tier_manager()
    assert isinstance(manager, Manager)
    fs.cat_file("m/one/a.bin")
    fs.cat_file("m/one/b.bin", start=0, end=10)
    assert catalog.conn.execute("SELECT count(*) FROM tier_metrics").fetchone()[0] == 0
    manager.flush()  # in memory until a flush (stats also flushes this process's counts)
    rows = _rows(catalog)
    remote = rows["ds/one", "fsspec"]
    assert (remote.files_served, remote.bytes_served) == (2, 110)
    assert (remote.hits, remote.misses, remote.s3_requests_saved) == (0, 2, 0)
    catalog.stage("ds/one", to="pfs")  # verified copies on the PFS now serve
    fs.cat_file("m/one/a.bin")
    with fs.open("m/one/a.bin", "rb") as f:  # an open counts a read, bytes unknown
        f.read()
    manager.flush()
    local = _rows(catalog)["ds/one", "pfs"]
    assert (local.files_served, local.bytes_served, local.hits, local.misses) == (2, 100, 2, 0)
    assert _rows(catalog)["ds/one", "fsspec"].files_served == 2  # added to, not replaced
    assert local.s3_requests_saved == 2
    total = by_dataset(stats(catalog))["ds/one"]
    assert (total.hits, total.misses, total.hit_ratio) == (2, 2, 0.5)


def test_flushes_add_up_and_never_count_twice(managed):
    fs, catalog, _ = managed
    manager = fs._tier_manager()
    for _ in range(3):
        fs.cat_file("m/two/c.bin")
        manager.flush()
        manager.flush()  # nothing new: adds nothing
    other = Manager(catalog, fs.config)  # a second process's counters, in effect
    other.metrics._due = float("inf")  # no flush by reads
    router = fs._router(fs.config.mount("m"))
    route = router.route("two/c.bin")
    for _ in range(4):
        other.served(router, route, 7)
    other.flush()
    row = _rows(catalog)["ds/two", "fsspec"]
    assert (row.files_served, row.bytes_served, row.misses) == (7, 49, 7)


def test_the_dataset_is_found_by_the_copy_or_the_write_tier_else_dash(managed):
    fs, catalog, pfs = managed
    manager = fs._tier_manager()
    router = fs._router(fs.config.mount("m"))
    unrecorded = Route("m/two/c.bin", "pfs", str(pfs / "two/c.bin"), "a copy not recorded")
    manager.served(router, unrecorded, 7)  # found by its write-tier URL
    fs.cat_file("m/loose.bin")  # in no dataset
    manager.flush()
    rows = _rows(catalog)
    assert rows["ds/two", "pfs"].files_served == 1
    assert rows["-", "fsspec"].bytes_served == 3
    assert set(rows) == {("ds/two", "pfs"), ("-", "fsspec")}


def test_count_adds_hydrations_and_releases_under_the_tier_named(managed):
    fs, catalog, _ = managed
    manager = fs._tier_manager()
    router = fs._router(fs.config.mount("m"))
    manager.metrics.count(router, "pfs", "one/a.bin", "hydrations")
    manager.metrics.count(router, "pfs", "one/a.bin", "bytes_hydrated", 100)
    manager.metrics.count(router, "pfs", "loose.bin", "releases", 2)
    manager.flush()
    rows = _rows(catalog)
    assert (rows["ds/one", "pfs"].hydrations, rows["ds/one", "pfs"].bytes_hydrated) == (1, 100)
    assert rows["-", "pfs"].releases == 2


def test_reads_flush_by_themselves_every_few_seconds(managed, monkeypatch):
    fs, catalog, _ = managed
    fs.cat_file("m/one/a.bin")
    monkeypatch.setattr(fs._tier_manager().metrics, "_due", 0.0)  # the interval is over
    fs.cat_file("m/one/a.bin")
    assert _rows(catalog)["ds/one", "fsspec"].files_served == 2


def test_a_read_only_catalog_keeps_nothing_quietly(managed, monkeypatch):
    fs, catalog, _ = managed
    fs.cat_file("m/one/a.bin")
    monkeypatch.setattr(type(catalog), "read_only", property(lambda self: True))
    fs._tier_manager().flush()  # no warning (warnings are errors here), no row
    monkeypatch.undo()
    assert stats(catalog) == []


@pytest.mark.parametrize("catalog_backend", ["sqlite"])  # about the file
def test_a_catalog_removed_meanwhile_is_not_made_again(managed):
    fs, catalog, _ = managed
    fs.cat_file("m/one/a.bin")
    catalog.close()
    catalog.path.unlink()
    fs._tier_manager().flush()  # quietly: nothing to add the counts to
    assert not catalog.path.exists()


def test_counts_wait_for_a_catalog_that_cannot_be_written_now(managed, monkeypatch):
    fs, catalog, _ = managed
    fs.cat_file("m/one/a.bin")
    metrics = fs._tier_manager().metrics

    def locked(*args, **kwargs):
        raise aifdata.CatalogError("database is locked")

    monkeypatch.setattr(_metrics, "write_transaction", locked)
    with pytest.warns(RuntimeWarning, match="kept for the next try"):
        metrics.flush()
    monkeypatch.undo()
    metrics.flush()
    assert _rows(catalog)["ds/one", "fsspec"].files_served == 1


def test_a_forked_child_forgets_the_parents_counts(managed):
    fs, catalog, _ = managed
    fs.cat_file("m/one/a.bin")
    metrics = fs._tier_manager().metrics
    _metrics._after_fork_in_child()  # what os.fork runs in the child
    metrics.flush()
    assert stats(catalog) == []


def test_stats_shows_only_datasets_the_caller_may_read(managed, who):
    fs, catalog, _ = managed
    fs.cat_file("m/one/a.bin")
    fs.cat_file("m/two/c.bin")
    fs._tier_manager().flush()
    catalog.grant("user:bob", "read", "ds/two")
    who("bob")
    assert {r.dataset for r in stats(catalog)} == {"ds/two"}
    with pytest.raises(aifdata.UnknownDataset):
        stats(catalog, "ds/one")


def test_tier_stats_sum_and_ratio():
    a = TierStats("d", "pfs", hits=3, files_served=3)
    b = TierStats("d", "s3", misses=1, files_served=1)
    assert (a + b).hit_ratio == 0.75 and (a + b).files_served == 4
    assert TierStats("d", "pfs").hit_ratio is None
    assert a.as_dict()["hit_ratio"] == 1.0


def _cli(capsysbinary, catalog, *args):
    code = main(["stats", "--catalog", str(catalog.path), *args])
    out, err = capsysbinary.readouterr()
    return code, out.decode(), err.decode()


def test_stats_cli_table_json_and_prometheus(managed, capsysbinary):
    fs, catalog, _ = managed
    fs.cat_file("m/one/a.bin")
    catalog.stage("ds/one", to="pfs")
    fs.cat_file("m/one/a.bin")
    fs._tier_manager().flush()
    code, out, _ = _cli(capsysbinary, catalog)
    assert code == 0
    assert out.splitlines()[0].split() == [
        "DATASET", "TIER", "FILES", "BYTES", "HITS", "MISSES", "HYDRATED", "RELEASED",
    ]  # fmt: skip
    assert "ds/one: hit ratio 50% (1 of 2 reads from a local tier), 1 S3 requests saved" in out
    code, out, _ = _cli(capsysbinary, catalog, "--json")
    data = json.loads(out)
    assert data["datasets"]["ds/one"]["hit_ratio"] == 0.5
    assert {(t["dataset"], t["tier"]) for t in data["tiers"]} == {
        ("ds/one", "pfs"), ("ds/one", "fsspec"),
    }  # fmt: skip
    code, out, _ = _cli(capsysbinary, catalog, "--prometheus", "--dataset", "ds/one")
    assert code == 0
    lines = out.splitlines()
    assert "# TYPE aifdata_bytes_served_total counter" in lines
    assert lines[0].startswith("# HELP aifdata_bytes_served_total ")
    assert 'aifdata_bytes_served_total{dataset="ds/one",tier="pfs"} 100' in lines
    assert 'aifdata_hits_total{dataset="ds/one",tier="pfs"} 1' in lines
    assert 'aifdata_misses_total{dataset="ds/one",tier="fsspec"} 1' in lines
    for line in lines:  # every sample line: name{labels} integer
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            assert name.startswith("aifdata_") and name.endswith("}") and value.isdigit()


def test_prometheus_label_values_are_escaped():
    from aifdata.cli._stats import prometheus_text

    text = prometheus_text([TierStats('we"ird\\name', "pfs", hits=1)])
    assert 'aifdata_hits_total{dataset="we\\"ird\\\\name",tier="pfs"} 1' in text


def test_stats_of_an_unknown_dataset_exits_3_with_one_line(managed, capsysbinary):
    _, catalog, _ = managed
    code, out, err = _cli(capsysbinary, catalog, "--dataset", "no/such")
    assert code == 3 and out == ""
    assert len(err.strip().splitlines()) == 1 and "no/such" in err


def test_stats_without_counts_says_so(managed, capsysbinary):
    _, catalog, _ = managed
    code, out, _ = _cli(capsysbinary, catalog)
    assert code == 0 and "no reads counted yet" in out


def test_a_mount_that_is_not_managed_counts_reads_but_no_hits(managed, tmp_path):
    fs, catalog, _ = managed
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    (plain_dir / "f.bin").write_bytes(b"p" * 5)
    config = aifdata.Config(
        (fs.config.mount("m"), aifdata.Mount("plain", (aifdata.Tier.pfs(plain_dir),)))
    )
    other = aifdata.filesystem(config, catalog=catalog)
    assert other.cat_file("plain/f.bin") == b"p" * 5
    other._tier_manager().flush()
    row = _rows(catalog)["-", "pfs"]
    assert (row.files_served, row.bytes_served, row.hits, row.misses) == (1, 5, 0, 0)
