"""The cached policy follows the policy mark: audit rows (this connection's, another's,
another process's) leave it; a grant, a revoke, a new admin, a new dataset or version
made anywhere reload it, and the new decision applies at once. Both backends."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aifdata import AccessDenied, AifDataError, Catalog
from aifdata.catalog import Principal, acting_as
from aifdata.catalog import _catalog as catalog_module
from aifdata.catalog._store import write_transaction

from .test_catalog import make_tree

BOB = Principal("bob", ())


@pytest.fixture
def catalog(catalog_url: Any, tmp_path: Path) -> Catalog:
    cat = Catalog(catalog_url)
    cat.ingest(str(make_tree(tmp_path / "one", {"a.txt": b"alpha"})), "lab/one")
    return cat


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per policy loaded from the database (by any catalog of this process)."""
    counted: list[int] = []
    real = catalog_module.load_policy

    def counting(*args: Any, **kwargs: Any) -> Any:
        counted.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(catalog_module, "load_policy", counting)
    return counted


def admin_of(catalog: Catalog) -> Principal:
    return Principal(catalog.admins()[0].removeprefix("user:"), ())


def in_another_process(catalog: Catalog, code: str) -> None:
    """Run ``code`` (``cat`` is the catalog, acting as its first admin) in a new process."""
    script = "from aifdata import Catalog\ncat = Catalog(LOCATION)\n" + textwrap.dedent(code)
    env = {**os.environ, "AIFDATA_USER": admin_of(catalog).user, "AIFDATA_GROUPS": ""}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1]), env.get("PYTHONPATH", "")])
    script = script.replace("LOCATION", repr(str(catalog.location)))
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)


def audit_rows(catalog: Catalog) -> int:
    return int(catalog.conn.execute("SELECT count(*) FROM audit").fetchone()[0])


def bob_reads(catalog: Catalog, name: str = "lab/one") -> bool:
    with acting_as(BOB):
        try:
            catalog.dataset(name)
        except AifDataError:
            return False
    return True


@pytest.mark.e2e
def test_audit_rows_from_anywhere_leave_the_cached_policy(catalog: Catalog, loads) -> None:
    catalog.policy()
    before, rows = len(loads), audit_rows(catalog)
    admin = admin_of(catalog)
    catalog.record_audit(admin, "open", "aif://x", "read", "lab/one", allowed=True)
    assert not bob_reads(catalog)  # a refusal: an audit row written by the check
    assert not bob_reads(catalog)
    Catalog(catalog.location).record_audit(admin, "ls", "aif://y", "read", "lab/one", allowed=True)
    in_another_process(
        catalog,
        """
        from aifdata import UnknownDataset
        from aifdata.catalog import Principal, acting_as
        cat.record_audit(Principal("carol"), "presign", "aif://z", "read", "lab/one", allowed=True)
        try:
            with acting_as(Principal("mallory")):
                cat.require("lab/one", "read", "open")
        except UnknownDataset:
            pass
        """,
    )
    catalog.policy()
    assert audit_rows(catalog) == rows + 6
    assert len(loads) == before


def _grant(cat: Catalog) -> None:
    cat.grant("user:bob", "read", "lab/*")


def _revoke(cat: Catalog) -> None:
    cat.revoke("user:bob", "read", "lab/*")


def _add_admin(cat: Catalog) -> None:
    cat.add_admin("user:bob")


def _ingest_dataset(cat: Catalog, tmp_path: Path) -> None:
    cat.ingest(str(make_tree(tmp_path / "two", {"b.txt": b"beta"})), "lab/two", owner="bob")


def _ingest_version(cat: Catalog, tmp_path: Path) -> None:
    cat.ingest(str(make_tree(tmp_path / "one-v2", {"a.txt": b"alpha 2"})), "lab/one")


