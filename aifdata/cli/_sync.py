"""``aifdata sync``: record what changed on S3 and the PFS as new dataset versions."""

from __future__ import annotations

from typing import Annotated

import typer

from ..managed import SyncReport, sync
from ._app import app
from ._options import CatalogOption, JsonFlag, open_catalog, print_json


@app.command("sync")
def sync_command(
    prefix: Annotated[str, typer.Argument(help="An aif:// prefix, e.g. aif://genomics/run42.")],
    prefer: Annotated[
        str | None,
        typer.Option(
            "--prefer", help="Resolve conflicts with this side's bytes: s3, pfs or a tier name."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be recorded; record nothing.")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="Files hashed at once.")] = 8,
    catalog: CatalogOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Compare S3 (ETags) and the PFS (stat) under PREFIX with the latest versions there and
    record what is new, changed and deleted as a new version of each dataset. A file changed
    on both sides is a conflict: nothing is recorded (exit 1) unless --prefer chooses."""
    report = sync(open_catalog(catalog), prefix, prefer, dry_run=dry_run, workers=workers)
    if as_json:
        print_json(report.as_dict())
    else:
        _print(report)
    if report.conflicts:
        raise typer.Exit(1)


def _print(report: SyncReport) -> None:
    if report.conflicts:
        n = len(report.conflicts)
        typer.echo(
            f"{n} conflict{'s' if n != 1 else ''} under {report.prefix}: nothing was recorded;"
            " choose a side with --prefer s3 or --prefer pfs"
        )
    rows = [(c.path, c.change, c.side) for c in report.changes]
    if rows:
        widths = [max(len(r[i]) for r in [("PATH", "CHANGE", "SIDE"), *rows]) for i in range(3)]
        for row in [("PATH", "CHANGE", "SIDE"), *rows]:
            typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    for c in report.conflicts:
        for side in c.sides:
            typer.echo(f"  {c.dataset} {c.path}: {side.describe()}")
    if not report.conflicts:
        typer.echo(_summary(report))


def _summary(report: SyncReport) -> str:
    if report.up_to_date:
        return f"{report.prefix}: up to date"
    if report.dry_run:
        return f"{report.prefix}: {len(report.changes)} change(s) found; nothing recorded (dry run)"
    made = ", ".join(report.versions) or "no new version"
    text = f"{report.prefix}: recorded {made}"
    if report.exported:
        text += (
            f"; {len(report.exported)} write-tier cop{'y' if len(report.exported) == 1 else 'ies'}"
        )
        text += " given the new bytes"
    if report.skipped:
        text += f"; skipped (read only to you): {', '.join(report.skipped)}"
    return text
