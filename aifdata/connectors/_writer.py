"""The writer a connector hands out: bytes that appear only on a clean close.

:meth:`Connector.open_write <aifdata.connectors.Connector.open_write>` returns a
:class:`TierWriter`. Whatever it writes stays invisible at the target path
until :meth:`~TierWriter.close` returns; :meth:`~TierWriter.discard` (or leaving
a ``with`` block by an exception) drops it and leaves the target as it was.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self, runtime_checkable

if TYPE_CHECKING:
    from typing_extensions import Buffer


@runtime_checkable
class TierWriter(Protocol):
    """An all-or-nothing binary writer to one path of a tier.

    * ``write`` buffers or uploads bytes that no reader can see yet;
    * ``close`` publishes them at the target in one step (the old content, if
      any, is replaced); a failure while publishing publishes nothing;
    * ``discard`` drops everything written and closes the writer; the target is
      left as it was and nothing of the write (no temporary file, no unfinished
      upload) remains. ``close`` after ``discard``, and ``discard`` after
      ``close``, do nothing;
    * as a context manager it closes on a normal exit and discards when the block
      raises (the exception propagates).
    """

    def write(self, data: Buffer, /) -> int:
        """Add ``data`` to what will be published; returns the number of bytes taken."""
        ...

    def close(self) -> None:
        """Publish what was written at the target, atomically."""
        ...

    def discard(self) -> None:
        """Drop what was written; the target keeps its previous content (or stays absent)."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
