"""The ``s3`` storage kind: where an S3 tier lives and how to talk to it.

:data:`S3_KIND` is what the mount table checks (an ``s3://bucket[/prefix]``
URL and the endpoint, credential and limit options); :class:`S3Settings`
is what the connector (:mod:`aifdata.connectors.s3`, which imports s3fs and
obstore) makes its clients from.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ._kind import BYTES, COUNT, FLAG, HTTP_URL, SECONDS, TEXT, OptionCheck, StorageKind, shown

if TYPE_CHECKING:
    from ._tier import Tier

DEFAULT_REGION = "us-east-1"
DEFAULT_CONCURRENCY = 16
DEFAULT_PART_SIZE = 16 * 2**20
#: Seconds to open a connection.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Seconds to wait for the next bytes of an answer.
DEFAULT_READ_TIMEOUT = 10.0
#: Retries of one failed request (throttling, 5xx, timeouts, dropped or cut connections).
DEFAULT_RETRIES = 3
#: Seconds after a request's first attempt past which it is not retried again.
DEFAULT_RETRY_BUDGET = 15.0
#: Bytes per second below which a transfer is too slow: a request that moves N bytes
#: may last ``retry_budget + N / min_rate`` seconds in all (2 MiB/s: a default part of
#: 16 MiB that the server stops reading fails within 23 s).
DEFAULT_MIN_RATE = float(2**21)


@dataclass(frozen=True)
class S3Settings:
    """Everything needed to open clients for one S3 tier; no clients inside."""

    bucket: str
    prefix: str
    endpoint_url: str | None
    region: str
    key: str | None
    secret: str | None
    token: str | None
    profile: str | None
    anon: bool
    max_concurrency: int
    part_size: int
    connect_timeout: float
    read_timeout: float
    retries: int
    retry_budget: float
    min_rate: float = DEFAULT_MIN_RATE

    @classmethod
    def from_tier(cls, tier: Tier) -> S3Settings:
        """Read the tier's options, falling back to the usual AWS variables."""
        opts = tier.options
        bucket, _, prefix = tier.url.removeprefix("s3://").partition("/")
        env = os.environ
        return cls(
            bucket=bucket,
            prefix=prefix.strip("/"),
            endpoint_url=opts.get("endpoint_url")
            or env.get("AWS_ENDPOINT_URL_S3")
            or env.get("AWS_ENDPOINT_URL"),
            region=opts.get("region")
            or env.get("AWS_REGION")
            or env.get("AWS_DEFAULT_REGION")
            or DEFAULT_REGION,
            key=opts.get("key"),
            secret=opts.get("secret"),
            token=opts.get("token"),
            profile=opts.get("profile"),
            anon=bool(opts.get("anon", False)),
            max_concurrency=int(opts.get("max_concurrency", DEFAULT_CONCURRENCY)),
            part_size=int(opts.get("part_size", DEFAULT_PART_SIZE)),
            connect_timeout=float(opts.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
            read_timeout=float(opts.get("read_timeout", DEFAULT_READ_TIMEOUT)),
            retries=_retries(opts),
            retry_budget=float(opts.get("retry_budget", DEFAULT_RETRY_BUDGET)),
            min_rate=float(opts.get("min_rate", DEFAULT_MIN_RATE)),
        )

    @property
    def max_attempts(self) -> int:
        """Attempts per request: the first and its retries."""
        return self.retries + 1

    def budget_for(self, nbytes: int) -> float:
        """Seconds a request moving ``nbytes`` may last in all, retries included:
        ``retry_budget + nbytes / min_rate``."""
        return self.retry_budget + max(nbytes, 0) / self.min_rate

    @property
    def limits(self) -> str:
        """The settings that bounded a failed request, for messages."""
        return (
            f"connect_timeout {self.connect_timeout:g} s, read_timeout {self.read_timeout:g} s, "
            f"retries {self.retries}, retry_budget {self.retry_budget:g} s, "
            f"min_rate {self.min_rate:g} bytes/s"
        )

    @property
    def endpoint(self) -> str:
        """The endpoint for messages: the configured URL or AWS's regional one."""
        return self.endpoint_url or f"https://s3.{self.region}.amazonaws.com"

    def credentials(self) -> tuple[str | None, str | None, str | None]:
        """(key, secret, token) from the tier, else botocore's usual chain."""
        if self.anon or self.key:
            return self.key, self.secret, self.token
        import botocore.session

        session = botocore.session.Session(profile=self.profile)
        creds = session.get_credentials()
        if creds is None:
            return None, None, None
        frozen = creds.get_frozen_credentials()
        return frozen.access_key, frozen.secret_key, frozen.token

    def botocore_config(self) -> dict[str, Any]:
        """Timeouts, standard-mode retries (throttling, 5xx, dropped connections), pool size."""
        return {
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "retries": {"mode": "standard", "total_max_attempts": self.max_attempts},
            "max_pool_connections": max(self.max_concurrency, 10),
            "s3": {"addressing_style": "path" if self.endpoint_url else "auto"},
        }


def _retries(opts: Mapping[str, Any]) -> int:
    """``retries``, or ``max_attempts`` (the older name: attempts, not retries) minus one."""
    if "retries" in opts:
        return int(opts["retries"])
    if "max_attempts" in opts:
        return max(int(opts["max_attempts"]) - 1, 0)
    return DEFAULT_RETRIES


def _is_count_or_zero(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


RETRY_COUNT = OptionCheck("a whole number, 0 or more", _is_count_or_zero)


def _is_positive_rate(value: Any) -> bool:
    real = isinstance(value, int | float) and not isinstance(value, bool)
    return real and math.isfinite(value) and value > 0


RATE = OptionCheck("a positive number (bytes per second)", _is_positive_rate)

_BUCKET = re.compile(r"[A-Za-z0-9._-]+")


class S3Kind(StorageKind):
    """S3-compatible object storage (AWS, MinIO, Ceph RGW, SeaweedFS)."""

    name = "s3"
    location_key = "url"
    location_shape = "s3://bucket[/prefix]"
    options: ClassVar[dict[str, OptionCheck]] = {
        "endpoint_url": HTTP_URL,
        "key": TEXT,
        "secret": TEXT,
        "token": TEXT,
        "region": TEXT,
        "profile": TEXT,
        "anon": FLAG,
        "max_concurrency": COUNT,
        "part_size": BYTES,
        "connect_timeout": SECONDS,
        "read_timeout": SECONDS,
        "retries": RETRY_COUNT,
        "retry_budget": SECONDS,
        "min_rate": RATE,
        "max_attempts": COUNT,
    }
    secret_options: ClassVar[frozenset[str]] = frozenset({"secret", "token"})
    local = False
    direct = True
    connector = "aifdata.connectors.s3:S3Connector"
    install_hint = "pip install aifdata (needs s3fs, obstore)"

    def location_problem(self, location: Any) -> str | None:
        if isinstance(location, str) and location.startswith("s3://"):
            bucket, _, prefix = location.removeprefix("s3://").partition("/")
            segments = prefix.rstrip("/").split("/") if prefix.rstrip("/") else []
            if _BUCKET.fullmatch(bucket) and all(s not in ("", ".", "..") for s in segments):
                return None
        return f"expected {self.location_shape}, got {shown(location)}"

    def normalise(self, location: str) -> str:
        return "s3://" + location.removeprefix("s3://").rstrip("/")

    def serves(self, url: str) -> bool:
        return url.startswith("s3://")

    def aliases(self, url: str) -> set[str]:
        return {url.rstrip("/")}

    def direct_filesystem(self, url: str) -> Any:
        """s3fs with the usual AWS settings (its credentials refresh themselves)."""
        import s3fs

        return s3fs.S3FileSystem()


S3_KIND = S3Kind()
