"""The S3 tier against a real server: error translation, reads, timeouts."""

from __future__ import annotations

import time

import numpy as np
import pytest

import aifdata
from aifdata import AccessDenied, NotFound, StorageUnavailable


def test_missing_key_names_bucket_key_and_endpoint(s3_fs, bucket, seaweedfs):
    with pytest.raises(NotFound) as info:
        s3_fs.cat("s3only/no/such.bin")
    message = str(info.value)
    assert f"s3://{bucket}/data/no/such.bin" in message
    assert seaweedfs.endpoint_url in message
    assert isinstance(info.value, FileNotFoundError)


def test_wrong_credentials_are_access_denied(seaweedfs, bucket):
    tier = aifdata.Tier.s3(
        f"s3://{bucket}/data", endpoint_url=seaweedfs.endpoint_url, key="nobody", secret="wrong"
    )
    fs = aifdata.filesystem(aifdata.Config((aifdata.Mount("m", (tier,)),)))
    for call in (lambda: fs.cat("m/x"), lambda: fs.ls("m/"), lambda: fs.pipe("m/x", b"1"),
                 lambda: _write_through_open(fs, "m/x")):  # fmt: skip
        with pytest.raises(AccessDenied) as info:
            call()
        assert isinstance(info.value, PermissionError)
        assert bucket in str(info.value)


def _write_through_open(fs, path):
    """What ``aifdata cp`` does: the upload happens when the file closes."""
    with fs.open(path, "wb") as f:
        f.write(b"1")


def test_endpoint_down_fails_fast_and_names_the_endpoint():
    from aifdata._seaweedfs import free_ports

    endpoint = f"http://127.0.0.1:{free_ports(1)[0]}"
    tier = aifdata.Tier.s3("s3://nobucket/x", endpoint_url=endpoint, key="k", secret="s")
    fs = aifdata.filesystem(aifdata.Config((aifdata.Mount("down", (tier,)),)))
    calls = (lambda: fs.cat("down/a.bin"), lambda: fs.ls("down/"), lambda: fs.info("down/a"),
             lambda: _write_through_open(fs, "down/a.bin"))  # fmt: skip
    for call in calls:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable) as info:
            call()
        assert endpoint in str(info.value)
        assert time.monotonic() - started < 60  # bounded by timeouts and retries, never a hang


def test_large_object_round_trip_in_parallel_parts(seaweedfs, bucket):
    tier = aifdata.Tier.s3(f"s3://{bucket}/big", part_size=5 * 2**20, **seaweedfs.storage_options)
    fs = aifdata.filesystem(aifdata.Config((aifdata.Mount("big", (tier,)),)))
    data = np.random.default_rng(42).bytes(23 * 2**20 + 17)
    with fs.open("big/blob.bin", "wb") as f:
        f.write(data)
    assert fs.cat("big/blob.bin") == data
    assert fs.cat_file("big/blob.bin", 2**20, 2**20 + 100) == data[2**20 : 2**20 + 100]
    assert fs.cat_file("big/blob.bin", -100) == data[-100:]
    assert fs.cat_file("big/blob.bin", len(data) + 5) == b""
    starts = [0, 7 * 2**20, len(data) - 10]
    ends = [10, 7 * 2**20 + 10, len(data)]
    assert fs.cat_ranges(["big/blob.bin"] * 3, starts, ends) == [
        data[s:e] for s, e in zip(starts, ends, strict=True)
    ]
    with fs.open("big/blob.bin", "rb") as f:
        f.seek(12345)
        assert f.read(1000) == data[12345:13345]


def test_failed_upload_leaves_nothing(s3_fs):
    with pytest.raises(RuntimeError), s3_fs.open("s3only/partial.bin", "wb") as f:
        f.write(b"z" * (12 * 2**20))  # forces a multipart upload to start
        raise RuntimeError("writer died")
    assert not s3_fs.exists("s3only/partial.bin")


def test_many_small_objects_in_one_call(s3_fs):
    payloads = {f"s3only/small/{i:04d}.bin": bytes([i % 251]) * (100 + i) for i in range(200)}
    s3_fs.pipe(payloads)
    assert s3_fs.cat(sorted(payloads)) == payloads
    out = s3_fs.cat([*sorted(payloads)[:2], "s3only/small/missing.bin"], on_error="return")
    assert isinstance(out["s3only/small/missing.bin"], FileNotFoundError)


def test_s3_tier_reads_aws_environment(monkeypatch, seaweedfs, bucket):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", seaweedfs.endpoint_url)
    fs = aifdata.filesystem(
        aifdata.Config((aifdata.Mount("env", (aifdata.Tier.s3(f"s3://{bucket}/e"),)),))
    )
    fs.pipe("env/x.txt", b"from env")
    assert fs.cat("env/x.txt") == b"from env"


def test_s3_tier_uses_the_configured_prefix(s3_fs, seaweedfs, bucket):
    s3_fs.pipe("s3only/inside.txt", b"1")
    name, _, prefix = bucket.partition("/")
    listing = seaweedfs.client().list_objects_v2(Bucket=name, Prefix=prefix)
    assert [o["Key"] for o in listing["Contents"]] == [f"{prefix}/data/inside.txt"]
