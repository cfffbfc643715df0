"""Dask on a real Slurm cluster: dask-jobqueue workers, started by ``sbatch`` on the session's
slurmd, read FASTQ, GeoTIFF and ROOT partitions through ``aif://`` (SeaweedFS and a PFS tier).

What a worker needs, and the error it gives without it, is tested here too: the mount table
(``$AIFDATA_CONFIG``), working credentials, and partitions of the file's current version.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import aifdata
from aifdata import AifFileSystem, _synthetic

from .conftest import two_tier_toml
from .faults.proxy import FaultProxy
from .test_root import ROOT_DIR

dask_jobqueue = pytest.importorskip("dask_jobqueue", reason="needs dask-jobqueue (extra: slurm)")
distributed = pytest.importorskip("distributed", reason="needs distributed (extra: slurm)")
cloudpickle = pytest.importorskip("cloudpickle")
ak = pytest.importorskip("awkward")

# the summaries below travel to the workers by value: a worker need not import the tests
cloudpickle.register_pickle_by_value(sys.modules[__name__])

#: A real ROOT file written by ROOT (a million entries, four baskets: four partitions).
ROOT_FILE = ROOT_DIR / "uproot-issue412.root"


@pytest.fixture
def lake(seaweedfs, bucket, pfs_dir, tmp_path, monkeypatch) -> tuple[Path, AifFileSystem]:
    """Mount ``lake``: the PFS read first, S3 the write tier; the table in ``$AIFDATA_CONFIG``."""
    config = tmp_path / "config.toml"
    config.write_text(two_tier_toml(seaweedfs, f"s3://{bucket}/lake", pfs_dir, "lake"))
    monkeypatch.setenv("AIFDATA_CONFIG", str(config))
    AifFileSystem.clear_instance_cache()
    return config, aifdata.filesystem(str(config), catalog=False)


@contextmanager
def slurm_workers(
    tmp_path: Path, jobs: int = 2, prologue: tuple[str, ...] = ()
) -> Iterator[distributed.Client]:
    """A ``SLURMCluster`` of ``jobs`` single-core jobs on the session's slurmd, and its client."""
    cluster = dask_jobqueue.SLURMCluster(
        queue="debug",
        cores=1,
        processes=1,
        memory="1GB",
        walltime="00:10:00",
        python=sys.executable,
        log_directory=str(tmp_path / "dask-logs"),
        scheduler_options={"host": "127.0.0.1", "dashboard_address": None},
        job_script_prologue=list(prologue),
    )
    try:
        cluster.scale(jobs=jobs)
        with distributed.Client(cluster) as client:
            client.wait_for_workers(jobs, timeout=120)
            yield client
    finally:
        cluster.close()


def fastq_summary(partition: aifdata.Partition) -> tuple[int, int]:
    records = partition.read()
    return len(records), sum(len(r.sequence) for r in records)


def raster_summary(partition: aifdata.Partition) -> tuple[int, int, float]:
    raster = partition.read()
    return raster.row, raster.col, float(raster.data.astype("float64").sum())


def root_summary(partition: aifdata.Partition) -> tuple[int, dict[str, float]]:
    arrays = partition.read()
    sums = {
        field: float(ak.sum(arrays[field]))
        for field in arrays.fields
        if ak.type(arrays[field]).content.__class__.__name__ == "NumpyType"
    }
    return len(arrays), sums


def where_served(url: str) -> str:
    return aifdata.filesystem().where(url).tier


def in_slurm_job() -> str | None:
    import os

    return os.environ.get("SLURM_JOB_ID")


def test_slurm_workers_read_fastq_geotiff_and_root_partitions_as_a_local_run_does(
    slurm, lake, pfs_dir, tmp_path
):
    if not ROOT_FILE.exists():
        pytest.skip(f"the real ROOT files are not here: {ROOT_FILE} is absent")
    _, fs = lake
    fs.pipe("lake/run1/reads.fastq", _synthetic.fastq(4000, seed=14))  # on S3 only
    tiff = _synthetic.geotiff(side=512, tile=128, seed=14)
    fs.pipe("lake/run1/dem.tif", tiff)
    (pfs_dir / "run1").mkdir()
    (pfs_dir / "run1" / "dem.tif").write_bytes(tiff)  # an exact copy: the PFS serves it
    fs.pipe("lake/run1/events.root", ROOT_FILE.read_bytes())
    jobs: dict[str, tuple[list[aifdata.Partition], Callable]] = {
        "fastq": (aifdata.partition("aif://lake/run1/reads.fastq", n=7), fastq_summary),
        "geotiff": (aifdata.partition("aif://lake/run1/dem.tif", n=5), raster_summary),
        "root": (aifdata.partition("aif://lake/run1/events.root", n=4), root_summary),
    }
    assert len(jobs["root"][0]) == 4
    local = {name: [summary(p) for p in parts] for name, (parts, summary) in jobs.items()}

    with slurm_workers(tmp_path) as client:
        assert all(client.run(in_slurm_job).values()), "every worker runs in a Slurm job"
        served = client.submit(where_served, "aif://lake/run1/dem.tif").result()
        remote = {
            name: client.gather(client.map(summary, parts, pure=False))
            for name, (parts, summary) in jobs.items()
        }
        bag = aifdata.dask.to_bag(jobs["fastq"][0])
        bases = bag.map(lambda record: len(record.sequence)).sum().compute()

    assert served == "pfs"
    assert remote == local
    assert bases == sum(total for _, total in local["fastq"])


