"""``aifdata prefetch``: hydrate a dataset onto the PFS (or cache) before a job reads it."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..managed import PrefetchReport, prefetch, prefetch_targets
from ._app import app
from ._options import CatalogOption, JsonFlag, catalog_argument, finish, open_catalog, progress_bar
from ._slurm import JOB_CONTEXT, ScriptOption, SlurmFlag, job_options, run_as_job


@app.command("prefetch", context_settings=JOB_CONTEXT)
def prefetch_command(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Argument(help="NAME, NAME@VERSION, or an aif:// prefix (its datasets' files).")
    ],
    workers: Annotated[int, typer.Option(min=1, help="Files hydrated at once.")] = 8,
    catalog: CatalogOption = None,
    slurm: SlurmFlag = False,
    script: ScriptOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Copy every file of a dataset version onto its mount's hydration tier (PFS or
    cache), verified, in parallel; run it again after a kill to resume. Exits 1 when a
    file failed. With --slurm it runs as a Slurm batch job (sbatch options after --);
    --script FILE writes that job's script instead."""
    options = job_options(ctx, slurm, script)
    cat = open_catalog(catalog)
    files = prefetch_targets(cat, target)  # errors (an unknown dataset) before the bar
    if options is not None:
        argv = ["prefetch", target, "--catalog", catalog_argument(cat)]
        run_as_job([*argv, "--workers", str(workers)], options, script, as_json)
        return
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
