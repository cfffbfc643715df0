"""``aifdata prefetch``: every file of a version onto its mount's hydration tier, in
parallel, resumable, with a JSON summary (unit: a stand-in for the hydration itself)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

import aifdata
from aifdata.cli import main
from aifdata.managed import Manager, prefetch

FILES = {"one/a.bin": b"a" * 100, "one/sub/b.bin": b"b" * 50, "two/c.bin": b"c" * 7}


@dataclass(frozen=True)
class Done:
    outcome: str
    bytes: int = 0
    reason: str = ""


class FakeHydration:
    """Stands in for ``Manager.hydrate_file``: copies the write tier's bytes onto the
    hydration tier (``present`` when the copy is there), or fails for names in ``fail``."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.threads: set[str] = set()
        self.fail: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, manager: Manager, router, rel: str) -> Done:
        with self.lock:
            self.calls.append(rel)
            self.threads.add(threading.current_thread().name)
        if rel in self.fail:
            raise OSError(f"no space left on tier {router.mount.hydration_tier!r}")
        target = Path(router.connectors[router.mount.hydration_tier].url(rel))
        if target.exists():
            return Done("present")
        data = router.connectors[router.mount.write_tier].cat_file(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return Done("hydrated", len(data))


@pytest.fixture
def hydration(monkeypatch) -> FakeHydration:
    fake = FakeHydration()

    def hydrate_file(manager: Manager, router, rel: str) -> Done:
        return fake(manager, router, rel)

    monkeypatch.setattr(Manager, "hydrate_file", hydrate_file, raising=False)
    return fake


@pytest.fixture
def layout(tmp_path):
    """Mount ``m`` (PFS read first and hydrated, a local archive the write tier) and
    mount ``flat`` (an archive alone); datasets ``one``, ``two`` and ``flat``."""
    pfs, archive, flat = tmp_path / "pfs", tmp_path / "archive", tmp_path / "flat"
    for d in (pfs, archive, flat):
        d.mkdir()
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        f'[mounts.m]\nhydrate = "on-read"\nread_order = ["pfs", "archive"]\n'
        f'write_tier = "archive"\n[mounts.m.pfs]\npath = "{pfs}"\n'
        f'[mounts.m.archive]\nkind = "pfs"\npath = "{archive}"\n'
        f'[mounts.flat.archive]\nkind = "pfs"\npath = "{flat}"\n'
    )
    config = aifdata.load_config(config_file)
    catalog = aifdata.Catalog(tmp_path / "catalog.db", config=config)
    fs = aifdata.filesystem(config, catalog=catalog)
    fs.pipe({f"m/{k}": v for k, v in FILES.items()})
    fs.pipe("flat/x.bin", b"x")
    catalog.ingest("aif://m/one", "one")
    catalog.ingest("aif://m/two", "two")
    catalog.ingest("aif://flat", "flat")
    return catalog, pfs, config_file


def test_prefetch_hydrates_every_file_then_finds_them_present(layout, hydration):
    catalog, pfs, _ = layout
    report = prefetch(catalog, "one", workers=2)
    assert (report.hydrated, report.present, report.skipped, report.failed) == (2, 0, 0, 0)
    assert report.bytes == 150 and report.tiers == ("pfs",) and report.ok
    assert (pfs / "one/sub/b.bin").read_bytes() == FILES["one/sub/b.bin"]
    again = prefetch(catalog, "one@1")  # a run after a kill: what is there is present
    assert (again.hydrated, again.present, again.bytes) == (0, 2, 0)
    assert sorted(hydration.calls) == sorted(["one/a.bin", "one/sub/b.bin"] * 2)


def test_files_hydrate_in_parallel_threads(layout, hydration, monkeypatch):
    catalog, _, _ = layout
    both = threading.Barrier(2, timeout=30)

    def meet(manager, router, rel):
        both.wait()  # returns only when two files are being hydrated at once
        return hydration(manager, router, rel)

    monkeypatch.setattr(Manager, "hydrate_file", meet, raising=False)
    report = prefetch(catalog, "one", workers=2)
    assert report.hydrated == 2


