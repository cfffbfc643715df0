"""The docker-compose demo (MinIO, a bucket setup, ``aifdata demo``): checked without Docker."""

from __future__ import annotations

import ast
import importlib.util
import re
import tomllib
import uuid
from pathlib import Path

import pytest
import yaml

from aifdata import _demo

ROOT = Path(__file__).parent.parent
SETUP = ROOT / "docker" / "setup_bucket.py"


def _services() -> dict:
    """The services of docker-compose.yml, as compose reads them (before variable substitution)."""
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_minio_is_pinned_published_and_health_checked():
    """MinIO: a pinned release, the S3 port published, a health check compose can wait for."""
    services = _services()
    assert {"minio", "setup", "demo"} <= services.keys()
    minio = services["minio"]
    _, _, tag = minio["image"].rpartition(":")
    assert "/" not in tag and tag not in ("", "latest")  # a tag, and a pinned one
    assert any(str(port).split(":")[-2:] == ["9000", "9000"] for port in minio["ports"])
    assert {"test", "interval", "retries"} <= minio["healthcheck"].keys()
    assert minio["volumes"]


def test_setup_waits_for_minio_and_the_demo_for_setup():
    """MinIO healthy, then the bucket, then the demo; both built from the Dockerfile."""
    services = _services()
    assert services["setup"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert services["demo"]["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert services["setup"]["build"] == services["demo"]["build"] == "."


def test_the_demo_runs_on_minio_with_its_root_credentials():
    """The demo is given MinIO's endpoint and signs with MinIO's root user."""
    services = _services()
    demo, root = services["demo"], services["minio"]["environment"]
    assert demo["command"] == "aifdata demo --s3-endpoint http://minio:9000"
    assert demo["environment"]["AWS_ACCESS_KEY_ID"] == root["MINIO_ROOT_USER"]
    assert demo["environment"]["AWS_SECRET_ACCESS_KEY"] == root["MINIO_ROOT_PASSWORD"]


def test_the_dockerfile_installs_as_the_readme_does():
    """The README's pinned torch first, then the demo extra (and the setup script's client)."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"^## Install\n.*?```bash\n(.*?)```", readme, re.S | re.M)
    assert block, "no install block in the README"
    torch = re.search(r"pip install (torch==\S+)", block.group(1))
    assert torch and torch.group(1) == "torch==2.13.0"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "\nFROM python:3.11-slim\n" in dockerfile
    assert f"RUN pip install {torch.group(1)}\n" in dockerfile
    assert 'pip install ".[demo,service,postgresql]"' in dockerfile and "minio" in dockerfile


def test_the_setup_script_makes_the_demos_bucket_with_the_minio_client():
    """The setup service creates the bucket the demo writes to."""
    text = SETUP.read_text()
    assert "from minio import Minio" in text
    bucket = next(
        node.value.value
        for node in ast.parse(text).body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "BUCKET"
    )
    assert bucket == _demo.BUCKET == "aifdata-demo"


def test_the_setup_script_creates_a_bucket_once(request):
    """On a real S3 server: the first call creates the bucket, the second does nothing."""
    pytest.importorskip("minio")
    server = request.getfixturevalue("seaweedfs")  # started only when minio is there to use it
    spec = importlib.util.spec_from_file_location("setup_bucket", SETUP)
    assert spec and spec.loader
    setup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup)
    endpoint = server.endpoint_url.split("://", 1)[1]  # host:port, as the minio client takes it
    name = f"compose-setup-{uuid.uuid4().hex[:8]}"  # not the demo's: other tests use that one
    args = (endpoint, server.access_key, server.secret_key, name)
    assert setup.ensure_bucket(*args, secure=False) is True
    assert setup.ensure_bucket(*args, secure=False) is False  # there already: nothing done
    client = setup.Minio(endpoint, server.access_key, server.secret_key, secure=False)
    assert client.bucket_exists(bucket_name=name)


def test_the_catalog_service_serves_a_postgresql_catalog_of_minios_bucket():
    """``catalog``: ``aifdata serve`` after PostgreSQL is healthy and the bucket exists, its
    config a PostgreSQL catalog with no password in it, MinIO's bucket mounted, published on
    loopback only."""
    from aifdata import parse_config

    services = _services()
    postgres, catalog = services["postgres"], services["catalog"]
    _, _, tag = postgres["image"].rpartition(":")
    assert (
        tag not in ("", "latest")
        and {"test", "interval", "retries"} <= postgres["healthcheck"].keys()
    )
    assert catalog["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert catalog["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert catalog["command"] == "aifdata serve" and catalog["build"] == "."
    assert catalog["ports"] == ["127.0.0.1:8750:8750"]
    env = catalog["environment"]
    assert env["PGPASSWORD"] == postgres["environment"]["POSTGRES_PASSWORD"]
    assert env["AWS_ACCESS_KEY_ID"] == services["minio"]["environment"]["MINIO_ROOT_USER"]
    path = ROOT / env["AIFDATA_CONFIG"].removeprefix("/src/")
    parse_config(path.read_text())  # a config aifdata accepts
    document = tomllib.loads(path.read_text())
    db = postgres["environment"]
    assert (
        document["catalog"]
        == f"postgresql://{db['POSTGRES_USER']}@postgres:5432/{db['POSTGRES_DB']}"
    )
    s3 = document["mounts"]["demo"]["s3"]
    assert (
        s3["url"].startswith(f"s3://{_demo.BUCKET}/") and s3["endpoint_url"] == "http://minio:9000"
    )
    assert not {"key", "secret"} & s3.keys()  # the credentials come from the environment
