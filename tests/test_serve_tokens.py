"""API tokens: stored hashed, listed without their secret, revoked at once, refused in one
text for every reason (the reason audited), made only by whom may make them."""

from __future__ import annotations

import hashlib

import pytest

from aifdata import AccessDenied, BadName, Catalog, InvalidToken, NotFound
from aifdata.catalog import (
    Principal,
    acting_as,
    authenticate,
    create_token,
    list_tokens,
    revoke_token,
    verify_token,
)
from aifdata.catalog._tokens import INVALID

from ._serving import expire


@pytest.fixture
def catalog(catalog_url):
    """A new catalog on each backend (SQLite, PostgreSQL)."""
    catalog = Catalog(catalog_url)
    with acting_as(Principal("boss")):
        catalog.admins()  # made by boss, its admin
    return catalog


def as_user(user: str, *groups: str):
    return acting_as(Principal(user, groups))


def secret_of(text: str) -> str:
    return text.split("_", 2)[2]


def refusals(catalog: Catalog) -> list[dict]:
    with as_user("boss"):
        return [r for r in catalog.audit_log(1000) if r["action"] == "authenticate"]


def test_a_token_names_its_principal_and_groups(catalog):
    with as_user("boss"):
        made = create_token(catalog, "alice", groups=["lab", "group:wet"], label="notebook")
    assert made.text.startswith(f"aif_{made.token.id}_")
    token = verify_token(catalog, made.text)
    assert authenticate(catalog, made.text) == token.acting == Principal("alice", ("lab", "wet"))
    assert token.label == "notebook" and token.created_by == "user:boss"
    assert token.state() == "live" and token.expires is None


