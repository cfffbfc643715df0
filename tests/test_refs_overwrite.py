"""``aifdata refs --overwrite``: the old references stay whole and readable until the new
ones are complete, and a write that fails half way leaves them as they were.

The new set is written beside the old one (a hidden name in the same directory), then
put in its place: a JSON file or a local directory by one rename, through ``aif://`` (a
PFS or S3 tier) file by file, ``.zmetadata`` last; the old files the new set does not
replace are deleted after.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
h5py = pytest.importorskip("h5py")
pytest.importorskip("xarray")
pytest.importorskip("kerchunk")
pytest.importorskip("zarr")

from aifdata import AifFileSystem  # noqa: E402
from aifdata import refs as refs_api  # noqa: E402

OLD_T = np.arange(600.0).reshape(60, 10)
NEW_T = -np.arange(400.0).reshape(40, 10)


def three_variables() -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_dataset("t", data=OLD_T, chunks=(16, 10), compression="gzip")
        f.create_dataset("ids", data=np.arange(60, dtype="i8"))
        f.create_dataset("group/v", data=np.linspace(0, 1, 300), chunks=(64,))
    return buffer.getvalue()


def one_variable() -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_dataset("t", data=NEW_T, chunks=(8, 10), compression="gzip")
    return buffer.getvalue()


def local_files(path: Path) -> dict[str, bytes]:
    """Every file of a reference set (a JSON file or a Parquet directory), by name."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def aif_files(fs: AifFileSystem, url: str) -> dict[str, bytes]:
    root = fs._strip_protocol(url)
    if fs.isfile(root):
        return {"": fs.cat_file(root)}
    return {name[len(root) + 1 :]: fs.cat_file(name) for name in fs.find(root)}


def leftovers(names: list[str]) -> list[str]:
    return [n for n in names if n.startswith(".") and (".new-" in n or ".old-" in n)]


# -- a local directory -----------------------------------------------------------------


@pytest.mark.parametrize("form", ["json", "parquet"])
def test_a_write_that_fails_half_way_leaves_the_old_references(tmp_path, monkeypatch, form):
    """The disk fills up while the new references are written: the old ones are intact."""
    source = tmp_path / "c.h5"
    source.write_bytes(three_variables())
    written = refs_api.write(str(source), format=form)
    output = Path(written.output)
    before = local_files(output)
    source.write_bytes(one_variable())

    real_open = builtins.open

    class HalfWriter:
        """A file the disk fills up in: half of the first write lands, then ENOSPC."""

        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(bytes(data)[: len(data) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, "No space left on device (a test)")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def full_disk_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        writing = any(c in mode for c in "wxa")
        if writing and str(file).startswith(str(tmp_path)):
            return HalfWriter(f)
        return f

    monkeypatch.setattr(builtins, "open", full_disk_open)
    with pytest.raises(OSError, match="No space left"):
        refs_api.write(str(source), format=form, overwrite=True)
    monkeypatch.setattr(builtins, "open", real_open)

    assert local_files(output) == before
    assert leftovers(os.listdir(tmp_path)) == []


def test_parquet_references_stay_whole_while_the_new_ones_are_written(tmp_path, monkeypatch):
    """At every file the overwrite writes, the old set is there, every file as it was."""
    from fsspec.implementations.local import LocalFileSystem

    source = tmp_path / "c.h5"
    source.write_bytes(three_variables())
    output = Path(refs_api.write(str(source), format="parquet").output)
    before = local_files(output)
    source.write_bytes(one_variable())
    seen = []
    real_pipe = LocalFileSystem.pipe_file

    def watched(self, path, value, *args, **kwargs):
        seen.append(local_files(output) == before)
        return real_pipe(self, path, value, *args, **kwargs)

    monkeypatch.setattr(LocalFileSystem, "pipe_file", watched)
    refs_api.write(str(source), format="parquet", overwrite=True)
    assert seen and all(seen)


@pytest.mark.parametrize("form", ["json", "parquet"])
def test_an_overwrite_replaces_the_whole_set_and_leaves_nothing_beside(tmp_path, form):
    source = tmp_path / "c.h5"
    source.write_bytes(three_variables())
    written = refs_api.write(str(source), format=form)
    source.write_bytes(one_variable())
    again = refs_api.write(str(source), format=form, overwrite=True)
    assert again.output == written.output
    ds = refs_api.open(again.output, mask_and_scale=False)
    np.testing.assert_array_equal(ds["t"].values, NEW_T)
    assert "ids" not in ds.variables
    if form == "parquet":  # the old set's other variables are gone, not left to be found
        assert sorted(p.name for p in Path(again.output).iterdir()) == [".zmetadata", "t"]
    assert leftovers(os.listdir(tmp_path)) == []


def test_an_overwrite_may_change_the_format_at_the_same_path(tmp_path):
    source = tmp_path / "c.h5"
    source.write_bytes(three_variables())
    output = str(tmp_path / "c.refs")
    refs_api.write(str(source), output, format="json")
    refs_api.write(str(source), output, format="parquet", overwrite=True)
    assert Path(output).is_dir()
    np.testing.assert_array_equal(refs_api.open(output, mask_and_scale=False)["t"].values, OLD_T)
    refs_api.write(str(source), output, format="json", overwrite=True)
    assert Path(output).is_file()
    np.testing.assert_array_equal(refs_api.open(output, mask_and_scale=False)["t"].values, OLD_T)
    assert leftovers(os.listdir(tmp_path)) == []


# -- through aif:// ----------------------------------------------------------------------


def overwrite_through_aif(fs: AifFileSystem, root: str, monkeypatch) -> None:
    """The checks of an overwrite through aif://: the old set whole at every write, then
    only the new set there; and a failing write leaving the old set."""
    fs.pipe(f"{root}/c.h5", three_variables())
    url = f"aif://{root}/c.h5"
    output = refs_api.write(url, format="parquet", config=fs.config).output
    before = aif_files(fs, output)
    fs.pipe(f"{root}/c.h5", one_variable())

    real_pipe = AifFileSystem.pipe_file
    calls = []

    def fails_second(self, path, value, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise ConnectionError("the connection dropped (a test)")
        return real_pipe(self, path, value, *args, **kwargs)

    monkeypatch.setattr(AifFileSystem, "pipe_file", fails_second)
    with pytest.raises(ConnectionError):
        refs_api.write(url, format="parquet", overwrite=True, config=fs.config)
    assert aif_files(fs, output) == before
    assert leftovers([p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)]) == []

    seen = []

    def watched(self, path, value, *args, **kwargs):
        seen.append(aif_files(fs, output) == before)
        return real_pipe(self, path, value, *args, **kwargs)

    monkeypatch.setattr(AifFileSystem, "pipe_file", watched)
    refs_api.write(url, format="parquet", overwrite=True, config=fs.config)
    monkeypatch.setattr(AifFileSystem, "pipe_file", real_pipe)
    assert seen and all(seen)
    assert sorted(aif_files(fs, output)) == [".zmetadata", "t/refs.0.parq"]
    ds = refs_api.open(output, config=fs.config, mask_and_scale=False)
    np.testing.assert_array_equal(ds["t"].values, NEW_T)
    assert leftovers([p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)]) == []


def test_an_overwrite_on_a_pfs_through_aif(pfs_fs, monkeypatch):
    overwrite_through_aif(pfs_fs, "pfsonly/climate", monkeypatch)


@pytest.mark.s3
def test_an_overwrite_on_s3_through_aif(s3_fs, monkeypatch):
    overwrite_through_aif(s3_fs, "s3only/climate", monkeypatch)
