"""A lineage graph as a picture: dataset versions and runs laid out in layers, left to right.

:func:`lineage_graph` turns the catalog's upstream and downstream trees of one version into
one graph (a node per dataset version and per run; an edge from each input to its run and
from each run to its outputs); :func:`lay_out` places it in layers (each node one layer
right of its furthest predecessor; within a layer, near the middle of its predecessors).
The web page's ``lineage.svg`` template draws the result; the template escapes every text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ..catalog import LineageNode, RunRecord

#: A node's box, and the room between layers and between rows (SVG user units).
NODE_WIDTH, NODE_HEIGHT = 176, 44
LAYER_GAP, ROW_GAP = 54, 22
MARGIN = 12
#: The longest label drawn in a node; the full text is its tooltip.
LABEL_CHARS = 22


@dataclass(frozen=True)
class GraphNode:
    """A dataset version (``kind`` ``dataset``) or a run (``kind`` ``run``)."""

    key: str
    kind: str
    label: str
    sublabel: str
    tooltip: str
    dataset: str | None = None
    version: int | None = None
    focus: bool = False


@dataclass
class Graph:
    """Nodes by key, in the order first met, and the edges between their keys."""

    nodes: dict[str, GraphNode] = field(default_factory=dict)
    edges: dict[tuple[str, str], None] = field(default_factory=dict)

    def add(self, node: GraphNode) -> str:
        self.nodes.setdefault(node.key, node)
        return node.key

    def link(self, source: str, target: str) -> None:
        self.edges[(source, target)] = None


@dataclass(frozen=True)
class PlacedNode:
    node: GraphNode
    x: float
    y: float

    @property
    def label(self) -> str:
        return _shorten(self.node.label)

    @property
    def sublabel(self) -> str:
        return _shorten(self.node.sublabel)


@dataclass(frozen=True)
class PlacedEdge:
    source: str
    target: str
    path: str


@dataclass(frozen=True)
class Picture:
    """A laid-out graph: what the template draws."""

    nodes: tuple[PlacedNode, ...]
    edges: tuple[PlacedEdge, ...]
    width: float
    height: float
    node_width: float = NODE_WIDTH
    node_height: float = NODE_HEIGHT


def _shorten(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _dataset_node(name: str, version: int, focus: bool) -> GraphNode:
    return GraphNode(
        f"d:{name}@{version}", "dataset", name, f"version {version}", f"{name}@{version}",
        dataset=name, version=version, focus=focus,
    )  # fmt: skip


def _run_node(run: RunRecord) -> GraphNode:
    hidden = run.hidden_inputs + run.hidden_outputs
    sub = f"{hidden} hidden · by {run.user}" if hidden else f"by {run.user} · {run.state.lower()}"
    when = datetime.fromtimestamp(run.started).strftime("%Y-%m-%d %H:%M")
    tip = f"run {run.job} ({run.run_id}) by {run.user} at {when}: {run.state}"
    if hidden:
        tip += f"; {hidden} dataset(s) you may not read are not shown"
    return GraphNode(f"r:{run.run_id}", "run", run.job, sub, tip)


def _walk(graph: Graph, node: LineageNode, upstream: bool, focus: bool = False) -> str:
    here = graph.add(_dataset_node(node.dataset, node.version, focus))
    for run, neighbours in node.runs:
        step = graph.add(_run_node(run))
        graph.link(*((step, here) if upstream else (here, step)))
        for neighbour in neighbours:
            there = _walk(graph, neighbour, upstream)
            graph.link(*((there, step) if upstream else (step, there)))
    return here


def lineage_graph(trees: Mapping[str, LineageNode]) -> Graph:
    """One graph of the ``upstream`` and ``downstream`` trees of a version
    (:meth:`~aifdata.catalog.Catalog.lineage`); that version is the focus."""
    graph = Graph()
    for direction in ("upstream", "downstream"):
        if direction in trees:
            _walk(graph, trees[direction], direction == "upstream", focus=True)
    return graph


def _layers(graph: Graph) -> list[list[str]]:
    """Each node one layer right of its furthest predecessor, each source just left of its
    nearest successor (what a cycle leaves goes last)."""
    preds: dict[str, list[str]] = {key: [] for key in graph.nodes}
    succs: dict[str, list[str]] = {key: [] for key in graph.nodes}
    for source, target in graph.edges:
        preds[target].append(source)
        succs[source].append(target)
    waiting = {key: len(p) for key, p in preds.items()}
    ready = [key for key, n in waiting.items() if n == 0]
    layer: dict[str, int] = {}
    while ready:
        key = ready.pop(0)
        layer[key] = max((layer[p] + 1 for p in preds[key]), default=0)
        for s in succs[key]:
            waiting[s] -= 1
            if waiting[s] == 0:
                ready.append(s)
    for key in reversed(list(layer)):  # a source sits just left of its first consumer
        if not preds[key] and succs[key]:
            layer[key] = max(layer[key], min(layer.get(s, 1) for s in succs[key]) - 1)
    last = max(layer.values(), default=-1) + 1
    columns: list[list[str]] = [[] for _ in range(max(last + 1, 1))]
    for key in graph.nodes:
        columns[layer.get(key, last)].append(key)
    return [c for c in columns if c]


def _order(columns: list[list[str]], edges: Iterable[tuple[str, str]]) -> None:
    """Sort each layer by the mean row of its nodes' predecessors (the barycentre)."""
    preds: dict[str, list[str]] = {}
    for source, target in edges:
        preds.setdefault(target, []).append(source)
    row: dict[str, float] = {key: i for i, key in enumerate(columns[0])}
    for column in columns[1:]:
        first = {key: i for i, key in enumerate(column)}

        def centre(key: str, first: dict[str, int] = first) -> float:
            rows = [row[p] for p in preds.get(key, ()) if p in row]
            return sum(rows) / len(rows) if rows else first[key]

        column.sort(key=centre)
        row.update({key: i for i, key in enumerate(column)})


def lay_out(graph: Graph) -> Picture:
    """Place ``graph``'s nodes in layers, left to right, each layer centred vertically."""
    columns = _layers(graph)
    _order(columns, graph.edges)
    tallest = max((len(c) for c in columns), default=0)
    height = 2 * MARGIN + tallest * NODE_HEIGHT + max(tallest - 1, 0) * ROW_GAP
    where: dict[str, PlacedNode] = {}
    for i, column in enumerate(columns):
        span = len(column) * NODE_HEIGHT + (len(column) - 1) * ROW_GAP
        top = (height - span) / 2
        for j, key in enumerate(column):
            x = MARGIN + i * (NODE_WIDTH + LAYER_GAP)
            where[key] = PlacedNode(graph.nodes[key], x, top + j * (NODE_HEIGHT + ROW_GAP))
    edges = tuple(PlacedEdge(s, t, _curve(where[s], where[t])) for s, t in graph.edges)
    width = 2 * MARGIN + len(columns) * NODE_WIDTH + max(len(columns) - 1, 0) * LAYER_GAP
    return Picture(tuple(where.values()), edges, width, height)


def _curve(source: PlacedNode, target: PlacedNode) -> str:
    """A cubic Bézier from the right side of ``source`` to the left side of ``target``."""
    x1, y1 = source.x + NODE_WIDTH, source.y + NODE_HEIGHT / 2
    x2, y2 = target.x - 6, target.y + NODE_HEIGHT / 2  # room for the arrow head
    bend = max((x2 - x1) / 2, 30)
    return f"M{x1:g},{y1:g} C{x1 + bend:g},{y1:g} {x2 - bend:g},{y2:g} {x2:g},{y2:g}"
