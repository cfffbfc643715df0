"""The mount table: TOML, Python, defaults, and clear errors for bad input."""

from __future__ import annotations

import pickle

import pytest

import aifdata
from aifdata import ConfigError, MountNotFound

GOOD = """
[mounts.genomics]
read_order = ["pfs", "s3"]
write_tier = "s3"

[mounts.genomics.s3]
url = "s3://aif-genomics/run42/"
endpoint_url = "http://127.0.0.1:9000"
region = "eu-west-1"

[mounts.genomics.pfs]
path = "/lustre/projects/genomics"

[mounts.climate]
prefix = "earth/climate"
[mounts.climate.scratch]
kind = "pfs"
path = "/gpfs/scratch/climate"
"""


def test_toml_builds_the_mount_table(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    config = aifdata.load_config(path)
    genomics = config.mount("genomics")
    assert genomics.read_order == ("pfs", "s3")
    assert genomics.write_tier == "s3"
    assert genomics.tier("s3").url == "s3://aif-genomics/run42"
    assert genomics.tier("s3").options["region"] == "eu-west-1"
    assert genomics.tier("pfs").url == "/lustre/projects/genomics"
    climate = config.mount("earth/climate")
    assert climate.tiers[0].kind == "pfs" and climate.tiers[0].name == "scratch"
    assert config.source == str(path)


def test_python_config_equals_toml_config(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    built = aifdata.Config(
        (
            aifdata.Mount(
                "genomics",
                (
                    aifdata.Tier.s3(
                        "s3://aif-genomics/run42/",
                        endpoint_url="http://127.0.0.1:9000",
                        region="eu-west-1",
                    ),
                    aifdata.Tier.pfs("/lustre/projects/genomics"),
                ),
                read_order=("pfs", "s3"),
                write_tier="s3",
            ),
            aifdata.Mount(
                "earth/climate", (aifdata.Tier.pfs("/gpfs/scratch/climate", name="scratch"),)
            ),
        )
    )
    assert built.mounts == aifdata.load_config(path).mounts


def test_defaults_prefer_pfs_reads_and_s3_writes():
    mount = aifdata.Mount("m", (aifdata.Tier.s3("s3://b/p"), aifdata.Tier.pfs("/x")))
    assert mount.read_order == ("pfs", "s3")
    assert mount.write_tier == "s3"


def test_config_found_through_environment(tmp_path, monkeypatch):
    path = tmp_path / "elsewhere.toml"
    path.write_text(GOOD)
    monkeypatch.setenv("AIFDATA_CONFIG", str(path))
    assert aifdata.load_config().source == str(path)


def test_config_found_in_aifdata_home(isolated_home):
    (isolated_home / "config.toml").write_text(GOOD)
    assert aifdata.load_config().source == str(isolated_home / "config.toml")


def test_no_config_gives_a_local_mount_that_works(isolated_home):
    config = aifdata.load_config()
    assert config.prefixes == ["local"]
    assert config.mount("local").tiers[0].url == str(isolated_home / "data")
    fs = aifdata.filesystem()
    fs.pipe("aif://local/hello.txt", b"hi")
    assert fs.cat("aif://local/hello.txt") == b"hi"
    assert (isolated_home / "data" / "hello.txt").read_bytes() == b"hi"


def test_config_pickles():
    config = aifdata.Config((aifdata.Mount("m", (aifdata.Tier.s3("s3://b/p", region="x"),)),))
    assert pickle.loads(pickle.dumps(config)) == config


def test_unknown_mount_lists_known_mounts(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(GOOD)
    fs = aifdata.filesystem(path)
    with pytest.raises(MountNotFound, match="known mounts: earth/climate, genomics") as info:
        fs.ls("aif://nosuch/thing")
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[mounts.g\nurl = 1", "not valid TOML"),
        ("[mounts.g.s3]\nurl = 's3://b'\nendpiont_url = 'http://x'", "mounts.g.s3.endpiont_url"),
        ("[mounts.g.s3]\nendpoint_url = 'http://x'", "mounts.g.s3.url"),
        ("[mounts.g.tape]\npath = '/x'", "mounts.g.tape.kind"),
        ("[mounts.g]\nread_order = 'pfs'\n[mounts.g.pfs]\npath='/x'", "mounts.g.read_order"),
        ("[mounts.g]\nwrite_tier = 's3'\n[mounts.g.pfs]\npath='/x'", "mounts.g"),
        ("[mounts.g]\nread_order = ['s3']\n[mounts.g.pfs]\npath='/x'", "mounts.g"),
        ("[mount.g.pfs]\npath = '/x'", "mount"),
        ("[mounts.g.s3]\nurl = 's3://'", "mounts.g.s3"),
        ("[mounts.g]\n", "mounts.g"),
    ],
)
def test_malformed_config_names_file_and_key(tmp_path, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        aifdata.load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert key in message


def test_missing_config_named_by_environment_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("AIFDATA_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        aifdata.load_config()
