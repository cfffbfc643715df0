"""A PFS tier's root must exist: a write never creates it (an unmounted Lustre would fill the
node's own disk below the mount point) unless the tier says ``create = true``. The error comes
at first use, not when the config loads (a config may name the roots of other machines)."""

from __future__ import annotations

import pytest

import aifdata
from aifdata.cli import main


def _config(tmp_path, root, extra=""):
    text = f'[mounts.lab.pfs]\npath = "{root}"\n{extra}'
    path = tmp_path / "aifdata.toml"
    path.write_text(text)
    return aifdata.load_config(path)


@pytest.fixture
def missing(tmp_path):
    return tmp_path / "unmounted" / "projects" / "lab"


@pytest.fixture
def fs(tmp_path, missing):
    return aifdata.filesystem(_config(tmp_path, missing))


@pytest.mark.parametrize(
    "write",
    [
        lambda fs, src: fs.pipe("aif://lab/run1/a.txt", b"x"),
        lambda fs, src: fs.open("aif://lab/a.txt", "wb"),
        lambda fs, src: fs.put(str(src), "aif://lab/a.txt"),
        lambda fs, src: fs.makedirs("aif://lab/run1", exist_ok=True),
        lambda fs, src: aifdata.copy(str(src), "aif://lab/run1/a.txt", config=fs.config),
    ],
    ids=["pipe", "open", "put", "makedirs", "copy"],
)
def test_a_write_under_a_missing_root_is_refused_and_creates_nothing(fs, missing, tmp_path, write):
    src = tmp_path / "src.txt"
    src.write_bytes(b"hello")
    with pytest.raises(aifdata.NotFound) as caught:
        write(fs, src)
    message = str(caught.value)
    assert str(missing) in message
    assert "mounted at /" in message
    assert "create = true" in message
    assert not (tmp_path / "unmounted").exists()


def test_a_local_path_inside_the_tier_is_refused_too(fs, missing, tmp_path):
    src = tmp_path / "src.txt"
    src.write_bytes(b"hello")
    with pytest.raises(aifdata.NotFound, match="does not exist"):
        aifdata.copy(str(src), str(missing / "run1" / "a.txt"), config=fs.config)
    assert not (tmp_path / "unmounted").exists()


def test_the_cli_says_so_in_one_line_with_exit_code_3(tmp_path, missing, capsys):
    _config(tmp_path, missing)
    src = tmp_path / "src.txt"
    src.write_bytes(b"hello")
    code = main(["--config", str(tmp_path / "aifdata.toml"), "cp", str(src), "aif://lab/a.txt"])
    err = capsys.readouterr().err
    assert code == 3
    assert str(missing) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "unmounted").exists()


def test_loading_and_reading_a_config_with_a_missing_root_are_fine(fs, tmp_path):
    assert [m.prefix for m in fs.config.mounts] == ["lab"]
    assert not fs.exists("aif://lab/a.txt")
    with pytest.raises(FileNotFoundError):
        fs.cat("aif://lab/a.txt")
    assert not (tmp_path / "unmounted").exists()


def test_create_true_lets_the_first_write_make_the_root(tmp_path, missing):
    fs = aifdata.filesystem(_config(tmp_path, missing, "create = true\n"))
    fs.pipe("aif://lab/run1/a.txt", b"x")
    assert (missing / "run1" / "a.txt").read_bytes() == b"x"


def test_create_must_be_true_or_false(tmp_path, missing):
    with pytest.raises(aifdata.ConfigError, match=r"mounts\.lab\.pfs\.create.*true or false"):
        _config(tmp_path, missing, 'create = "yes"\n')


def test_a_root_that_is_a_file_is_named(tmp_path):
    root = tmp_path / "afile"
    root.write_bytes(b"")
    fs = aifdata.filesystem(_config(tmp_path, root, "create = true\n"))
    with pytest.raises(NotADirectoryError, match="not a directory"):
        fs.pipe("aif://lab/a.txt", b"x")


def test_reads_fall_back_and_a_stage_is_refused_when_the_pfs_is_not_mounted(tmp_path, missing):
    archive = tmp_path / "archive"
    (archive / "run1").mkdir(parents=True)
    (archive / "run1" / "a.txt").write_bytes(b"kept")
    tiers = (aifdata.Tier.pfs(missing, name="scratch"), aifdata.Tier.pfs(archive, name="archive"))
    config = aifdata.Config((aifdata.Mount("lab", tiers, write_tier="archive"),))
    fs = aifdata.filesystem(config)
    assert fs.cat("aif://lab/run1/a.txt") == b"kept"  # routed to the archive
    catalog = aifdata.Catalog(tmp_path / "catalog.db", config=config)
    catalog.ingest("aif://lab/run1", "lab/run1")
    with pytest.raises(aifdata.NotFound, match=r"'scratch': its root .* does not exist"):
        catalog.stage("lab/run1", to="scratch")
    assert not (tmp_path / "unmounted").exists()


def test_the_default_mount_still_makes_its_own_data_directory(isolated_home):
    fs = aifdata.filesystem()
    fs.pipe("aif://local/a.txt", b"x")
    assert (isolated_home / "data" / "a.txt").read_bytes() == b"x"
