"""``aifdata convert``: write a GeoTIFF as a Zarr v3 store, recording the lineage."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import app, state
from ._governed import check_url


@app.command("convert")
def convert_command(
    url: Annotated[str, typer.Argument(help="A GeoTIFF: aif://, s3:// or a local path.")],
    dest: Annotated[str, typer.Argument(help="Where the store goes (it must not exist).")],
    to: Annotated[str, typer.Option("--to", help="The target format (zarr).")] = "zarr",
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Output dataset (default: DEST's path).")
    ] = None,
    source_dataset: Annotated[
        str | None,
        typer.Option("--from-dataset", help="Input dataset (default: the one holding URL)."),
    ] = None,
    level: Annotated[int, typer.Option("--level", help="0: full resolution, 1...: overviews.")] = 0,
) -> None:
    """Convert a GeoTIFF to a Zarr v3 store chunked like its tiles, as a recorded run."""
    from .._convert import geotiff_to_zarr  # an application of the public API, above it

    if to.lower() != "zarr":
        raise typer.BadParameter(f"--to {to}: only zarr is supported")
    check_url(url, "read", "convert")
    check_url(dest, "write", "convert")
    name = geotiff_to_zarr(url, dest, dataset=dataset, source_dataset=source_dataset,
                           level=level, config=state.config)  # fmt: skip
    typer.echo(f"wrote {dest} (Zarr v3)")
    if name is not None:
        typer.echo(f"recorded: {name} derived from {url} (aifdata lineage {name})")
