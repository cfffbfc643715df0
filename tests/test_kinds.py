"""Storage kinds: the ``fsspec`` kind as a tier, grants on it, and kinds as data."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import pytest

import aifdata
from aifdata import AccessDenied, ConfigError
from aifdata.connectors import _registry, get_kind, kind_of_url, names
from aifdata.testing import ConnectorTests


@pytest.fixture
def memory_url():
    """A fresh ``memory://`` location (the memory filesystem is one per process)."""
    root = f"memory://aifdata-{uuid.uuid4().hex[:8]}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_the_builtin_kinds_describe_themselves():
    assert names()[:3] == ["s3", "pfs", "fsspec"]
    assert get_kind("pfs").local and not get_kind("s3").local
    assert get_kind("s3").location_key == "url" and get_kind("pfs").location_key == "path"
    assert kind_of_url("s3://b/k").name == "s3"
    assert kind_of_url("/data/x").name == "pfs"
    assert kind_of_url("memory://x").name == "fsspec"


def test_an_fsspec_tier_reads_and_writes_through_aif(memory_url, tmp_path):
    config = aifdata.parse_config(
        f'[mounts.mem.fsspec]\nurl = "{memory_url}/data/"\n[mounts.mem.pfs]\npath = "{tmp_path}"\n'
    )
    mount = config.mount("mem")
    assert mount.tier("fsspec").url == f"{memory_url}/data"
    assert mount.write_tier == "fsspec" and mount.read_order == ("pfs", "fsspec")
    fs = aifdata.filesystem(config, catalog=False)
    fs.pipe("mem/a/b.txt", b"hello")
    assert fsspec.filesystem("memory").cat(f"{memory_url}/data/a/b.txt") == b"hello"
    assert fs.cat("mem/a/b.txt") == b"hello"
    assert fs.where("mem/a/b.txt").tier == "fsspec"
    assert fs.ls("mem/a", detail=False) == ["mem/a/b.txt"]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.txt").write_bytes(b"hello")
    assert fs.where("mem/a/b.txt").tier == "pfs"  # same size as the write tier's copy


def test_fsspec_tier_locations_are_checked(tmp_path):
    for url, problem in [
        ("nosuchproto://x", "fsspec knows no protocol 'nosuchproto'"),
        ("s3://bucket/x", "tiers of kind 's3'"),
        ("file:///tmp/x", "tiers of kind 'pfs'"),
        ("memory://a//b", "a clean location"),
    ]:
        with pytest.raises(ConfigError, match=problem):
            aifdata.parse_config(f'[mounts.m.fsspec]\nurl = "{url}"\n')
    with pytest.raises(ConfigError, match="storage_options: expected a table"):
        aifdata.parse_config('[mounts.m.fsspec]\nurl = "memory://x"\nstorage_options = 3\n')


def test_a_grant_on_a_dataset_on_an_fsspec_tier_refuses_an_ungranted_read(memory_url, monkeypatch):
    config = aifdata.Config((aifdata.Mount("mem", (aifdata.Tier.fsspec(f"{memory_url}/d"),)),))
    monkeypatch.setenv("AIFDATA_USER", "alice")
    catalog = aifdata.Catalog(config=config)
    fs = aifdata.filesystem(config, catalog=catalog)
    fs.pipe("mem/prot/x.txt", b"secret")
    fs.pipe("mem/open/y.txt", b"public")
    catalog.ingest("aif://mem/prot", "lab/prot")
    # a second spelling of the same place: the tier's own URL
    catalog.ingest(f"{memory_url}/d/open", "lab/open")
    assert catalog.dataset("lab/open").urls(config) == ["aif://mem/open/y.txt"]
    assert catalog.dataset("lab/open").files[0].replicas == (
        ("fsspec", f"{memory_url}/d/open/y.txt"),
    )
    catalog.grant("*", "read", "lab/open")
    monkeypatch.setenv("AIFDATA_USER", "bob")
    with pytest.raises(AccessDenied, match="governed by a dataset user:bob may not see") as no:
        fs.cat("mem/prot/x.txt")
    assert "lab/prot" not in str(no.value)  # not named to whom may not read it
    assert fs.cat("mem/open/y.txt") == b"public"
    assert fs.find("mem") == ["mem/open/y.txt"]
    monkeypatch.setenv("AIFDATA_USER", "alice")
    assert fs.cat("mem/prot/x.txt") == b"secret"


PLUGINS = Path(__file__).parent / "plugins"


def install_toy_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: str) -> None:
    """Install the toy kind the way pip would: a dist-info with an entry point on sys.path."""
    dist = tmp_path / "site" / "toykind-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toykind\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[aifdata.connectors]\n{entry}\n")
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    _registry.rescan()
    monkeypatch.setattr(_registry.REGISTRY, "_loaded", dict(_registry.REGISTRY._loaded))


@pytest.fixture
def toy_kind(tmp_path, monkeypatch):
    install_toy_kind(tmp_path, monkeypatch, "toy = toykind:TOY_KIND")
    yield
    _registry.rescan()


def test_a_kind_installed_by_entry_point_serves_a_mount(toy_kind):
    assert "toy" in names()
    config = aifdata.parse_config('[mounts.play.toy]\nurl = "toy://one/data"\nlatency = 0.5\n')
    fs = aifdata.filesystem(config, catalog=False)
    fs.pipe("play/a/b.txt", b"toy bytes")
    assert fs.cat("play/a/b.txt") == b"toy bytes"
    assert fs.find("play") == ["play/a/b.txt"]
    assert fs.where("play/a/b.txt").url == "toy://one/data/a/b.txt"
    with pytest.raises(ConfigError, match=r"mounts\.play\.toy\.latency: expected a number"):
        aifdata.parse_config('[mounts.play.toy]\nurl = "toy://one"\nlatency = "slow"\n')
    with pytest.raises(ConfigError, match=r"mounts\.play\.toy\.url: expected toy://NAME"):
        aifdata.parse_config('[mounts.play.toy]\nurl = "memory://one"\n')


