"""``aifdata convert URL --to zarr DEST``: pixels round-trip, tile chunks, lineage recorded."""

from __future__ import annotations

import io

import pytest

np = pytest.importorskip("numpy")
tifffile = pytest.importorskip("tifffile")
xr = pytest.importorskip("xarray")
pytest.importorskip("zarr")

import aifdata  # noqa: E402
from aifdata import _synthetic  # noqa: E402
from aifdata.catalog import Catalog  # noqa: E402
from aifdata.cli import main  # noqa: E402


@pytest.fixture
def scene(monkeypatch):
    """A GeoTIFF in catalog dataset ``imagery/scene`` on the default ``local`` mount."""
    monkeypatch.setenv("AIFDATA_USER", "alice")
    data = _synthetic.geotiff(side=384, tile=128, seed=5)
    catalog = Catalog()
    fs = aifdata.filesystem(catalog=catalog)
    fs.pipe_file("aif://local/imagery/scene.tif", data)
    catalog.ingest("aif://local/imagery", "imagery/scene")
    return catalog, fs, tifffile.imread(io.BytesIO(data))


def test_geotiff_to_zarr_round_trips_with_tile_chunks_and_lineage(scene, capsys):
    catalog, fs, image = scene
    dest = "aif://local/derived/scene.zarr"
    args = ["convert", "aif://local/imagery/scene.tif", dest, "--to", "zarr"]
    assert main([*args, "--dataset", "imagery/scene-zarr"]) == 0
    assert "recorded: imagery/scene-zarr" in capsys.readouterr().out
    store = xr.open_zarr(fs.get_mapper(dest), zarr_format=3, consolidated=False)
    array = store["scene.tif"]
    np.testing.assert_array_equal(array.values, image)
    assert array.encoding["chunks"] == (128, 128)  # like the source's tiles
    assert array.attrs["crs"] == f"EPSG:{_synthetic.GEOTIFF_EPSG}"
    assert float(store.x[0]) == _synthetic.GEOTIFF_ORIGIN[0] + _synthetic.GEOTIFF_PIXEL / 2
    upstream = catalog.lineage("imagery/scene-zarr")["upstream"]
    ((record, parents),) = upstream.runs
    assert record.job == "aifdata convert --to zarr" and record.state == "COMPLETE"
    assert [(p.dataset, p.version) for p in parents] == [("imagery/scene", 1)]
    assert record.params["dest"] == dest


def test_converting_something_else_fails_cleanly_and_writes_nothing(scene, capsys):
    _, fs, _ = scene
    fs.pipe_file("aif://local/imagery/notes.tif", b"not a tiff at all" * 10)
    dest = "aif://local/derived/bad.zarr"
    code = main(["convert", "aif://local/imagery/notes.tif", dest, "--to", "zarr"])
    err = capsys.readouterr().err
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert "notes.tif" in err and "Traceback" not in err
    assert not fs.exists(dest)


def test_only_zarr_is_a_target(scene, capsys):
    assert main(["convert", "aif://local/imagery/scene.tif", "aif://local/x", "--to", "n5"]) == 2


def test_a_cog_overview_level_converts_with_its_own_geotransform(scene, capsys):
    from .test_geotiff import cog_bytes, image, overviews

    _, fs, _ = scene
    pyramid = overviews(image(9, (256, 192), "uint16"), 2)
    fs.pipe_file(
        "aif://local/imagery/cog.tif", cog_bytes(pyramid, tile=(32, 32), compression="zlib")
    )
    dest = "aif://local/derived/cog-level1.zarr"
    assert (
        main(["convert", "aif://local/imagery/cog.tif", dest, "--to", "zarr", "--level", "1"]) == 0
    )
    array = xr.open_zarr(fs.get_mapper(dest), zarr_format=3, consolidated=False)["cog.tif"]
    np.testing.assert_array_equal(array.values, pyramid[1])
    assert array.encoding["chunks"] == (32, 32)
    full = aifdata.xarray.open_geotiff("aif://local/imagery/cog.tif")
    assert float(array.x[1] - array.x[0]) == 2 * float(
        full.x[1] - full.x[0]
    )  # pixels twice as wide
    assert float(array.x[0]) == float(full.x[0]) + float(full.x[1] - full.x[0]) / 2


def test_an_existing_destination_is_refused_and_kept(scene, capsys):
    catalog, fs, image = scene
    dest = "aif://local/derived/keep.zarr"
    args = ["convert", "aif://local/imagery/scene.tif", dest, "--to", "zarr"]
    assert main([*args, "--dataset", "imagery/keep"]) == 0
    capsys.readouterr()
    assert main([*args, "--dataset", "imagery/keep-again"]) != 0
    err = capsys.readouterr().err
    assert "already exists" in err and len(err.strip().splitlines()) == 1
    store = xr.open_zarr(fs.get_mapper(dest), zarr_format=3, consolidated=False)
    np.testing.assert_array_equal(store["scene.tif"].values, image)  # the first store is intact
    assert [r.state for r, _ in catalog.lineage("imagery/keep")["upstream"].runs] == ["COMPLETE"]


def test_a_corrupt_tile_names_itself_and_leaves_no_store(scene, capsys):
    """Chunks of good tiles are written before the bad one fails: all are removed."""
    _, fs, _ = scene
    data = bytearray(_synthetic.geotiff(side=512, tile=128, seed=6))
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        page = tif.pages[0]
        offset, count = page.dataoffsets[10], page.databytecounts[10]
    data[offset : offset + count] = b"\xff" * count  # not deflate data
    fs.pipe_file("aif://local/imagery/hurt.tif", bytes(data))
    dest = "aif://local/derived/hurt.zarr"
    code = main(["convert", "aif://local/imagery/hurt.tif", dest, "--to", "zarr"])
    err = capsys.readouterr().err
    assert code != 0 and len(err.strip().splitlines()) == 1, err
    assert "hurt.tif" in err and f"byte {offset}" in err and "cannot be decoded" in err
    assert not fs.exists(dest)


def test_a_local_destination_is_made(scene, tmp_path, capsys):
    _, _, image = scene
    dest = tmp_path / "out" / "scene.zarr"
    args = ["convert", "aif://local/imagery/scene.tif", str(dest), "--to", "zarr"]
    assert main([*args, "--dataset", "imagery/local-copy"]) == 0, capsys.readouterr().err
    store = xr.open_zarr(str(dest), zarr_format=3, consolidated=False)
    np.testing.assert_array_equal(store["scene.tif"].values, image)


def test_a_refused_output_dataset_writes_nothing(scene, monkeypatch, capsys):
    catalog, fs, _ = scene
    catalog.grant("user:mallory", "read", "imagery/scene")  # may read the input, not write
    monkeypatch.setenv("AIFDATA_USER", "mallory")
    dest = "aif://local/derived/stolen.zarr"
    args = ["convert", "aif://local/imagery/scene.tif", dest, "--to", "zarr"]
    assert main([*args, "--dataset", "imagery/scene"]) == 4  # alice's dataset
    assert not fs.exists(dest)
