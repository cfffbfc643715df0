"""Throttling, 5xx answers and dropped connections are retried with backoff.

A small fault-injecting reverse proxy sits between aifdata and SeaweedFS: it
answers the first GETs with ``503 SlowDown`` or cuts the connection mid-body,
then forwards faithfully (headers untouched, so signatures still verify).
"""

from __future__ import annotations

import http.client
import http.server
import threading
from urllib.parse import urlsplit

import numpy as np
import pytest

import aifdata


class FaultyProxy(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, faults: list[str]) -> None:
        self.upstream = urlsplit(upstream)
        self.faults = faults  # consumed one per GET: "503" or "drop"
        self.injected: list[str] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def next_fault(self) -> str | None:
        with self.lock:
            if self.faults:
                fault = self.faults.pop(0)
                self.injected.append(fault)
                return fault
        return None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultyProxy

    def log_message(self, *args: object) -> None:
        pass

    def _forward(self) -> None:
        fault = self.server.next_fault() if self.command == "GET" else None
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if fault == "503":
            payload = b"<Error><Code>SlowDown</Code><Message>slow down</Message></Error>"
            self.send_response(503)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        up = self.server.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
        conn.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
        response = conn.getresponse()
        data = response.read()
        self.send_response(response.status)
        skip = ("transfer-encoding", "connection")
        if self.command != "HEAD":
            skip += ("content-length",)
            self.send_header("Content-Length", str(len(data)))
        for key, value in response.getheaders():
            if key.lower() not in skip:
                self.send_header(key, value)
        self.end_headers()
        if fault == "drop":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward


@pytest.fixture
def proxied(seaweedfs, bucket):
    def make(faults: list[str]):
        proxy = FaultyProxy(seaweedfs.endpoint_url, faults)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        options = dict(
            seaweedfs.storage_options, endpoint_url=f"http://127.0.0.1:{proxy.server_port}"
        )
        tier = aifdata.Tier.s3(f"s3://{bucket}/retry", part_size=5 * 2**20, **options)
        fs = aifdata.filesystem(aifdata.Config((aifdata.Mount("r", (tier,)),)))
        return proxy, fs

    proxies = []
    yield lambda faults: proxies.append(make(faults)) or proxies[-1]
    for proxy, _ in proxies:
        proxy.shutdown()


def put(seaweedfs, bucket, key, data):
    name, _, prefix = bucket.partition("/")
    seaweedfs.client().put_object(Bucket=name, Key=f"{prefix}/retry/{key}", Body=data)


@pytest.mark.parametrize("faults", [["503", "503"], ["drop"], ["503", "drop"]])
def test_large_read_survives_throttling_and_drops(proxied, seaweedfs, bucket, faults):
    data = np.random.default_rng(3).bytes(20 * 2**20)
    put(seaweedfs, bucket, "big.bin", data)
    proxy, fs = proxied(list(faults))
    assert fs.cat_file("r/big.bin") == data
    assert proxy.injected == faults


@pytest.mark.parametrize("faults", [["503"], ["drop"]])
def test_small_reads_survive_throttling_and_drops(proxied, seaweedfs, bucket, faults):
    put(seaweedfs, bucket, "small.bin", b"tiny payload")
    proxy, fs = proxied(list(faults))
    assert fs.cat(["r/small.bin"]) == {"r/small.bin": b"tiny payload"}
    assert proxy.injected == faults
