"""What the ``aif://`` filesystem needs from whoever governs it: an access gate.

The filesystem checks every request through an :class:`AccessGate` passed to
it and never learns where grants live; the catalog provides one
(:meth:`aifdata.Catalog.gate`). Replica records for routing come the same way,
as a :data:`~aifdata._router.RecordLookup`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable


@runtime_checkable
class AccessGate(Protocol):
    """Decides whether the current principal may act on logical ``aif://`` paths."""

    def check(self, paths: str | Iterable[str], privilege: str, action: str) -> None:
        """Raise :class:`~aifdata.AccessDenied` (and record it) unless every path allows
        ``privilege``; ``action`` names the operation for the audit trail."""

    def readable(self, paths: Iterable[str]) -> list[str]:
        """The paths the current principal may read (for listings: nothing recorded)."""
