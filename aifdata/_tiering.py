"""What the ``aif://`` filesystem asks of a tier manager: hydrate, and count.

A mount with ``hydrate = "on-read"`` hands every read that a remote tier would
serve to a :class:`TierManager` first: it may return the route of a verified
copy it found or made on the mount's hydration tier (a PFS or node-local cache),
and it hears of every read served, for metrics and last-access times. The
filesystem never learns how: :mod:`aifdata.managed` provides the manager,
:mod:`aifdata._wiring` passes it in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._config import Mount
    from ._router import Route, Router


@runtime_checkable
class TierManager(Protocol):
    """Hydrates copies onto a mount's fast tier and counts what each tier serves."""

    def serve(self, router: Router, rel: str, route: Route, *, whole: bool) -> Route:
        """The route a read of ``rel`` should take: ``route`` as routed, or a verified
        copy on the hydration tier. ``whole`` is False for a ranged read. Never raises
        for a hydration that fails: it warns once per file and returns ``route``."""

    def known_route(self, router: Router, rel: str) -> Route | None:
        """A route decided before that still holds (checked without asking remote
        tiers), or None: then the read is routed and passed to :meth:`serve`."""

    def served(self, router: Router, route: Route, nbytes: int | None) -> None:
        """A read of ``route`` was served (``nbytes`` None: a file was opened)."""

    def read_known(
        self, mount: Mount, rel: str, start: int | None, end: int | None
    ) -> bytes | None:
        """The bytes of a read that a known route serves, read and counted; None when
        no known route holds (then the read is routed)."""

    def wrote(self, router: Router, rel: str) -> None:
        """``rel`` is being written through ``aif://`` (on the mount's write tier):
        whatever was known of its old bytes no longer routes its reads."""

    def remember(self, router: Router, rel: str, route: Route) -> None:
        """A route decided outside :meth:`serve` (by an ``info``) that the next reads
        of ``rel`` may take, as :meth:`known_route` and :meth:`read_known` say."""
