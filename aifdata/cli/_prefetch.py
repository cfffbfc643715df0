"""``aifdata prefetch``: hydrate a dataset onto the PFS (or cache) before a job reads it."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..managed import PrefetchReport, prefetch, prefetch_targets
from ._app import app
from ._options import CatalogOption, JsonFlag, finish, open_catalog, progress_bar


@app.command("prefetch")
def prefetch_command(
    target: Annotated[
        str, typer.Argument(help="NAME, NAME@VERSION, or an aif:// prefix (its datasets' files).")
    ],
    workers: Annotated[int, typer.Option(min=1, help="Files hydrated at once.")] = 8,
    catalog: CatalogOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Copy every file of a dataset version onto its mount's hydration tier (PFS or
    cache), verified, in parallel; run it again after a kill to resume. Exits 1 when a
    file failed."""
    cat = open_catalog(catalog)
    files = prefetch_targets(cat, target)  # errors (an unknown dataset) before the bar
    total = sum(f.size for f in files)
    with progress_bar(sys.stderr.isatty() and not as_json) as progress:
        task = progress.add_task("prefetching", total=total)
        report = prefetch(
            cat, target, workers=workers, progress=lambda n: progress.advance(task, n), files=files
        )
    finish(report, as_json, _print)


def _print(report: PrefetchReport) -> None:
    for url, why in report.failures:
        typer.echo(f"FAILED  {url}: {why}")
    onto = ", ".join(report.tiers)
    typer.echo(
        f"{report.target} onto {onto}: {report.hydrated} hydrated ({report.bytes:,} bytes),"
        f" {report.present} present, {report.skipped} skipped, {report.failed} failed"
        f" in {report.seconds:.1f} s"
    )
