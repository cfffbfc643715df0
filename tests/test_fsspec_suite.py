"""fsspec's own shared filesystem tests (copy, get, put, pipe, open) against ``aif://``.

Run twice: on a mount whose only tier is S3 (SeaweedFS) and on a mount whose
only tier is a PFS directory.
"""

from __future__ import annotations

import posixpath

import pytest
from fsspec.tests import abstract

import aifdata

from .conftest import s3_tier


class _AifFixtures(abstract.AbstractFixtures):
    @pytest.fixture
    def fs_join(self):
        return posixpath.join

    @pytest.fixture
    def fs_path(self, fs):
        return f"{self.mount_name}/suite"

    @pytest.fixture
    def fs_sanitize_path(self):
        return lambda path: path.rstrip("/")


class S3MountFixtures(_AifFixtures):
    mount_name = "s3only"

    @pytest.fixture
    def fs(self, seaweedfs, bucket):
        mount = aifdata.Mount(self.mount_name, (s3_tier(seaweedfs, bucket),))
        return aifdata.filesystem(aifdata.Config((mount,)))

    @pytest.fixture
    def supports_empty_directories(self):
        return False


class PFSMountFixtures(_AifFixtures):
    mount_name = "pfsonly"

    @pytest.fixture
    def fs(self, pfs_dir):
        mount = aifdata.Mount(self.mount_name, (aifdata.Tier.pfs(pfs_dir),))
        return aifdata.filesystem(aifdata.Config((mount,)))


class TestS3Copy(abstract.AbstractCopyTests, S3MountFixtures):
    pass


class TestS3Get(abstract.AbstractGetTests, S3MountFixtures):
    pass


class TestS3Put(abstract.AbstractPutTests, S3MountFixtures):
    pass


class TestS3Pipe(abstract.AbstractPipeTests, S3MountFixtures):
    pass


class TestS3Open(abstract.AbstractOpenTests, S3MountFixtures):
    pass


class TestPFSCopy(abstract.AbstractCopyTests, PFSMountFixtures):
    pass


class TestPFSGet(abstract.AbstractGetTests, PFSMountFixtures):
    pass


class TestPFSPut(abstract.AbstractPutTests, PFSMountFixtures):
    pass


class TestPFSPipe(abstract.AbstractPipeTests, PFSMountFixtures):
    pass


class TestPFSOpen(abstract.AbstractOpenTests, PFSMountFixtures):
    pass
