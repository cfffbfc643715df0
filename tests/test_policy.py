"""Access policies: grants enforced by ``aif://`` on every operation, audited, exportable."""

from __future__ import annotations

import json

import pytest

import aifdata
from aifdata import AccessDenied, Catalog

from .conftest import S3_ONLY

DATA = b"@r1\nACGT\n+\nIIII\n"


@pytest.fixture
def world(home_catalog, tiers, who):
    """boss created the catalog (admin); alice owns genomics/run42 at aif://both/run42
    (on PFS + PFS in the unit lane, PFS + S3 in the s3 lane)."""
    who("boss")
    catalog = Catalog(home_catalog, config=tiers.fs.config)
    assert catalog.admins() == ["user:boss"]
    fs = aifdata.filesystem(tiers.fs.config, catalog=catalog)
    who("alice")
    fs.pipe("both/run42/reads.fq", DATA)
    fs.pipe("both/scratch/notes.txt", b"open space")
    catalog.ingest("aif://both/run42", "genomics/run42", description="reads of run 42")
    return catalog, fs


def denials(catalog: Catalog, user: str) -> list[dict]:
    rows = catalog.conn.execute(
        "SELECT * FROM audit WHERE principal = ? AND allowed = 0", (f"user:{user}",)
    ).fetchall()
    return [dict(r) for r in rows]


OPERATIONS = {
    "ls": lambda fs, tmp: fs.ls("both/run42"),
    "info": lambda fs, tmp: fs.info("both/run42/reads.fq"),
    "open": lambda fs, tmp: fs.open("both/run42/reads.fq", "rb").read(),
    "open-write": lambda fs, tmp: fs.open("both/run42/new.fq", "wb").close(),
    "cat": lambda fs, tmp: fs.cat("both/run42/reads.fq"),
    "cat-many": lambda fs, tmp: fs.cat(["both/run42/reads.fq", "both/scratch/notes.txt"]),
    "cat_ranges": lambda fs, _: fs.cat_ranges(["both/run42/reads.fq"], 0, 4, on_error="raise"),
    "find": lambda fs, tmp: fs.find("both/run42"),
    "where": lambda fs, tmp: fs.where("both/run42/reads.fq"),
    "get": lambda fs, tmp: fs.get("both/run42/reads.fq", str(tmp / "got.fq")),
    "put": lambda fs, tmp: fs.put(str(tmp / "local.fq"), "both/run42/put.fq"),
    "pipe": lambda fs, tmp: fs.pipe("both/run42/reads.fq", b"overwritten"),
    "rm": lambda fs, tmp: fs.rm("both/run42/reads.fq"),
    "rm-recursive": lambda fs, tmp: fs.rm("both/run42", recursive=True),
    "mv-out": lambda fs, tmp: fs.mv("both/run42/reads.fq", "both/scratch/stolen.fq"),
    "mv-in": lambda fs, tmp: fs.mv("both/scratch/notes.txt", "both/run42/notes.txt"),
    "cp-out": lambda fs, tmp: fs.cp("both/run42/reads.fq", "both/scratch/copy.fq"),
    "cp-in": lambda fs, tmp: fs.cp("both/scratch/notes.txt", "both/run42/notes.txt"),
    "mkdir": lambda fs, tmp: fs.mkdir("both/run42/sub"),
}


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_a_principal_without_a_grant_is_refused_and_audited(world, who, tmp_path, op):
    catalog, fs = world
    (tmp_path / "local.fq").write_bytes(DATA)
    who("bob")
    with pytest.raises(AccessDenied, match="user:bob may not") as raised:
        OPERATIONS[op](fs, tmp_path)
    assert isinstance(raised.value, PermissionError)
    # bob may not read genomics/run42: the refusal must not name it, nor its owner
    assert "genomics/run42" not in str(raised.value) and "alice" not in str(raised.value)
    assert denials(catalog, "bob"), "the refusal was not audited"
    who("alice")  # nothing changed
    assert fs.cat("both/run42/reads.fq") == DATA
    assert fs.find("both/run42") == ["both/run42/reads.fq"]
    assert fs.cat("both/scratch/notes.txt") == b"open space"


