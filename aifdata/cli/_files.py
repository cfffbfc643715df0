"""File commands: mounts, ls, cat, cp, where."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from .._errors import AifDataError
from .._urls import resolve_url
from .._wiring import AifFileSystem
from ..connectors._atomic import AtomicWriter
from ._app import app, state

_CHUNK = 16 * 2**20
_PROGRESS_THRESHOLD = 8 * 2**20
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


@app.command()
def mounts(as_json: JsonFlag = False) -> None:
    """Show the mount table: prefixes, tiers, read order and write tier."""
    config = state.config
    rows: list[dict[str, Any]] = [
        {
            "prefix": m.prefix,
            "tiers": [{"name": t.name, "kind": t.kind, "url": t.url} for t in m.tiers],
            "read_order": list(m.read_order),
            "write_tier": m.write_tier,
        }
        for m in config.mounts
    ]
    if as_json:
        _print_json({"source": config.source, "mounts": rows})
        return
    table = Table(title=f"mounts ({config.source or 'built-in default'})")
    for column in ("prefix", "tiers", "read order", "write tier"):
        table.add_column(column)
    for row in rows:
        tiers = "\n".join(f"{t['name']} ({t['kind']}): {t['url']}" for t in row["tiers"])
        table.add_row(
            f"aif://{row['prefix']}", tiers, " > ".join(row["read_order"]), row["write_tier"]
        )
    _console().print(table)


@app.command("ls")
def ls_command(
    url: Annotated[str, typer.Argument(help="aif://, s3:// or local path.")] = "aif://",
    long: Annotated[bool, typer.Option("--long", "-l", help="Sizes, types and tiers.")] = False,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Every file below.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List a directory, or one file: the union of a mount's tiers, with the tiers
    that hold each entry (in read order)."""
    fs, path = resolve_url(url, state.config)
    found = list(fs.find(path, detail=True).values()) if recursive else fs.ls(path, detail=True)
    entries = sorted(found, key=lambda e: e["name"])
    if as_json:
        keep = ("name", "size", "type", "tiers", "mtime")
        _print_json([{k: e[k] for k in keep if k in e} for e in entries])
        return
    for entry in entries:
        name = _display(fs, entry["name"]) + ("/" if entry["type"] == "directory" else "")
        if long:
            tiers = ",".join(entry.get("tiers", []))
            typer.echo(f"{entry['size']:>14,}  {tiers:<10}  {name}")
        else:
            typer.echo(name)


def _display(fs: AbstractFileSystem, name: str) -> str:
    if isinstance(fs, AifFileSystem):
        return f"aif://{name}"
    if isinstance(fs, LocalFileSystem):
        return name
    return f"s3://{name}"


@app.command()
def cat(
    url: Annotated[str, typer.Argument(help="File to print.")],
    start: Annotated[int | None, typer.Option(help="First byte (negative: from the end).")] = None,
    end: Annotated[int | None, typer.Option(help="Byte after the last one.")] = None,
) -> None:
    """Write a file's bytes to standard output."""
    fs, path = resolve_url(url, state.config)
    out = sys.stdout.buffer
    if start is not None or end is not None:
        out.write(fs.cat_file(path, start, end))
    else:
        with fs.open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                out.write(chunk)
    out.flush()


@app.command()
def where(
    url: Annotated[str, typer.Argument(help="aif:// path of a file.")],
    as_json: JsonFlag = False,
) -> None:
    """Say which tier would serve a read of a file, and why."""
    fs = AifFileSystem(state.config)
    route = fs.where(url)
    if as_json:
        _print_json(route.as_dict())
        return
    typer.echo(f"aif://{route.path} -> {route.tier}: {route.url}")
    typer.echo(f"  because {route.reason}")
    for tier, why in route.skipped:
        typer.echo(f"  skipped {tier}: {why}")


@app.command()
def cp(
    sources: Annotated[list[str], typer.Argument(help="SOURCE... DEST (aif://, s3:// or local).")],
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Copy directories.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Copy files between aif://, s3:// and local paths."""
    if len(sources) < 2:
        raise typer.BadParameter("give at least one SOURCE and a DEST")
    *srcs, dest = sources
    config = state.config
    dst_fs, dst_path = resolve_url(dest, config)
    into_dir = len(srcs) > 1 or dest.endswith("/") or _isdir(dst_fs, dst_path)
    plan: list[tuple[AbstractFileSystem, str, str, int]] = []
    for src in srcs:
        src_fs, src_path = resolve_url(src, config)
        plan += _plan_copy(src_fs, src_path, dst_fs, dst_path, into_dir, recursive)
    total = sum(size for *_, size in plan)
    show = not quiet and total >= _PROGRESS_THRESHOLD and sys.stderr.isatty()
    with _progress(show) as progress:
        task = progress.add_task("copying", total=total)
        for src_fs, src_path, target, _size in plan:
            _copy_one(src_fs, src_path, dst_fs, target, lambda n: progress.advance(task, n))
    if not quiet:
        typer.echo(f"copied {len(plan)} file(s), {total:,} bytes", err=True)


def _isdir(fs: AbstractFileSystem, path: str) -> bool:
    try:
        return bool(fs.isdir(path))
    except FileNotFoundError:
        return False


def _plan_copy(
    src_fs: AbstractFileSystem,
    src_path: str,
    dst_fs: AbstractFileSystem,
    dst_path: str,
    into_dir: bool,
    recursive: bool,
) -> list[tuple[AbstractFileSystem, str, str, int]]:
    info = src_fs.info(src_path)
    base = dst_path.rstrip("/")
    if info["type"] != "directory":
        target = f"{base}/{_basename(src_path)}" if into_dir else base
        return [(src_fs, src_path, target, info["size"])]
    if not recursive:
        raise IsADirectoryError(f"{src_path} is a directory (use -r to copy it)")
    root = f"{base}/{_basename(src_path)}" if into_dir else base
    prefix = src_path.rstrip("/")
    files = src_fs.find(prefix, detail=True)
    return [
        (src_fs, name, f"{root}/{name[len(prefix) :].lstrip('/')}", entry["size"])
        for name, entry in sorted(files.items())
        if entry["type"] == "file"
    ]


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _copy_one(
    src_fs: AbstractFileSystem,
    src_path: str,
    dst_fs: AbstractFileSystem,
    dst_path: str,
    advance: Any,
) -> None:
    local = isinstance(dst_fs, LocalFileSystem)
    if local:
        if isinstance(src_fs, LocalFileSystem) and _same_file(src_path, dst_path):
            raise AifDataError(f"{src_path} and {dst_path} are the same file")
        os.makedirs(os.path.dirname(dst_path) or ".", exist_ok=True)
    with (
        src_fs.open(src_path, "rb", block_size=_CHUNK) as src,
        AtomicWriter(dst_path) if local else dst_fs.open(dst_path, "wb") as dst,
    ):  # a local file appears whole or not at all (and its old bytes stay readable)
        while chunk := src.read(_CHUNK):
            dst.write(chunk)
            advance(len(chunk))


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _progress(show: bool) -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not show,
        transient=True,
    )
