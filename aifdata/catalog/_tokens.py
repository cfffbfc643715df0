"""API tokens: who a request to ``aifdata serve`` acts as.

A token reads ``aif_<id>_<secret>``. The id is public (lists and audit rows name it); the
secret (32 random bytes) is shown once, when the token is made, and only its SHA-256 is
kept. A token names one principal (``user:NAME``) and the groups it acts with.

* Catalog admins make tokens for anyone; a user makes them for themself only, with no
  group they are not in now (a token never widens what its maker may read).
* Revoking takes effect at once: every request looks its token up again.
* A token that does not authenticate (malformed, unknown, expired, revoked) is refused
  with one :class:`~aifdata.InvalidToken` text for all four; the audit trail records which.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NoReturn

from .._errors import AccessDenied, BadName, InvalidToken, NotFound
from ._catalog import Catalog
from ._policy import Principal, current_principal, parse_principal
from ._store import write_transaction

PREFIX = "aif"
_TOKEN = re.compile(r"aif_([0-9a-f]{16})_([A-Za-z0-9_-]{20,128})")
#: The one refusal of a token that does not authenticate, whatever the reason.
INVALID = "invalid or expired token"
#: What token rows are audited on (``resource``).
RESOURCE = "(tokens)"
#: Who a refused token is audited as when it names no known principal.
NOBODY = Principal("(no valid token)")


@dataclass(frozen=True)
class ApiToken:
    """What is known of a token (never its secret)."""

    id: str
    principal: str
    groups: tuple[str, ...]
    label: str
    created_by: str
    created: float
    expires: float | None
    revoked: float | None

    def state(self, now: float | None = None) -> str:
        """``live``, ``expired`` or ``revoked``."""
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and self.expires <= (time.time() if now is None else now):
            return "expired"
        return "live"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "principal": self.principal, "groups": list(self.groups),
            "label": self.label, "created_by": self.created_by, "created": self.created,
            "expires": self.expires, "revoked": self.revoked, "state": self.state(),
        }  # fmt: skip


@dataclass(frozen=True)
class IssuedToken:
    """A token just made, with its text (``aif_<id>_<secret>``): shown this once."""

    token: ApiToken
    text: str = ""

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return f"IssuedToken({self.token!r}, text='aif_{self.token.id}_…')"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    catalog: Catalog,
    principal: str,
    *,
    groups: Iterable[str] = (),
    label: str = "",
    expires_in: float | None = None,
) -> IssuedToken:
    """Make a token acting as ``principal`` (``user:NAME`` or ``NAME``) with ``groups``,
    valid for ``expires_in`` seconds (None: until revoked). Audited."""
    named = _user_principal(principal)
    member_of = _groups(groups)
    if expires_in is not None and not expires_in > 0:
        raise BadName(f"a token's lifetime must be above 0 seconds, got {expires_in!r}")
    _require_maker(catalog, named, member_of)
    who, now = current_principal(), time.time()
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    expires = None if expires_in is None else now + expires_in
    with write_transaction(catalog.conn) as conn:
        conn.execute(
            "INSERT INTO tokens (id, secret_hash, principal, member_of, label, created_by,"
            " created, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (token_id, hash_secret(secret), named, ",".join(member_of), label, str(who), now,
             expires),
        )  # fmt: skip
    catalog.record_audit(who, "token-create", f"token {token_id} for {named}", "admin",
                         RESOURCE, allowed=True)  # fmt: skip
    made = ApiToken(token_id, named, member_of, label, str(who), now, expires, None)
    return IssuedToken(made, f"{PREFIX}_{token_id}_{secret}")


def _user_principal(text: str) -> str:
    named = parse_principal(text)
    if not named.startswith("user:"):
        raise BadName(f"a token acts as one user (user:NAME), not {named!r}")
    return named


def _groups(groups: Iterable[str]) -> tuple[str, ...]:
    names = set()
    for group in groups:
        name = group.removeprefix("group:")
        parse_principal(f"group:{name}")  # BadName for '*', ':', '/', spaces
        names.add(name)
    return tuple(sorted(names))


def _require_maker(catalog: Catalog, named: str, groups: tuple[str, ...]) -> None:
    """Raise AccessDenied (audited) unless the current principal may make this token."""
    who = current_principal()
    if catalog.policy().is_admin(who):
        return
    if named != str(who):
        why = f"only a catalog admin makes a token for another user than {who}"
    elif not set(groups) <= set(who.groups):
        outside = sorted(set(groups) - set(who.groups))
        why = f"{who} is not in group(s) {', '.join(outside)}"
    else:
        return
    catalog.record_audit(who, "token-create", f"token for {named}", "admin", RESOURCE,
                         allowed=False)  # fmt: skip
    raise AccessDenied(f"{who} may not create a token for {named}: {why}")


def _row(row: Any) -> ApiToken:
    groups = tuple(g for g in row["member_of"].split(",") if g)
    return ApiToken(
        row["id"], row["principal"], groups, row["label"], row["created_by"], row["created"],
        row["expires"], row["revoked"],
    )  # fmt: skip


def list_tokens(catalog: Catalog, principal: str | None = None) -> list[ApiToken]:
    """Tokens, newest first: every one for a catalog admin (or those of ``principal``),
    the caller's own for anyone else. Never a secret."""
    who = current_principal()
    if not catalog.policy().is_admin(who):
        principal = str(who)
    query, args = "SELECT * FROM tokens", []
    if principal is not None:
        query, args = query + " WHERE principal = ?", [parse_principal(principal)]
    rows = catalog.conn.execute(query + " ORDER BY created DESC, id", args).fetchall()
    return [_row(r) for r in rows]


