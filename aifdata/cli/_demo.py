"""``aifdata demo``: the main job end to end on a real S3 server and a PFS directory."""

from __future__ import annotations

import shlex
import shutil
import sys
from typing import Annotated

import typer

from ._app import app


@app.command("demo")
def demo_command(
    s3_endpoint: Annotated[
        str | None,
        typer.Option(
            "--s3-endpoint",
            help="Use this S3 server (credentials from AWS_ACCESS_KEY_ID and"
            " AWS_SECRET_ACCESS_KEY) instead of starting SeaweedFS.",
        ),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the server and files running; print the setup.")
    ] = False,
) -> None:
    """Ingest, stage, partition, Dask, PyTorch, lineage and a policy denial, in two minutes."""
    from .._demo import run  # an application of the public API, above it

    report = run(s3_endpoint=s3_endpoint, keep=keep, echo=typer.echo)
    typer.echo("")
    typer.echo(report.text())
    if keep:
        typer.echo("")
        if s3_endpoint is None and not report.stop_command:
            typer.echo("The S3 server (moto) ran inside this process and stopped with it;")
            typer.echo("the catalog and the PFS files are kept. To look at them from a shell:")
        else:
            typer.echo("Everything is still running. To use it from a shell:")
        for key, value in report.environment.items():
            typer.echo(f"  export {key}={shlex.quote(value)}")
        exe = "aifdata" if shutil.which("aifdata") else f"{sys.executable} -m aifdata"
        typer.echo(f"  {exe} search demo; {exe} lineage genomics/read-lengths")
        if report.stop_command:
            typer.echo(f"When done: {report.stop_command}; rm -rf {shlex.quote(str(report.home))}")
