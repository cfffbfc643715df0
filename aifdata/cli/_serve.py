"""``aifdata serve`` (the catalog over HTTP) and ``aifdata token`` (who may call it)."""

from __future__ import annotations

import datetime
import ipaddress
import os
from typing import Annotated

import typer

from ..catalog import ApiToken, create_token, list_tokens, revoke_token
from ._app import app, state
from ._options import CatalogOption, JsonFlag, open_catalog, print_json

token_app = typer.Typer(help="API tokens of aifdata serve: create, list, revoke.",
                        no_args_is_help=True)  # fmt: skip
app.add_typer(token_app, name="token")


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: [service] host, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port (default: [service] port, 8750).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Processes serving requests (default: [service] workers, 1)."),
    ] = None,
    catalog: CatalogOption = None,
) -> None:
    """Serve the catalog as an HTTP JSON API and a web page; every request acts as its token's
    principal."""
    import uvicorn

    from ..service import WEB_ROUTES, ServiceSettings, build_app

    settings = ServiceSettings.from_config(state.config, host=host, port=port, workers=workers)
    served = open_catalog(catalog)
    # aif:// URLs opened in this process (partition plans) and the other workers use it too
    os.environ["AIFDATA_CATALOG"] = str(served.location)
    if state.config_path is not None:
        os.environ["AIFDATA_CONFIG"] = str(state.config_path)
    application = build_app(served, settings, extra_routes=WEB_ROUTES, mcp=True)
    base = f"{settings.scheme}://{settings.host}:{settings.port}"
    typer.echo(f"aifdata serve: {base}/api/v1/ (the web page: {base}/; MCP: {base}/mcp)", err=True)
    if not _loopback(settings.host) and settings.scheme == "http":
        typer.echo(
            f"aifdata serve: {settings.host} is reachable from other machines and tokens travel"
            " in plain HTTP: set tls_certfile and tls_keyfile in [service], or put a TLS"
            " proxy in front of it",
            err=True,
        )
    if settings.workers > 1:  # each process builds its own (from the environment set above)
        typer.echo(f"aifdata serve: {settings.workers} worker processes", err=True)
        served.close()
        uvicorn.run(
            "aifdata.service._worker:app", factory=True, workers=settings.workers,
            host=settings.host, port=settings.port, log_level="warning",
            ssl_certfile=settings.tls_certfile, ssl_keyfile=settings.tls_keyfile,
        )  # fmt: skip
        return
    uvicorn.run(
        application, host=settings.host, port=settings.port, log_level="warning",
        ssl_certfile=settings.tls_certfile, ssl_keyfile=settings.tls_keyfile,
    )  # fmt: skip


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "never"
    return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@token_app.command("create")
def create(
    principal: Annotated[str, typer.Argument(help="user:NAME (or NAME) the token acts as.")],
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime, e.g. 12h, 30d (default: never).")
    ] = None,
    group: Annotated[
        list[str] | None, typer.Option("--group", help="A group it acts with (repeatable).")
    ] = None,
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
    catalog: CatalogOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Make a token (admins: for anyone; users: for themselves). Prints its secret once."""
    made = create_token(
        open_catalog(catalog), principal, groups=group or (), label=label,
        expires_in=None if expires in (None, "never") else expires,
    )  # fmt: skip
    if as_json:
        print_json({**made.token.as_dict(), "token": made.text})
        return
    typer.echo(made.text)
    typer.echo(
        f"token {made.token.id} for {made.token.principal}, expires {_when(made.token.expires)}:"
        " the secret above is shown only now",
        err=True,
    )


@token_app.command("list")
def list_command(
    principal: Annotated[
        str | None, typer.Option(help="Only this principal's tokens (admins).")
    ] = None,
    catalog: CatalogOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List tokens, without their secrets (admins: all; users: their own)."""
    tokens = list_tokens(open_catalog(catalog), principal)
    if as_json:
        print_json([t.as_dict() for t in tokens])
        return
    for t in tokens:
        typer.echo(_line(t))
    if not tokens:
        typer.echo("no tokens", err=True)


def _line(t: ApiToken) -> str:
    groups = ",".join(t.groups) or "-"
    return (
        f"{t.id}  {t.principal:<20} {t.state():<8} expires {_when(t.expires):<16}"
        f"  groups {groups}  {t.label}"
    )


@token_app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id (token list).")],
    catalog: CatalogOption = None,
) -> None:
    """Revoke a token at once (your own; admins: any)."""
    gone = revoke_token(open_catalog(catalog), token_id)
    typer.echo(f"revoked token {gone.id} of {gone.principal}")
