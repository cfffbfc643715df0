"""``aifdata mcp``: the catalog as Model Context Protocol tools for LLM agents.

:func:`mcp_server` builds an :class:`~mcp.server.mcpserver.MCPServer` whose
tools (:mod:`._mcp_tools`) search datasets, describe a version, say where a
file is served from, show lineage, plan partitions and read a bounded sample.
Every call runs as the caller's principal inside :func:`~aifdata.catalog.acting_as`
(over stdio, the process's; over HTTP, the bearer token's: :mod:`._mcp_http`),
so the library's own grant checks decide, and leaves one audit row,
action ``mcp:<tool>`` (allowed when the tool answered; a refusal the library made
also has the library's own row). A refusal or bad input comes back as a tool error with the
library's message, never a traceback. Over HTTP, a tool call longer than the request
timeout is answered as a tool error (its worker thread is left to finish), and holds its
token's slot among the requests running until that thread ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from .. import AifDataError, Catalog, Config, __version__, one_line
from ..catalog import Principal, acting_as, current_principal
from ._limits import Slot
from ._mcp_tools import MAX_FILES, MAX_PLAN_PARTITIONS, MAX_SAMPLE_RECORDS, CatalogTools
from ._responses import hide_location

#: How a tool call finds its caller: from the request (a token), or the process's.
PrincipalOf = Callable[[Context], Principal]
#: How a tool call finds the slot its request holds among its token's (None: no cap).
SlotOf = Callable[[Context], Slot | None]

INSTRUCTIONS = """\
aifdata's catalog of scientific datasets on S3 and parallel file systems. Find datasets
with search_datasets, open one with describe_dataset (NAME or NAME@VERSION), then use its
files' aif:// paths with where_is, plan_partitions and read_sample. You see only what your
principal is granted: a dataset you may not read is reported as unknown."""

_READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)

Ref = Annotated[
    str, Field(description="A dataset version: NAME (the latest) or NAME@VERSION, e.g. x/y@2.")
]
AifPath = Annotated[str, Field(description="A file's aif:// path, e.g. aif://genomics/run42/a.fq.")]
FormatName = Annotated[
    str | None, Field(description="Force a format plug-in (fastq, csv, ...); default: detect.")
]
Region = Annotated[
    str | None, Field(description="VCF, BAM, FASTA: only a region, e.g. chr1:1-1000000.")
]
Variable = Annotated[str | None, Field(description="HDF5, NetCDF4: the variable to split.")]
By = Annotated[str | None, Field(description="FASTA: 'residues' to cut within sequences.")]


def plan_options(region: str | None, variable: str | None, by: str | None) -> dict[str, str]:
    """The format plan options given (a format refuses one it does not take, by name)."""
    given = {"region": region, "variable": variable, "by": by}
    return {name: value for name, value in given.items() if value is not None}


def mcp_server(
    catalog: Catalog,
    config: Config,
    principal_of: PrincipalOf,
    *,
    slot_of: SlotOf | None = None,
    timeout: float | None = None,
) -> MCPServer:
    """An MCP server over ``catalog`` whose every tool call acts as ``principal_of(ctx)``,
    holds ``slot_of(ctx)`` until its work ends, and is a tool error past ``timeout``
    seconds (None: no limit)."""
    # the SDK configures the root logger (a rich handler) unless the process did: at its
    # default (INFO) every info line of a busy server is rendered under one lock
    server: MCPServer = MCPServer(
        "aifdata", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING"
    )
    tools = _Tools(CatalogTools(catalog, config), catalog, principal_of, slot_of, timeout)
    for method in (
        tools.search_datasets, tools.describe_dataset, tools.where_is, tools.lineage,
        tools.plan_partitions, tools.read_sample,
    ):  # fmt: skip
        server.add_tool(method, annotations=_READ_ONLY, structured_output=True)
    return server


def run_stdio(catalog: Catalog, config: Config) -> None:
    """Serve the tools on standard input and output, as this process's principal
    (``$AIFDATA_USER``), until the client closes the stream."""
    who = current_principal()
    anyio.run(mcp_server(catalog, config, lambda _ctx: who).run_stdio_async)


class _Tools:
    """The tools as MCP sees them: typed, described parameters; each call as its caller,
    audited, its errors as tool errors."""

    def __init__(
        self,
        work: CatalogTools,
        catalog: Catalog,
        principal_of: PrincipalOf,
        slot_of: SlotOf | None = None,
        timeout: float | None = None,
    ) -> None:
        self.work, self.catalog, self.principal_of = work, catalog, principal_of
        self.slot_of, self.timeout = slot_of, timeout

    async def search_datasets(
        self,
        ctx: Context,
        query: Annotated[str, Field(description="Words to find; prefixes count.")] = "",
        limit: Annotated[int, Field(ge=1, le=200, description="At most this many.")] = 20,
        format: Annotated[str | None, Field(description="Only datasets with this format.")] = None,
        owner: Annotated[str | None, Field(description="Only datasets of this owner.")] = None,
    ) -> dict[str, Any]:
        """Search dataset names, descriptions, tags and file formats, best match first.
        Lists only datasets the caller may read."""
        return await self._call(
            ctx,
            "search_datasets",
            query,
            "(catalog)",
            lambda: self.work.search_datasets(query, limit, format, owner),
        )

    async def describe_dataset(
        self,
        ctx: Context,
        ref: Ref,
        max_files: Annotated[
            int, Field(ge=0, le=MAX_FILES, description="List at most this many files.")
        ] = 200,
    ) -> dict[str, Any]:
        """Describe a dataset version: owner, description, tags, formats, total size, and
        its files with sizes, SHA-256 checksums, formats, the tiers holding them and the
        aif:// path to read each one; also the runs that made it."""
        return await self._call(
            ctx,
            "describe_dataset",
            ref,
            _dataset_of(ref),
            lambda: self.work.describe_dataset(ref, max_files),
        )

    async def where_is(self, ctx: Context, path: AifPath) -> dict[str, Any]:
        """Say which tier (a parallel file system or S3) would serve a read of an aif://
        file, the storage URL it would read, and why; tiers passed over are listed."""
        return await self._call(ctx, "where_is", path, path, lambda: self.work.where_is(path))

    async def lineage(
        self,
        ctx: Context,
        ref: Ref,
        depth: Annotated[
            int | None, Field(ge=0, description="Stop after this many runs; default: all.")
        ] = None,
    ) -> dict[str, Any]:
        """The lineage of a dataset version: upstream (the runs that made it and their
        inputs) and downstream (the runs that used it and what they made). Datasets the
        caller may not read are counted, never named."""
        return await self._call(
            ctx, "lineage", ref, _dataset_of(ref), lambda: self.work.lineage(ref, depth)
        )

    async def plan_partitions(
        self,
        ctx: Context,
        path: AifPath,
        n: Annotated[
            int | None,
            Field(ge=1, le=MAX_PLAN_PARTITIONS, description="This many partitions."),
        ] = None,
        target_bytes: Annotated[
            int | None, Field(ge=1, description="Or: about this many bytes per partition.")
        ] = None,
        format: FormatName = None,
        region: Region = None,
        variable: Variable = None,
        by: By = None,
    ) -> dict[str, Any]:
        """Plan the partitions of an aif:// file with its format plug-in (FASTQ, CSV, BAM,
        GeoTIFF, HDF5, ...) from a few small range reads: independent pieces that
        together hold every record once. Give n or target_bytes (default about 64 MiB)."""
        return await self._call(
            ctx,
            "plan_partitions",
            path,
            path,
            lambda: self.work.plan_partitions(
                path, n, target_bytes, format, plan_options(region, variable, by)
            ),
        )

    async def read_sample(
        self,
        ctx: Context,
        path: AifPath,
        limit: Annotated[
            int, Field(ge=1, le=MAX_SAMPLE_RECORDS, description="At most this many records.")
        ] = 10,
        partition: Annotated[
            int,
            Field(
                ge=0,
                description="Which partition of the sample's plan (1 to 64 MiB each; the result"
                " says how many there are).",
            ),
        ] = 0,
        format: FormatName = None,
        region: Region = None,
        variable: Variable = None,
        by: By = None,
    ) -> dict[str, Any]:
        """Read a few records of an aif:// file as JSON: the first records of one small
        partition, at most `limit` of them and 64 KiB in all (long values are cut and
        say so); `cut` and `why_cut` tell whether more records were left unread."""
        return await self._call(
            ctx,
            "read_sample",
            path,
            path,
            lambda: self.work.read_sample(
                path, limit, partition, format, plan_options(region, variable, by)
            ),
        )

    async def _call(
        self,
        ctx: Context,
        tool: str,
        target: str,
        resource: str,
        work: Callable[[], dict[str, Any]],
    ) -> dict[str, Any]:
        """``work()`` as the caller in a worker thread, within the timeout, with one audit
        row; its failure (or its taking too long) as a tool error."""
        who = self.principal_of(ctx)
        slot = self.slot_of(ctx) if self.slot_of is not None else None
        thread = _Abandonable(slot.hold() if slot is not None else None)
        with anyio.move_on_after(self.timeout):
            try:
                return await anyio.to_thread.run_sync(
                    thread.wrap(lambda: self._run(who, tool, target, resource, work)),
                    abandon_on_cancel=True,
                )
            finally:
                thread.abandon()
        raise ToolError(f"{tool} took longer than {self.timeout:g} s; nothing was returned")

    def _run(
        self,
        who: Principal,
        tool: str,
        target: str,
        resource: str,
        work: Callable[[], dict[str, Any]],
    ) -> dict[str, Any]:
        with acting_as(who), self.catalog.one_policy():
            try:
                result = work()
            except Exception as exc:
                self._audit(who, tool, target, resource, allowed=False)
                if isinstance(exc, AifDataError | OSError | ValueError):
                    raise ToolError(one_line(hide_location(exc, self.catalog))) from None
                raise
            self._audit(who, tool, target, resource, allowed=True)
            return result

    def _audit(self, who: Principal, tool: str, target: str, resource: str, allowed: bool) -> None:
        self.catalog.record_audit(who, f"mcp:{tool}", target, "read", resource, allowed=allowed)


class _Abandonable:
    """A worker thread's hold on its request's slot: released when the thread's work ends,
    or when the call gave up on a thread that never started (it then never runs)."""

    def __init__(self, slot: Slot | None) -> None:
        self._slot, self._started, self._given_up = slot, False, False
        self._lock = threading.Lock()

    def wrap(self, work: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            with self._lock:
                if self._given_up:
                    raise ToolError("the tool call was given up before it started")
                self._started = True
            try:
                return work()
            finally:
                self._release()

        return run

    def abandon(self) -> None:
        """The call stopped waiting: a thread that never started gives the slot back now."""
        with self._lock:
            self._given_up = True
            unstarted = not self._started
        if unstarted:
            self._release()

    def _release(self) -> None:
        slot, self._slot = self._slot, None
        if slot is not None:
            slot.release()


def _dataset_of(ref: str) -> str:
    """The dataset a reference names (the reference itself when it is malformed)."""
    return ref.rpartition("@")[0] or ref
