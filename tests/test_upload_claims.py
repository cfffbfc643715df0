"""An upload is committed by one request at a time, in any process, and once: claims in
the catalog (both backends)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from aifdata import Catalog
from aifdata._errors import Conflict
from aifdata.catalog import claim_upload, finish_upload
from aifdata.catalog._store import write_transaction


@pytest.fixture
def location(catalog_url: Any) -> Any:
    Catalog(catalog_url).datasets()  # made
    return catalog_url


def test_a_claim_held_elsewhere_is_refused_until_given_back(location: Any) -> None:
    here, elsewhere = Catalog(location), Catalog(location)  # as two worker processes
    claim_upload(here, "u1", stale_after=60)
    with pytest.raises(Conflict, match="u1 is being committed by another request"):
        claim_upload(elsewhere, "u1", stale_after=60)
    claim_upload(elsewhere, "u2", stale_after=60)  # another upload is another claim
    finish_upload(here, "u1", None)  # the commit failed: another may try
    claim_upload(elsewhere, "u1", stale_after=60)
    finish_upload(elsewhere, "u1", 7)
    with pytest.raises(Conflict, match="u1 was committed already, as version 7"):
        claim_upload(here, "u1", stale_after=60)


def test_a_claim_of_a_request_that_died_is_taken_over_once_stale(location: Any) -> None:
    here, elsewhere = Catalog(location), Catalog(location)
    claim_upload(here, "u1", stale_after=60)
    with write_transaction(here.conn) as conn:  # its process died a minute ago
        conn.execute("UPDATE upload_commits SET started = started - 61 WHERE upload_id = 'u1'")
    claim_upload(elsewhere, "u1", stale_after=60)
    with pytest.raises(Conflict, match="being committed"):
        claim_upload(here, "u1", stale_after=60)


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


def test_a_claim_names_who_took_it_and_when(location: Any, tmp_path: Path) -> None:
    catalog = Catalog(location)
    claim_upload(catalog, "u1", stale_after=60)
    committer, started = catalog.conn.execute(
        "SELECT committer, started FROM upload_commits WHERE upload_id = 'u1'"
    ).fetchone()
    assert committer.startswith("user:") and abs(started - time.time()) < 60
