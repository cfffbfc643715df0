"""The shipped connector suite (``aifdata.testing.ConnectorTests``) on the PFS and S3 kinds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import aifdata
from aifdata import _seaweedfs
from aifdata.connectors._atomic import TEMP_SUFFIX
from aifdata.testing import ConnectorTests

from .conftest import s3_tier


class TestPFSConnector(ConnectorTests):
    @pytest.fixture
    def tier(self, tmp_path: Path) -> aifdata.Tier:
        root = tmp_path / "root"
        root.mkdir()
        return aifdata.Tier.pfs(root)

    def test_discarded_and_failed_writes_leave_no_temporary_file(self, tier, connector):
        writer = connector.open_write("d/w.bin")
        writer.write(b"x" * 100)
        assert any(name.endswith(TEMP_SUFFIX) for name in os.listdir(Path(tier.url) / "d"))
        writer.discard()
        with pytest.raises(KeyError), connector.open_write("d/v.bin") as failing:
            failing.write(b"y")
            raise KeyError("stop")
        assert os.listdir(Path(tier.url) / "d") == []


@pytest.mark.s3
class TestS3Connector(ConnectorTests):
    @pytest.fixture
    def tier(self, seaweedfs: _seaweedfs.SeaweedFS, bucket: str) -> aifdata.Tier:
        return s3_tier(seaweedfs, bucket)

    @pytest.fixture
    def unreachable_tier(self) -> aifdata.Tier:
        endpoint = f"http://127.0.0.1:{_seaweedfs.free_ports(1)[0]}"
        return aifdata.Tier.s3(
            "s3://nobucket/x",
            endpoint_url=endpoint,
            key="k",
            secret="s",
            max_attempts=1,
            connect_timeout=1,
        )

    def test_a_discarded_multipart_upload_is_aborted(self, tier, connector, seaweedfs):
        writer = connector.open_write("big.bin")
        writer.write(b"z" * (6 * 2**20))  # past one part: the multipart upload has started
        writer.discard()
        writer.close()
        assert not connector.exists("big.bin")
        bucket, _, prefix = tier.url.removeprefix("s3://").partition("/")
        uploads = connector.fs.call_s3("list_multipart_uploads", Bucket=bucket)
        assert [u for u in uploads.get("Uploads", []) if u["Key"].startswith(prefix)] == []


def test_import_aifdata_needs_no_pytest():
    """``aifdata.testing`` is imported only by tests: the library itself never loads pytest."""
    code = (
        "import sys, aifdata, aifdata.connectors.pfs, aifdata.connectors.s3\n"
        "assert 'pytest' not in sys.modules and 'aifdata.testing' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
