"""README.md cannot drift from the code: every fenced block in it is run or checked here.

The fence convention (any other info string fails ``test_every_block_has_a_known_kind``):

* ```bash: shell commands, one per line (blank lines and ``#`` comments are fine; no pipes,
  redirections or continuation lines).

  - ``aifdata ...``, optionally after ``NAME=value`` assignments, is run as a subprocess by
    ``test_the_readme_runs_in_order``: in README order, against the session's SeaweedFS, in a
    working directory holding the ``reads.fastq`` and ``scene.tif`` the README names. It must exit
    0, or N when its comment says ``# exit N``; an ``aifdata where`` whose comment starts with
    ``# TIER:`` must route to that tier.
  - ``make demo``, ``make test``, the install lines (``python3 -m venv .venv``,
    ``.venv/bin/python -m pip ...``) and ``.venv/bin/python -m pytest`` are what CI runs
    (``.ci/run``: ``make install``, pytest, ``make demo``): checked against the Makefile and
    ``.ci/run``, not run here. ``.venv/bin/python -m pytest -m LANE`` lines follow it, one for
    each lane (marker) pyproject registers and no other.
  - ``.venv/bin/python benchmarks/NAME.py [--option ...]`` is too slow to run here: the script
    must exist, answer ``--help``, and know every option the line uses.
  - Any other line fails.

* ```python: run by ``test_the_readme_runs_in_order``, in README order, one namespace per ``## ``
  section, with the mount table below in place.
* ```python slurm: run by the walk like ``python`` blocks, on the session's one-node Slurm
  cluster (the ``slurm`` fixture), with ``$SLURM_CONF`` set; only compiled where that cluster
  cannot start (no root, no Slurm).
* ```python skip-test: needs a cluster (Kubernetes) or a remote endpoint; only compiled.
  Keep these few.
* ```toml: loaded by ``aifdata.parse_config``. The block whose first line is
  ``# $AIFDATA_HOME/config.toml`` is the walk-through's mount table: when the walk reaches it, it
  is written to ``$AIFDATA_HOME/config.toml`` with every S3 tier moved under a prefix of the
  session's bucket on the session's server (credentials from ``$AWS_ACCESS_KEY_ID`` and
  ``$AWS_SECRET_ACCESS_KEY``, the chain the README names) and every PFS path moved under a
  temporary directory.
* ```text: diagrams, and the CLI synopsis: its lines starting with ``aifdata `` must name every
  command (and ``policy`` subcommand) of ``aifdata --help`` and no other, and only options that
  the command's ``--help`` lists.

The sections that are tables, not blocks, are checked against the code too: the Python API names
all of ``aifdata.__all__``, the configuration table every mount and tier key with the code's
defaults, and the environment table every variable the code reads.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import aifdata
from aifdata import AifFileSystem, _synthetic
from aifdata._config import MOUNT_KEYS
from aifdata.cli import _app, main
from aifdata.connectors import get_kind
from aifdata.connectors import names as kind_names
from aifdata.connectors._s3_settings import S3Settings
from aifdata.connectors.pfs import PFSConnector

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
KINDS = ("bash", "python", "python slurm", "python skip-test", "toml", "text")
CONFIG_MARKER = "# $AIFDATA_HOME/config.toml"
#: Integrations whose library is an extra: ``aifdata.NAME`` imports the library NAME.
OPTIONAL_INTEGRATIONS = ("torch", "ray", "lithops")
AIFDATA = Path(sys.executable).with_name("aifdata")
_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")
_OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    kind: str
    text: str
    line: int  # of the opening fence, 1-based
    section: str  # the enclosing ``## `` heading

    @property
    def where(self) -> str:
        return f"README.md:{self.line}"

    def commands(self) -> list[tuple[int, str]]:
        """(line, command) of a bash block, without blank and comment lines."""
        out = []
        for i, raw in enumerate(self.text.splitlines(), start=self.line + 1):
            line = raw.strip()
            if line and not line.startswith("#"):
                out.append((i, line))
        return out


def parse_blocks(text: str) -> list[Block]:
    """Every fenced block, with its info string as written."""
    blocks, section = [], ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        fence = re.match(r"^(\s*)```(.*)$", line)
        if fence:
            assert not fence.group(1), f"README.md:{i + 1}: indented fence"
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
            assert end is not None, f"README.md:{i + 1}: unclosed fence"
            body = "\n".join(lines[i + 1 : end]) + "\n"
            blocks.append(Block(fence.group(2).strip() or "text", body, i + 1, section))
            i = end
        i += 1
    return blocks


BLOCKS = parse_blocks(README.read_text(encoding="utf-8"))


def blocks_of(kind: str) -> list[Block]:
    return [b for b in BLOCKS if b.kind == kind]


def section(title: str) -> str:
    """The text of the ``## `` or ``### `` section called ``title``, up to the next of its level."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^(#+) {re.escape(title)}\n(.*?)(?=^\1 |\Z)", text, re.S | re.M)
    assert match, f"README has no section {title!r}"
    return match.group(2)


