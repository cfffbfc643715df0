"""What ``release`` did: each copy it looked at, and the totals."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

RELEASED, WOULD_RELEASE, REFUSED, FORGOTTEN = "released", "would release", "refused", "forgotten"


@dataclass(frozen=True)
class ReleasedCopy:
    """One copy release looked at: released (or would be, in a dry run), or refused."""

    path: str  # aif://mount/rel
    tier: str
    url: str
    size: int
    last_access: float | None
    outcome: str
    reason: str = ""
    datasets: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "tier": self.tier,
            "url": self.url,
            "bytes": self.size,
            "last_access": self.last_access,
            "outcome": self.outcome,
            "reason": self.reason,
            "datasets": list(self.datasets),
        }


@dataclass(frozen=True)
class ReleaseReport:
    """What ``release`` did (or, in a dry run, would do)."""

    copies: tuple[ReleasedCopy, ...] = ()
    dry_run: bool = False
    pinned: int = 0  # copies kept because their dataset is pinned
    notes: tuple[str, ...] = ()

    @property
    def released(self) -> tuple[ReleasedCopy, ...]:
        return tuple(c for c in self.copies if c.outcome in (RELEASED, WOULD_RELEASE))

    @property
    def refused(self) -> tuple[ReleasedCopy, ...]:
        return tuple(c for c in self.copies if c.outcome == REFUSED)

    @property
    def bytes_released(self) -> int:
        return sum(c.size for c in self.released)

    @property
    def ok(self) -> bool:
        """No copy was refused."""
        return not self.refused

    def merged(self, other: ReleaseReport) -> ReleaseReport:
        return replace(
            self,
            copies=self.copies + other.copies,
            pinned=self.pinned + other.pinned,
            notes=self.notes + other.notes,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "released": len(self.released),
            "bytes_released": self.bytes_released,
            "refused": len(self.refused),
            "pinned": self.pinned,
            "notes": list(self.notes),
            "copies": [c.as_dict() for c in self.copies],
        }
