"""``aifdata release``, ``pin``, ``unpin`` and ``pins``: reclaim space on managed tiers,
and keep datasets from being reclaimed."""

from __future__ import annotations

import datetime
from typing import Annotated

import typer

from ..managed import ReleaseReport, release
from ._app import app, state
from ._options import CatalogOption, JsonFlag, finish, open_catalog, print_json


@app.command("release")
def release_command(
    target: Annotated[
        str | None, typer.Argument(help="An aif:// prefix (default: every mount).")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Only the copies of this dataset.")
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Only copies not read for this long (7d, 12h); default the tier's release_after.",
        ),
    ] = None,
    to_low_water: Annotated[
        bool,
        typer.Option("--to-low-water", help="Stop once the tier is down to its low_water share."),
    ] = False,
    tier: Annotated[str | None, typer.Option("--tier", help="Only this tier.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be released; change nothing.")
    ] = False,
    catalog: CatalogOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Free copies on PFS and cache tiers, least recently read first, only where the write
    tier holds the same bytes (never the only copy, never a pinned dataset). Exits 1 when
    a copy was refused."""
    report = release(
        open_catalog(catalog),
        state.config,
        target=target,
        dataset=dataset,
        older_than=older_than,
        to_low_water=to_low_water,
        tier=tier,
        dry_run=dry_run,
    )
    finish(report, as_json, _print)


def _print(report: ReleaseReport) -> None:
    for c in report.copies:
        when = _when(c.last_access)
        line = f"{c.path}  [{c.tier}]  {c.size:,} B  {when}  {c.outcome}"
        typer.echo(f"{line}: {c.reason}" if c.reason else line)
    for note in report.notes:
        typer.echo(f"note: {note}")
    verb = "would be released" if report.dry_run else "released"
    typer.echo(
        f"{len(report.released)} cop{'y' if len(report.released) == 1 else 'ies'} {verb}"
        f" ({report.bytes_released:,} bytes), {len(report.refused)} refused,"
        f" {report.pinned} kept by a pin"
    )


def _when(t: float | None) -> str:
    return "never read" if t is None else f"read {_stamp(t)}"


def _stamp(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


@app.command()
def pin(
    name: Annotated[str, typer.Argument(help="The dataset to keep on its managed tiers.")],
    catalog: CatalogOption = None,
) -> None:
    """Keep a dataset's copies on PFS and cache tiers: release never removes them."""
    changed = open_catalog(catalog).pin(name)
    typer.echo(f"{name}: pinned" if changed else f"{name}: already pinned")


@app.command()
def unpin(
    name: Annotated[str, typer.Argument(help="The dataset to let release reclaim again.")],
    catalog: CatalogOption = None,
) -> None:
    """Let release reclaim a dataset's copies again."""
    changed = open_catalog(catalog).unpin(name)
    typer.echo(f"{name}: unpinned" if changed else f"{name}: was not pinned")


@app.command()
def pins(catalog: CatalogOption = None, as_json: JsonFlag = False) -> None:
    """List the pinned datasets."""
    found = open_catalog(catalog).pinned()
    if as_json:
        print_json([p.as_dict() for p in found])
        return
    for p in found:
        typer.echo(f"{p.dataset}  pinned by {p.pinned_by}  {_stamp(p.created)}")
