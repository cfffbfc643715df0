"""The mount table: TOML, Python, defaults, and clear errors for bad input."""

from __future__ import annotations

import pickle
import re

import pytest

import aifdata
from aifdata import ConfigError, MountNotFound
from aifdata.cli import main
from aifdata.connectors import get_kind

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
        ("[mounts.g.tape]\npath = '/x'", "mounts.g.tape: "),
        ("[mounts.g.tape]\nkind = 'tape'\npath = '/x'", "mounts.g.tape.kind"),
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


def config_error(tmp_path, text):
    """The message of the ConfigError that loading ``text`` from a file raises, and the file."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        aifdata.load_config(path)
    message = str(info.value)
    assert "\n" not in message
    return message, path


@pytest.mark.parametrize(
    "url", ["http://x", "s3://", "s3:///b", "bucket/prefix", "s3://http://x", "s3://b/../c"]
)
def test_an_s3_url_must_be_s3_bucket_and_prefix(tmp_path, url):
    message, path = config_error(tmp_path, f"[mounts.demo.s3]\nurl = '{url}'")
    assert message == f"{path}: mounts.demo.s3.url: expected s3://bucket[/prefix], got {url!r}"


@pytest.mark.parametrize(
    ("tier", "line", "expected"),
    [
        ("s3", "max_concurrency = 'lots'", "a positive integer, got 'lots'"),
        ("s3", "max_concurrency = 8.0", "a positive integer, got 8.0"),
        ("s3", "max_attempts = true", "a positive integer, got True"),
        ("s3", "part_size = -1", "a positive integer (bytes), got -1"),
        ("s3", "connect_timeout = 'x'", "a positive number (seconds), got 'x'"),
        ("s3", "read_timeout = 0", "a positive number (seconds), got 0"),
        ("s3", "read_timeout = nan", "a positive number (seconds), got nan"),
        ("s3", "anon = 'yes'", "true or false, got 'yes'"),
        ("s3", "region = 1", "a string, got 1"),
        (
            "s3",
            "endpoint_url = '127.0.0.1:9000'",
            "an http:// or https:// URL, got '127.0.0.1:9000'",
        ),
        ("pfs", "block_size = 0", "a positive integer (bytes), got 0"),
        ("pfs", "path = 3", "a directory path, got 3"),
    ],
)
def test_tier_values_are_checked_at_load_time(tmp_path, tier, line, expected):
    location = "url = 's3://b/p'" if tier == "s3" else "path = '/x'"
    if line.startswith("path"):
        location = ""
    text = f"[mounts.demo.{tier}]\n{location}\n{line}"
    message, path = config_error(tmp_path, text)
    key = line.partition(" =")[0]
    assert message == f"{path}: mounts.demo.{tier}.{key}: expected {expected}"


@pytest.mark.parametrize("option", sorted({*get_kind("s3").options, *get_kind("pfs").options}))
def test_every_tier_option_has_a_type(tmp_path, option):
    tier = "pfs" if option in get_kind("pfs").options else "s3"
    location = "path = '/x'" if tier == "pfs" else "url = 's3://b'"
    message, path = config_error(tmp_path, f"[mounts.d.{tier}]\n{location}\n{option} = [1]")
    assert message.startswith(f"{path}: mounts.d.{tier}.{option}: expected ")
    assert message.endswith("got [1]")


def test_good_tier_values_are_accepted():
    config = aifdata.parse_config(
        "[mounts.d.s3]\nurl = 's3://b/p/'\nanon = true\nmax_concurrency = 4\n"
        "connect_timeout = 2\nread_timeout = 0.5\nendpoint_url = 'https://s3.example.org:9000'"
    )
    tier = config.mount("d").tier("s3")
    assert tier.url == "s3://b/p"
    assert dict(tier.options)["read_timeout"] == 0.5


def test_read_order_must_be_a_list(tmp_path):
    text = "[mounts.demo]\nread_order = 'pfs'\n[mounts.demo.pfs]\npath = '/x'"
    message, path = config_error(tmp_path, text)
    assert message == (
        f"{path}: mounts.demo.read_order: expected a list of tier names like [\"pfs\"], got 'pfs'"
    )


def test_an_unknown_mount_key_is_named_with_a_suggestion(tmp_path):
    text = "[mounts.demo]\nread_ordr = ['pfs']\n[mounts.demo.pfs]\npath = '/x'"
    message, path = config_error(tmp_path, text)
    assert message.startswith(f"{path}: mounts.demo.read_ordr: unknown mount key; ")
    assert "prefix, read_order, write_tier" in message
    assert message.endswith("did you mean 'read_order'?")


def test_a_tier_option_in_the_mount_table_points_to_a_tier(tmp_path):
    message, path = config_error(tmp_path, "[mounts.demo]\nurl = 's3://b'")
    assert message.startswith(f"{path}: mounts.demo.url: unknown mount key; ")
    assert "[mounts.demo.s3]" in message


def test_a_tier_with_another_name_needs_a_kind(tmp_path):
    message, path = config_error(tmp_path, "[mounts.demo.scratch]\npath = '/x'")
    assert message == (
        f"{path}: mounts.demo.scratch: a tier named other than 's3', 'pfs', 'fsspec', 'cache'"
        ' or \'service\' needs kind = "s3", "pfs", "fsspec", "cache" or "service"'
    )


def test_an_unknown_tier_option_suggests_the_nearest(tmp_path):
    message, _ = config_error(tmp_path, "[mounts.d.s3]\nurl = 's3://b'\nendpiont_url = 'http://x'")
    assert message.endswith("did you mean 'endpoint_url'?")


@pytest.mark.parametrize(
    ("build", "text"),
    [
        (lambda: aifdata.Tier.s3("http://x"), "url: expected s3://bucket[/prefix], got 'http://x'"),
        (lambda: aifdata.Tier.s3("s3://b", anon="yes"), "anon: expected true or false"),
        (lambda: aifdata.Tier.pfs("/x", block_size=0), "block_size: expected a positive integer"),
        (lambda: aifdata.Tier.pfs(3), "path: expected a directory path, got 3"),
    ],
)
def test_python_built_tiers_are_checked_the_same_way(build, text):
    with pytest.raises(ConfigError, match=re.escape(text)):
        build()


def test_the_cli_reports_a_bad_url_in_one_line(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("[mounts.demo.s3]\nurl = 'http://x'\n")
    assert main(["--config", str(path), "mounts"]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mounts.demo.s3.url" in err and str(path) in err
