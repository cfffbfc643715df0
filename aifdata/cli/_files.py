"""File commands: mounts, ls, cat, cp, where.

``aif://`` checks the grants itself; an ``s3://`` URL or a local path inside a
governed location is checked by :mod:`._governed` the same way.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Annotated, Any

import typer
from fsspec import AbstractFileSystem
from fsspec.callbacks import Callback
from fsspec.implementations.local import LocalFileSystem
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

from .. import AifFileSystem, copy, url_to_fs
from ._app import app, state
from ._governed import grants_for
from ._options import JsonFlag, print_json, progress_bar

_CAT_CHUNK = 16 * 2**20
_PROGRESS_THRESHOLD = 8 * 2**20


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


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
        print_json({"source": config.source, "mounts": rows})
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
    fs, path = url_to_fs(url, state.config)
    grants = grants_for(url)
    if grants is not None:
        grants.check(url, "read", "ls")
    found = list(fs.find(path, detail=True).values()) if recursive else fs.ls(path, detail=True)
    entries = sorted(found, key=lambda e: e["name"])
    if grants is not None:
        readable = grants.readable(_display(fs, e["name"]) for e in entries)
        entries = [e for e in entries if _display(fs, e["name"]) in readable]
    if as_json:
        keep = ("name", "size", "type", "tiers", "mtime")
        print_json([{k: e[k] for k in keep if k in e} for e in entries])
        return
    for entry in entries:
        name = _display(fs, entry["name"]) + ("/" if entry["type"] == "directory" else "")
        if long:
            tiers = ",".join(entry.get("tiers", []))
            typer.echo(f"{entry['size']:>14,}  {tiers:<10}  {name}")
        else:
            typer.echo(name)


def _display(fs: AbstractFileSystem, name: str) -> str:
    """A listed name as the user would type it: a path, or a URL of the entry's scheme."""
    if isinstance(fs, LocalFileSystem):
        return name
    shown: str = fs.unstrip_protocol(name)
    return shown


@app.command()
def cat(
    url: Annotated[str, typer.Argument(help="File to print.")],
    start: Annotated[int | None, typer.Option(help="First byte (negative: from the end).")] = None,
    end: Annotated[int | None, typer.Option(help="Byte after the last one.")] = None,
) -> None:
    """Write a file's bytes to standard output."""
    fs, path = url_to_fs(url, state.config)
    grants = grants_for(url)
    if grants is not None:
        grants.check(url, "read", "cat")
    out = sys.stdout.buffer
    if start is not None or end is not None:
        out.write(fs.cat_file(path, start=start, end=end))
    else:
        with fs.open(path, "rb") as f:
            shutil.copyfileobj(f, out, _CAT_CHUNK)
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
        print_json(route.as_dict())
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
    _check_copy(srcs, dest, recursive)
    into = grants_for(dest)

    def check(_source: str, target: str) -> None:  # every file, before the first is written
        if into is not None:
            into.check(target, "write", "cp")

    with _CopyProgress(show=not quiet and sys.stderr.isatty()) as bar:
        copied = copy(srcs, dest, recursive, config=state.config, callback=bar, check=check)
    if not quiet:
        total = sum(c.size for c in copied)
        typer.echo(f"copied {len(copied)} file(s), {total:,} bytes", err=True)


def _check_copy(sources: list[str], dest: str, recursive: bool) -> None:
    """Refuse a copy out of a governed place the principal may not read (every file of a
    directory), or into one they may not write (the destination named; each file the copy
    plans is checked too, by :func:`cp`, before the first is written)."""
    for source in sources:
        grants = grants_for(source)
        if grants is None:
            continue
        fs, path = url_to_fs(source, state.config)
        if recursive and _isdir(fs, path):
            files = [_display(fs, name) for name in fs.find(path)]
            readable = grants.readable(files)
            for name in [f for f in files if f not in readable][:1] or [source]:
                grants.check(name, "read", "cp")
        else:
            grants.check(source, "read", "cp")
    grants = grants_for(dest)
    if grants is not None:
        base = dest.rstrip("/")
        for target in [dest, *(f"{base}/{os.path.basename(s.rstrip('/'))}" for s in sources)]:
            grants.check(target, "write", "cp")


def _isdir(fs: AbstractFileSystem, path: str) -> bool:
    try:
        return bool(fs.isdir(path))
    except OSError:
        return False


class _CopyProgress(Callback):
    """A progress bar fed by :func:`aifdata.copy`, shown once the copy is planned if it is
    large enough to be worth one."""

    def __init__(self, show: bool) -> None:
        super().__init__()
        self.show = show
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def set_size(self, size: int) -> None:
        self.size = size
        if self.show and self.bar is None and size >= _PROGRESS_THRESHOLD:
            bar = progress_bar(True)
            assert isinstance(bar, Progress)  # shown: a real bar
            bar.start()
            self.bar, self.task = bar, bar.add_task("copying", total=size)

    def relative_update(self, inc: int = 1) -> None:
        self.value += inc
        if self.bar is not None and self.task is not None:
            self.bar.advance(self.task, inc)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
