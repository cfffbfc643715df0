"""Who commits an upload: one request at a time, in any worker process, and once.

``aifdata serve`` may run several worker processes; two commits of one upload (a client
retrying, say) must not both record a version. A commit first claims the upload in the
catalog (a row of ``upload_commits`` with a random token, taken in a write transaction,
which every process's writers queue for). The version is recorded only in a transaction
that finds the claim still its own, and stamps the claim with the version there:
recording and claiming are one. A failed commit gives back its claim (only its own, and
only while no version is on it). A claim older than ``stale_after`` seconds is taken over
(its request died, or ran past its time: it then finds the claim no longer its own and
records nothing).
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from typing import TYPE_CHECKING

from .._errors import Conflict
from ._policy import current_principal
from ._store import write_transaction

if TYPE_CHECKING:
    from ._catalog import Catalog


def claim_upload(catalog: Catalog, upload_id: str, stale_after: float) -> str:
    """Take the commit of ``upload_id`` for this request: the claim's token.
    :class:`Conflict` when another request holds it now, or it was committed already."""
    now, token = time.time(), secrets.token_hex(16)
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
            "INSERT INTO upload_commits (upload_id, token, committer, started) VALUES (?, ?, ?, ?)",
            (upload_id, token, str(current_principal()), now),
        )
    return token


def record_upload(
    conn: sqlite3.Connection, upload_id: str, token: str, version: int | None
) -> None:
    """Inside the transaction recording ``version``: stamp this request's claim with it,
    or raise :class:`Conflict` (and so record nothing) when the claim is no longer ours."""
    if version is None:
        return
    stamped = conn.execute(
        "UPDATE upload_commits SET version = ?"
        " WHERE upload_id = ? AND token = ? AND version IS NULL",
        (version, upload_id, token),
    ).rowcount
    if stamped != 1:
        raise Conflict(
            f"upload {upload_id}: another request took its commit over (this one ran past"
            " its time); nothing was recorded by this one"
        )


def release_upload(catalog: Catalog, upload_id: str, token: str) -> None:
    """Give back this request's claim when it recorded nothing (another may try)."""
    with write_transaction(catalog.conn) as conn:
        conn.execute(
            "DELETE FROM upload_commits WHERE upload_id = ? AND token = ? AND version IS NULL",
            (upload_id, token),
        )
