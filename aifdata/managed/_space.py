"""Room on a managed tier: its capacity, and releasing copies to stay under it
(STUB: filled in by the release part)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._router import Router

if TYPE_CHECKING:
    from ._manager import Manager


def make_room(manager: Manager, router: Router, tier: str, nbytes: int) -> str | None:
    """Make room for ``nbytes`` more on ``tier`` of ``router``'s mount: None when there
    is room (after releasing least recently read copies past high water), else why
    the bytes cannot fit (the hydration is then skipped with a warning)."""
    return None
