"""``aifdata formats`` and ``aifdata partition``."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from .. import FormatError, formats
from ..formats import MAX_PARTITIONS
from ._app import app, state
from ._governed import check_url
from ._options import JsonFlag


@app.command("formats")
def formats_command(as_json: JsonFlag = False) -> None:
    """List the format plug-ins (built-in and installed through the aifdata.formats group),
    each with the codecs (compressions) its files may come in."""
    rows = []
    for name in formats.available():
        try:
            plugin = formats.get(name)
        except FormatError as exc:  # its library is not installed
            rows.append({"name": name, "extensions": [], "codecs": [],
                         "description": f"unavailable: {exc}"})  # fmt: skip
            continue
        rows.append({"name": name, "extensions": list(plugin.extensions),
                     "codecs": list(plugin.codecs), "description": plugin.description})  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    columns = [[row["name"], " ".join(row["extensions"]), " ".join(row["codecs"])] for row in rows]
    widths = [max((len(cells[i]) for cells in columns), default=0) for i in range(3)]
    for cells, row in zip(columns, rows, strict=True):
        padded = "  ".join(f"{cell:<{width}}" for cell, width in zip(cells, widths, strict=True))
        typer.echo(f"{padded}  {row['description']}")


@app.command("partition")
def partition_command(
    url: Annotated[str, typer.Argument(help="A file: aif://, s3:// or a local path.")],
    n: Annotated[
        int | None,
        typer.Option("--n", min=1, max=MAX_PARTITIONS, help="Number of partitions."),
    ] = None,
    target_bytes: Annotated[
        int | None,
        typer.Option("--target-bytes", min=1, help="About this many bytes per partition."),
    ] = None,
    format: Annotated[
        str | None, typer.Option("--format", help="Force a format (default: detect).")
    ] = None,
    region: Annotated[
        str | None,
        typer.Option("--region", help="VCF, BAM, FASTA: a region such as chr1:1-1000000."),
    ] = None,
    variable: Annotated[
        str | None, typer.Option("--variable", help="HDF5/NetCDF4: the variable to split.")
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="FASTA: 'residues' to cut within sequences.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Plan the partitions of a file from a few small range reads (nothing is converted)."""
    if n is not None and target_bytes is not None:
        raise typer.BadParameter("give --n or --target-bytes, not both")
    check_url(url, "read", "partition")
    given = {"region": region, "variable": variable, "by": by}
    options = {name: value for name, value in given.items() if value is not None}
    parts = formats.partition(url, n=n, target_bytes=target_bytes, format=format,
                              config=state.config, **options)  # fmt: skip
    if as_json:
        rows = [
            {"url": p.url, "format": p.format, "ordinal": p.ordinal, "spec": p.options,
             "fingerprint": p.fingerprint}
            for p in parts
        ]  # fmt: skip
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    for p in parts:
        spec = "  ".join(f"{k}={v}" for k, v in p.spec)
        typer.echo(f"{p.ordinal:>6}  {p.format:<8} {spec}")
    typer.echo(f"{len(parts)} partition(s) of {url}", err=True)
