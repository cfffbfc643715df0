"""``aifdata catalog``: back up, restore and check the catalog file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import CatalogError, NotFound
from ..catalog import Catalog
from ._app import app
from ._options import CatalogOption, JsonFlag, open_catalog, print_json

catalog_app = typer.Typer(help="Back up, restore and check the catalog file.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")

Force = Annotated[bool, typer.Option("--force", help="Replace a file that is in the way.")]


def _existing(path: str | None) -> Catalog:
    cat = open_catalog(path)
    if not cat.exists():
        raise NotFound(f"no catalog at {cat.path}")
    return cat


@catalog_app.command("backup")
def backup(
    dest: Annotated[str, typer.Argument(help="The backup file to write.")],
    force: Force = False,
    catalog: CatalogOption = None,
) -> None:
    """Copy the live catalog to DEST (SQLite's online backup; writers go on); admins only."""
    cat = _existing(catalog)
    written = cat.backup(_path(dest, "the backup file"), force=force)
    typer.echo(f"backed up {cat.path} to {written} ({written.stat().st_size:,} bytes)")


@catalog_app.command("restore")
def restore(
    source: Annotated[str, typer.Argument(help="A backup made by `aifdata catalog backup`.")],
    force: Force = False,
    catalog: CatalogOption = None,
) -> None:
    """Make the catalog hold what the backup SOURCE holds, once it is checked; admins only.

    Stop the catalog's writers first: what they wrote since the backup is lost.
    """
    backup_file = _path(source, "the backup to restore")
    cat = open_catalog(catalog, create=True)
    cat.restore(backup_file, force=force)
    typer.echo(f"restored {cat.path} from {source}")


@catalog_app.command("check")
def check(catalog: CatalogOption = None, as_json: JsonFlag = False) -> None:
    """Check the catalog file with SQLite's integrity and foreign-key checks."""
    cat = _existing(catalog)
    found = cat.check()
    if as_json:
        print_json({"catalog": str(cat.path), "read_only": cat.read_only, "problems": found})
    elif not found:
        typer.echo(f"{cat.path}: intact" + (" (read-only here)" if cat.read_only else ""))
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise CatalogError(f"{cat.path}: damaged: {found[0]}{more}")


def _path(text: str, what: str) -> Path:
    """A path argument, refused when empty (``Path("")`` would be the current directory)."""
    if not text.strip():
        raise typer.BadParameter(f"an empty path: name {what}")
    return Path(text)
