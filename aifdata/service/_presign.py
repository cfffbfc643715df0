"""Minting presigned S3 URLs: one SigV4 URL for exactly one object key, signed with the
tier's own credentials (as its S3 connector finds them: the tier's options, else the
usual AWS chain, refreshed as it expires).

This module only signs; what may be signed is decided before it is called
(:mod:`._vending`, :mod:`._uploads`): a path checked as one object's name, the
caller's grant, and the copy that serves it. :func:`mint` is the one place a URL is
made, so a test can count its calls.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from .._errors import BadArgument, Conflict
from .._paths import _ENCODED_SEPARATOR
from ..connectors._s3_settings import S3Settings

#: The longest lifetime SigV4 allows a presigned URL (7 days).
SIGV4_MAX_EXPIRY = 7 * 24 * 3600
_OPERATIONS = {"GET": "get_object", "PUT": "put_object"}

_CLIENTS: dict[str, Any] = {}
_CLIENTS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Presigned:
    """A presigned URL: what it does, to which object, and until when."""

    url: str
    method: str
    bucket: str
    key: str
    expires_at: float


def _client(settings: S3Settings) -> Any:
    """A boto3 S3 client for these settings, signing with SigV4 (made once per settings)."""
    cache_key = repr(settings)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(cache_key)
        if client is None:
            import boto3
            from botocore.config import Config as BotoConfig

            # the tier's own keys; else boto3's chain (a profile, a role), which refreshes
            # short-lived credentials itself
            keys = {}
            if settings.key:
                keys = {"aws_access_key_id": settings.key,
                        "aws_secret_access_key": settings.secret,
                        "aws_session_token": settings.token}  # fmt: skip
            session = boto3.session.Session(profile_name=None if keys else settings.profile)
            style = "path" if settings.endpoint_url else "auto"
            client = _CLIENTS[cache_key] = session.client(
                "s3",
                endpoint_url=settings.endpoint_url,
                region_name=settings.region,
                config=BotoConfig(signature_version="s3v4", s3={"addressing_style": style}),
                **keys,
            )
        return client


def mint(settings: S3Settings, method: str, key: str, expires: int) -> Presigned:
    """One SigV4 URL for ``method`` on the object ``key`` of the tier's bucket, valid for
    ``expires`` seconds. The key is taken literally: ``*``, ``?``, ``[`` and ``%`` are
    characters of its name, percent-encoded in the URL."""
    if settings.anon:
        raise Conflict(f"s3://{settings.bucket}: an anonymous tier has no credentials to sign")
    if not 1 <= expires <= SIGV4_MAX_EXPIRY:
        raise BadArgument(f"a presigned URL lives 1 to {SIGV4_MAX_EXPIRY} s, not {expires}")
    now = time.time()
    url = _client(settings).generate_presigned_url(
        _OPERATIONS[method],
        Params={"Bucket": settings.bucket, "Key": key},
        ExpiresIn=expires,
        HttpMethod=method,
    )
    return Presigned(url, method, settings.bucket, key, now + expires)


def key_of(url: str, bucket: str) -> str:
    """The object key a path-style presigned URL names (for tests and checks)."""
    path = unquote(urlsplit(url).path)
    return path.removeprefix(f"/{bucket}/")


def expiry(requested: Any, default: float, cap: float, until: float | None = None) -> int:
    """Whole seconds a URL lives: ``requested`` (None: ``default``), at most ``cap``, and
    not past ``until`` (the epoch time the caller's token expires: a URL is a credential
    no longer-lived than the token that asked for it)."""
    if until is not None:
        cap = min(cap, until - time.time())
    if requested is None:
        requested = default
    if isinstance(requested, bool) or not isinstance(requested, int | float):
        raise BadArgument(f"'expires' must be a number of seconds, got {requested!r}")
    if not requested >= 1:
        raise BadArgument(f"'expires' must be at least 1 second, got {requested!r}")
    return max(1, int(min(requested, cap, SIGV4_MAX_EXPIRY)))


def check_segments(path: str, what: str) -> str:
    """``path`` if it names one object as it is spelled: no empty, ``.`` or ``..``
    segment (nor an encoded one), no encoded separator, no backslash, nothing
    unprintable. Glob characters and other encoded forms are literal characters."""
    problem = _segment_problem(path)
    if problem:
        raise BadArgument(f"{what} {path!r} is not one object's name: {problem}")
    return path


def _segment_problem(path: str) -> str | None:
    if not path:
        return "it is empty"
    if not path.isprintable():
        return "control or unprintable characters"
    if "\\" in path:
        return "a backslash"
    if _ENCODED_SEPARATOR.search(path):
        return "a percent-encoded separator or NUL"
    for segment in path.split("/"):
        if segment == "":
            return "an empty segment (a leading, trailing or double '/')"
        if segment in (".", "..") or unquote(segment) in (".", ".."):
            return "a '.' or '..' segment"
    return None


def object_path(text: Any, name: str = "path") -> str:
    """The clean logical path of one file, from ``aif://MOUNT/...`` as given (strict: a
    spelling that cleaning would change is refused, not rewritten)."""
    if not isinstance(text, str) or not text.startswith("aif://"):
        raise BadArgument(f"{name!r} must be an aif:// path of one file, got {text!r}")
    if len(text) > 2048:
        raise BadArgument(f"{name!r} is longer than 2048 characters")
    return check_segments(text.removeprefix("aif://"), name)
