"""``aifdata token create|list|revoke`` and ``aifdata serve``'s settings, in process."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from aifdata import Catalog, ConfigError, parse_config
from aifdata.catalog import authenticate
from aifdata.cli import main
from aifdata.service import ServiceSettings


@pytest.fixture
def catalog(tmp_path, who):
    who("boss")
    catalog = Catalog(tmp_path / "catalog.db")
    catalog.admins()  # made by boss
    return catalog


def run(catalog, capsys, *args):
    code = main([*args, "--catalog", str(catalog.path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_create_prints_the_secret_once_and_list_never(catalog, capsys):
    code, out, err = run(catalog, capsys, "token", "create", "user:alice", "--expires", "30d",
                         "--group", "lab", "--label", "notebook")  # fmt: skip
    assert code == 0
    (text,) = out.split()
    assert authenticate(catalog, text).groups == ("lab",)
    assert "shown only now" in err and "user:alice" in err
    code, out, err = run(catalog, capsys, "token", "list")
    assert code == 0 and text.split("_")[1] in out and "notebook" in out and "live" in out
    secret = text.split("_", 2)[2]
    assert secret not in out + err
    code, out, _ = run(catalog, capsys, "token", "list", "--json")
    (listed,) = json.loads(out)
    assert listed["principal"] == "user:alice" and secret not in out
    assert listed["expires"] - listed["created"] == pytest.approx(30 * 86400)


def test_revoke_says_so_and_the_token_stops(catalog, capsys):
    run(catalog, capsys, "token", "create", "alice")
    code, out, _ = run(catalog, capsys, "token", "create", "alice", "--json")
    made = json.loads(out)
    code, out, _ = run(catalog, capsys, "token", "revoke", made["id"])
    assert code == 0 and out.strip() == f"revoked token {made['id']} of user:alice"
    with pytest.raises(Exception, match="invalid or expired token"):
        authenticate(catalog, made["token"])
    _, out, _ = run(catalog, capsys, "token", "list")
    assert "revoked" in out


@pytest.mark.parametrize(
    ("user", "args", "code", "words"),
    [
        ("boss", ["create", "*"], 2, "a token acts as one user"),
        ("boss", ["create", "group:lab"], 2, "a token acts as one user"),
        ("boss", ["create", "alice", "--expires", "3x"], 2, "a token's lifetime: expected"),
        ("boss", ["create", "alice", "--group", "a b"], 2, "is not user:NAME, group:NAME"),
        ("boss", ["revoke", "0123456789abcdef"], 3, "no token '0123456789abcdef'"),
        ("boss", ["create", "alice", "--label", "x" * 201], 2, "up to 200 printable characters"),
        ("boss", ["create", "alice", "--label", "a\nb"], 2, "up to 200 printable characters"),
        ("carol", ["create", "alice"], 4, "only a catalog admin"),
        ("carol", ["create", "carol", "--group", "wheel"], 4, "not in group(s) wheel"),
    ],
)
def test_bad_input_is_one_line_with_its_exit_code(catalog, capsys, who, user, args, code, words):
    who(user)
    got, out, err = run(catalog, capsys, "token", *args)
    assert got == code and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("aifdata: error: ") and words in line


def test_settings_come_from_the_service_table_then_the_options():
    config = parse_config(
        '[service]\nhost = "0.0.0.0"\nport = 9000\nmax_request_bytes = "2MiB"\n'
        'rate_per_token = 5\nburst = 10\nrequest_timeout = "2m"\npresign_max_expiry = "15m"\n'
    )
    settings = ServiceSettings.from_config(config, port=9001)
    assert settings == ServiceSettings(
        host="0.0.0.0", port=9001, max_request_bytes=2 * 2**20, rate_per_token=5.0, burst=10,
        request_timeout=120.0, presign_max_expiry=900.0,
    )  # fmt: skip
    assert ServiceSettings.from_config(parse_config("")) == ServiceSettings()


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ("port = 70000", "service.port: expected a port number"),
        ("rate_per_token = 0", "service.rate_per_token: expected a number"),
        ("request_timeout = \"soon\"", "service.request_timeout: expected seconds"),
        ("max_request_bytes = -1", "service.max_request_bytes: expected a number of bytes"),
        ("hosts = \"x\"", "service.hosts: unknown service setting; settings: host, port"),
        ("tls_certfile = \"/nonexistent.pem\"", "service.tls_certfile: expected the path of a PEM"),
    ],
)  # fmt: skip
def test_a_bad_service_setting_names_the_key(table, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        ServiceSettings.from_config(parse_config(f"[service]\n{table}\n", "site.toml"))


def test_a_service_table_that_is_not_a_table_is_refused():
    with pytest.raises(ConfigError, match=r"site\.toml: service: expected a table"):
        parse_config('service = "on"\n', "site.toml")


def test_a_certificate_needs_its_key(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    config = parse_config(f'[service]\ntls_certfile = "{cert}"\n', "site.toml")
    with pytest.raises(ConfigError, match="give tls_certfile and tls_keyfile together"):
        ServiceSettings.from_config(config)
    both = ServiceSettings.from_config(config, tls_keyfile=str(cert))
    assert both.scheme == "https" and ServiceSettings().scheme == "http"


def test_the_readmes_service_table_holds_the_defaults():
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    block = next(b for b in readme.split("```toml\n")[1:] if "[service]" in b.split("```")[0])
    config = parse_config(block.split("```")[0], "README.md")
    settings = ServiceSettings.from_config(config)
    assert settings == ServiceSettings()
    table = config.sections["service"]
    every = {f.name for f in dataclasses.fields(ServiceSettings)}
    assert set(table) | {"tls_certfile", "tls_keyfile"} == every
