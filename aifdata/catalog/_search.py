"""Full-text search over dataset names, descriptions, tags and formats.

SQLite's FTS5 ranks with BM25 (a name match weighs most) where the Python
build has FTS5; elsewhere a LIKE scan scores the same columns with the same
weights, so both find the same datasets.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass

WEIGHTS = {"name": 10.0, "description": 3.0, "tags": 2.0, "formats": 2.0}
#: Runs of letters and digits: the same split as FTS5's unicode61 tokenizer.
_TOKEN = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class SearchHit:
    """One dataset found by a search, best first."""

    name: str
    description: str
    owner: str
    tags: Mapping[str, str]
    score: float


def has_fts5(conn: sqlite3.Connection) -> bool:
    """Whether this SQLite was built with FTS5."""
    try:
        conn.execute("CREATE VIRTUAL TABLE temp.fts5_probe USING fts5(x)")
    except sqlite3.OperationalError:
        return False
    conn.execute("DROP TABLE temp.fts5_probe")
    return True


def ensure_index(conn: sqlite3.Connection) -> None:
    """Create (and fill) the FTS5 mirror of ``search_text`` where FTS5 exists."""
    if not has_fts5(conn):
        return
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'search_fts'"
    ).fetchone()
    if exists is None:
        conn.execute(
            "CREATE VIRTUAL TABLE search_fts USING fts5("
            "name, description, tags, formats, tokenize = 'unicode61')"
        )
        conn.execute(
            "INSERT INTO search_fts (rowid, name, description, tags, formats)"
            " SELECT dataset_id, name, description, tags, formats FROM search_text"
        )


def reindex(conn: sqlite3.Connection, dataset_id: int) -> None:
    """Refresh one dataset's searchable text (inside the caller's transaction)."""
    row = conn.execute(
        "SELECT d.name, d.description,"
        " (SELECT group_concat(key || '=' || value, ' ') FROM tags WHERE dataset_id = d.id),"
        " (SELECT group_concat(DISTINCT f.format) FROM files f WHERE f.version_id ="
        "   (SELECT id FROM versions WHERE dataset_id = d.id ORDER BY number DESC LIMIT 1))"
        " FROM datasets d WHERE d.id = ?",
        (dataset_id,),
    ).fetchone()
    values = (dataset_id, row[0], row[1], row[2] or "", (row[3] or "").replace(",", " "))
    conn.execute("INSERT OR REPLACE INTO search_text VALUES (?, ?, ?, ?, ?)", values)
    if _has_index(conn):
        conn.execute("DELETE FROM search_fts WHERE rowid = ?", (dataset_id,))
        conn.execute(
            "INSERT INTO search_fts (rowid, name, description, tags, formats)"
            " VALUES (?, ?, ?, ?, ?)",
            values,
        )


def _has_index(conn: sqlite3.Connection) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'search_fts'"
        ).fetchone()
        is not None
    )


def search(
    conn: sqlite3.Connection,
    query: str,
    *,
    format: str | None = None,
    tags: Mapping[str, str] | None = None,
    owner: str | None = None,
    limit: int = 50,
    use_fts: bool | None = None,
    visible: Callable[[str], bool] | None = None,
) -> list[SearchHit]:
    """Datasets matching every word of ``query`` (prefixes count), best first.

    ``visible`` keeps only the datasets the asking principal may read.
    """
    tokens = [t.lower() for t in _TOKEN.findall(query)]
    fts = _has_index(conn) if use_fts is None else use_fts
    ranked = _rank_fts(conn, tokens) if fts and tokens else _rank_scan(conn, tokens)
    hits = []
    for dataset_id, score in ranked:
        meta = conn.execute("SELECT * FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
        ds_tags = dict(
            conn.execute(
                "SELECT key, value FROM tags WHERE dataset_id = ?", (dataset_id,)
            ).fetchall()
        )
        if owner is not None and meta["owner"] != owner:
            continue
        if tags and any(ds_tags.get(k) != v for k, v in tags.items()):
            continue
        if format is not None and not _has_format(conn, dataset_id, format):
            continue
        if visible is not None and not visible(meta["name"]):
            continue
        hits.append(SearchHit(meta["name"], meta["description"], meta["owner"], ds_tags, score))
        if len(hits) >= limit:
            break
    return hits


def _has_format(conn: sqlite3.Connection, dataset_id: int, format: str) -> bool:
    row = conn.execute(
        "SELECT formats FROM search_text WHERE dataset_id = ?", (dataset_id,)
    ).fetchone()
    return row is not None and format.lower() in row[0].lower().split()


def _rank_fts(conn: sqlite3.Connection, tokens: list[str]) -> list[tuple[int, float]]:
    match = " AND ".join('"' + t.replace('"', '""') + '"*' for t in tokens)
    weights = ", ".join(str(w) for w in WEIGHTS.values())
    rows = conn.execute(
        f"SELECT rowid, -bm25(search_fts, {weights}) AS score FROM search_fts"
        " WHERE search_fts MATCH ? ORDER BY score DESC",
        (match,),
    ).fetchall()
    return [(int(r[0]), float(r[1])) for r in rows]


def _rank_scan(conn: sqlite3.Connection, tokens: list[str]) -> list[tuple[int, float]]:
    """The fallback: every token must appear (as a word prefix) in some column."""
    scored = []
    for row in conn.execute("SELECT * FROM search_text"):
        words = {c: _TOKEN.findall(str(row[c]).lower()) for c in WEIGHTS}
        score = 0.0
        for token in tokens:
            hit = [c for c, ws in words.items() if any(w.startswith(token) for w in ws)]
            if not hit:
                break
            score += sum(WEIGHTS[c] for c in hit)
        else:
            scored.append((int(row["dataset_id"]), score))
    return sorted(scored, key=lambda x: (-x[1], x[0]))