def test_only_the_hash_of_the_secret_is_stored(catalog):
    with as_user("boss"):
        made = create_token(catalog, "alice")
    secret = secret_of(made.text)
    rows = catalog.conn.execute("SELECT * FROM tokens").fetchall()
    stored = " ".join(str(v) for row in rows for v in tuple(row))
    assert secret not in stored and made.text not in stored
    assert rows[0]["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    with as_user("boss"):  # nor in the audit trail
        assert secret not in str(catalog.audit_log())
    assert secret not in repr(made)


def test_a_list_holds_no_secret(catalog):
    with as_user("boss"):
        made = [create_token(catalog, u) for u in ("alice", "bob")]
        listed = list_tokens(catalog)
    assert {t.id for t in listed} == {m.token.id for m in made}
    shown = repr(listed) + repr([t.as_dict() for t in listed])
    for m in made:
        assert secret_of(m.text) not in shown
    assert not any("hash" in key for key in listed[0].as_dict())


def test_users_list_only_their_own_tokens(catalog):
    with as_user("boss"):
        create_token(catalog, "alice")
        create_token(catalog, "bob")
    with as_user("alice"):
        assert [t.principal for t in list_tokens(catalog)] == ["user:alice"]
        assert [t.principal for t in list_tokens(catalog, "bob")] == ["user:alice"]


def test_a_revoked_token_fails_on_its_next_use(catalog):
    with as_user("boss"):
        made = create_token(catalog, "alice")
    assert authenticate(catalog, made.text).user == "alice"
    with as_user("alice"):  # her own
        assert revoke_token(catalog, made.token.id).state() == "revoked"
    with pytest.raises(InvalidToken, match=f"^{INVALID}$"):
        authenticate(catalog, made.text)
    assert "revoked" in refusals(catalog)[0]["target"]


def test_an_expired_token_is_refused(catalog):
    with as_user("boss"):
        made = create_token(catalog, "alice", expires_in=3600)
    assert authenticate(catalog, made.text)
    expire(catalog, made.token.id)  # an hour later
    with pytest.raises(InvalidToken, match=f"^{INVALID}$"):
        authenticate(catalog, made.text)
    assert "expired" in refusals(catalog)[0]["target"]


def test_every_failure_reads_the_same_and_the_audit_says_why(catalog):
    with as_user("boss"):
        alice, bob = create_token(catalog, "alice"), create_token(catalog, "bob", expires_in=60)
        revoked = create_token(catalog, "carol")
        revoke_token(catalog, revoked.token.id)
    expire(catalog, bob.token.id)
    tries = {
        "malformed": "not-a-token",
        "no such token": f"aif_{'0' * 16}_{secret_of(alice.text)}",
        "wrong secret": f"aif_{alice.token.id}_{secret_of(bob.text)}",  # bob's secret, alice's id
        "expired": bob.text,
        "revoked": revoked.text,
        "truncated": alice.text[:-1],
        "uppercased id": alice.text.replace(alice.token.id, alice.token.id.upper()),
        "empty": "",
    }
    for why, text in tries.items():
        with pytest.raises(InvalidToken) as raised:
            authenticate(catalog, text)
        assert str(raised.value) == INVALID, why
    reasons = " | ".join(r["target"] for r in refusals(catalog))
    for why in ("malformed", "no such token", "wrong secret", "expired", "revoked"):
        assert why in reasons
    for text in tries.values():  # the audit never keeps what was presented as a secret
        if len(text) > 30:
            assert secret_of(text) not in reasons
    owners = {r["principal"] for r in refusals(catalog)}
    assert "user:alice" in owners  # a wrong secret for alice's id is recorded against her


def test_users_make_tokens_for_themselves_only_in_their_own_groups(catalog):
    with as_user("carol", "lab"):
        mine = create_token(catalog, "carol", groups=["lab"])
        assert authenticate(catalog, mine.text) == Principal("carol", ("lab",))
        with pytest.raises(AccessDenied, match="only a catalog admin"):
            create_token(catalog, "bob")
        with pytest.raises(AccessDenied, match="not in group"):
            create_token(catalog, "carol", groups=["admins"])  # no token widens its maker
    with as_user("boss"):
        denied = [r for r in catalog.audit_log() if r["action"] == "token-create"]
    assert [r["allowed"] for r in denied][:2] == [0, 0]


def test_users_revoke_only_their_own_tokens(catalog):
    with as_user("boss"):
        alice = create_token(catalog, "alice")
    with as_user("bob"), pytest.raises(NotFound, match="may revoke"):
        revoke_token(catalog, alice.token.id)
    assert authenticate(catalog, alice.text)  # still live
    with as_user("bob"), pytest.raises(NotFound) as missing:
        revoke_token(catalog, "0" * 16)
    assert str(missing.value).replace("0" * 16, alice.token.id) == (
        f"no token {alice.token.id!r} that user:bob may revoke"
    )  # an id that is someone else's reads like one that is nobody's


@pytest.mark.parametrize("principal", ["*", "group:lab", "user:a b", "user:a:b", "user:*"])
def test_a_token_acts_as_one_user(catalog, principal):
    with as_user("boss"), pytest.raises(BadName):
        create_token(catalog, principal)


def test_create_and_revoke_are_audited_with_who_did_it(catalog):
    with as_user("boss"):
        made = create_token(catalog, "alice")
        revoke_token(catalog, made.token.id)
        rows = catalog.audit_log()
    actions = [(r["action"], r["principal"], r["allowed"]) for r in rows[:2]]
    assert actions == [("token-revoke", "user:boss", 1), ("token-create", "user:boss", 1)]
    assert made.token.id in rows[0]["target"] and "user:alice" in rows[1]["target"]


def test_a_parquet_snapshot_holds_no_token(catalog, tmp_path):
    """Snapshots are published for workers: tokens (even hashed) stay in the catalog."""
    with as_user("boss"):
        made = create_token(catalog, "alice")
        catalog.export(str(tmp_path / "snapshot"))
    stored = catalog.conn.execute("SELECT secret_hash FROM tokens").fetchone()[0]
    written = list((tmp_path / "snapshot").iterdir())
    assert written and not any("token" in p.name for p in written)
    for path in written:
        data = path.read_bytes()
        assert stored.encode() not in data and made.token.id.encode() not in data
