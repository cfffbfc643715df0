"""What the command modules share: the ``--json`` and ``--catalog`` options, the catalog
they name, the progress bar, JSON printing."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from .. import NotFound
from ..catalog import Catalog
from ._app import state

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

CatalogOption = Annotated[
    str | None,
    typer.Option(
        "--catalog", help="Catalog file (default $AIFDATA_CATALOG, else $AIFDATA_HOME/catalog.db)."
    ),
]


def open_catalog(path: str | None, create: bool = False) -> Catalog:
    """The catalog at ``--catalog PATH`` (which must exist unless ``create``), else the
    default one."""
    remote = path is not None and "://" in path  # a PostgreSQL catalog's URL
    if path is not None and not remote and not create and not Path(path).expanduser().exists():
        raise NotFound(f"no catalog at {path} (aifdata ingest --catalog {path} makes one)")
    return Catalog(path, config=state.config)


def catalog_argument(cat: Catalog) -> str:
    """``--catalog`` for a job that opens the same catalog: its absolute file, or its URL."""
    return str(cat.location) if cat.is_postgres else os.path.abspath(cat.path)


def print_json(value: Any) -> None:
    """Write ``value`` to standard output as indented JSON (anything else as its ``str``)."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def finish(report: Any, as_json: bool, show: Callable[[Any], None]) -> None:
    """Print a report (``as_dict`` as JSON, else by ``show``); exit 1 unless it is ``ok``."""
    if as_json:
        print_json(report.as_dict())
    else:
        show(report)
    if not report.ok:
        raise typer.Exit(1)


def progress_bar(show: bool) -> Progress | NoProgress:
    """A byte-counting progress bar on standard error, shown only if ``show``, erased when
    done."""
    if not show:  # not a disabled Progress: older rich still writes a blank line at its end
        return NoProgress()
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


class NoProgress:
    """A progress bar that is not shown: it counts nothing and writes nothing."""

    def __enter__(self) -> NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None) -> TaskID:
        return TaskID(0)

    def advance(self, task: TaskID, advance: float = 1) -> None:
        return None
