"""Who commits an upload: one request at a time, in any worker process, and once.

``aifdata serve`` may run several worker processes; two commits of one upload (a client
retrying, say) must not both record a version. A commit first claims the upload in the
catalog (one row of ``upload_commits``, taken in a write transaction, which every
process's writers queue for); it then records the version it made, or gives the claim
back when it failed. A claim whose request died with its process is taken over once it
is older than ``stale_after`` seconds (longer than any commit may run).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .._errors import Conflict
from ._policy import current_principal
from ._store import write_transaction

if TYPE_CHECKING:
    from ._catalog import Catalog


def claim_upload(catalog: Catalog, upload_id: str, stale_after: float) -> None:
    """Take the commit of ``upload_id`` for this request; :class:`Conflict` when another
    request holds it now, or when it was committed already."""
    now = time.time()
    with write_transaction(catalog.conn) as conn:
        row = conn.execute(
            "SELECT started, version FROM upload_commits WHERE upload_id = ?", (upload_id,)
        ).fetchone()
        if row is not None:
            if row[1] is not None:
                raise Conflict(f"upload {upload_id} was committed already, as version {row[1]}")
            if now - float(row[0]) < stale_after:
                raise Conflict(f"upload {upload_id} is being committed by another request")
            conn.execute("DELETE FROM upload_commits WHERE upload_id = ?", (upload_id,))
        conn.execute(
            "INSERT INTO upload_commits (upload_id, committer, started) VALUES (?, ?, ?)",
            (upload_id, str(current_principal()), now),
        )


def finish_upload(catalog: Catalog, upload_id: str, version: int | None) -> None:
    """Record the version the claimed commit made (None: it failed; the claim is given
    back, and another commit may try)."""
    with write_transaction(catalog.conn) as conn:
        if version is None:
            conn.execute("DELETE FROM upload_commits WHERE upload_id = ?", (upload_id,))
        else:
            conn.execute(
                "UPDATE upload_commits SET version = ? WHERE upload_id = ?", (version, upload_id)
            )
