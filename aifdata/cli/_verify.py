"""``aifdata verify``: hash every recorded copy again and mark the bad ones (a scrub)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..catalog import VerifyReport
from ._app import app
from ._options import CatalogOption, JsonFlag, finish, open_catalog, progress_bar


@app.command()
def verify(
    target: Annotated[
        str | None,
        typer.Argument(help="NAME, NAME@VERSION or an aif:// prefix (default: every dataset)."),
    ] = None,
    tier: Annotated[
        str | None, typer.Option("--tier", help="Only the copies on this tier.")
    ] = None,
    clean: Annotated[
        bool, typer.Option("--clean", help="Also remove stale temporary files of killed writers.")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="Files hashed at once.")] = 4,
    catalog: CatalogOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Hash every copy again against the catalog's SHA-256; mark bad copies (routing then
    skips them). Exits 1 when a copy is bad or missing."""
    cat = open_catalog(catalog)
    with progress_bar(sys.stderr.isatty() and not as_json) as progress:
        task = progress.add_task("verifying", total=None)
        report = cat.verify(
            target, tier, workers=workers, clean=clean, progress=lambda n: progress.advance(task, n)
        )
    finish(report, as_json, _print)


def _print(report: VerifyReport) -> None:
    for p in report.problems:
        typer.echo(f"{p.state.upper()}  {p.dataset}  {p.path}  [{p.tier}] {p.url}: {p.detail}")
    summary = (
        f"{report.checked} cop{'y' if report.checked == 1 else 'ies'} checked, "
        f"{report.bytes_hashed:,} bytes hashed, {len(report.bad)} bad, "
        f"{len(report.missing)} missing"
    )
    if report.size_only:
        summary += f" ({report.size_only} checked by size only: ingested without checksums)"
    if report.cleaned:
        summary += f"; {len(report.cleaned)} stale temporary file(s) removed"
    typer.echo(summary)
