"""What ``sync`` found and did: one row per file that changed, and the versions made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The kinds of change, as the table and ``--json`` name them.
NEW, CHANGED, DELETED, CONFLICT, GONE = "new", "changed", "deleted", "conflict", "gone"


@dataclass(frozen=True)
class Side:
    """One tier's copy of a file as sync found it (``size`` None: no copy there)."""

    tier: str
    url: str
    size: int | None
    checksum: str | None
    etag: str | None = None
    mtime: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "url": self.url,
            "size": self.size,
            "checksum": self.checksum,
            "etag": self.etag,
            "mtime": self.mtime,
        }

    def describe(self) -> str:
        """``s3: 12 bytes sha256:ab.. ETag ..`` (or ``s3: deleted``) for the conflict table."""
        if self.size is None:
            return f"{self.tier}: deleted"
        marker = (
            f"ETag {self.etag}" if self.etag else f"mtime {self.mtime:.0f}" if self.mtime else ""
        )
        return f"{self.tier}: {self.size} bytes {self.checksum} {marker}".rstrip()


@dataclass(frozen=True)
class SyncChange:
    """One file of one dataset that is new, changed, deleted, in conflict, or gone from a
    tier (``gone``: one tier lost its copy, another still holds the bytes: no change).

    ``sides`` are the copies that hold the new bytes (new, changed), the copies the
    version recorded (deleted, gone), or every side of a conflict; ``chosen`` is the
    tier whose bytes resolved a conflict (``--prefer``), None while unresolved.
    """

    dataset: str
    path: str
    change: str
    sides: tuple[Side, ...]
    chosen: str | None = None

    @property
    def side(self) -> str:
        """The tiers the change was seen on, e.g. ``s3`` or ``pfs+s3``."""
        if self.change == CONFLICT and self.chosen is not None:
            return f"{self.chosen} (preferred)"
        return "+".join(sorted({s.tier for s in self.sides}))

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "path": self.path,
            "change": self.change,
            "side": self.side,
            "chosen": self.chosen,
            "sides": [s.as_dict() for s in self.sides],
        }


@dataclass(frozen=True)
class SyncReport:
    """What a sync of ``prefix`` found, and what it recorded.

    Nothing is recorded on a dry run, nor while a conflict is unresolved
    (``conflicts``): ``versions`` is then empty.
    """

    prefix: str
    changes: tuple[SyncChange, ...] = ()
    versions: tuple[str, ...] = ()  # NAME@N made by this sync
    skipped: tuple[str, ...] = ()  # datasets there the caller may read but not write
    exported: tuple[str, ...] = ()  # write-tier copies given the version's bytes
    prefer: str | None = None
    dry_run: bool = False

    @property
    def conflicts(self) -> tuple[SyncChange, ...]:
        """Conflicts no ``prefer`` resolved."""
        return tuple(c for c in self.changes if c.change == CONFLICT and c.chosen is None)

    @property
    def up_to_date(self) -> bool:
        """Nothing new, changed or deleted (copies gone from one tier do not count)."""
        return all(c.change == GONE for c in self.changes)

    @property
    def ok(self) -> bool:
        return not self.conflicts

    def as_dict(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "ok": self.ok,
            "up_to_date": self.up_to_date,
            "dry_run": self.dry_run,
            "prefer": self.prefer,
            "versions": list(self.versions),
            "skipped": list(self.skipped),
            "exported": list(self.exported),
            "conflicts": len(self.conflicts),
            "changes": [c.as_dict() for c in self.changes],
        }