def test_an_unknown_kind_names_the_installed_ones(toy_kind):
    expected = 'expected "s3", "pfs", "fsspec", "cache", "service" or "toy"'
    with pytest.raises(ConfigError, match=expected):
        aifdata.parse_config('[mounts.m.x]\nkind = "tape"\nurl = "t://x"\n')


def test_an_entry_point_that_takes_a_builtin_name_is_ignored_with_a_warning(tmp_path, monkeypatch):
    install_toy_kind(tmp_path, monkeypatch, "s3 = toykind:TOY_KIND")
    with pytest.warns(UserWarning, match="storage kind 's3' from toykind:TOY_KIND is ignored"):
        assert names()[:3] == ["s3", "pfs", "fsspec"]
    assert get_kind("s3").location_shape == "s3://bucket[/prefix]"
    _registry.rescan()


class TestFsspecMemoryConnector(ConnectorTests):
    """The conformance suite on an ``fsspec`` tier over ``memory://``."""

    @pytest.fixture
    def tier(self, memory_url: str) -> aifdata.Tier:
        return aifdata.Tier.fsspec(f"{memory_url}/root")


class TestToyConnector(ConnectorTests):
    """The conformance suite on the toy kind, installed by entry point."""

    @pytest.fixture
    def tier(self, toy_kind: None) -> aifdata.Tier:
        return aifdata.Tier("toy", f"toy://{uuid.uuid4().hex[:8]}/root")


@pytest.mark.parametrize("rel", ["../other/key", "a/../../b", "/abs/key"])
def test_an_s3_key_that_would_leave_the_tier_is_refused_before_any_request(rel):
    from aifdata import PathEscape
    from aifdata.connectors import connector_for

    conn = connector_for(aifdata.Tier.s3("s3://bucket/prefix", endpoint_url="http://127.0.0.1:9"))
    with pytest.raises(PathEscape, match="would leave the tier"):
        conn.key(rel)
    assert conn.key("a/..b/c") == "prefix/a/..b/c"  # '..' inside a name is a name


@pytest.mark.parametrize(
    "url", ["simplecache::s3://b/k", "simplecache://b/k", "dir://x", "reference://x", "aif://m"]
)
def test_an_fsspec_tier_over_other_storage_is_refused(url):
    """A cache or a directory of another filesystem would be a second name for data whose
    grants match its own location."""
    with pytest.raises(ConfigError, match=r"wraps? other storage"):
        aifdata.Tier.fsspec(url)


def test_other_names_of_a_protocol_match_the_same_grants(monkeypatch):
    kind = get_kind("fsspec")
    assert kind.normalise("gcs://bucket/data/") == "gs://bucket/data"
    assert kind.normalise("hdfs:///user/me/") == "hdfs:///user/me"  # a path from the root
    assert kind.aliases("gcs://bucket/data") == {"gcs://bucket/data", "gs://bucket/data"}
    config = aifdata.parse_config('[mounts.m.fsspec]\nurl = "memory://spell/root"\n')
    from aifdata.catalog._policy import physical_prefixes

    assert "memory://spell/root/ds" in physical_prefixes("memory://spell/root/ds", config)
    assert "memory://spell/root/ds" in physical_prefixes("aif://m/ds", config)


@pytest.mark.parametrize(
    ("root", "rel", "joined"),
    [
        ("memory://", "x", "memory://x"),
        ("/", "", "/"),
        ("/", "a", "/a"),
        ("s3://b/p/", "k", "s3://b/p/k"),
    ],
)
def test_a_bare_root_keeps_its_slashes_when_joined(root, rel, joined):
    from aifdata.connectors import join

    assert join(root, rel) == joined


def test_a_url_inside_a_tier_may_not_walk_out_of_it(memory_url):
    from aifdata import PathEscape, url_to_fs

    config = aifdata.parse_config(f'[mounts.m.fsspec]\nurl = "{memory_url}/data"\n')
    for url in (f"{memory_url}/data/../secret", f"{memory_url}/data/a/./b"):
        with pytest.raises(PathEscape, match=r"refusing '\.' or '\.\.'"):
            url_to_fs(url, config)
    conn = aifdata.connectors.connector_for(config.mount("m").tier("fsspec"))
    with pytest.raises(PathEscape, match=r"refusing '\.\.'"):
        conn.path("a/../../b")


def test_a_kind_whose_module_does_not_load_is_named_with_the_file_and_key(tmp_path, monkeypatch):
    install_toy_kind(tmp_path, monkeypatch, "brk = aifdata_no_such_kind_module:KIND")
    with pytest.raises(ConfigError) as caught:
        aifdata.parse_config('[mounts.m.t]\nkind = "brk"\nurl = "brk://x"\n', source="c.toml")
    assert str(caught.value).startswith(
        "c.toml: mounts.m.t.kind: storage kind 'brk' needs aifdata_no_such_kind_module:"
    )
    _registry.rescan()


def test_a_url_of_a_mounted_kind_without_a_filesystem_points_to_its_aif_path(toy_kind):
    from aifdata import BadURL, url_to_fs

    config = aifdata.parse_config('[mounts.play.toy]\nurl = "toy://urls/data"\n')
    with pytest.raises(BadURL, match=r"tier 'toy' of mount 'play' holds it: use aif://play/a/b"):
        url_to_fs("toy://urls/data/a/b", config)