#: change: (in this process, as code for another, set up first, bob's decision before/after)
CHANGES: dict[str, tuple[Callable[..., None], str, bool, Callable[..., bool]]] = {
    "grant": (_grant, "cat.grant('user:bob', 'read', 'lab/*')", False, lambda c, t: bob_reads(c)),
    "revoke": (_revoke, "cat.revoke('user:bob', 'read', 'lab/*')", True, lambda c, t: bob_reads(c)),
    "add_admin": (
        _add_admin,
        "cat.add_admin('user:bob')",
        False,
        lambda c, t: c.policy().is_admin(BOB),
    ),
    "ingest a dataset": (
        _ingest_dataset,
        "cat.ingest(TREE, 'lab/two', owner='bob')",
        False,
        lambda c, t: bob_reads(c, "lab/two"),
    ),
    "ingest a version": (
        _ingest_version,
        "cat.ingest(TREE, 'lab/one')",
        False,
        lambda c, t: c.policy().covering([str(t / "one-v2" / "a.txt")]) == ["lab/one"],
    ),
}


@pytest.mark.parametrize(
    "where", ["another connection", pytest.param("another process", marks=pytest.mark.e2e)]
)
@pytest.mark.parametrize("change", list(CHANGES))
def test_a_policy_change_from_elsewhere_reloads_at_once(
    catalog: Catalog, loads, tmp_path: Path, change: str, where: str
) -> None:
    here, code, granted_first, decision = CHANGES[change]
    admin = admin_of(catalog)
    if granted_first:
        with acting_as(admin):
            _grant(catalog)
    before = decision(catalog, tmp_path)
    count = len(loads)
    if where == "another connection":
        with acting_as(admin):
            other = Catalog(catalog.location)
            if change.startswith("ingest"):
                here(other, tmp_path)
            else:
                here(other)
    else:
        name = "two" if change == "ingest a dataset" else "one-v2"
        files = {"b.txt": b"beta"} if name == "two" else {"a.txt": b"alpha 2"}
        tree = str(make_tree(tmp_path / name, files))
        in_another_process(catalog, code.replace("TREE", repr(tree)))
    after = decision(catalog, tmp_path)
    assert after != before
    assert len(loads) > count


def test_the_mark_moves_only_with_the_policy(catalog: Catalog) -> None:
    mark = catalog.policy_mark()
    admin = admin_of(catalog)
    catalog.record_audit(admin, "open", "aif://x", "read", "lab/one", allowed=False)
    with acting_as(admin):
        catalog.pin("lab/one")
    with write_transaction(catalog.conn) as conn:  # neither a name nor an owner
        conn.execute("UPDATE datasets SET description = 'raw reads'")
    assert catalog.policy_mark() == mark
    with acting_as(admin):
        catalog.grant("group:lab", "read", "lab/*")
    assert catalog.policy_mark() != mark


def test_a_restored_catalog_never_serves_the_policy_cached_before(tmp_path: Path) -> None:
    """The counter alone would repeat here: a backup at N, a grant (N+1) cached by a
    reader, the backup restored (N) and another grant (N+1 again)."""
    path = tmp_path / "catalog.db"
    reader = Catalog(path)
    reader.ingest(str(make_tree(tmp_path / "one", {"a.txt": b"alpha"})), "lab/one")
    admin = admin_of(reader)
    writer = Catalog(path)
    with acting_as(admin):
        writer.backup(tmp_path / "backup.db")
        writer.grant("user:bob", "read", "lab/*")
    assert bob_reads(reader)
    with acting_as(admin):
        Catalog(path).restore(tmp_path / "backup.db")
        writer.grant("user:carol", "read", "lab/*")
    assert not bob_reads(reader)


def test_each_mount_table_keeps_its_own_cached_policy(catalog: Catalog, loads) -> None:
    """A service asks about its catalog's config and its filesystem's in turn: neither
    evicts the other."""
    other = copy.copy(catalog.config)
    catalog.policy()
    catalog.policy(other)
    count = len(loads)
    for _ in range(5):
        catalog.policy()
        catalog.policy(other)
    assert len(loads) == count


