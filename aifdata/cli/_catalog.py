"""Catalog commands: ingest, datasets, show."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from .. import NotFound
from ..catalog import Dataset, split_ref
from ._app import app, state
from ._options import (
    CatalogOption,
    JsonFlag,
    catalog_argument,
    open_catalog,
    print_json,
    progress_bar,
)
from ._slurm import JOB_CONTEXT, ScriptOption, SlurmFlag, job_options, run_as_job


def _as_dict(ds: Dataset) -> dict[str, object]:
    return {
        "name": ds.name,
        "version": ds.version,
        "description": ds.description,
        "owner": ds.owner,
        "tags": dict(ds.tags),
        "source": ds.source,
        "digest": ds.digest,
        "files": [
            {"path": f.path, "size": f.size, "checksum": f.checksum, "format": f.format,
             "replicas": [{"tier": t, "url": u} for t, u in f.replicas]}
            for f in ds.files
        ],
    }  # fmt: skip


@app.command()
def ingest(
    source: Annotated[
        str, typer.Argument(help="A file, directory or prefix: aif://, s3:// or local.")
    ],
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Dataset name, e.g. genomics/run42.")
    ],
    description: Annotated[str | None, typer.Option(help="What the dataset is.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE (repeatable).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Files checksummed at once.")] = 8,
    checksum: Annotated[
        bool,
        typer.Option(
            "--checksum/--no-checksum",
            help="Hash every file (SHA-256); --no-checksum records size and mtime/ETag only.",
        ),
    ] = True,
    catalog: CatalogOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Record the files under SOURCE (with SHA-256 checksums) as a version of a dataset."""
    tags = dict(_split_tag(t) for t in tag or [])
    cat = open_catalog(catalog, create=True)
    with progress_bar(sys.stderr.isatty() and not as_json) as progress:
        task = progress.add_task("checksumming", total=None)
        ds = cat.ingest(
            source, dataset, description=description, tags=tags, workers=workers,
            checksum=checksum,
            progress=lambda n: progress.advance(task, n),
        )  # fmt: skip
    if as_json:
        print_json(_as_dict(ds))
        return
    typer.echo(f"{ds.name}@{ds.version}: {len(ds.files)} file(s), {ds.total_bytes:,} bytes")


def _split_tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"tag {text!r} is not KEY=VALUE")
    return key, value


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="NAME or NAME@VERSION.")],
    catalog: CatalogOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Show a dataset version: files, checksums, tiers, lineage summary and grants."""
    base, version = split_ref(name)
    cat = open_catalog(catalog)
    ds = cat.dataset(base, version)
    if as_json:
        payload = _as_dict(ds)
        payload["lineage"] = [r.as_dict() for r in ds.lineage]
        payload["grants"] = [
            {"principal": g.principal, "privilege": g.privilege, "pattern": g.pattern}
            for g in cat.grants(ds.name)
        ]
        print_json(payload)
        return
    typer.echo(f"{ds.name}@{ds.version}  owner {ds.owner}  {ds.total_bytes:,} bytes")
    if ds.description:
        typer.echo(f"  {ds.description}")
    for f in ds.files:
        tiers = ",".join(t for t, _ in f.replicas)
        typer.echo(f"  {f.size:>14,}  {f.checksum[:19]}…  {tiers:<8} {f.path}")
    for run in ds.lineage:
        made_from = _with_hidden(run.inputs, run.hidden_inputs, "no catalog inputs")
        typer.echo(f"  made by {run.job} (run {run.run_id[:8]}, {run.user}) from {made_from}")
    used = [r for r in cat.runs(f"{ds.name}@{ds.version}") if (ds.name, ds.version) in r.inputs]
    for run in used:
        made = _with_hidden(run.outputs, run.hidden_outputs, "nothing recorded yet")
        typer.echo(f"  used by {run.job} (run {run.run_id[:8]}, {run.user}) to make {made}")
    grants = cat.grants(ds.name)
    typer.echo(f"  owner {ds.owner} (admin)" + "".join(
        f"; {g.principal} {g.privilege} via {g.pattern}" for g in grants
    ))  # fmt: skip


def _with_hidden(versions: Sequence[tuple[str, int]], hidden: int, none: str) -> str:
    """``a@1, b@2`` and a count of those the caller may not see (never their names)."""
    shown = [f"{n}@{v}" for n, v in versions]
    if hidden:
        shown.append(f"{hidden} hidden")
    return ", ".join(shown) or none


@app.command(context_settings=JOB_CONTEXT)
def stage(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="NAME or NAME@VERSION.")],
    to: Annotated[str, typer.Option("--to", help="Tier to stage to (e.g. pfs or s3).")],
    workers: Annotated[int, typer.Option(min=1, help="Files copied at once.")] = 8,
    catalog: CatalogOption = None,
    slurm: SlurmFlag = False,
    script: ScriptOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Copy a dataset's missing or stale files to a tier, verify checksums, record replicas.

    With --slurm the copy runs as a Slurm batch job (sbatch options after --), and the job id
    is printed for the next job's --dependency=afterok:ID; --script FILE writes that job's
    script instead. The dataset and the tier are checked here first.
    """
    options = job_options(ctx, slurm, script)
    base, version = split_ref(name)
    _require_tier(to)
    cat = open_catalog(catalog)
    if options is not None:
        cat.require(base, "write", "stage")
        cat.dataset(base, version)  # NotFound now, not in the job
        argv = ["stage", name, "--to", to, "--catalog", catalog_argument(cat)]
        run_as_job([*argv, "--workers", str(workers)], options, script, as_json)
        return
    report = cat.stage(base, to, version, workers)
    if as_json:
        payload = {
            "copied": list(report.copied),
            "present": list(report.present),
            "bytes_copied": report.bytes_copied,
        }
        print_json(payload)
        return
    typer.echo(
        f"{base} -> {to}: {len(report.copied)} copied ({report.bytes_copied:,} bytes), "
        f"{len(report.present)} already in place"
    )


def _require_tier(name: str) -> None:
    tiers = sorted({t.name for m in state.config.mounts for t in m.tiers})
    if name not in tiers:
        known = ", ".join(tiers) or "none: the mount table has no mounts"
        raise NotFound(f"no tier {name!r} in the mount table; tiers: {known}")


@app.command()
def export(
    dest: Annotated[str, typer.Argument(help="A directory, s3:// or aif:// prefix.")],
    catalog: CatalogOption = None,
) -> None:
    """Write the catalog's tables as Parquet (for DuckDB, pandas, Spark, Catalog.from_parquet)."""
    written = open_catalog(catalog).export(dest)
    typer.echo(f"wrote {len(written)} tables under {dest}")


@app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help="Words to find (prefixes count).")] = "",
    format: Annotated[
        str | None, typer.Option("--format", help="Only datasets with files of this format.")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE (repeatable).")] = None,
    owner: Annotated[str | None, typer.Option(help="Only datasets of this owner.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many results.")] = 50,
    catalog: CatalogOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Search dataset names, descriptions, tags and formats, best match first."""
    tags = dict(_split_tag(t) for t in tag or [])
    hits = open_catalog(catalog).search(query, format=format, tags=tags, owner=owner, limit=limit)
    if as_json:
        rows = [
            {"name": h.name, "description": h.description, "owner": h.owner,
             "tags": dict(h.tags), "score": round(h.score, 4)}
            for h in hits
        ]  # fmt: skip
        print_json(rows)
        return
    for h in hits:
        typer.echo(f"{h.name:<40} {h.owner:<12} {h.description}")
