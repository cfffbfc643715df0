"""Pins: ``Catalog.pin``/``unpin``/``pinned`` (write on the dataset, audited)."""

from __future__ import annotations

import pytest

from aifdata import AccessDenied, Catalog, UnknownDataset


@pytest.fixture
def catalog(catalog_url, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("a")
    catalog = Catalog(catalog_url)
    catalog.ingest(str(data), "lab/set")
    return catalog


def test_pin_and_unpin_say_whether_anything_changed(catalog):
    assert catalog.pinned() == []
    assert catalog.pin("lab/set") is True
    assert catalog.pin("lab/set") is False  # the first pin is kept
    (pin,) = catalog.pinned()
    assert pin.dataset == "lab/set" and pin.pinned_by.startswith("user:")
    assert pin.as_dict()["dataset"] == "lab/set"
    assert catalog.unpin("lab/set") is True
    assert catalog.unpin("lab/set") is False
    assert catalog.pinned() == []


def test_pins_are_audited(catalog):
    catalog.pin("lab/set")
    catalog.unpin("lab/set")
    actions = [(r["action"], r["target"], r["allowed"]) for r in catalog.audit_log()]
    assert actions[:2] == [("unpin", "lab/set", 1), ("pin", "lab/set", 1)]


def test_an_unknown_dataset_cannot_be_pinned(catalog):
    with pytest.raises(UnknownDataset, match="no dataset 'nosuch'"):
        catalog.pin("nosuch")
    with pytest.raises(UnknownDataset, match="no dataset 'nosuch'"):
        catalog.unpin("nosuch")


def test_pinning_needs_write_and_a_hidden_dataset_is_unknown(catalog, who):
    catalog.pin("lab/set")
    who("eve")
    with pytest.raises(UnknownDataset, match="no dataset 'lab/set'"):
        catalog.pin("lab/set")
    assert catalog.pinned() == []  # a pin of a dataset eve may not read is not shown


def test_a_reader_may_not_pin(catalog, who):
    catalog.grant("user:bob", "read", "lab/set")
    who("bob")
    with pytest.raises(AccessDenied, match="may not write"):
        catalog.pin("lab/set")
    assert catalog.pinned() == []


def test_a_pin_goes_with_its_dataset(catalog):
    catalog.pin("lab/set")
    if not catalog.is_postgres:  # PostgreSQL always enforces foreign keys
        catalog.conn.execute("PRAGMA foreign_keys = ON")
    catalog.conn.execute("DELETE FROM datasets WHERE name = 'lab/set'")
    assert catalog.conn.execute("SELECT COUNT(*) FROM pins").fetchone()[0] == 0
