"""Pins: datasets whose copies on managed tiers are never released.

A pin is one row per dataset (``pins``: dataset_id, pinned_by, created); it
keeps every copy of every version of the dataset on every PFS and cache tier
until it is unpinned. ``aifdata release`` and the room a hydration makes skip
pinned datasets' copies.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Pin:
    """One pinned dataset: who pinned it, and when."""

    dataset: str
    pinned_by: str
    created: float

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "pinned_by": self.pinned_by, "created": self.created}


def add_pin(conn: sqlite3.Connection, dataset_id: int, who: str, now: float) -> bool:
    """Pin a dataset; False when it already was (the first pin is kept)."""
    cursor = conn.execute(
        "INSERT OR IGNORE INTO pins (dataset_id, pinned_by, created) VALUES (?, ?, ?)",
        (dataset_id, who, now),
    )
    return cursor.rowcount > 0


def remove_pin(conn: sqlite3.Connection, dataset_id: int) -> bool:
    """Unpin a dataset; False when it was not pinned."""
    return conn.execute("DELETE FROM pins WHERE dataset_id = ?", (dataset_id,)).rowcount > 0


def pins(conn: sqlite3.Connection) -> list[Pin]:
    """Every pin, by dataset name."""
    rows = conn.execute(
        "SELECT d.name, p.pinned_by, p.created FROM pins p"
        " JOIN datasets d ON d.id = p.dataset_id ORDER BY d.name"
    ).fetchall()
    return [Pin(*tuple(row)) for row in rows]


def pinned_file_ids(conn: sqlite3.Connection) -> set[int]:
    """The ids of the files of every version of every pinned dataset."""
    rows = conn.execute(
        "SELECT f.id FROM files f JOIN versions v ON v.id = f.version_id"
        " JOIN pins p ON p.dataset_id = v.dataset_id"
    ).fetchall()
    return {int(row[0]) for row in rows}
