"""``aifdata refs``: kerchunk references to an HDF5, NetCDF4 or GeoTIFF file,, versioned."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import app, state
from ._governed import check_url


@app.command("refs")
def refs_command(
    url: Annotated[
        str, typer.Argument(help="An HDF5, NetCDF4 or GeoTIFF file: aif://, s3:// or a path.")
    ],
    format: Annotated[
        str | None,
        typer.Option("--format", help="json or parquet (default: from --output, else json)."),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Where they go (default: URL.refs.json or .parq)."),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", help="Output dataset (default: OUTPUT's path)."),
    ] = None,
    source_dataset: Annotated[
        str | None,
        typer.Option("--from-dataset", help="Input dataset (default: the one holding URL)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace references already there.")
    ] = False,
) -> None:
    """Write virtual Zarr references (kerchunk) whose chunk URLs are URL's, with URL's
    fingerprint; open them with aifdata.refs.open, which refuses them once URL changes."""
    from .. import refs  # an application of the public API, above it

    if format is not None and format.lower() not in refs.FORMATS:
        raise typer.BadParameter(f"--format {format}: expected one of {', '.join(refs.FORMATS)}")
    check_url(url, "read", "refs")
    if output is not None:
        check_url(output, "write", "refs")
    written = refs.write(url, output, format=format, dataset=dataset,
                         source_dataset=source_dataset, overwrite=overwrite,
                         config=state.config)  # fmt: skip
    typer.echo(f"wrote {written.output} (kerchunk {written.format}, {written.references} keys)")
    if written.dataset is not None:
        typer.echo(f"recorded: {written.dataset} derived from {url} (aifdata lineage"
                   f" {written.dataset})")  # fmt: skip
