"""``aifdata mcp``: the catalog as Model Context Protocol tools, on standard input and
output, for an LLM agent that starts this command (Claude Desktop, an IDE, a script)."""

from __future__ import annotations

from ._app import app, state
from ._options import CatalogOption, open_catalog


@app.command("mcp")
def mcp_command(catalog: CatalogOption = None) -> None:
    """Serve MCP tools over stdio (search, describe, where, lineage, partitions, samples)
    as this process's principal ($AIFDATA_USER); every call is checked and audited."""
    from ..service import run_stdio  # the mcp package loads only for this command

    run_stdio(open_catalog(catalog), state.config)
