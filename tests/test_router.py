"""``Router`` on its own: which copy serves a read, from stats and catalog records alone.

No storage is touched: the connectors are stubs that answer ``url`` and ``stats``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import pytest

import aifdata
from aifdata import NotFound, Route
from aifdata._router import ReplicaRecord, Router


class Stat(NamedTuple):
    """What a connector's ``stats`` reports of a copy."""

    size: int
    mtime: float | None = None
    etag: str | None = None


class StubConnector:
    """A tier whose copies are a dict; it counts the bulk stat calls it answers."""

    def __init__(self, root: str, copies: Mapping[str, Stat] | None = None) -> None:
        self.root = root
        self.copies = dict(copies or {})
        self.stat_calls: list[list[str]] = []

    def url(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def stats(self, rels: Sequence[str]) -> dict[str, Stat]:
        self.stat_calls.append(list(rels))
        return {r: self.copies[r] for r in rels if r in self.copies}


MOUNT = aifdata.Mount(
    "both",
    (aifdata.Tier.pfs("/pfs"), aifdata.Tier.s3("s3://bucket/data")),
    read_order=("pfs", "s3"),
    write_tier="s3",
)


def router(pfs=None, s3=None, records=None):
    """A router of ``MOUNT`` over stub tiers, with catalog ``records`` by URL (or none)."""
    connectors = {"pfs": StubConnector("/pfs", pfs), "s3": StubConnector("s3://bucket/data", s3)}
    lookups: list[list[str]] = []

    def lookup(urls):
        lookups.append(list(urls))
        return {u: records[u] for u in urls if u in records}

    return Router(MOUNT, connectors, lookup if records is not None else None), lookups


def test_a_same_size_copy_on_the_pfs_serves_the_read():
    r, _ = router(pfs={"f": Stat(6)}, s3={"f": Stat(6)})
    route = r.route("f")
    assert route == Route(
        "both/f", "pfs", "/pfs/f", "same size as the write tier 's3' (6 bytes)", 6, ()
    )


def test_a_pfs_copy_of_another_size_is_skipped_for_the_write_tier():
    r, _ = router(pfs={"f": Stat(5)}, s3={"f": Stat(15)})
    route = r.route("f")
    assert (route.tier, route.url, route.size) == ("s3", "s3://bucket/data/f", 15)
    assert route.reason == "'s3' is the write tier"
    assert route.skipped == (("pfs", "size 5 differs from 15 on write tier 's3'"),)


def test_no_pfs_copy_is_skipped_as_no_copy():
    route = router(s3={"f": Stat(3)})[0].route("f")
    assert route.tier == "s3"
    assert route.skipped == (("pfs", "no copy"),)


def test_a_copy_only_off_the_write_tier_serves_the_read():
    route = router(pfs={"f": Stat(3)})[0].route("f")
    assert route.tier == "pfs"
    assert route.reason == "write tier 's3' has no copy; 'pfs' has one"


def test_no_copy_anywhere_is_not_found_naming_the_tiers():
    r, _ = router()
    with pytest.raises(NotFound, match=r"aif://both/f: no copy on any tier \(pfs, s3\)"):
        r.route("f")
    assert isinstance(r.route_many(["f"])["f"], FileNotFoundError)


def test_route_many_stats_each_tier_once_and_asks_the_catalog_once():
    r, lookups = router(
        pfs={"a": Stat(1), "b": Stat(9)}, s3={"a": Stat(1), "b": Stat(2), "c": Stat(3)}, records={}
    )
    routes = r.route_many(["a", "b", "c", "d"])
    assert {k: v.tier for k, v in routes.items() if isinstance(v, Route)} == {
        "a": "pfs",
        "b": "s3",
        "c": "s3",
    }
    assert isinstance(routes["d"], NotFound)
    assert r.connectors["pfs"].stat_calls == [["a", "b", "c", "d"]]
    assert r.connectors["s3"].stat_calls == [["a", "b", "c", "d"]]
    assert len(lookups) == 1 and sorted(lookups[0]) == sorted(
        [f"/pfs/{x}" for x in "abcd"] + [f"s3://bucket/data/{x}" for x in "abcd"]
    )


def test_a_one_tier_mount_routes_without_a_stat():
    mount = aifdata.Mount("p", (aifdata.Tier.pfs("/pfs"),))
    conn = StubConnector("/pfs")
    routes = Router(mount, {"pfs": conn}).route_many(["x", "y"])
    assert routes["x"] == Route("p/x", "pfs", "/pfs/x", "the mount's only tier")
    assert conn.stat_calls == []
    assert Router(mount, {"pfs": conn}).serving_tiers(["x"]) == {"x": "pfs"}


# -- copies the catalog checksummed ---------------------------------------------


def test_a_verified_unchanged_copy_is_preferred_even_against_the_size_rule():
    s3 = {"f": Stat(4, etag='"e1"')}
    pfs = {"f": Stat(4, mtime=100.0)}
    records = {
        "/pfs/f": ReplicaRecord(4, "sha256:aa", 100.0, None),
        "s3://bucket/data/f": ReplicaRecord(4, "sha256:aa", None, "e1"),
    }
    route = router(pfs, s3, records)[0].route("f")
    assert (route.tier, route.checksum) == ("pfs", "sha256:aa")
    assert route.reason == "unchanged since the catalog checksummed it (sha256:aa)"


def test_a_copy_changed_since_the_catalog_saw_it_is_skipped():
    pfs = {"f": Stat(4, mtime=200.0)}  # touched after the catalog recorded it
    s3 = {"f": Stat(4, etag="e1")}
    records = {
        "/pfs/f": ReplicaRecord(4, "sha256:aa", 100.0, None),
        "s3://bucket/data/f": ReplicaRecord(4, "sha256:aa", None, "e1"),
    }
    route = router(pfs, s3, records)[0].route("f")
    assert route.tier == "s3"
    assert route.skipped == (("pfs", "changed since the catalog checksummed it"),)
    assert route.checksum == "sha256:aa"


def test_an_older_verified_version_yields_to_the_write_tier():
    pfs = {"f": Stat(4, mtime=100.0)}
    s3 = {"f": Stat(4, etag="e2")}
    records = {
        "/pfs/f": ReplicaRecord(4, "sha256:old", 100.0, None),
        "s3://bucket/data/f": ReplicaRecord(4, "sha256:new", None, "e2"),
    }
    route = router(pfs, s3, records)[0].route("f")
    assert route.tier == "s3"
    assert route.skipped == (("pfs", "another version than the write tier 's3' holds"),)
    assert route.checksum == "sha256:new"


def test_an_unverified_pfs_copy_falls_back_to_the_size_rule():
    pfs = {"f": Stat(4, mtime=100.0)}
    s3 = {"f": Stat(4, etag="e1")}
    route = router(pfs, s3, records={})[0].route("f")
    assert route.tier == "pfs"
    assert route.checksum is None
    assert route.reason == "same size as the write tier 's3' (4 bytes)"


def test_a_record_without_checksum_still_verifies_by_size_and_mtime():
    pfs = {"f": Stat(4, mtime=100.0)}
    records = {"/pfs/f": ReplicaRecord(4, None, 100.0, None)}
    route = router(pfs, {}, records)[0].route("f")
    assert route.tier == "pfs"
    assert route.reason == "unchanged since the catalog recorded it (size and mtime/ETag)"


@pytest.mark.parametrize(
    ("record", "stat", "matches"),
    [
        (ReplicaRecord(4, None, None, '"e1"'), Stat(4, etag="e1"), True),
        (ReplicaRecord(4, None, None, "e1"), Stat(4, etag="e2"), False),
        (ReplicaRecord(4, None, 1.0, None), Stat(4, mtime=1.0), True),
        (ReplicaRecord(4, None, 1.0, None), Stat(4, mtime=2.0), False),
        (ReplicaRecord(4, None, 1.0, "e1"), Stat(5, mtime=1.0, etag="e1"), False),
        (ReplicaRecord(4, None, None, None), Stat(4), False),  # nothing to compare: not proof
    ],
)
def test_a_record_matches_a_live_copy_by_size_and_etag_or_mtime(record, stat, matches):
    assert record.matches(stat) is matches
