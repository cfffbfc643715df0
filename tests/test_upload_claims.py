"""An upload is committed by one request at a time, in any process, and once: claims in
the catalog (both backends). The version is recorded only in a transaction that finds
the claim still its own."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from aifdata import Catalog
from aifdata._errors import Conflict
from aifdata.catalog import claim_upload, record_upload, release_upload
from aifdata.catalog._store import write_transaction

from .test_catalog import make_tree


@pytest.fixture
def location(catalog_url: Any) -> Any:
    Catalog(catalog_url).datasets()  # made
    return catalog_url


def claim_row(catalog: Catalog, upload_id: str) -> Any:
    return catalog.conn.execute(
        "SELECT token, committer, started, version FROM upload_commits WHERE upload_id = ?",
        (upload_id,),
    ).fetchone()


def test_a_claim_held_elsewhere_is_refused_until_given_back(location: Any) -> None:
    here, elsewhere = Catalog(location), Catalog(location)  # as two worker processes
    mine = claim_upload(here, "u1", stale_after=60)
    with pytest.raises(Conflict, match="u1 is being committed by another request"):
        claim_upload(elsewhere, "u1", stale_after=60)
    claim_upload(elsewhere, "u2", stale_after=60)  # another upload is another claim
    release_upload(elsewhere, "u1", "not-its-token")  # gives back only its own
    assert claim_row(here, "u1") is not None
    release_upload(here, "u1", mine)  # the commit failed: another may try
    theirs = claim_upload(elsewhere, "u1", stale_after=60)
    with write_transaction(elsewhere.conn) as conn:
        record_upload(conn, "u1", theirs, 7)
    release_upload(elsewhere, "u1", theirs)  # a recorded claim is never given back
    with pytest.raises(Conflict, match="u1 was committed already, as version 7"):
        claim_upload(here, "u1", stale_after=60)


def test_a_request_that_lost_its_claim_records_nothing(location: Any, tmp_path: Path) -> None:
    """A request that ran past its time (its claim taken over) finds the claim not its own
    inside the transaction recording its version: the version is not recorded."""
    slow, retry = Catalog(location), Catalog(location)
    late = claim_upload(slow, "u1", stale_after=60)
    with write_transaction(slow.conn) as conn:  # a minute later
        conn.execute("UPDATE upload_commits SET started = started - 61 WHERE upload_id = 'u1'")
    taken = claim_upload(retry, "u1", stale_after=60)
    with pytest.raises(Conflict, match="is being committed"):
        claim_upload(slow, "u1", stale_after=60)
    tree = make_tree(tmp_path / "up", {"a.txt": b"alpha"})

    def recorded(conn: Any, version: int | None) -> None:
        record_upload(conn, "u1", late, version)

    with pytest.raises(Conflict, match="another request took its commit over"):
        slow.ingest(str(tree), "lab/inbox", on_record=recorded)
    assert "lab/inbox" not in slow.datasets()
    release_upload(slow, "u1", late)  # not its claim any more: nothing given back
    assert claim_row(retry, "u1")[0] == taken
    made = retry.ingest(str(tree), "lab/inbox",
                        on_record=lambda c, v: record_upload(c, "u1", taken, v))  # fmt: skip
    assert claim_row(retry, "u1")[3] == made.version == 1


def test_of_many_claiming_at_once_one_wins(location: Any) -> None:
    won: list[int] = []
    refused: list[str] = []
    start = threading.Barrier(8)

    def claim(i: int) -> None:
        catalog = Catalog(location)
        catalog.datasets()
        start.wait()
        try:
            claim_upload(catalog, "race", stale_after=60)
            won.append(i)
        except Conflict as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(won) == 1 and len(refused) == 7


def test_a_claim_names_who_took_it_and_when(location: Any) -> None:
    catalog = Catalog(location)
    token = claim_upload(catalog, "u1", stale_after=60)
    kept, committer, started, version = claim_row(catalog, "u1")
    assert kept == token and len(token) == 32 and version is None
    assert committer.startswith("user:") and abs(started - time.time()) < 60