def test_owner_and_grants_allow_by_privilege(world, who, tmp_path):
    catalog, fs = world
    who("bob")
    with pytest.raises(AccessDenied):
        fs.cat("both/run42/reads.fq")
    who("boss")
    catalog.grant("bob", "read", "genomics/*")
    who("bob")
    assert fs.cat("both/run42/reads.fq") == DATA
    assert fs.ls("both/run42", detail=False) == ["both/run42/reads.fq"]
    assert catalog.dataset("genomics/run42").files[0].size == len(DATA)
    with pytest.raises(AccessDenied, match="may not write"):
        fs.pipe("both/run42/more.fq", DATA)
    who("alice")  # the owner holds admin: she may grant on her own dataset
    catalog.grant("group:lab", "write", "genomics/run42")
    who("bob", "lab")
    fs.pipe("both/run42/more.fq", DATA)
    fs.rm("both/run42/more.fq")
    who("alice")
    catalog.revoke("group:lab", "write", "genomics/run42")
    who("bob", "lab")
    with pytest.raises(AccessDenied):
        fs.pipe("both/run42/more.fq", DATA)


def test_everyone_grant_and_admin_grant(world, who):
    catalog, fs = world
    who("boss")
    catalog.grant("*", "read", "genomics/run42")
    catalog.grant("carol", "admin", "genomics/*")
    who("dave")
    assert fs.cat("both/run42/reads.fq") == DATA
    who("carol")  # admin on genomics/* may grant on anything it covers
    catalog.grant("erin", "write", "genomics/run42")
    with pytest.raises(AccessDenied):
        catalog.grant("erin", "read", "physics/*")


def test_granting_needs_admin_even_on_an_ungoverned_name(world, who):
    catalog, _ = world
    who("bob")
    with pytest.raises(AccessDenied, match="may not admin"):
        catalog.grant("bob", "admin", "genomics/*")
    with pytest.raises(AccessDenied):
        catalog.grant("bob", "admin", "nobody/owns/this")
    with pytest.raises(AccessDenied):
        catalog.add_admin("bob")
    assert catalog.grants() == []


def test_listings_and_search_show_only_readable_datasets(world, who):
    catalog, fs = world
    who("bob")
    assert "both/run42" not in fs.ls("both", detail=False)
    assert "both/scratch" in fs.ls("both", detail=False)
    assert fs.find("both") == ["both/scratch/notes.txt"]
    assert catalog.datasets() == []
    assert catalog.search("reads") == []
    with pytest.raises(AccessDenied):
        catalog.dataset("genomics/run42")
    who("alice")
    assert [h.name for h in catalog.search("reads")] == ["genomics/run42"]
    assert catalog.datasets() == ["genomics/run42"]


def test_paths_no_grant_covers_stay_open_and_a_grant_makes_them_governed(world, who):
    catalog, fs = world
    who("bob")
    fs.pipe("both/scratch/bob.txt", b"mine")
    who("boss")
    catalog.grant("alice", "write", "both/alice-area/*")
    who("bob")
    with pytest.raises(AccessDenied, match="path both/alice-area/x"):
        fs.pipe("both/alice-area/x", b"no")
    who("alice")
    fs.pipe("both/alice-area/x", b"yes")


def test_ingest_and_stage_need_write(world, who, tmp_path):
    catalog, _ = world
    who("bob")
    with pytest.raises(AccessDenied):
        catalog.ingest("aif://both/scratch", "genomics/run42")
    with pytest.raises(AccessDenied):
        catalog.stage("genomics/run42", to="pfs")
    with pytest.raises(AccessDenied, match="location is governed by a dataset user:bob may not"):
        catalog.ingest("aif://both/run42", "bob/copy-of-run42")  # alice's location: one owner
    assert catalog.ingest("aif://both/scratch", "bob/scratch").owner == "bob"


