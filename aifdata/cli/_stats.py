"""``aifdata stats``: what each tier served per dataset, hydrations, releases, hit ratios."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer

from ..managed import TierStats, by_dataset, stats
from ._app import app
from ._options import CatalogOption, JsonFlag, open_catalog, print_json

#: Prometheus help text of each counter (exposed as ``aifdata_<name>_total``).
HELP = {
    "bytes_served": "Bytes read, by the tier that served them.",
    "files_served": "Reads (whole files, ranges, opens), by the tier that served them.",
    "hits": "Reads of a managed mount served by a local tier (PFS or cache).",
    "misses": "Reads of a managed mount served by a remote tier (S3).",
    "s3_requests_saved": "Reads a local tier served instead of S3.",
    "hydrations": "Copies left on the tier by a read or a prefetch.",
    "bytes_hydrated": "Bytes of the copies hydrated onto the tier.",
    "hydration_failures": "Hydrations that failed (the read was served by S3).",
    "releases": "Copies released from the tier.",
    "bytes_released": "Bytes of the copies released from the tier.",
}


@app.command("stats")
def stats_command(
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Only this dataset (NAME).")
    ] = None,
    prometheus: Annotated[
        bool, typer.Option("--prometheus", help="Print Prometheus text exposition format.")
    ] = False,
    catalog: CatalogOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Bytes and files served per dataset and tier, hydrations, releases, cache hits and
    misses, S3 requests saved: the totals of every process, for the datasets you may read."""
    if as_json and prometheus:
        raise typer.BadParameter("give --json or --prometheus, not both")
    rows = stats(open_catalog(catalog), dataset)
    if prometheus:
        typer.echo(prometheus_text(rows), nl=False)
    elif as_json:
        totals = by_dataset(rows)
        print_json(
            {
                "tiers": [r.as_dict() for r in rows],
                "datasets": {
                    name: {k: v for k, v in t.as_dict().items() if k != "tier"}
                    for name, t in totals.items()
                },
            }
        )
    else:
        typer.echo(table(rows))


def table(rows: Sequence[TierStats]) -> str:
    """A table per dataset and tier, then each dataset's hit ratio."""
    if not rows:
        return "no reads counted yet (reads of aif:// mounts are counted once a catalog exists)"
    head = ("DATASET", "TIER", "FILES", "BYTES", "HITS", "MISSES", "HYDRATED", "RELEASED")
    body = [
        (r.dataset, r.tier, str(r.files_served), f"{r.bytes_served:,}", str(r.hits),
         str(r.misses), str(r.hydrations), str(r.releases))
        for r in rows
    ]  # fmt: skip
    widths = [max(len(line[i]) for line in (head, *body)) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
             for line in (head, *body)]  # fmt: skip
    ratios = [_ratio_line(t) for t in by_dataset(rows).values()]
    return "\n".join(lines + [""] + [r for r in ratios if r])


def _ratio_line(total: TierStats) -> str:
    ratio = total.hit_ratio
    if ratio is None:
        return ""
    reads = total.hits + total.misses
    return (
        f"{total.dataset}: hit ratio {ratio:.0%} ({total.hits} of {reads} reads from a local"
        f" tier), {total.s3_requests_saved} S3 requests saved"
    )


def prometheus_text(rows: Sequence[TierStats]) -> str:
    """The counters in Prometheus text exposition format (version 0.0.4)."""
    out: list[str] = []
    for counter, help_text in HELP.items():
        metric = f"aifdata_{counter}_total"
        out += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
        for r in rows:
            labels = f'dataset="{_label(r.dataset)}",tier="{_label(r.tier)}"'
            out.append(f"{metric}{{{labels}}} {getattr(r, counter)}")
    return "\n".join(out) + "\n"


def _label(value: str) -> str:
    """A label value escaped as the exposition format asks (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