def test_every_block_has_a_known_kind():
    unknown = [f"{b.where}: ```{b.kind}" for b in BLOCKS if b.kind not in KINDS]
    assert not unknown, f"fences with no known kind (one of {KINDS}): {unknown}"
    assert len(BLOCKS) > 20  # the parser found the README's blocks
    assert 1 <= len(blocks_of("python skip-test")) <= 3


# -- bash: what each line is -------------------------------------------------


def _is_make(cmd: str) -> bool:
    return cmd.split()[0] == "make"


def _is_install(cmd: str) -> bool:
    return cmd.startswith(("python3 -m venv", ".venv/bin/python -m pip "))


def _is_pytest(cmd: str) -> bool:
    return cmd.startswith(".venv/bin/python -m pytest")


def _is_benchmark(cmd: str) -> bool:
    return cmd.startswith(".venv/bin/python benchmarks/")


def _aifdata_argv(cmd: str) -> tuple[dict[str, str], list[str]] | None:
    """(assignments, argv after ``aifdata``) of an ``aifdata`` line, else None."""
    words = shlex.split(cmd, comments=True)
    env = {}
    while words and _ASSIGNMENT.match(words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    if not words or words[0] != "aifdata":
        return None
    return env, words[1:]


def _expected_exit(cmd: str) -> int:
    comment = cmd.partition("#")[2] if "#" in cmd else ""
    found = re.search(r"\bexit (\d+)", comment)
    return int(found.group(1)) if found else 0


def _bash_lines() -> list[tuple[Block, int, str]]:
    return [(b, n, cmd) for b in blocks_of("bash") for n, cmd in b.commands()]


def test_every_bash_line_is_run_or_checked():
    for _, n, cmd in _bash_lines():
        known = (
            _aifdata_argv(cmd) is not None
            or _is_make(cmd)
            or _is_install(cmd)
            or _is_pytest(cmd)
            or _is_benchmark(cmd)
        )
        assert known, f"README.md:{n}: {cmd!r} is none of the kinds tests/test_readme.py checks"
        assert not re.search(r"[|<>;&`]|\\$", cmd.partition("  #")[0]), (
            f"README.md:{n}: one plain command per line, please: {cmd!r}"
        )
    assert sum(1 for *_, cmd in _bash_lines() if _aifdata_argv(cmd)) >= 20


# -- make, install, CI -------------------------------------------------------


def _makefile() -> dict[str, list[str]]:
    """Each target's recipe, with the Makefile's variables expanded."""
    variables: dict[str, str] = {}
    recipes: dict[str, list[str]] = {}
    target = None
    for raw in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        assignment = re.match(r"^([A-Z_]+)\s*[?:]?=\s*(.*)$", raw)
        if assignment:
            variables[assignment.group(1)] = assignment.group(2).strip()
            continue
        rule = re.match(r"^([^\s#][^:=]*):(?!=)", raw)
        if rule:
            target = _expand(rule.group(1).strip(), variables)
            recipes[target] = []
        elif raw.startswith("\t") and target is not None:
            recipes[target].append(_expand(raw.strip(), variables))
    return recipes


def _expand(text: str, variables: dict[str, str]) -> str:
    for _ in range(5):
        text = re.sub(r"\$\(([A-Z_]+)\)", lambda m: variables.get(m.group(1), m.group(0)), text)
    return text


def _ci_lines() -> list[str]:
    text = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    return [line.split("#", 1)[0].strip() for line in text.splitlines()]


def _ci_commands() -> list[list[str]]:
    """The words of each line of ``.ci/run`` that shlex can split."""
    out = []
    for line in _ci_lines():
        with contextlib.suppress(ValueError):
            if words := shlex.split(line):
                out.append(words)
    return out


def test_make_demo_and_make_test_are_what_ci_runs():
    recipes = _makefile()
    commands = [cmd.split("#")[0].split() for *_, cmd in _bash_lines() if _is_make(cmd)]
    assert ["make", "demo"] in commands and ["make", "test"] in commands
    for words in commands:
        assert words[1] in recipes, f"the Makefile has no target {words[1]!r}"
    assert recipes["test"] == ["bash .ci/run"]
    assert any(r.endswith("/aifdata demo") for r in recipes["demo"])
    ci = [words[:2] for words in _ci_commands()]
    assert ["make", "install"] in ci, ".ci/run must install as the README does: make install"
    assert ["make", "demo"] in ci, ".ci/run must run the README's first command: make demo"


def test_the_install_lines_are_the_makefiles():
    readme = [
        " ".join(shlex.split(cmd, comments=True)) for *_, cmd in _bash_lines() if _is_install(cmd)
    ]
    recipes = _makefile()
    made = [
        " ".join(w for w in shlex.split(line) if w != "--quiet")
        for target in ("$(BIN)/python", ".venv/bin/python", ".venv/.installed")
        for line in recipes.get(target, [])
        if not line.startswith("touch ")
    ]
    assert made, "no install recipe found in the Makefile"
    assert readme == made
    assert "install" in recipes


def _lanes() -> set[str]:
    """The markers pyproject registers for pytest: the test lanes."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    markers = pyproject["tool"]["pytest"]["ini_options"]["markers"]
    return {line.split(":", 1)[0].strip() for line in markers}


def test_the_readmes_pytest_commands_are_cis_and_its_lanes():
    readme = [cmd.split("#")[0].strip() for *_, cmd in _bash_lines() if _is_pytest(cmd)]
    assert readme, "the README shows how to run the tests alone"
    ci = "\n".join(_ci_lines())
    every, *lanes = readme
    assert every == ".venv/bin/python -m pytest" and every in ci, "the first runs every lane"
    shown = []
    for cmd in lanes:
        words = shlex.split(cmd)
        if words[5:] == ["-n", "2"]:  # a lane on both cores (pytest-xdist)
            words = words[:5]
        assert words[:4] == [".venv/bin/python", "-m", "pytest", "-m"] and len(words) == 5, cmd
        shown.append(words[4])
    assert sorted(shown) == sorted(_lanes()), "the README runs each lane pyproject registers"
    assert {"unit", "s3", "e2e"} <= _lanes()


@pytest.mark.e2e
def test_the_benchmark_commands_exist_and_take_their_options():
    lines = [cmd for *_, cmd in _bash_lines() if _is_benchmark(cmd)]
    assert lines
    for cmd in lines:
        words = shlex.split(cmd, comments=True)
        script = ROOT / words[1]
        assert script.is_file(), cmd
        done = subprocess.run(
            [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        for option in (w.split("=")[0] for w in words[2:] if w.startswith("-")):
            assert option in done.stdout, f"{cmd}: {script.name} has no {option}"


# -- toml and python skip-test -------------------------------------------------


def test_every_toml_block_loads():
    assert blocks_of("toml")
    for block in blocks_of("toml"):
        config = aifdata.parse_config(block.text, source=block.where)
        assert config.mounts, block.where
    marked = [b for b in blocks_of("toml") if b.text.startswith(CONFIG_MARKER)]
    assert len(marked) == 1, f"one toml block starts with {CONFIG_MARKER!r}"


def test_the_cluster_sketches_compile():
    for block in blocks_of("python skip-test") + blocks_of("python slurm"):
        compile(block.text, block.where, "exec")


# -- text: the CLI synopsis --------------------------------------------------


def _help(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*args, "--help"])
    assert code == 0, args
    return out.getvalue()


def _help_section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == title)
    out = []
    for line in lines[start + 1 :]:
        if line and not line.startswith(" "):
            break
        out.append(line)
    return out


def _commands(help_text: str) -> set[str]:
    return {
        line.split()[0]
        for line in _help_section(help_text, "Commands:")
        if re.match(r"^ {2}\S", line)
    }


def _options(help_text: str) -> set[str]:
    found = set()
    for line in _help_section(help_text, "Options:"):
        if re.match(r"^ {2}-", line):
            found.update(_OPTION.findall(re.split(r"\s{2,}", line.strip())[0]))
    return found


#: Commands with subcommands (``aifdata policy grant``).
_GROUPS = ("policy", "catalog", "token")


def _synopsis() -> list[tuple[Block, list[str], str]]:
    """(block, [command] or [command, subcommand] or [], whole line) of each synopsis line."""
    out = []
    for block in blocks_of("text"):
        for line in block.text.splitlines():
            if not line.startswith("aifdata "):
                continue
            words = line.split()
            if words[1].startswith(("[", "-")):
                out.append((block, [], line))
            elif words[1] in _GROUPS:
                out.append((block, words[1:3], line))
            else:
                out.append((block, words[1:2], line))
    return out


def test_the_cli_synopsis_names_every_command_and_no_other(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    synopsis = _synopsis()
    assert synopsis, "no CLI synopsis (a text block of `aifdata ...` lines)"
    listed = {words[0] for _, words, _ in synopsis if words}
    assert listed == _commands(_help())
    for group in _GROUPS:
        listed_subcommands = {words[1] for _, words, _ in synopsis if words[:1] == [group]}
        assert listed_subcommands == _commands(_help(group)), group


def test_the_cli_synopsis_lists_only_real_options(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    for block, words, line in _synopsis():
        real = _options(_help(*words))
        for option in _OPTION.findall(line):
            assert option in real, f"{block.where}: `aifdata {' '.join(words)}` has no {option}"


def test_the_catalog_option_and_the_exit_codes_are_the_clis(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    text = section("CLI reference")
    listed = re.search(r"commands that use the catalog \(([^)]*)\)\s+take `--catalog", text)
    assert listed, "the CLI reference says which commands take --catalog"
    for name in re.findall(r"`(\w+)`", listed.group(1)):
        subcommands = sorted(_commands(_help(name))) if name in _GROUPS else [None]
        for sub in subcommands:
            words = [name] if sub is None else [name, sub]
            assert "--catalog" in _options(_help(*words)), f"aifdata {' '.join(words)}"
    codes = {
        _app.EXIT_ERROR: "error",
        _app.EXIT_USAGE: "usage",
        _app.EXIT_NOT_FOUND: "not found",
        _app.EXIT_ACCESS_DENIED: "access denied",
        _app.EXIT_CONFIG: "bad configuration",
        _app.EXIT_UNAVAILABLE: "storage unreachable",
    }
    flat = " ".join(text.split())
    for code, meaning in codes.items():
        assert f"{code} {meaning}" in flat, f"exit code {code} is {meaning}"


# -- tables: Python API, configuration, environment ------------------------


def test_the_python_api_section_names_every_public_name():
    text = section("Python API")
    for name in aifdata.__all__:
        assert f"`{name}" in text or f"aifdata.{name}" in text, f"{name} is not in the Python API"
    dotted = set(re.findall(r"aifdata(?:\.\w+)+", text))
    dotted |= {f"aifdata.{m}" for m in re.findall(r"`([A-Z]\w*(?:\.\w+)+)", text)}
    for name in dotted:
        module = name.split(".")[1]
        if module in OPTIONAL_INTEGRATIONS and importlib.util.find_spec(module) is None:
            # torch, ray, lithops not installed (the lowest-versions lane): read the module instead
            assert _defines(f"aifdata.{module}", name.split(".")[2]), f"{name} does not exist"
            continue
        obj: Any = aifdata
        for part in name.split(".")[1:]:
            assert hasattr(obj, part), f"the Python API names {name}, which does not exist"
            obj = getattr(obj, part)
    methods = re.search(r"`Catalog\(path=None\)`: (.*?);", text, re.S)
    assert methods, "the Python API lists Catalog's methods"
    for method in re.findall(r"`(\w+)`", methods.group(1)):
        assert hasattr(aifdata.Catalog, method), f"Catalog has no {method}"


def _defines(module: str, name: str) -> bool:
    """Whether ``module`` defines ``name`` at its top level, read without importing it
    (``aifdata.torch`` imports torch, an extra the lowest-versions lane leaves out)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    tree = ast.parse(Path(spec.origin).read_text())
    return any(getattr(node, "name", None) == name for node in tree.body)


def _table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.match(r"^\|[-| ]+\|$", line):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows[1:]  # without the header


def test_the_configuration_table_has_every_key_with_the_codes_defaults(monkeypatch, tmp_path):
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    rows = _table_rows(section("Configuration reference").split("### ")[0])
    keys = {row[0].strip("`"): row for row in rows}
    code_keys = {option for kind in kind_names() for option in get_kind(kind).options}
    code_keys |= {*MOUNT_KEYS, "kind", "url", "path"}
    assert set(keys) == code_keys
    s3 = S3Settings.from_tier(aifdata.Tier.s3("s3://bucket"))
    pfs = PFSConnector(aifdata.Tier.pfs(tmp_path))
    checked = 0
    for key, row in keys.items():
        default = re.fullmatch(r"`([^`]+)`", row[2])
        if default is None:
            continue  # prose: "required", "none", ...
        value = tomllib.loads(f"v = {default.group(1)}")["v"]
        if key in get_kind("fsspec").options:
            actual = dict(aifdata.Tier.fsspec("memory://x").options.get(key, {}))
        else:
            actual = getattr(pfs if key in get_kind("pfs").options else s3, key)
        assert actual == value, f"configuration table: {key} defaults to {actual!r}, not {value!r}"
        checked += 1
    assert checked >= 8


def _variables_read(paths: list[Path]) -> set[str]:
    pattern = re.compile(r"""(?:environ\.get|env\.get|getenv|envvar=)\(?\s*["']([A-Z][A-Z0-9_]+)""")
    return {name for p in paths for name in pattern.findall(p.read_text(encoding="utf-8"))}


def test_the_environment_table_has_every_variable_the_code_reads():
    sources = [*(ROOT / "aifdata").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
    sources.append(ROOT / "tests" / "conftest.py")
    read = _variables_read(sources)
    assert {"AIFDATA_HOME", "AIFDATA_CONFIG", "AWS_ENDPOINT_URL"} <= read  # the pattern works
    table = section("Environment variables")
    missing = sorted(v for v in read if f"`{v}`" not in table)
    assert not missing, f"read by the code, not in the README's environment table: {missing}"


# -- the walk: bash and python blocks, in order, against SeaweedFS ---------------


def _toml(table: dict[str, Any], path: tuple[str, ...] = ()) -> str:
    """A TOML document of nested tables of strings, numbers, booleans and lists."""
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    out = [f"[{'.'.join(path)}]"] if path and scalars else []
    out += [f"{key} = {_toml_value(value)}" for key, value in scalars.items()]
    for key, value in table.items():
        if isinstance(value, dict):
            out.append(_toml(value, (*path, key)))
    return "\n".join(out) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def _retarget(text: str, server: Any, bucket: str, pfs_root: Path) -> str:
    """The README's mount table, pointed at the session's server and a temporary directory."""
    document = tomllib.loads(text)
    for mount in document["mounts"].values():
        for name, tier in mount.items():
            if not isinstance(tier, dict):
                continue
            kind = tier.get("kind", name)
            if kind == "s3":
                assert "key" not in tier and "secret" not in tier, "no credentials in the README"
                tier["url"] = f"s3://{bucket}/{tier['url'].removeprefix('s3://')}"
                tier["endpoint_url"] = server.endpoint_url
            else:
                tier["path"] = str(pfs_root / tier["path"].lstrip("/"))
                Path(tier["path"]).mkdir(parents=True)
    return _toml(document)


class Walk:
    """The state of one reader following the README from the top."""

    def __init__(
        self, server: Any, bucket: str, tmp: Path, home: Path, slurm_conf: Path | None = None
    ) -> None:
        self.server, self.bucket, self.home = server, bucket, home
        self.slurm_conf = slurm_conf
        self.work = tmp / "work"
        self.pfs_root = tmp / "pfs-root"
        self.work.mkdir()
        # the files the README calls "a FASTQ file and a GeoTIFF of your own"
        (self.work / "reads.fastq").write_bytes(_synthetic.fastq(3000, seed=1))
        (self.work / "scene.tif").write_bytes(_synthetic.geotiff(512, tile=256, seed=2))
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.ran: dict[str, int] = {"aifdata": 0, "python": 0, "config": 0, "slurm": 0}

    def step(self, block: Block) -> None:
        if block.kind == "toml" and block.text.startswith(CONFIG_MARKER):
            config = _retarget(block.text, self.server, self.bucket, self.pfs_root)
            (self.home / "config.toml").write_text(config, encoding="utf-8")
            AifFileSystem.clear_instance_cache()  # as a new process would see it
            self.ran["config"] += 1
        elif block.kind == "python":
            namespace = self.namespaces.setdefault(block.section, {"__name__": "__readme__"})
            exec(compile(block.text, block.where, "exec"), namespace)
            self.ran["python"] += 1
        elif block.kind == "python slurm":
            code = compile(block.text, block.where, "exec")
            if self.slurm_conf is not None:
                namespace = self.namespaces.setdefault(block.section, {"__name__": "__readme__"})
                exec(code, namespace)
                self.ran["slurm"] += 1
        elif block.kind == "bash":
            for n, cmd in block.commands():
                parsed = _aifdata_argv(cmd)
                if parsed is not None:
                    self.run(n, cmd, *parsed)

    def run(self, n: int, cmd: str, env: dict[str, str], argv: list[str]) -> None:
        done = subprocess.run(
            [str(AIFDATA), *argv],
            cwd=self.work,
            env={**os.environ, **env},
            capture_output=True,
            timeout=300,
        )
        expected = _expected_exit(cmd)
        stderr = done.stderr.decode(errors="replace")
        assert done.returncode == expected, (
            f"README.md:{n}: `{cmd}` exited {done.returncode}, not {expected}:\n{stderr}"
        )
        assert "Traceback" not in stderr, f"README.md:{n}: `{cmd}`:\n{stderr}"
        tier = re.match(r"[^#]*#\s*(\w+):", cmd)
        if argv[0] == "where" and tier:
            routed = done.stdout.decode().split(" -> ", 1)[-1].split(":", 1)[0]
            assert routed == tier.group(1), f"README.md:{n}: `{cmd}` routed to {routed}"
        self.ran["aifdata"] += 1


def _slurm_conf(request: pytest.FixtureRequest) -> Path | None:
    """The session's Slurm cluster for the ``python slurm`` blocks, or None (and why)."""
    try:
        cluster = request.getfixturevalue("slurm")
    except pytest.skip.Exception as why:  # compiled by test_the_cluster_sketches_compile
        print(f"the README's python slurm blocks are not run: {why}")
        return None
    return Path(cluster.conf)


@pytest.mark.e2e
def test_the_readme_runs_in_order(seaweedfs, bucket, tmp_path, isolated_home, monkeypatch, request):
    """Every ``aifdata`` line and every python block, top to bottom, as a reader would."""
    assert AIFDATA.is_file(), (
        f"{AIFDATA}: the aifdata command is not installed beside {sys.executable}"
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.secret_key)
    monkeypatch.delenv("AIFDATA_USER", raising=False)
    monkeypatch.delenv("AIFDATA_GROUPS", raising=False)
    monkeypatch.delenv("AIFDATA_OPENLINEAGE", raising=False)
    walk = Walk(
        seaweedfs,
        f"{bucket}/readme-{uuid.uuid4().hex[:6]}",
        tmp_path,
        isolated_home,
        _slurm_conf(request),
    )
    monkeypatch.chdir(walk.work)
    try:
        for block in BLOCKS:
            walk.step(block)
    finally:
        AifFileSystem.clear_instance_cache()
    assert walk.ran["config"] == 1
    assert walk.ran["python"] == len(blocks_of("python"))
    if walk.slurm_conf is not None:
        assert walk.ran["slurm"] == len(blocks_of("python slurm")) >= 1
    assert walk.ran["aifdata"] == sum(1 for *_, cmd in _bash_lines() if _aifdata_argv(cmd))
    # what the README says happened, happened
    assert (walk.work / "bucket-policies.json").is_file()
    assert (walk.work / "catalog-snapshot" / "datasets.parquet").is_file()
    assert (walk.work / "events.jsonl").read_text().strip()
    staged = list(walk.pfs_root.rglob("reads.fastq"))
    assert [p.relative_to(walk.pfs_root).as_posix() for p in staged] == [
        "lustre/projects/genomics/run42/reads.fastq"
    ]
