"""The catalog's grants as S3 bucket policies, for enforcement by the storage itself.

``aif://`` enforces grants in the client, for everyone who goes through
aifdata; a bucket policy lets the object store refuse those who hold their own
S3 credentials and go around it. Each bucket a grant, owner or admin reaches
gets one document with two kinds of statement:

* **Allow**, per grant: resources are the S3 copies of the datasets the
  pattern covers, and the pattern itself under every mount with an S3 tier
  (S3's ``*`` and ``?`` wildcards mean what they mean in a pattern; a
  ``[...]`` class is widened to ``*``); actions: ``read`` = GetObject +
  ListBucket on the prefix, ``write`` adds PutObject, DeleteObject and
  AbortMultipartUpload, ``admin`` = ``s3:*``. Dataset owners get ``admin``
  on their datasets, catalog admins on everything mounted.
* **Deny**, per governed location (the S3 copy of a dataset, a grant's
  pattern under a mount): everyone who may not read it is refused GetObject
  and listings inside it, everyone who may not write it is refused PutObject,
  DeleteObject and AbortMultipartUpload. An explicit Deny wins over any
  Allow, the principal's own IAM policy included. The principals spared are
  named by condition (``aws:username``, ``aws:PrincipalTag/aifdata-group-G``),
  so a Deny holds for every account. A location that everyone (``*``) may
  read or write gets no Deny for that privilege. Below a grant's pattern, the
  principals granted a dataset or narrower pattern inside it are spared the
  Deny of the wider pattern (a bucket policy cannot carve a hole out of a
  prefix): the server then refuses them only what no Allow and no IAM policy
  of theirs gives. Inside a dataset every Deny that reaches it holds (the most
  restrictive wins).

Principals: ``user:NAME`` is the IAM user ``arn:aws:iam::ACCOUNT:user/NAME``
(SeaweedFS names its identities ``arn:aws:iam::000000000000:user/NAME``),
``group:NAME`` is any principal tagged ``aifdata-group-NAME=true`` (IAM groups
cannot be named in a bucket policy), ``*`` is everyone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .._config import Config
from ._policy import EVERYONE, PRIVILEGES, Policy, covers

_ACTIONS = {
    "read": ["s3:GetObject"],
    "write": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
    "admin": ["s3:*"],
}
ACCOUNT_PLACEHOLDER = "ACCOUNT_ID"
#: What a Deny refuses to those who lack each privilege (listing is refused apart).
_DENIED = {
    "read": ["s3:GetObject"],
    "write": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
}


def bucket_policies(
    policy: Policy, config: Config, account: str | None
) -> dict[str, dict[str, Any]]:
    """``{bucket: policy document}`` for every bucket a grant, owner or admin reaches."""
    statements: dict[str, list[dict[str, Any]]] = {}
    rules = [(g.principal, g.privilege, g.pattern) for g in policy.grants]
    rules += [(f"user:{owner}", "admin", name) for name, owner in sorted(policy.owners.items())]
    rules += [(admin, "admin", "*") for admin in sorted(policy.admins)]
    for principal, privilege, pattern in rules:
        for bucket, keys in _s3_prefixes(policy, config, pattern).items():
            statements.setdefault(bucket, []).extend(
                _statements(principal, privilege, bucket, sorted(keys), account)
            )
    for bucket, denials in _denials(policy, config).items():
        statements.setdefault(bucket, []).extend(denials)
    out = {}
    for bucket, found in sorted(statements.items()):
        for number, statement in enumerate(found, start=1):
            statement["Sid"] = f"Aifdata{number}"
        out[bucket] = {"Version": "2012-10-17", "Id": f"aifdata-{bucket}", "Statement": found}
    return out


def _s3_prefixes(policy: Policy, config: Config, pattern: str) -> dict[str, set[str]]:
    """Bucket -> key patterns (no leading slash; ``""`` is the whole bucket) ``pattern`` reaches."""
    found: dict[str, set[str]] = {}

    def add(url: str) -> None:
        bucket, _, key = url.removeprefix("s3://").partition("/")
        found.setdefault(bucket, set()).add(key)

    for prefix, names in policy.holders.items():  # all of them: the most restrictive wins
        if prefix.startswith("s3://") and all(covers(pattern, name) for name in names):
            add(prefix)
    for bucket, key in _pattern_keys(config, pattern):
        found.setdefault(bucket, set()).add(key)
    return found


def _statements(
    principal: str, privilege: str, bucket: str, keys: list[str], account: str | None
) -> list[dict[str, Any]]:
    who, condition = _principal(principal, account)
    objects = []
    prefixes = []
    for key in keys:
        key = key.rstrip("/")
        objects += (
            [f"arn:aws:s3:::{bucket}/{key}", f"arn:aws:s3:::{bucket}/{key}/*"]
            if key
            else [f"arn:aws:s3:::{bucket}/*"]
        )
        prefixes += [key, f"{key}/*"] if key else ["*"]
    out = [
        {
            "Effect": "Allow",
            "Principal": who,
            "Action": _ACTIONS[privilege],
            "Resource": objects,
            **({"Condition": condition} if condition else {}),
        },
        {
            "Effect": "Allow",
            "Principal": who,
            "Action": ["s3:ListBucket"],
            "Resource": [f"arn:aws:s3:::{bucket}"],
            "Condition": {**condition, "StringLike": {"s3:prefix": prefixes}},
        },
    ]
    return out


def _principal(principal: str, account: str | None) -> tuple[Any, dict[str, Any]]:
    if principal == EVERYONE:
        return "*", {}
    kind, _, name = principal.partition(":")
    if kind == "group":
        return "*", {"StringEquals": {f"aws:PrincipalTag/aifdata-group-{name}": "true"}}
    return {"AWS": [f"arn:aws:iam::{account or ACCOUNT_PLACEHOLDER}:user/{name}"]}, {}


@dataclass(frozen=True)
class _Location:
    """A governed place in a bucket: a dataset's S3 copy, or a grant's pattern under a mount."""

    bucket: str
    key: str  # S3 key pattern without trailing slash; "" is the whole bucket
    name: str  # the dataset name, or the grant's pattern
    dataset: bool

    def inside(self, other: _Location) -> bool:
        """Whether this location lies strictly inside ``other``."""
        if self.bucket != other.bucket or self.key == other.key:
            return False
        return other.key == "" or covers(other.key, self.key)


def _locations(policy: Policy, config: Config) -> list[_Location]:
    """Every governed S3 location: each dataset's copies, each grant's pattern."""
    found: set[_Location] = set()
    for prefix, names in policy.holders.items():
        if prefix.startswith("s3://"):  # each dataset there (overlaps: each Deny holds)
            bucket, _, key = prefix.removeprefix("s3://").partition("/")
            found.update(_Location(bucket, key.rstrip("/"), name, True) for name in names)
    for pattern in {g.pattern for g in policy.grants}:
        for bucket, key in _pattern_keys(config, pattern):
            found.add(_Location(bucket, key.rstrip("/"), pattern, False))
    return sorted(found, key=lambda loc: (loc.bucket, loc.key, loc.name, loc.dataset))


def _pattern_keys(config: Config, pattern: str) -> Iterator[tuple[str, str]]:
    """(bucket, key pattern) of ``pattern`` under every mount's S3 tiers."""
    s3_pattern = re.sub(r"\[[^\]]*\]", "*", pattern)
    for mount in config.mounts:
        inside = s3_pattern.startswith(mount.prefix + "/")
        if not (inside or covers(pattern, mount.prefix)):
            continue
        rest = s3_pattern[len(mount.prefix) + 1 :] if inside else ""
        for tier in mount.tiers:
            if tier.kind == "s3":
                bucket, _, key = tier.url.removeprefix("s3://").partition("/")
                key = key.rstrip("/")
                yield bucket, f"{key}/{rest}" if key and rest else key or rest


