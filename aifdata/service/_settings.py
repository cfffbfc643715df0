"""What ``aifdata serve`` listens on and the limits it keeps: the ``[service]`` table of the
config file, then the command line's options."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._config import Config
from .._errors import ConfigError
from .._units import parse_duration, parse_size


def _port(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535:
        return value
    raise ValueError(f"expected a port number from 0 to 65535, got {value!r}")


def _host(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(f"expected a host name or address such as '127.0.0.1', got {value!r}")


def _rate(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise ValueError(f"expected a number of requests per second above 0, got {value!r}")


def _file(value: Any) -> str:
    if isinstance(value, str) and value.strip() and Path(value).expanduser().is_file():
        return str(Path(value).expanduser())
    raise ValueError(f"expected the path of a PEM file that exists, got {value!r}")


def _count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"expected a whole number from 1, got {value!r}")


@dataclass(frozen=True)
class ServiceSettings:
    """Where the service listens and the limits it keeps on each request."""

    host: str = "127.0.0.1"
    port: int = 8750
    #: HTTPS: the certificate chain and its private key (PEM files); both or neither.
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    #: Largest request body taken (larger: 413).
    max_request_bytes: int = 1 << 20
    #: Requests per second a token may make on average (more: 429 with Retry-After) ...
    rate_per_token: float = 50.0
    #: ... and at once, after a quiet spell (the token bucket's size).
    burst: int = 100
    #: Requests of one token running at once (more: 429 with Retry-After); a request that
    #: timed out counts until its worker thread ends.
    max_in_flight_per_token: int = 8
    #: Seconds a request may take (longer: 504; an MCP tool call: a tool error).
    request_timeout: float = 30.0
    #: Processes serving requests (uvicorn's workers: as many as the machine has cores).
    #: The rate, burst and in-flight limits are counted in each process: a token may make
    #: up to ``workers`` times as many requests.
    workers: int = 1
    #: The longest a presigned URL may live, in seconds, whatever a caller asks.
    presign_max_expiry: float = 3600.0
    #: How long a presigned URL lives when the caller does not say, in seconds.
    presign_default_expiry: float = 900.0

    @classmethod
    def from_config(cls, config: Config | None = None, **overrides: Any) -> ServiceSettings:
        """The ``[service]`` table of ``config``'s file, then ``overrides`` (None: not given)."""
        table = dict(config.sections.get("service", {})) if config is not None else {}
        source = (config.source if config is not None else None) or "<config>"
        settings = cls()._with(table, lambda key, problem: f"{source}: service.{key}: {problem}")
        given = {k: v for k, v in overrides.items() if v is not None}
        settings = settings._with(
            given, lambda key, problem: f"--{key.replace('_', '-')}: {problem}"
        )
        if (settings.tls_certfile is None) != (settings.tls_keyfile is None):
            raise ConfigError(f"{source}: service: give tls_certfile and tls_keyfile together")
        return settings

    def _with(self, values: Mapping[str, Any], where: Callable[[str, str], str]) -> ServiceSettings:
        changes = {}
        for key, value in values.items():
            parser = _PARSERS.get(key)
            if parser is None:
                known = ", ".join(_PARSERS)
                raise ConfigError(where(key, f"unknown service setting; settings: {known}"))
            try:
                changes[key] = parser(value)
            except ValueError as exc:
                raise ConfigError(where(key, str(exc))) from None
        return dataclasses.replace(self, **changes)

    @property
    def scheme(self) -> str:
        return "https" if self.tls_certfile else "http"


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "host": _host,
    "port": _port,
    "tls_certfile": _file,
    "tls_keyfile": _file,
    "max_request_bytes": parse_size,
    "rate_per_token": _rate,
    "burst": _count,
    "max_in_flight_per_token": _count,
    "request_timeout": parse_duration,
    "workers": _count,
    "presign_max_expiry": parse_duration,
    "presign_default_expiry": parse_duration,
}