SPELLINGS = [
    "aif://both/run42/reads.fq",
    "both/run42/reads.fq",
    "/both/run42/reads.fq",
    "aif://both//run42/reads.fq",
    "aif://both/./run42/reads.fq",
    "aif://both/run42/./reads.fq",
    "aif://both/run42//reads.fq",
    "aif://both/run42/reads.fq/",
    "aif://both/scratch/../run42/reads.fq",
    "aif://both/%72un42/reads.fq",
    "aif://both/run42%2freads.fq",
    "aif://both/run42/%2e%2e/run42/reads.fq",
    "aif://both/RUN42/reads.fq",
    "aif://alias/run42/reads.fq",
    "aif://alias//run42/./reads.fq",
]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_no_spelling_of_a_path_widens_access(world, who, tiers, spelling):
    catalog, fs = world
    both = fs.config.mount("both")
    alias = aifdata.Mount("alias", both.tiers, read_order=both.read_order, write_tier=tiers.write)
    fs2 = aifdata.filesystem(aifdata.Config((both, alias)), catalog=catalog)
    who("bob")
    for read in (fs2.cat, fs2.info, fs2.ls):
        with pytest.raises((PermissionError, FileNotFoundError)) as raised:
            read(spelling)
        if "RUN42" not in spelling:  # another key on a case-sensitive store, not a bypass
            assert isinstance(raised.value, PermissionError), (read, raised.value)
    if "RUN42" in spelling:
        fs2.pipe(spelling, b"another key")  # open space: writing it touches nothing of alice's
    else:
        with pytest.raises(PermissionError):
            fs2.pipe(spelling, b"overwritten")
    who("alice")
    assert fs.cat("both/run42/reads.fq") == DATA


def test_a_symlink_in_open_space_is_checked_as_its_target(world, who, pfs_dir):
    catalog, fs = world
    catalog.stage("genomics/run42", to="pfs")  # alice's file now also on the PFS tier
    (pfs_dir / "scratch").mkdir(exist_ok=True)
    (pfs_dir / "scratch" / "alias.fq").symlink_to(pfs_dir / "run42" / "reads.fq")
    (pfs_dir / "scratch-dir").symlink_to(pfs_dir / "run42")
    who("bob")
    for path in ("both/scratch/alias.fq", "both/scratch-dir/reads.fq"):
        with pytest.raises(AccessDenied, match="governed by a dataset user:bob may not see"):
            fs.cat(path)  # checked as genomics/run42, which is not named to bob


def test_a_glob_does_not_reach_hidden_files(world, who):
    _, fs = world
    who("bob")
    with pytest.raises(FileNotFoundError):  # the glob matches nothing bob may see
        fs.cat("both/run4*/*.fq")
    assert fs.glob("both/*/*") == ["both/scratch/notes.txt"]


def test_parquet_snapshot_enforces_grants(world, who, tmp_path):
    pytest.importorskip("pyarrow")
    catalog, _ = world
    who("boss")
    catalog.grant("bob", "read", "genomics/run42")
    catalog.export(str(tmp_path / "snap"))
    snap = Catalog.from_parquet(str(tmp_path / "snap"), config=catalog.config)
    who("bob")
    assert snap.datasets() == ["genomics/run42"]
    who("mallory")
    assert snap.datasets() == []
    with pytest.raises(AccessDenied):
        snap.dataset("genomics/run42")


def test_export_and_audit_are_for_admins(world, who, tmp_path):
    catalog, _ = world
    who("alice")
    with pytest.raises(AccessDenied):
        catalog.export(str(tmp_path / "snap"))
    with pytest.raises(AccessDenied):
        catalog.audit_log()
    who("boss")
    rows = catalog.audit_log()
    assert [(r["action"], r["principal"]) for r in rows[:2]] == [
        ("audit", "user:alice"),
        ("export", "user:alice"),
    ]