def test_a_prefix_takes_the_files_under_it_of_the_datasets_there(layout, hydration):
    catalog, pfs, _ = layout
    report = prefetch(catalog, "aif://m/one/sub")
    assert report.hydrated == 1 and hydration.calls == ["one/sub/b.bin"]
    report = prefetch(catalog, "aif://m")
    assert (report.hydrated, report.present) == (2, 1)
    assert (pfs / "two/c.bin").read_bytes() == FILES["two/c.bin"]


def test_one_file_failing_is_reported_and_the_others_hydrate(layout, hydration):
    catalog, _, _ = layout
    hydration.fail.add("one/a.bin")
    report = prefetch(catalog, "one")
    assert (report.hydrated, report.failed, report.ok) == (1, 1, False)
    assert report.failures == (("aif://m/one/a.bin", "no space left on tier 'pfs'"),)


def test_progress_hears_every_files_bytes(layout, hydration):
    catalog, _, _ = layout
    heard: list[int] = []
    prefetch(catalog, "one", progress=heard.append)
    assert sorted(heard) == [50, 100]


def test_a_mount_with_no_tier_to_hydrate_onto_is_named(layout, hydration):
    catalog, _, _ = layout
    with pytest.raises(aifdata.ConfigError, match="mount 'flat' has no tier to prefetch onto"):
        prefetch(catalog, "flat")
    assert hydration.calls == []


def test_prefetch_needs_read_on_the_dataset(layout, hydration, who):
    catalog, _, _ = layout
    who("eve")
    with pytest.raises(aifdata.UnknownDataset):
        prefetch(catalog, "one")
    assert hydration.calls == []


def _cli(capsysbinary, layout, *args):
    catalog, _, config = layout
    code = main(["--config", str(config), "prefetch", "--catalog", str(catalog.path), *args])
    out, err = capsysbinary.readouterr()
    return code, out.decode(), err.decode()


def test_cli_json_summary_and_resume(layout, hydration, capsysbinary):
    code, out, _ = _cli(capsysbinary, layout, "one", "--workers", "3", "--json")
    assert code == 0
    summary = json.loads(out)
    assert {k: summary[k] for k in ("hydrated", "present", "skipped", "failed", "bytes")} == {
        "hydrated": 2, "present": 0, "skipped": 0, "failed": 0, "bytes": 150,
    }  # fmt: skip
    assert summary["seconds"] >= 0 and summary["tiers"] == ["pfs"]
    code, out, _ = _cli(capsysbinary, layout, "one")
    assert code == 0
    assert "one onto pfs: 0 hydrated (0 bytes), 2 present, 0 skipped, 0 failed" in out


def test_cli_exits_1_naming_a_failed_file(layout, hydration, capsysbinary):
    hydration.fail.add("one/a.bin")
    code, out, _ = _cli(capsysbinary, layout, "one")
    assert code == 1
    assert "FAILED  aif://m/one/a.bin: no space left on tier 'pfs'" in out


@pytest.mark.parametrize(
    ("target", "code", "words"),
    [
        ("no/such", 3, "no dataset 'no/such'"),
        ("one@9", 3, "has no version 9"),
        ("aif://m/nothing/here", 3, "no recorded file of a dataset there"),
        ("aif://nomount/x", 3, "no mount holds"),
        ("one@x", 2, "expected NAME or NAME@VERSION"),
        ("flat", 5, "mount 'flat' has no tier to prefetch onto"),
    ],
)
def test_cli_bad_input_is_one_line(layout, hydration, capsysbinary, target, code, words):
    got, out, err = _cli(capsysbinary, layout, target)
    assert got == code and out == ""
    assert len(err.strip().splitlines()) == 1 and words in err, err
    assert hydration.calls == []
