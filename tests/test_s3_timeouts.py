"""S3 faults become errors that say what happened, within the tier's limits.

The fault-injecting proxy of ``tests/faults`` runs in this process, between the
S3 tier and the session's server; the limits are set small so each case takes
seconds (``tests/faults`` runs the scenarios with the defaults).
"""

from __future__ import annotations

import os

import pytest
import s3fs

import aifdata
from aifdata import AifFileSystem, ConfigError, StorageError, StorageUnavailable
from aifdata.cli import main
from tests.faults.proxy import Fault, FaultProxy

#: Small limits: no answer within 1 s, no retry after 3 s.
QUICK = {"read_timeout": 1.0, "connect_timeout": 1.0, "retry_budget": 3.0}


def _put(server, bucket: str, rel: str, data: bytes) -> None:
    name, _, prefix = bucket.partition("/")
    server.client().put_object(Bucket=name, Key=f"{prefix}/data/{rel}", Body=data)


def _through(proxy: FaultProxy, server, bucket: str, **limits) -> AifFileSystem:
    options = dict(server.storage_options, endpoint_url=proxy.endpoint_url, **limits)
    tier = aifdata.Tier.s3(f"s3://{bucket}/data", **options)
    return aifdata.filesystem(aifdata.Config((aifdata.Mount("p", (tier,)),)))


@pytest.fixture
def proxy(seaweedfs):
    with FaultProxy(seaweedfs.endpoint_url) as p:
        yield p


def test_silence_is_no_answer_not_could_not_connect(proxy, seaweedfs, bucket):
    _put(seaweedfs, bucket, "a.bin", b"abc" * 1000)
    fs = _through(proxy, seaweedfs, bucket, **QUICK)
    proxy.inject(Fault("silence", method="GET"))
    with pytest.raises(StorageUnavailable) as info:
        fs.cat_file("p/a.bin", 0, 100)
    message = str(info.value)
    assert f"no answer from {proxy.endpoint_url} within" in message
    assert f"s3://{bucket}/data/a.bin" in message
    assert "connect" not in message.split("(")[0]


def test_silent_listing_ends_within_the_budget(proxy, seaweedfs, bucket):
    fs = _through(proxy, seaweedfs, bucket, **QUICK)
    proxy.inject(Fault("silence"))
    with pytest.raises(StorageUnavailable) as info:
        fs.ls("p/")
    assert "no answer from" in str(info.value) and "retry_budget" in str(info.value)


def test_a_cut_answer_resumes_from_the_byte_it_reached(proxy, seaweedfs, bucket):
    data = os.urandom(3 * 2**20)
    _put(seaweedfs, bucket, "big.bin", data)
    fs = _through(proxy, seaweedfs, bucket, **QUICK)
    proxy.inject(Fault("truncate", after=2**20, times=1, method="GET"))
    assert fs.cat_file("p/big.bin", 0, len(data)) == data
    ranges = [h for h in proxy.heads if h.startswith("GET") and "big.bin" in h]
    resumed = [h for h in ranges[1:] if "range: bytes=0-" not in h.lower()]
    assert resumed, ranges  # the retry asked from where the cut answer stopped


def test_a_body_always_cut_short_is_an_error_naming_bytes_and_key(proxy, seaweedfs, bucket):
    _put(seaweedfs, bucket, "c.bin", b"x" * 200_000)
    fs = _through(proxy, seaweedfs, bucket, **QUICK)
    proxy.inject(Fault("reset", after=50_000, method="GET"))
    with pytest.raises(StorageUnavailable) as info:
        fs.cat_file("p/c.bin", 0, 200_000)
    assert f"connection reset by {proxy.endpoint_url} after" in str(info.value)
    assert "c.bin" in str(info.value)


def test_missing_bucket_is_an_error_naming_it(seaweedfs):
    tier = aifdata.Tier.s3("s3://no-such-bucket-aif/x", **seaweedfs.storage_options)
    fs = aifdata.filesystem(aifdata.Config((aifdata.Mount("m", (tier,)),)))
    for call in (lambda: fs.ls("m/"), lambda: fs.find("m/"), lambda: fs.cat_file("m/a")):
        with pytest.raises(StorageError) as info:
            call()
        assert not isinstance(info.value, FileNotFoundError)
        assert "bucket 'no-such-bucket-aif' does not exist" in str(info.value)


def test_missing_bucket_exit_code_is_a_storage_errors(seaweedfs, tmp_path, monkeypatch, capsys):
    options = "\n".join(f'{k} = "{v}"' for k, v in seaweedfs.storage_options.items())
    config = tmp_path / "config.toml"
    config.write_text(f'[mounts.m.s3]\nurl = "s3://no-such-bucket-aif/x"\n{options}\n')
    monkeypatch.setenv("AIFDATA_CONFIG", str(config))
    assert main(["ls", "aif://m/"]) == 1
    assert "no-such-bucket-aif" in capsys.readouterr().err


def test_zero_byte_object_reads_as_s3fs_does(seaweedfs, bucket, s3_fs):
    _put(seaweedfs, bucket, "empty.bin", b"")
    plain = s3fs.S3FileSystem(
        key=seaweedfs.access_key, secret=seaweedfs.secret_key, endpoint_url=seaweedfs.endpoint_url
    )
    path = f"{bucket}/data/empty.bin"
    with plain.open(path, "rb") as f:
        expected = f.read(10)
    assert expected == b""
    assert s3_fs.cat_file("s3only/empty.bin", 0, 10) == expected
    assert s3_fs.cat_file("s3only/empty.bin", 0) == plain.cat_file(path)
    assert s3_fs.cat_ranges(["s3only/empty.bin"], [0], [10]) == [b""]
    with s3_fs.open("s3only/empty.bin", "rb") as f:
        assert f.read(10) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("retries = -1", "a whole number, 0 or more, got -1"),
        ("retry_budget = 0", "a positive number (seconds), got 0"),
        ("read_timeout = 'fast'", "a positive number (seconds), got 'fast'"),
    ],
)
def test_limits_are_checked_at_load(tmp_path, line, expected):
    config = tmp_path / "config.toml"
    config.write_text(f'[mounts.m.s3]\nurl = "s3://b/x"\n{line}\n')
    with pytest.raises(ConfigError) as info:
        aifdata.load_config(config)
    assert line.split()[0] in str(info.value) and expected in str(info.value)


def test_defaults_end_any_fault_within_thirty_seconds():
    from aifdata.connectors._s3_settings import S3Settings

    settings = S3Settings.from_tier(aifdata.Tier.s3("s3://b/x"))
    assert (settings.connect_timeout, settings.read_timeout) == (5.0, 10.0)
    assert (settings.retries, settings.retry_budget) == (3, 15.0)
    # a request ends by its budget; the obstore path's last attempt may wait one more timeout
    assert settings.retry_budget + settings.read_timeout < 30