def test_bad_principals_privileges_and_patterns_are_named(world, who):
    catalog, _ = world
    who("boss")
    with pytest.raises(aifdata.BadName, match="privilege 'own'"):
        catalog.grant("bob", "own", "genomics/*")
    with pytest.raises(aifdata.BadName, match="principal 'role:x'"):
        catalog.grant("role:x", "read", "genomics/*")
    with pytest.raises(aifdata.BadName, match=r"pattern 'genomics/\.\./x'"):
        catalog.grant("bob", "read", "genomics/../x")
    with pytest.raises(aifdata.NotFound, match="no grant"):
        catalog.revoke("bob", "read", "genomics/*")


@S3_ONLY
def test_s3_bucket_policy_export(world, who):
    catalog, fs = world
    who("boss")
    catalog.grant("bob", "read", "genomics/*")
    catalog.grant("group:lab", "write", "genomics/run42")
    documents = catalog.s3_bucket_policies(account="123456789012")
    s3_url = fs.config.mount("both").tier("s3").url  # s3://bucket/prefix
    bucket, _, prefix = s3_url.removeprefix("s3://").partition("/")
    assert list(documents) == [bucket]
    doc = documents[bucket]
    assert doc["Version"] == "2012-10-17"
    by_principal: dict[str, list[dict]] = {}
    for st in doc["Statement"]:
        key = json.dumps(st["Principal"]) + json.dumps(st.get("Condition", {}).get("StringEquals"))
        by_principal.setdefault(key, []).append(st)
    bob = by_principal[json.dumps({"AWS": ["arn:aws:iam::123456789012:user/bob"]}) + "null"]
    objects = next(s for s in bob if "s3:GetObject" in s["Action"])
    assert objects["Action"] == ["s3:GetObject"]
    assert f"arn:aws:s3:::{bucket}/{prefix}/run42/*" in objects["Resource"]
    lab = [s for s in doc["Statement"] if "aws:PrincipalTag/aifdata-group-lab" in json.dumps(s)]
    assert any("s3:PutObject" in s["Action"] for s in lab)
    assert len({s["Sid"] for s in doc["Statement"]}) == len(doc["Statement"])


@S3_ONLY
def test_s3_bucket_policy_is_accepted_by_an_s3_api(world, who):
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    catalog, _ = world
    who("boss")
    catalog.grant("bob", "read", "genomics/*")
    documents = catalog.s3_bucket_policies(account="123456789012")
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket, doc in documents.items():
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(doc))
            assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == doc


# -- the CLI -----------------------------------------------------------------


@pytest.fixture
def cli_world(world, tiers, tmp_path):
    catalog, _ = world
    config = tmp_path / "config.toml"
    config.write_text(tiers.toml("both"))
    return catalog, str(config)


CLI_REFUSED = [
    ["ls", "aif://both/run42"],
    ["cat", "aif://both/run42/reads.fq"],
    ["where", "aif://both/run42/reads.fq"],
    ["cp", "aif://both/run42/reads.fq", "{tmp}/out.fq"],
    ["cp", "{tmp}/local.fq", "aif://both/run42/in.fq"],
    ["ingest", "aif://both/scratch", "--dataset", "genomics/run42"],
]


@pytest.mark.parametrize("args", CLI_REFUSED, ids=lambda a: " ".join(a[:2]))
def test_cli_refuses_with_one_line_and_exit_4(cli_world, who, tmp_path, capfd, args):
    from aifdata.cli import main

    catalog, config = cli_world
    (tmp_path / "local.fq").write_bytes(DATA)
    who("bob")
    argv = ["--config", config, *(a.format(tmp=tmp_path) for a in args)]
    capfd.readouterr()
    assert main(argv) == 4
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("aifdata: error: user:bob may not"), err
    assert denials(catalog, "bob")


