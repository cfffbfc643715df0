"""``aifdata lineage NAME``: what a dataset version was made from, and what was made from it."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from typing import Annotated

import typer

from ..catalog import LineageNode, RunRecord, send_openlineage
from ._app import app
from ._options import CatalogOption, JsonFlag, open_catalog, print_json


@app.command("lineage")
def lineage_command(
    name: Annotated[str, typer.Argument(help="NAME (latest version) or NAME@VERSION.")],
    depth: Annotated[int | None, typer.Option(min=0, help="Stop after this many runs.")] = None,
    openlineage: Annotated[
        str | None,
        typer.Option(
            "--openlineage",
            help="Also send the runs shown as OpenLineage events: a .jsonl file or an http(s) URL.",
        ),
    ] = None,
    catalog: CatalogOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the upstream and downstream lineage graph of a dataset version."""
    if openlineage is not None and not openlineage.strip():
        raise typer.BadParameter("an empty URL: name a file or an http(s):// endpoint")
    cat = open_catalog(catalog)
    trees = cat.lineage(name, depth=depth)
    if openlineage is not None:
        runs = _runs(trees.values())
        sent = send_openlineage(cat.openlineage_events(runs), openlineage)
        typer.echo(f"sent {sent} OpenLineage events to {openlineage}", err=True)
    if as_json:
        payload = {k: v.as_dict() for k, v in trees.items()}
        print_json(payload)
        return
    root = trees["upstream"]
    typer.echo(f"{root.dataset}@{root.version}")
    for i, direction in enumerate(("upstream", "downstream")):
        last = i == 1
        typer.echo(("└── " if last else "├── ") + direction)
        for line in _render(trees[direction], "    " if last else "│   ", direction):
            typer.echo(line)


def _runs(trees: Iterable[LineageNode]) -> list[RunRecord]:
    """Every run in the trees, once each."""
    seen: dict[str, RunRecord] = {}

    def walk(node: LineageNode) -> None:
        for run, nodes in node.runs:
            seen.setdefault(run.run_id, run)
            for child in nodes:
                walk(child)

    for tree in trees:
        walk(tree)
    return sorted(seen.values(), key=lambda r: r.started)


def _describe(run: RunRecord) -> str:
    when = datetime.datetime.fromtimestamp(run.started).strftime("%Y-%m-%d %H:%M")
    code = ""
    if run.script:
        code = f"  {run.script.rsplit('/', 1)[-1]}"
        if run.git_commit:
            code += f" @ {run.git_commit[:10]}"
    params = f"  {json.dumps(run.params, sort_keys=True)}" if run.params else ""
    return f"{run.job}  [{run.state}]  by {run.user}  {when}{code}{params}  run {run.run_id[:8]}"


def _hidden_label(count: int, direction: str) -> str:
    """``1 ancestor hidden``, ``3 descendants hidden``: datasets the reader may not see,
    counted and never named."""
    noun = "ancestor" if direction == "upstream" else "descendant"
    return f"{count} {noun}{'' if count == 1 else 's'} hidden"


def _render(node: LineageNode, indent: str, direction: str) -> list[str]:
    if not node.runs:
        return [f"{indent}└── (none)"]
    lines: list[str] = []
    for i, (run, nodes) in enumerate(node.runs):
        last_run = i == len(node.runs) - 1
        lines.append(f"{indent}{'└── ' if last_run else '├── '}{_describe(run)}")
        inner = indent + ("    " if last_run else "│   ")
        hidden = run.hidden_inputs if direction == "upstream" else run.hidden_outputs
        for j, child in enumerate(nodes):
            last = j == len(nodes) - 1 and not hidden
            lines.append(f"{inner}{'└── ' if last else '├── '}{child.dataset}@{child.version}")
            if child.runs:
                lines.extend(_render(child, inner + ("    " if last else "│   "), direction))
        if hidden:
            lines.append(f"{inner}└── ({_hidden_label(hidden, direction)})")
    return lines