def test_one_policy_reads_the_mark_once(catalog: Catalog, monkeypatch) -> None:
    marks: list[int] = []
    real = Catalog.policy_mark

    def counting(self: Catalog) -> tuple[int, int, int]:
        marks.append(1)
        return real(self)

    monkeypatch.setattr(Catalog, "policy_mark", counting)
    with catalog.one_policy():
        for _ in range(5):
            catalog.policy()
            bob_reads(catalog)
    assert len(marks) == 1


def test_one_policy_keeps_the_grants_it_began_with(catalog: Catalog) -> None:
    admin = admin_of(catalog)
    with catalog.one_policy():
        assert not bob_reads(catalog)
        with acting_as(admin):
            Catalog(catalog.location).grant("user:bob", "read", "lab/*")
        assert not bob_reads(catalog)  # granted after this request began
    assert bob_reads(catalog)


def test_one_policy_sees_its_own_changes_at_once(catalog: Catalog) -> None:
    admin = admin_of(catalog)
    with catalog.one_policy():
        assert not bob_reads(catalog)
        with acting_as(admin):
            catalog.grant("user:bob", "read", "lab/*")
        assert bob_reads(catalog)
        with acting_as(admin):
            catalog.revoke("user:bob", "read", "lab/*")
        assert not bob_reads(catalog)


def test_a_catalog_from_before_the_policy_mark_is_upgraded_in_place(
    catalog_url: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catalog at schema 7 (tokens, no policy mark, no upload claims) opened by this
    aifdata: both migrations run where it is, and what they made works at once."""
    from aifdata.catalog import _schema, _store, claim_upload

    before = _schema.MIGRATIONS[:7]
    monkeypatch.setattr(_schema, "MIGRATIONS", before)
    monkeypatch.setattr(_store, "MIGRATIONS", before)
    old = Catalog(catalog_url)
    assert _schema.schema_version(old.conn) == 7  # made as aifdata made it then
    old.close()
    monkeypatch.undo()
    catalog = Catalog(catalog_url)
    assert _schema.schema_version(catalog.conn) == len(_schema.MIGRATIONS) > 7
    catalog.ingest(str(make_tree(tmp_path / "one", {"a.txt": b"alpha"})), "lab/one")
    mark = catalog.policy_mark()
    assert not bob_reads(catalog)
    with acting_as(admin_of(catalog)):
        catalog.grant("user:bob", "read", "lab/*")
    assert catalog.policy_mark() != mark and bob_reads(catalog)
    claim_upload(catalog, "u1", stale_after=60)


def test_one_policy_does_not_hide_a_location_taken_meanwhile(
    catalog: Catalog, tmp_path: Path
) -> None:
    """Ingest checks the location again inside its write transaction (another may have
    recorded it first): a request's held policy must not blind that check."""
    admin = admin_of(catalog)
    with acting_as(admin):
        catalog.grant("user:bob", "write", "bob/*")
        catalog.grant("user:carol", "write", "carol/*")
    tree = make_tree(tmp_path / "d", {"sub/a.txt": b"alpha"})
    with acting_as(BOB), catalog.one_policy():
        assert catalog.policy().covering([str(tree / "sub" / "a.txt")]) == []
        with acting_as(Principal("carol", ())):
            Catalog(catalog.location).ingest(str(tree), "carol/d")
        with pytest.raises(AccessDenied, match="the location is governed by"):
            catalog.ingest(str(tree / "sub"), "bob/x")
    assert "bob/x" not in Catalog(catalog.location).datasets()


def test_an_audit_row_inside_a_write_is_part_of_it(catalog: Catalog) -> None:
    rows = audit_rows(catalog)
    with pytest.raises(RuntimeError), write_transaction(catalog.conn):
        catalog.record_audit(BOB, "open", "aif://x", "read", "lab/one", allowed=False)
        raise RuntimeError("the write fails")
    assert audit_rows(catalog) == rows
    with write_transaction(catalog.conn):
        catalog.record_audit(BOB, "open", "aif://x", "read", "lab/one", allowed=False)
    assert audit_rows(catalog) == rows + 1