@pytest.mark.parametrize("verb", [["show"], ["stage", "--to", "pfs"]], ids=lambda v: v[0])
def test_cli_refuses_a_hidden_dataset_as_a_missing_one(cli_world, who, capfd, verb):
    from aifdata.cli import main

    catalog, config = cli_world
    who("bob")
    said = {}
    for name in ("genomics/run42", "genomics/nothing"):
        capfd.readouterr()
        assert main(["--config", config, verb[0], name, *verb[1:]]) == 3
        said[name] = capfd.readouterr().err.strip().replace(name, "NAME")
    assert said["genomics/run42"] == said["genomics/nothing"]
    assert said["genomics/run42"].startswith("aifdata: error: no dataset 'NAME'")
    assert denials(catalog, "bob")


def test_cli_policy_grant_list_revoke_audit_export(cli_world, tiers, who, tmp_path, capsys):
    from aifdata.cli import main

    _, config = cli_world
    who("bob")
    assert main(["--config", config, "cat", "aif://both/run42/reads.fq"]) == 4
    assert main(["--config", config, "policy", "grant", "bob", "read", "genomics/*"]) == 4
    who("boss")
    capsys.readouterr()
    assert main(["--config", config, "policy", "grant", "bob", "read", "genomics/*"]) == 0
    assert "granted read on genomics/* to user:bob" in capsys.readouterr().out
    assert main(["--config", config, "policy", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["admins"] == ["user:boss"]
    assert [(g["principal"], g["pattern"]) for g in listed["grants"]] == [
        ("user:bob", "genomics/*")
    ]
    who("bob")
    assert main(["--config", config, "cat", "aif://both/run42/reads.fq"]) == 0
    assert capsys.readouterr().out.encode() == DATA
    who("boss")
    assert main(["--config", config, "policy", "revoke", "bob", "read", "genomics/*"]) == 0
    assert main(["--config", config, "policy", "audit", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    actions = [(r["principal"], r["action"], r["allowed"]) for r in rows]
    assert ("user:bob", "open", 0) in actions and ("user:boss", "grant", 1) in actions
    out = tmp_path / "policy.json"
    assert main(["--config", config, "policy", "export", "--s3", "-o", str(out)]) == 0
    documents = json.loads(out.read_text())
    assert all(d["Version"] == "2012-10-17" for d in documents.values())
    assert len(documents) == (0 if tiers.server is None else 1)  # one per S3 bucket
    assert main(["--config", config, "policy", "export"]) == 2


def test_cli_policy_bad_input_is_one_line(cli_world, who, capfd):
    from aifdata.cli import main

    _, config = cli_world
    who("boss")
    capfd.readouterr()
    assert main(["--config", config, "policy", "grant", "bob", "own", "x/*"]) == 2  # a usage error
    err = capfd.readouterr().err.strip().splitlines()
    assert err == ["aifdata: error: privilege 'own' is not one of read, write, admin"]


def test_a_catalog_made_after_the_filesystem_is_still_enforced(
    isolated_home, tiers, who, monkeypatch
):
    from aifdata import _wiring

    monkeypatch.setattr(_wiring, "CATALOG_RECHECK_SECONDS", 0.0)
    who("boss")
    fs = aifdata.filesystem(tiers.fs.config)  # no catalog.db yet: nothing to enforce
    fs.pipe("both/run42/reads.fq", DATA)
    assert fs.catalog is None
    catalog = Catalog(config=tiers.fs.config)  # $AIFDATA_HOME/catalog.db, made later
    catalog.ingest("aif://both/run42", "genomics/run42")
    who("mallory")
    with pytest.raises(aifdata.AccessDenied):
        fs.cat_file("both/run42/reads.fq")


@pytest.mark.unit
def test_acting_as_names_the_principal_of_its_context_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from aifdata.catalog import Principal, acting_as, current_principal, current_user

    monkeypatch.setenv("AIFDATA_USER", "process-user")
    with acting_as(Principal("alice", ("lab",))) as who:
        assert current_principal() is who
        assert current_user() == "alice"
    assert current_user() == "process-user"
