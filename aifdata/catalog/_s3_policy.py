"""The catalog's grants as S3 bucket policies, for enforcement at the storage layer.

``aif://`` enforces grants for everyone who goes through aifdata; a bucket
policy makes S3 itself refuse the rest. Each grant becomes one statement per
bucket it reaches:

* resources: the S3 copies of the datasets the pattern covers, and the
  pattern itself under every mount with an S3 tier (S3's ``*`` and ``?``
  wildcards mean what they mean in a pattern; a ``[...]`` class is widened
  to ``*``, so the policy never refuses what aifdata allows);
* actions: ``read`` = GetObject + ListBucket on the prefix, ``write`` adds
  PutObject, DeleteObject and AbortMultipartUpload, ``admin`` = ``s3:*``;
* principals: ``user:NAME`` is the IAM user ``arn:aws:iam::ACCOUNT:user/NAME``,
  ``group:NAME`` is any principal tagged ``aifdata-group-NAME=true`` (IAM
  groups cannot be named in a bucket policy), ``*`` is everyone.

Dataset owners get ``admin`` on their datasets, catalog admins on everything mounted.
"""

from __future__ import annotations

import re
from typing import Any

from .._config import Config
from ._policy import EVERYONE, Policy, covers

_ACTIONS = {
    "read": ["s3:GetObject"],
    "write": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
    "admin": ["s3:*"],
}
ACCOUNT_PLACEHOLDER = "ACCOUNT_ID"


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

    for prefix, name in policy.locations.items():
        if prefix.startswith("s3://") and covers(pattern, name):
            add(prefix)
    s3_pattern = re.sub(r"\[[^\]]*\]", "*", pattern)
    for mount in config.mounts:
        inside = s3_pattern.startswith(mount.prefix + "/")
        whole = not inside and covers(pattern, mount.prefix)
        if not (inside or whole):
            continue
        rest = s3_pattern[len(mount.prefix) + 1 :] if inside else ""
        for tier in mount.tiers:
            if tier.kind == "s3":
                add(f"{tier.url.rstrip('/')}/{rest}" if rest else tier.url)
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
