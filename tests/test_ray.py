"""Ray Data over partitions: the same records as a local read, read on Ray's workers.

One local Ray (2 CPUs) serves the module. Its workers get the mount table the
way a user's would: ``$AIFDATA_CONFIG`` in the environment Ray was started
with. The files live under ``aif://genomics``: FASTQ and ROOT on S3 (the
session's SeaweedFS), a GeoTIFF on the PFS tier only.
"""

from __future__ import annotations

import shutil
import tempfile

import numpy as np
import pytest

import aifdata
from aifdata import AifFileSystem, Catalog, _synthetic
from aifdata.formats import partition

from .conftest import two_tier_toml

pytestmark = [
    pytest.mark.e2e,
    # Ray's own: DataContext warns about its deprecated settings as it copies them
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
]

ray = pytest.importorskip("ray")
pd = pytest.importorskip("pandas")
import aifdata.ray  # noqa: E402
from aifdata.ray import PartitionDatasource  # noqa: E402


@pytest.fixture(scope="module")
def cluster(_seaweedfs_session, session_bucket, tmp_path_factory):
    """Ray on this machine, its workers configured by ``$AIFDATA_CONFIG``; the test files."""
    root = tmp_path_factory.mktemp("ray-module")
    pfs = root / "pfs"
    pfs.mkdir()
    config = root / "config.toml"
    config.write_text(
        two_tier_toml(_seaweedfs_session, f"s3://{session_bucket}/ray", pfs, "genomics")
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIFDATA_CONFIG", str(config))
        mp.setenv("AIFDATA_HOME", str(root / "worker-home"))
        mp.setenv("RAY_AUTH_MODE", "disabled")  # a private cluster on loopback
        AifFileSystem.clear_instance_cache()
        fs = aifdata.filesystem(str(config), catalog=False)
        fs.pipe("genomics/run42/reads.fastq", _synthetic.fastq(4000, seed=3))
        fs.pipe("genomics/run42/more.fastq", _synthetic.fastq(1500, seed=4))
        fs.pipe("genomics/events.root", _synthetic.root(20_000, seed=5, basket=2_000))
        (pfs / "scene.tif").write_bytes(_synthetic.geotiff(512, tile=128, seed=6))
        # a short directory: Ray's sockets live under it, and a socket path has ~100 bytes
        ray_dir = tempfile.mkdtemp(prefix="aifdata-ray-")
        try:
            ray.init(
                num_cpus=2,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                _temp_dir=ray_dir,
            )
            context = ray.data.DataContext.get_current()
            context.execution_options.preserve_order = True  # rows in partition order
            context.enable_progress_bars = False
            yield {"config": config, "pfs": pfs, "fs": fs}
        finally:
            ray.shutdown()
            shutil.rmtree(ray_dir, ignore_errors=True)


@pytest.fixture
def genomics(cluster, monkeypatch):
    """This test's process sees the same mount table as the workers."""
    monkeypatch.setenv("AIFDATA_CONFIG", str(cluster["config"]))
    AifFileSystem.clear_instance_cache()
    return cluster


def fastq_rows(parts):
    return [
        {"name": r.name, "sequence": r.sequence, "quality": r.qualities}
        for p in parts
        for r in p.read()
    ]


def test_fastq_records_are_the_local_read(genomics):
    parts = partition("aif://genomics/run42/reads.fastq", n=5)
    ds = aifdata.ray.read(parts)
    assert ds.count() == 4000
    assert ds.take_all() == fastq_rows(parts)
    assert ds.schema().names == ["name", "sequence", "quality"]


def test_fewer_tasks_than_partitions_read_runs_of_neighbours(genomics):
    parts = partition("aif://genomics/run42/reads.fastq", n=8)
    tasks = PartitionDatasource(parts).get_read_tasks(3)
    assert len(tasks) == 3
    runs = [parts[0:2], parts[2:5], parts[5:8]]  # consecutive partitions, near-equal counts
    sizes = [t.metadata.size_bytes for t in tasks]
    assert sizes == [run[-1]["end"] - run[0]["start"] for run in runs]  # neighbouring ranges
    assert sum(sizes) == PartitionDatasource(parts).estimate_inmemory_data_size()
    assert {t.metadata.input_files for t in tasks} == {("aif://genomics/run42/reads.fastq",)}
    assert all(t.metadata.num_rows is None for t in tasks)
    one = PartitionDatasource(parts).get_read_tasks(len(parts))[0]
    assert len(ray.cloudpickle.dumps(one)) < 2048  # the descriptors travel, not the data
    ds = aifdata.ray.read(parts, override_num_blocks=3)
    assert ds.take_all() == fastq_rows(parts)
    assert "Readaifdata: 3 tasks executed" in ds.stats()


def test_a_catalog_dataset_is_planned_with_n(genomics):
    Catalog().ingest("aif://genomics/run42", "genomics/run42")
    dataset = aifdata.open_dataset("genomics/run42")
    parts = dataset.partitions(n=6)
    ds = aifdata.ray.read(dataset, n=6)
    assert ds.count() == 5500
    assert sorted(r["name"] for r in ds.take_all()) == sorted(r["name"] for r in fastq_rows(parts))


def test_root_entries_are_an_arrow_table_equal_to_the_local_frames(genomics):
    parts = partition("aif://genomics/events.root", n=4)
    assert len(parts) > 1
    ds = aifdata.ray.read(parts, override_num_blocks=2)
    local = pd.concat([p.to_pandas() for p in parts], ignore_index=True)
    # Ray hands back Arrow-backed columns (double[pyarrow]): the values are what matter
    pd.testing.assert_frame_equal(ds.to_pandas(), local, check_dtype=False)
    assert ds.schema().names == ["px", "py", "pz", "nhits"]
    assert ds.count() == 20_000


def test_geotiff_windows_are_rows_with_their_pixels(genomics):
    parts = partition("aif://genomics/scene.tif", n=4)
    rows = aifdata.ray.read(parts).take_all()
    local = [p.read() for p in parts]
    assert len(rows) == len(local) == len(parts)
    for row, raster in zip(rows, local, strict=True):
        np.testing.assert_array_equal(row["data"], raster.data)
        assert (row["row"], row["col"], row["crs"]) == (raster.row, raster.col, raster.crs)
        assert tuple(row["transform"]) == raster.transform


def test_a_partition_of_a_changed_file_is_refused_on_the_worker(genomics):
    fs = genomics["fs"]
    fs.pipe("genomics/changing.fastq", _synthetic.fastq(300, seed=7))
    parts = partition("aif://genomics/changing.fastq", n=3)
    fs.pipe("genomics/changing.fastq", _synthetic.fastq(310, seed=8))  # a new version
    with pytest.raises(aifdata.FormatError) as refused:
        aifdata.ray.read(parts).take_all()
    assert "aif://genomics/changing.fastq" in str(refused.value)
    assert "changed since it was partitioned" in str(refused.value)


def test_no_partitions_make_an_empty_dataset(genomics):
    assert aifdata.ray.read([]).count() == 0


def test_mixed_tables_and_strays_are_refused_before_ray_runs(genomics):
    fastq = partition("aif://genomics/run42/reads.fastq", n=2)
    root = partition("aif://genomics/events.root", n=2)
    with pytest.raises(ValueError, match="one Dataset per kind"):
        aifdata.ray.read(fastq + root)
    with pytest.raises(TypeError, match="got str"):
        aifdata.ray.read(["aif://genomics/run42/reads.fastq"])
    with pytest.raises(TypeError, match="not partitions"):
        aifdata.ray.read(fastq, n=4)
