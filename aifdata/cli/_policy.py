"""``aifdata policy``: grant, revoke and list access; read the audit; export S3 policies."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..catalog import PRIVILEGES
from ._app import app
from ._options import CatalogOption, JsonFlag, open_catalog, print_json

policy_app = typer.Typer(
    help="Who may read, write or administer which datasets.", no_args_is_help=True
)
app.add_typer(policy_app, name="policy")

Principal = Annotated[
    str, typer.Argument(help="user:NAME, group:NAME, NAME (a user) or '*' (everyone).")
]
Privilege = Annotated[str, typer.Argument(help=" | ".join(PRIVILEGES))]
Pattern = Annotated[
    str, typer.Argument(help="A dataset name, PREFIX/* (e.g. 'genomics/*') or '*' (everything).")
]


@policy_app.command("grant")
def grant(
    principal: Principal, privilege: Privilege, pattern: Pattern, catalog: CatalogOption = None
) -> None:
    """Let PRINCIPAL read, write or administer what PATTERN covers."""
    g = open_catalog(catalog).grant(principal, privilege, pattern)
    typer.echo(f"granted {g.privilege} on {g.pattern} to {g.principal}")


@policy_app.command("revoke")
def revoke(
    principal: Principal, privilege: Privilege, pattern: Pattern, catalog: CatalogOption = None
) -> None:
    """Remove a grant."""
    open_catalog(catalog).revoke(principal, privilege, pattern)
    typer.echo(f"revoked {privilege} on {pattern} from {principal}")


@policy_app.command("list")
def list_grants(
    pattern: Annotated[str | None, typer.Argument(help="Only grants that cover this name.")] = None,
    catalog: CatalogOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List the catalog admins and the grants you administer (admins: every grant)."""
    cat = open_catalog(catalog)
    grants, admins = cat.grants(pattern), cat.admins()
    if as_json:
        payload = {
            "admins": admins,
            "grants": [
                {"principal": g.principal, "privilege": g.privilege, "pattern": g.pattern,
                 "granted_by": g.granted_by, "created": g.created}
                for g in grants
            ],
        }  # fmt: skip
        print_json(payload)
        return
    typer.echo(f"admins: {', '.join(admins) or '(none)'}")
    for g in grants:
        typer.echo(f"{g.pattern:<32} {g.privilege:<6} {g.principal:<24} by {g.granted_by}")


@policy_app.command("audit")
def audit(
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows, newest first.")] = 50,
    catalog: CatalogOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Show recent access decisions (refusals, grants, revokes); admins only."""
    rows = open_catalog(catalog).audit_log(limit)
    if as_json:
        print_json(rows)
        return
    for r in rows:
        verdict = "allowed" if r["allowed"] else "DENIED"
        when = datetime.datetime.fromtimestamp(r["time"]).strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(
            f"{when} {verdict:<7} {r['principal']:<20} {r['action']:<8} "
            f"{r['privilege']:<6} {r['target']}"
        )


@policy_app.command("export")
def export_policy(
    s3: Annotated[bool, typer.Option("--s3", help="S3 bucket policy JSON.")] = False,
    account: Annotated[
        str | None,
        typer.Option(help="Account id of user principals (SeaweedFS: 000000000000)."),
    ] = None,
    bucket: Annotated[str | None, typer.Option(help="Only this bucket's policy document.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    catalog: CatalogOption = None,
) -> None:
    """Write the grants as S3 bucket policies (``{bucket: document}``, or one with --bucket):
    Allow for the granted, an explicit Deny for everyone else on each governed location.
    Apply them to the server (put-bucket-policy) so that it refuses those who hold S3
    credentials and go around aifdata; export and apply again after grants change."""
    if not s3:
        raise typer.BadParameter("choose an export format: --s3")
    documents = open_catalog(catalog).s3_bucket_policies(account)
    if bucket is not None and bucket not in documents:
        known = ", ".join(documents) or "(none)"
        raise typer.BadParameter(f"no grant reaches bucket {bucket!r}; buckets: {known}")
    chosen = documents if bucket is None else documents[bucket]
    text = json.dumps(chosen, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")
