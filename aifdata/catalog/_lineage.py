"""Lineage in the catalog: runs, the dataset versions they read and wrote, and the graph.

A run is one execution of a job (``trim-reads``) by a user, from a script at
a git commit, with parameters. Its edges go from each input version to each
output version. The graph walks those edges upstream (what a version was
made from) and downstream (what was made from it), on version nodes.

What a principal may not read is never named to them: a run's inputs and
outputs they may not read are dropped from its record and counted instead
(``hidden_inputs``, ``hidden_outputs``), so lineage says "1 ancestor
hidden" and nothing more.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunRecord:
    """One recorded run."""

    run_id: str
    job: str
    user: str
    script: str | None
    git_commit: str | None
    params: dict[str, Any]
    started: float
    ended: float | None
    state: str
    error: str | None = None
    inputs: tuple[tuple[str, int], ...] = ()  # (dataset, version)
    outputs: tuple[tuple[str, int], ...] = ()
    hidden_inputs: int = 0  # inputs the principal may not read: counted, not named
    hidden_outputs: int = 0

    def as_dict(self) -> dict[str, Any]:
        hidden = {"hidden_inputs": self.hidden_inputs, "hidden_outputs": self.hidden_outputs}
        return {
            "run_id": self.run_id,
            "job": self.job,
            "user": self.user,
            "script": self.script,
            "git_commit": self.git_commit,
            "params": self.params,
            "started": self.started,
            "ended": self.ended,
            "state": self.state,
            "error": self.error,
            "inputs": [{"dataset": n, "version": v} for n, v in self.inputs],
            "outputs": [{"dataset": n, "version": v} for n, v in self.outputs],
            **{key: count for key, count in hidden.items() if count},
        }


@dataclass
class LineageNode:
    """A dataset version with the runs that made it (upstream) or used it (downstream).

    Each run lists the neighbours the principal may read; those they may not are
    only counted, by the run (:attr:`RunRecord.hidden_inputs` upstream,
    :attr:`RunRecord.hidden_outputs` downstream).
    """

    dataset: str
    version: int
    runs: list[tuple[RunRecord, list[LineageNode]]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "version": self.version,
            "runs": [
                {"run": run.as_dict(), "datasets": [n.as_dict() for n in nodes]}
                for run, nodes in self.runs
            ],
        }


def start_run(
    conn: sqlite3.Connection,
    run_id: str,
    job: str,
    user: str,
    script: str | None,
    git_commit: str | None,
    params: dict[str, Any],
    started: float,
    input_versions: Sequence[int],
) -> int:
    """Record a RUNNING run and its inputs (inside the caller's transaction)."""
    cursor = conn.execute(
        'INSERT INTO runs (run_id, job, "user", script, git_commit, params, started, state)'
        " VALUES (?, ?, ?, ?, ?, ?, ?, 'RUNNING')",
        (run_id, job, user, script, git_commit, json.dumps(params, sort_keys=True), started),
    )
    key = int(cursor.lastrowid or 0)
    conn.executemany(
        "INSERT OR IGNORE INTO run_datasets (run_id, role, version_id) VALUES (?, 'input', ?)",
        [(key, v) for v in input_versions],
    )
    return key


def add_dataset(conn: sqlite3.Connection, run_key: int, role: str, version_id: int) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO run_datasets (run_id, role, version_id) VALUES (?, ?, ?)",
        (run_key, role, version_id),
    )


def finish_run(
    conn: sqlite3.Connection, run_key: int, state: str, ended: float, error: str | None
) -> None:
    conn.execute(
        "UPDATE runs SET state = ?, ended = ?, error = ? WHERE id = ?",
        (state, ended, error, run_key),
    )


def version_id(conn: sqlite3.Connection, dataset: str, number: int) -> int | None:
    row = conn.execute(
        "SELECT v.id FROM versions v JOIN datasets d ON d.id = v.dataset_id"
        " WHERE d.name = ? AND v.number = ?",
        (dataset, number),
    ).fetchone()
    return None if row is None else int(row[0])


def _versions(conn: sqlite3.Connection, run_key: int, role: str) -> list[tuple[str, int, int]]:
    rows = conn.execute(
        "SELECT d.name, v.number, v.id FROM run_datasets r JOIN versions v ON v.id = r.version_id"
        " JOIN datasets d ON d.id = v.dataset_id WHERE r.run_id = ? AND r.role = ?"
        " ORDER BY d.name, v.number",
        (run_key, role),
    ).fetchall()
    return [(r[0], int(r[1]), int(r[2])) for r in rows]


def run_record(conn: sqlite3.Connection, row: sqlite3.Row) -> RunRecord:
    key = int(row["id"])
    return RunRecord(
        run_id=row["run_id"],
        job=row["job"],
        user=row["user"],
        script=row["script"],
        git_commit=row["git_commit"],
        params=json.loads(row["params"]),
        started=row["started"],
        ended=row["ended"],
        state=row["state"],
        error=row["error"],
        inputs=tuple((n, v) for n, v, _ in _versions(conn, key, "input")),
        outputs=tuple((n, v) for n, v, _ in _versions(conn, key, "output")),
    )


def redact(run: RunRecord, visible: Callable[[str], bool]) -> RunRecord:
    """The run as a principal sees it: the datasets they may not read counted, not named."""
    inputs = tuple(ref for ref in run.inputs if visible(ref[0]))
    outputs = tuple(ref for ref in run.outputs if visible(ref[0]))
    return dataclasses.replace(
        run,
        inputs=inputs,
        outputs=outputs,
        hidden_inputs=run.hidden_inputs + len(run.inputs) - len(inputs),
        hidden_outputs=run.hidden_outputs + len(run.outputs) - len(outputs),
    )


def runs_touching(conn: sqlite3.Connection, version_ids: Sequence[int]) -> list[RunRecord]:
    """Runs that read or wrote any of these versions, oldest first."""
    if not version_ids:
        return []
    marks = ",".join("?" * len(version_ids))
    rows = conn.execute(
        f"SELECT DISTINCT r.* FROM runs r JOIN run_datasets x ON x.run_id = r.id"
        f" WHERE x.version_id IN ({marks}) ORDER BY r.started, r.id",
        list(version_ids),
    ).fetchall()
    return [run_record(conn, r) for r in rows]


def graph(
    conn: sqlite3.Connection,
    dataset: str,
    number: int,
    direction: str,
    visible: Callable[[str], bool],
    depth: int | None = None,
) -> LineageNode:
    """The upstream or downstream tree of one version (each version expanded once), with
    the runs redacted for a principal who may read what ``visible`` allows."""
    near = "output" if direction == "upstream" else "input"
    seen: set[tuple[str, int]] = set()

    def expand(name: str, version: int, level: int) -> LineageNode:
        node = LineageNode(name, version)
        if (name, version) in seen or (depth is not None and level >= depth):
            return node
        seen.add((name, version))
        vid = version_id(conn, name, version)
        rows = conn.execute(
            "SELECT r.* FROM runs r JOIN run_datasets x ON x.run_id = r.id"
            " WHERE x.version_id = ? AND x.role = ? ORDER BY r.started, r.id",
            (vid, near),
        ).fetchall()
        for row in rows:
            run = redact(run_record(conn, row), visible)
            far = run.inputs if direction == "upstream" else run.outputs
            others = [expand(n, v, level + 1) for n, v in far if (n, v) != (name, version)]
            node.runs.append((run, others))
        return node

    return expand(dataset, number, 0)