def revoke_token(catalog: Catalog, token_id: str) -> ApiToken:
    """Revoke a token (its principal's own, or any for an admin): the next request with it
    is refused. Audited. NotFound for a token the caller may not revoke or that is not."""
    who = current_principal()
    found = _find(catalog, token_id)
    mine = found is not None and found.principal == str(who)
    if found is None or not (mine or catalog.policy().is_admin(who)):
        catalog.record_audit(who, "token-revoke", f"token {token_id}", "admin", RESOURCE,
                             allowed=False)  # fmt: skip
        raise NotFound(f"no token {token_id!r} that {who} may revoke")
    now = time.time()
    with write_transaction(catalog.conn) as conn:
        conn.execute(
            "UPDATE tokens SET revoked = ? WHERE id = ? AND revoked IS NULL", (now, token_id)
        )
    catalog.record_audit(who, "token-revoke", f"token {token_id} of {found.principal}", "admin",
                         RESOURCE, allowed=True)  # fmt: skip
    return _find(catalog, token_id) or found


def _find(catalog: Catalog, token_id: str) -> ApiToken | None:
    row = catalog.conn.execute("SELECT * FROM tokens WHERE id = ?", (token_id,)).fetchone()
    return None if row is None else _row(row)


def authenticate(catalog: Catalog, text: str) -> tuple[Principal, ApiToken]:
    """The principal a token acts as, and the token; :class:`InvalidToken` (one text for
    every reason, the reason audited) when it does not authenticate."""
    match = _TOKEN.fullmatch(text.strip())
    if match is None:
        _refuse(catalog, NOBODY, "a malformed token")
    token_id, secret = match.groups()
    row = catalog.conn.execute("SELECT * FROM tokens WHERE id = ?", (token_id,)).fetchone()
    stored = row["secret_hash"] if row is not None else hash_secret("")
    matches = hmac.compare_digest(stored, hash_secret(secret))  # the same work for any id
    if row is None:
        _refuse(catalog, NOBODY, f"token {token_id}: no such token")
    token = _row(row)
    owner = Principal(token.principal.removeprefix("user:"), token.groups)
    if not matches:
        _refuse(catalog, owner, f"token {token_id}: wrong secret")
    state = token.state()
    if state != "live":
        _refuse(catalog, owner, f"token {token_id}: {state}")
    return owner, token


def _refuse(catalog: Catalog, who: Principal, why: str) -> NoReturn:
    catalog.record_audit(who, "authenticate", why, "read", RESOURCE, allowed=False)
    raise InvalidToken(INVALID)
