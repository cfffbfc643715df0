"""Nothing a principal may not read leaks through metadata: lineage, grants, refusals.

alice owns ``prot/ds`` (read by no one else) and made ``pub/ds`` from it, which everyone may
read; bob administers nothing.
"""

from __future__ import annotations

import json

import pytest

from aifdata import AccessDenied, Catalog, NotFound, UnknownDataset, lineage
from aifdata.cli import main

from .test_catalog import make_tree


@pytest.fixture
def cat(tmp_path, monkeypatch):
    monkeypatch.setenv("AIFDATA_GROUPS", "")
    monkeypatch.setenv("AIFDATA_USER", "boss")
    catalog = Catalog(tmp_path / "catalog.db")
    assert catalog.admins() == ["user:boss"]
    monkeypatch.setenv("AIFDATA_USER", "alice")
    catalog.ingest(str(make_tree(tmp_path / "prot", {"r.fq": b"@r\nA\n+\nI\n"})), "prot/ds")
    with lineage.run("derive", inputs=["prot/ds"], catalog=catalog) as run:
        run.output("pub/ds", source=str(make_tree(tmp_path / "pub", {"p.bin": b"p"})))
    with lineage.run("use", inputs=["pub/ds"], catalog=catalog) as run:
        run.output("prot/child", source=str(make_tree(tmp_path / "child", {"c.bin": b"c"})))
    catalog.grant("*", "read", "pub/ds")
    monkeypatch.setenv("AIFDATA_USER", "boss")
    catalog.grant("carol", "read", "prot/*")
    monkeypatch.setenv("AIFDATA_USER", "alice")
    return catalog


def cli(cat, capsys, *args):
    capsys.readouterr()
    code = main([*args, "--catalog", str(cat.path)])
    out, err = capsys.readouterr()
    return code, out, err.strip()


def test_lineage_counts_a_hidden_ancestor_and_never_names_it(cat, monkeypatch, capsys):
    monkeypatch.setenv("AIFDATA_USER", "bob")
    code, out, err = cli(cat, capsys, "lineage", "pub/ds")
    assert code == 0, err
    assert "1 ancestor hidden" in out and "1 descendant hidden" in out
    assert "prot/" not in out and "hidden)" in out
    code, out, _ = cli(cat, capsys, "lineage", "pub/ds", "--json")
    assert code == 0 and "prot/" not in out
    (made,) = json.loads(out)["upstream"]["runs"]
    assert made["datasets"] == [] and made["run"]["hidden_inputs"] == 1
    assert made["run"]["inputs"] == []


def test_the_owner_sees_the_names(cat, capsys):
    code, out, _ = cli(cat, capsys, "lineage", "pub/ds")
    assert code == 0 and "prot/ds@1" in out and "prot/child@1" in out and "hidden" not in out


def test_show_runs_and_openlineage_name_no_hidden_dataset(cat, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("AIFDATA_USER", "bob")
    (made,) = cat.dataset("pub/ds").lineage
    assert made.inputs == () and made.hidden_inputs == 1
    assert all("prot/" not in json.dumps(r.as_dict()) for r in cat.runs("pub/ds"))
    code, out, _ = cli(cat, capsys, "show", "pub/ds", "--json")
    assert code == 0 and "prot/" not in out
    code, out, _ = cli(cat, capsys, "show", "pub/ds")
    assert code == 0 and "prot/" not in out and "from 1 hidden" in out
    events = tmp_path / "events.jsonl"
    code, _, _ = cli(cat, capsys, "lineage", "pub/ds", "--openlineage", str(events))
    assert code == 0 and events.read_text() and "prot/" not in events.read_text()


def test_policy_list_shows_only_grants_the_caller_administers(cat, monkeypatch, capsys):
    monkeypatch.setenv("AIFDATA_USER", "bob")  # administers nothing
    assert cat.grants() == []
    code, out, _ = cli(cat, capsys, "policy", "list", "--json")
    assert code == 0 and json.loads(out)["grants"] == []
    code, out, _ = cli(cat, capsys, "policy", "list")
    assert code == 0 and "prot/" not in out and "pub/ds" not in out
    monkeypatch.setenv("AIFDATA_USER", "carol")  # reads prot/*, administers nothing
    assert cat.grants() == []
    monkeypatch.setenv("AIFDATA_USER", "alice")  # owns prot/ds and pub/ds: both grants
    assert sorted(g.pattern for g in cat.grants()) == ["prot/*", "pub/ds"]
    monkeypatch.setenv("AIFDATA_USER", "boss")
    cat.grant("erin", "admin", "other/*")
    monkeypatch.setenv("AIFDATA_USER", "erin")  # administers other/*: sees that grant only
    assert [(g.principal, g.pattern) for g in cat.grants()] == [("user:erin", "other/*")]
    monkeypatch.setenv("AIFDATA_USER", "boss")  # a catalog admin sees all
    assert len(cat.grants()) == 3


@pytest.mark.parametrize(
    "call",
    [
        lambda c, n: c.dataset(n),
        lambda c, n: c.versions(n),
        lambda c, n: c.lineage(n),
        lambda c, n: c.runs(n),
        lambda c, n: c.lineage(f"{n}@1"),
        lambda c, n: c.stage(n, to="pfs"),
    ],
    ids=["dataset", "versions", "lineage", "runs", "lineage@1", "stage"],
)
def test_a_hidden_dataset_is_refused_as_a_missing_one(cat, monkeypatch, call):
    monkeypatch.setenv("AIFDATA_USER", "bob")
    said = {}
    for name in ("prot/ds", "prot/none", "nowhere/none"):
        with pytest.raises(UnknownDataset) as raised:
            call(cat, name)
        said[name] = str(raised.value).replace(name, "NAME")
    assert said["prot/ds"] == said["prot/none"] == said["nowhere/none"]
    assert "alice" not in said["prot/ds"]
    assert isinstance(raised.value, NotFound) and isinstance(raised.value, AccessDenied)


@pytest.mark.parametrize("verb", ["show", "lineage"])
def test_the_cli_says_the_same_for_a_hidden_and_a_missing_dataset(cat, monkeypatch, capsys, verb):
    monkeypatch.setenv("AIFDATA_USER", "bob")
    said = {}
    for name in ("prot/ds", "prot/none"):
        code, out, err = cli(cat, capsys, verb, name)
        said[name] = (code, out, err.replace(name, "NAME"))
    assert said["prot/ds"] == said["prot/none"]
    assert said["prot/ds"][0] == 3 and said["prot/ds"][2].startswith("aifdata: error: no dataset")


def test_granting_on_a_hidden_dataset_says_what_it_says_on_a_free_name(cat, monkeypatch, capsys):
    monkeypatch.setenv("AIFDATA_USER", "bob")
    said = {}
    for name in ("prot/ds", "nobody/owns-this"):
        code, _, err = cli(cat, capsys, "policy", "grant", "bob", "read", name)
        said[name] = (code, err.replace(name, "NAME"))
    assert said["prot/ds"] == said["nobody/owns-this"]
    assert said["prot/ds"][0] == 4 and "alice" not in said["prot/ds"][1]


def test_a_reader_without_write_is_told_the_dataset_and_its_owner(cat, monkeypatch):
    monkeypatch.setenv("AIFDATA_USER", "carol")  # may read prot/*: may know prot/ds exists
    with pytest.raises(AccessDenied, match=r"may not write dataset prot/ds \(owner alice\)"):
        cat.stage("prot/ds", to="pfs")