def read_partition(partition: aifdata.Partition) -> int:
    return len(partition.read())


def error_on_a_worker(
    tmp_path: Path, partition: aifdata.Partition, prologue: tuple[str, ...] = ()
) -> BaseException:
    """What reading ``partition`` on a Slurm worker raises (the job script runs ``prologue``)."""
    with slurm_workers(tmp_path, jobs=1, prologue=prologue) as client:
        future = client.submit(read_partition, partition)
        distributed.wait(future)
        error = future.exception()
    assert error is not None, "the read succeeded"
    return error


def test_a_worker_without_the_mount_table_names_aifdata_config_and_the_mount(slurm, lake, tmp_path):
    _, fs = lake
    fs.pipe("lake/reads.fastq", _synthetic.fastq(100, seed=1))
    parts = aifdata.partition("aif://lake/reads.fastq", n=2)
    error = error_on_a_worker(tmp_path, parts[0], prologue=("unset AIFDATA_CONFIG",))
    assert isinstance(error, aifdata.MountNotFound)
    message = str(error)
    assert "'aif://lake/reads.fastq'" in message and "$AIFDATA_CONFIG is not set" in message


def test_a_worker_with_wrong_credentials_names_the_endpoint_and_does_not_retry(
    slurm, lake, seaweedfs, tmp_path
):
    config, fs = lake
    fs.pipe("lake/reads.fastq", _synthetic.fastq(100, seed=1))
    parts = aifdata.partition("aif://lake/reads.fastq", n=2)
    with FaultProxy(seaweedfs.endpoint_url) as counter:  # relays every request, and counts them
        wrong = tmp_path / "wrong.toml"
        options = seaweedfs.storage_options
        wrong.write_text(
            config.read_text()
            .replace(options["secret"], "not-the-secret")
            .replace(options["endpoint_url"], counter.endpoint_url)
        )
        error = error_on_a_worker(tmp_path, parts[0], prologue=(f"export AIFDATA_CONFIG={wrong}",))
    assert isinstance(error, aifdata.AccessDenied)
    assert f"(endpoint {counter.endpoint_url}): access denied" in str(error)
    assert counter.requests <= 2, "a refusal is an answer: it is not retried"


def test_a_partition_of_another_version_is_refused_on_the_worker(slurm, lake, tmp_path):
    _, fs = lake
    fs.pipe("lake/reads.fastq", _synthetic.fastq(100, seed=1))
    parts = aifdata.partition("aif://lake/reads.fastq", n=2)
    fs.pipe("lake/reads.fastq", _synthetic.fastq(100, seed=2))  # a new version
    error = error_on_a_worker(tmp_path, parts[1])
    assert isinstance(error, aifdata.FormatError)
    assert "aif://lake/reads.fastq: changed since it was partitioned" in str(error)


def test_a_worker_with_only_the_catalog_snapshot_skips_a_stale_pfs_copy(
    slurm, lake, pfs_dir, tmp_path, monkeypatch
):
    pytest.importorskip("pyarrow", reason="snapshots are Parquet (extra: dataframe)")
    _, fs = lake
    good = _synthetic.fastq(500, seed=3)
    fs.pipe("lake/run2/reads.fastq", good)
    catalog = aifdata.Catalog(tmp_path / "catalog.db")
    catalog.ingest("aif://lake/run2", "genomics/run2")
    catalog.stage("genomics/run2", to="pfs")
    monkeypatch.setenv("AIFDATA_CATALOG", str(tmp_path / "catalog.db"))  # the login node's
    AifFileSystem.clear_instance_cache()
    parts = aifdata.partition("aif://lake/run2/reads.fastq", n=4)
    catalog.export(str(tmp_path / "snapshot"))
    stale = pfs_dir / "run2" / "reads.fastq"
    stale.write_bytes(good.replace(b"A", b"C", 1))  # same size, other bytes
    worker = tmp_path / "worker-home"  # no catalog file there
    worker.mkdir()
    prologue = (f"export AIFDATA_HOME={worker}", f"export AIFDATA_CATALOG={tmp_path / 'snapshot'}")
    with slurm_workers(tmp_path, jobs=1, prologue=prologue) as client:
        served = client.submit(where_served, "aif://lake/run2/reads.fastq").result()
        counts = client.gather(client.map(fastq_summary, parts))
    assert served == "s3"
    assert sum(n for n, _ in counts) == 500
    assert counts == [fastq_summary(p) for p in parts]  # here, with the catalog file