def _allowed(policy: Policy, location: _Location, privilege: str) -> set[str]:
    """The principals (``user:X``, ``group:Y``, ``*``) who may ``privilege`` a location."""
    need = PRIVILEGES.index(privilege)
    out = set(policy.admins)
    owner = policy.owners.get(location.name) if location.dataset else None
    if owner is not None:
        out.add(f"user:{owner}")
    for g in policy.grants:
        if PRIVILEGES.index(g.privilege) >= need and covers(g.pattern, location.name):
            out.add(g.principal)
    return out


def _spared(
    policy: Policy, location: _Location, everywhere: list[_Location], privilege: str
) -> set[str]:
    """Who escapes the Deny of ``location``: those allowed on it, and (below a grant's
    pattern, not inside a dataset) those allowed on a location inside it, save ``*``."""
    spared = _allowed(policy, location, privilege)
    if not location.dataset:
        for other in everywhere:
            if other.inside(location):
                spared |= _allowed(policy, other, privilege) - {EVERYONE}
    return spared


def _denials(policy: Policy, config: Config) -> dict[str, list[dict[str, Any]]]:
    """Bucket -> the Deny statements of every governed location in it."""
    everywhere = _locations(policy, config)
    out: dict[str, list[dict[str, Any]]] = {}
    for location in everywhere:
        for privilege in _DENIED:
            spared = _spared(policy, location, everywhere, privilege)
            if EVERYONE not in spared:
                out.setdefault(location.bucket, []).extend(
                    _deny(location, privilege, _unless(spared))
                )
    return out


def _unless(spared: set[str]) -> dict[str, Any]:
    """The condition true for every principal not in ``spared`` (keys are ANDed; a
    key the request lacks counts as not equal)."""
    users = sorted(p.partition(":")[2] for p in spared if p.startswith("user:"))
    groups = sorted(p.partition(":")[2] for p in spared if p.startswith("group:"))
    condition: dict[str, Any] = {"aws:username": users} if users else {}
    for group in groups:
        condition[f"aws:PrincipalTag/aifdata-group-{group}"] = "true"
    return condition


def _deny(location: _Location, privilege: str, unless: dict[str, Any]) -> list[dict[str, Any]]:
    arn = f"arn:aws:s3:::{location.bucket}"
    key = location.key
    objects = [f"{arn}/{key}", f"{arn}/{key}/*"] if key else [f"{arn}/*"]
    spare = {"StringNotEquals": unless} if unless else {}
    out = [
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": _DENIED[privilege],
            "Resource": objects,
            **({"Condition": spare} if spare else {}),
        }
    ]
    if privilege == "read":
        prefixes = [key, f"{key}/*"] if key else ["*"]
        out.append(
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": ["s3:ListBucket"],
                "Resource": [arn],
                "Condition": {"StringLike": {"s3:prefix": prefixes}, **spare},
            }
        )
    return out
