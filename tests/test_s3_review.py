"""S3 answers that must not be trusted, and transfers that are slow but healthy.

- a resumed ranged read placed only where the answer says its body starts;
- an object changed while read is an error that says so, not a retry;
- an answer that drips below ``min_rate`` ends in an error within its budget;
- a failed parallel read starts no further part and leaves the shared pool idle;
- an upload slower than ``retry_budget`` alone allows, but faster than ``min_rate``, succeeds.

The first four talk to a fake S3 server on a loopback socket in this process; the last
goes through the fault proxy of ``tests/faults`` to the session's SeaweedFS.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

import aifdata
from aifdata import ConfigError, StorageError, StorageUnavailable
from aifdata.connectors._s3_errors import S3Fault
from aifdata.connectors._s3_ranged import RangedReader
from aifdata.connectors._s3_settings import S3Settings
from tests.faults.proxy import Fault, FaultProxy

OBJ = bytes(range(256)) * 40  # 10240 bytes


class FakeS3:
    """Answers each connection with ``handler(conn, request_head)``; counts connections."""

    def __init__(self, handler: Callable[[socket.socket, str], None]) -> None:
        self.handler = handler
        self.heads: list[str] = []
        self.accepted = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self._conns: list[socket.socket] = []
        self.endpoint_url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            head = conn.recv(65536).decode("latin-1")
            if not head:  # a connection closed before any request (a pooled one let go)
                return
            self.heads.append(head)
            self.handler(conn, head)
        except OSError:
            pass

    def close(self) -> None:
        self._server.close()
        for conn in self._conns:
            conn.close()


@pytest.fixture
def fake():
    servers: list[FakeS3] = []

    def start(handler):
        servers.append(FakeS3(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _settings(endpoint: str, **limits) -> S3Settings:
    values = {"connect_timeout": 2.0, "read_timeout": 2.0, "retries": 3, "retry_budget": 10.0}
    values.update(limits)
    return S3Settings(
        bucket="b",
        prefix="",
        endpoint_url=endpoint,
        region="us-east-1",
        key="k",
        secret="s",
        token=None,
        profile=None,
        anon=False,
        max_concurrency=2,
        part_size=2**20,
        **values,
    )


def _fs(endpoint: str) -> aifdata.AifFileSystem:
    tier = aifdata.Tier.s3(
        "s3://b", endpoint_url=endpoint, key="k", secret="s", read_timeout=2.0, retry_budget=10.0
    )
    return aifdata.filesystem(aifdata.Config((aifdata.Mount("m", (tier,)),)))


def _cut_after_1000(conn: socket.socket) -> None:
    n = len(OBJ)
    conn.sendall(
        b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n"
        b'Content-Range: bytes 0-%d/%d\r\nETag: "e1"\r\n\r\n' % (n, n - 1, n) + OBJ[:1000]
    )
    conn.close()


def _resumed_by(second: Callable[[socket.socket, str], None]):
    """The first answer is cut after 1000 bytes; ``second`` answers the resumed request."""
    calls = []

    def handler(conn: socket.socket, head: str) -> None:
        calls.append(head)
        if len(calls) == 1:
            _cut_after_1000(conn)
        else:
            second(conn, head)
            conn.close()

    return handler


def test_a_resume_answered_with_the_whole_object_is_refused(fake):
    n = len(OBJ)

    def whole(conn, head):
        conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\nETag: "e1"\r\n\r\n' % n + OBJ)

    server = fake(_resumed_by(whole))
    with pytest.raises(StorageError) as info:
        _fs(server.endpoint_url).cat_file("m/obj.bin", 0, n)
    message = str(info.value)
    assert server.endpoint_url in message and "s3://b/obj.bin" in message
    assert "bytes 1000-" in message and "200 OK" in message
    assert "range: bytes=1000-" in server.heads[1].lower()


def test_a_resume_answered_from_another_offset_is_refused(fake):
    n = len(OBJ)

    def from_zero(conn, head):
        conn.sendall(
            b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n"
            b'Content-Range: bytes 0-%d/%d\r\nETag: "e1"\r\n\r\n' % (n, n - 1, n) + OBJ
        )

    server = fake(_resumed_by(from_zero))
    with pytest.raises(StorageError) as info:
        _fs(server.endpoint_url).cat_file("m/obj.bin", 0, n)
    assert "from byte 0" in str(info.value) and "s3://b/obj.bin" in str(info.value)


def test_a_200_to_a_range_from_zero_covering_the_object_is_the_object(fake):
    n = len(OBJ)

    def whole(conn, head):
        conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\nETag: "e1"\r\n\r\n' % n + OBJ)
        conn.close()

    server = fake(whole)
    assert _fs(server.endpoint_url).cat_file("m/obj.bin", 0, 2 * n) == OBJ


def test_an_object_changed_mid_read_is_an_error_saying_so_not_a_retry(fake):
    def changed(conn, head):
        body = b"<Error><Code>PreconditionFailed</Code></Error>"
        conn.sendall(
            b"HTTP/1.1 412 Precondition Failed\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )

    server = fake(_resumed_by(changed))
    with pytest.raises(StorageError) as info:
        _fs(server.endpoint_url).cat_file("m/obj.bin", 0, len(OBJ))
    assert "changed while being read" in str(info.value)
    assert not isinstance(info.value, StorageUnavailable)
    assert len(server.heads) == 2  # the 412 was not retried


def test_a_drip_below_min_rate_ends_in_an_error_within_its_budget(fake):
    n = 500  # 1 byte every 20 ms: 10 s in all, past the 1 s budget

    def drip(conn, head):
        conn.sendall(
            b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n"
            b'Content-Range: bytes 0-%d/%d\r\nETag: "x"\r\n\r\n' % (n, n - 1, n)
        )
        for _ in range(n):
            conn.sendall(b"a")
            time.sleep(0.02)

    server = fake(drip)
    reader = RangedReader(_settings(server.endpoint_url, retries=1, retry_budget=1.0), None)
    with pytest.raises(S3Fault) as info:
        reader.read_into("k", 0, memoryview(bytearray(n)))
    message = str(info.value)
    assert info.value.kind is StorageUnavailable
    assert message.startswith("answer too slow: ") and f"of {n} bytes in" in message
    assert server.endpoint_url in message and "retry_budget 1 s" in message


def test_a_failed_parallel_read_starts_no_further_part(fake):
    server = fake(lambda conn, head: time.sleep(60))  # accepts, never answers
    settings = _settings(server.endpoint_url, read_timeout=0.5, retries=0, retry_budget=1.0)
    with ThreadPoolExecutor(2) as pool:
        reader = RangedReader(settings, lambda: pool)
        with pytest.raises(S3Fault) as info:
            reader.read_parts_into("k", 0, memoryview(bytearray(20_000)), 1000, "e")
        assert "no answer from" in str(info.value)
        assert pool._work_queue.qsize() == 0  # the parts not started were cancelled
        started = server.accepted
        # wait for the pool to be idle instead of sleeping past a read_timeout: shutdown
        # runs any part still queued (and so would count its connection) and returns once
        # the parts already running end on their read_timeout
        pool.shutdown(wait=True)
        assert server.accepted == started <= 2


def test_min_rate_is_checked_at_load(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[mounts.m.s3]\nurl = "s3://b/x"\nmin_rate = 0\n')
    with pytest.raises(ConfigError) as info:
        aifdata.load_config(config)
    assert "min_rate" in str(info.value)
    assert "a positive number (bytes per second), got 0" in str(info.value)


def test_the_bound_grows_with_the_bytes():
    settings = S3Settings.from_tier(aifdata.Tier.s3("s3://b/x", min_rate=2**19))
    assert settings.budget_for(0) == settings.retry_budget == 15.0
    assert settings.budget_for(4 * 2**20) == 15.0 + 8.0
    assert S3Settings.from_tier(aifdata.Tier.s3("s3://b/x")).min_rate == 2**21


@pytest.mark.s3
def test_an_upload_slower_than_the_retry_budget_but_above_min_rate_succeeds(seaweedfs, bucket):
    data = os.urandom(4 * 2**20)
    with FaultProxy(seaweedfs.endpoint_url) as proxy:
        options = dict(seaweedfs.storage_options, endpoint_url=proxy.endpoint_url)
        # the proxy passes 1 MiB/s: about 4 s, past the 3 s of retry_budget alone,
        # within retry_budget + 4 MiB / min_rate (512 KiB/s here) = 11 s
        tier = aifdata.Tier.s3(f"s3://{bucket}/up", retry_budget=3.0, min_rate=2**19, **options)
        fs = aifdata.filesystem(aifdata.Config((aifdata.Mount("p", (tier,)),)))
        proxy.inject(Fault("throttle", method="PUT", chunk=65536, interval=0.0625))
        fs.pipe_file("p/slow.bin", data)
        proxy.inject(None)
        assert fs.cat_file("p/slow.bin") == data
        assert any(h.startswith("PUT") for h in proxy.heads)


@pytest.mark.s3
def test_a_large_range_past_the_end_is_clipped_as_fsspec_does(seaweedfs, bucket):
    data = os.urandom(12 * 2**20)
    tier = aifdata.Tier.s3(f"s3://{bucket}/clip", **seaweedfs.storage_options)
    fs = aifdata.filesystem(aifdata.Config((aifdata.Mount("p", (tier,)),)))
    fs.pipe_file("p/big.bin", data)
    assert fs.cat_file("p/big.bin", start=2**20, end=20 * 2**20) == data[2**20 :]


@pytest.mark.s3
def test_the_parts_of_one_large_range_read_pin_the_first_parts_version(
    seaweedfs, bucket, monkeypatch
):
    """Every part after the first asks for the ETag the first saw (If-Match): an object
    overwritten mid-read fails (412) instead of mixing two versions' bytes."""
    from aifdata.connectors._s3_ranged import RangedReader

    data = os.urandom(12 * 2**20)
    tier = aifdata.Tier.s3(f"s3://{bucket}/pin", part_size=2**22, **seaweedfs.storage_options)
    fs = aifdata.filesystem(aifdata.Config((aifdata.Mount("p", (tier,)),)))
    fs.pipe_file("p/big.bin", data)
    asked: list[str | None] = []
    real = RangedReader.read_parts_into

    def spy(self, key, start, view, part_size, etag=None):
        asked.append(etag)
        return real(self, key, start, view, part_size, etag)

    monkeypatch.setattr(RangedReader, "read_parts_into", spy)
    assert fs.cat_file("p/big.bin", start=2**20, end=12 * 2**20) == data[2**20 :]
    assert asked and asked[0]  # the first part's ETag, not None (each part its own)
