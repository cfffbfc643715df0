"""The catalog as a service: ``aifdata serve`` (an HTTP API with tokens that vends
presigned URLs, and a web page) and ``aifdata mcp`` (a Model Context Protocol server).

Every request acts as its token's principal (:func:`aifdata.catalog.acting_as`), with
the same grants and audit as the library."""

from ._mcp import mcp_server, run_stdio
from ._mcp_http import McpEndpoint, mcp_http

__all__ = ["McpEndpoint", "mcp_http", "mcp_server", "run_stdio"]
