"""Tier metrics across processes: the counts of many processes (spawned and forked),
each flushed at its exit, add up exactly in the catalog."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

import aifdata
from aifdata.managed import by_dataset, stats

pytestmark = pytest.mark.e2e

FILES = {f"set/f{i}.bin": bytes([i]) * (100 + i) for i in range(5)}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    """A managed mount (a PFS tier that hydrates, a local archive as the write tier) in a
    TOML file the children load, and a catalog with dataset ``set`` recorded."""
    pfs, archive = tmp_path / "pfs", tmp_path / "archive"
    pfs.mkdir()
    archive.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[mounts.m]\nhydrate = "on-read"\nread_order = ["pfs", "archive"]\n'
        f'write_tier = "archive"\n[mounts.m.pfs]\npath = "{pfs}"\n'
        f'[mounts.m.archive]\nkind = "pfs"\npath = "{archive}"\n'
    )
    catalog = aifdata.Catalog(tmp_path / "catalog.db", config=aifdata.load_config(config))
    fs = aifdata.filesystem(catalog.config, catalog=catalog)
    fs.pipe({f"m/{k}": v for k, v in FILES.items()})
    catalog.ingest("aif://m/set", "set")
    return config, catalog.path


def _read_all(config: str, catalog: str, rounds: int) -> None:
    """A child: read every file ``rounds`` times; no flush (its exit flushes)."""
    fs = aifdata.filesystem(config, catalog=catalog)
    for _ in range(rounds):
        for rel, data in FILES.items():
            assert fs.cat_file(f"m/{rel}") == data


def _totals(catalog_path: Path) -> aifdata.managed.TierStats:
    return by_dataset(stats(aifdata.Catalog(catalog_path)))["set"]


@pytest.mark.timeout(120)
def test_spawned_processes_add_up_exactly(setup):
    config, catalog = setup
    ctx = multiprocessing.get_context("spawn")
    rounds = [3, 1, 4, 2]
    children = [ctx.Process(target=_read_all, args=(str(config), str(catalog), n)) for n in rounds]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    total = _totals(catalog)
    reads = sum(rounds) * len(FILES)
    assert (total.files_served, total.hits, total.misses) == (reads, reads, 0)
    assert total.bytes_served == sum(rounds) * sum(map(len, FILES.values()))


@pytest.mark.timeout(120)
def test_a_forked_child_counts_its_reads_not_its_parents(setup):
    config, catalog = setup
    fs = aifdata.filesystem(str(config), catalog=str(catalog))
    for rel in FILES:
        fs.cat_file(f"m/{rel}")  # counted in the parent's memory, not yet flushed
    child = multiprocessing.get_context("fork").Process(
        target=_read_all, args=(str(config), str(catalog), 2)
    )
    child.start()
    child.join(60)
    assert child.exitcode == 0
    fs._tier_manager().flush()
    # the parent's reads once (the child forgot them), the child's (added at its exit)
    assert _totals(catalog).files_served == 3 * len(FILES)
