"""Full-text search over dataset names, descriptions, tags and formats.

Ranking: datasets whose *name* holds every word come first, then the others;
within each group, best score first. SQLite's FTS5 scores with BM25 (name 10,
description 3, tags 2, formats 2) where the Python build has FTS5; elsewhere
a scan scores the same columns with the same weights, so both find the same
datasets in the same groups. Name matches are looked up first, so a query
whose word is in most descriptions does not rank every one of them when the
names already fill the page.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
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


@dataclass(frozen=True)
class Scope:
    """An SQL condition on ``d`` (the datasets table) that keeps what a principal may read."""

    sql: str
    params: tuple[str, ...] = ()


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
    scope: Scope | None = None,
) -> list[SearchHit]:
    """Datasets matching every word of ``query`` (prefixes count), best first.

    Filters run inside SQLite (the owner, the principal's ``scope``, and with
    FTS5 the format and tags as column filters), so a selective filter does
    not mean reading every match; each candidate is then checked exactly
    (``visible`` is the principal's read right).
    """
    tokens = [t.lower() for t in _TOKEN.findall(query)]
    fts = _has_index(conn) if use_fts is None else use_fts
    where, params = ["1"], []
    if owner is not None:
        where.append("d.owner = ?")
        params.append(owner)
    if scope is not None:
        where.append(f"({scope.sql})")
        params.extend(scope.params)
    # a format or tag without a word in it (``*``, ``%``) is no FTS5 term: it is checked exactly
    words_in = [format or "", *(f"{k} {v}" for k, v in (tags or {}).items())]
    if fts and (tokens or any(_TOKEN.findall(text) for text in words_in)):
        pages = _pages_fts(conn, tokens, format, tags, " AND ".join(where), params)
    elif tokens:
        pages = iter([_rank_scan(conn, tokens, " AND ".join(where), params)])
    else:
        pages = _pages_all(conn, " AND ".join(where), params)
    hits: list[SearchHit] = []
    for page in pages:
        for dataset_id, score in page:
            hit = _checked(conn, dataset_id, score, format, tags, visible)
            if hit is not None:
                hits.append(hit)
                if len(hits) >= limit:
                    return hits
    return hits


_PAGE = 200


def _checked(
    conn: sqlite3.Connection,
    dataset_id: int,
    score: float,
    format: str | None,
    tags: Mapping[str, str] | None,
    visible: Callable[[str], bool] | None,
) -> SearchHit | None:
    meta = conn.execute("SELECT * FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
    ds_tags = dict(
        conn.execute("SELECT key, value FROM tags WHERE dataset_id = ?", (dataset_id,)).fetchall()
    )
    if tags and any(ds_tags.get(k) != v for k, v in tags.items()):
        return None
    if format is not None and not _has_format(conn, dataset_id, format):
        return None
    if visible is not None and not visible(meta["name"]):
        return None
    return SearchHit(meta["name"], meta["description"], meta["owner"], ds_tags, score)


def _phrase(text: str) -> str:
    return '"' + " ".join(_TOKEN.findall(text.lower())).replace('"', '""') + '"'


def _pages_fts(
    conn: sqlite3.Connection,
    tokens: list[str],
    format: str | None,
    tags: Mapping[str, str] | None,
    where: str,
    params: list[str],
) -> Iterator[list[tuple[int, float]]]:
    """Name matches, then the other matches, each by BM25, a page at a time."""
    filters = []
    if format and _TOKEN.findall(format):
        filters.append(f"formats : {_phrase(format)}")
    for key, value in (tags or {}).items():
        if _TOKEN.findall(f"{key} {value}"):
            filters.append(f"tags : {_phrase(f'{key} {value}')}")
    words = ['"' + t.replace('"', '""') + '"*' for t in tokens]
    weights = ", ".join(str(w) for w in WEIGHTS.values())
    score = f"-bm25(search_fts, {weights})" if tokens else "0.0"
    join = "" if where == "1" else " JOIN datasets d ON d.id = s.rowid"
    sql = (
        f"SELECT s.rowid, {score} AS score FROM search_fts s{join}"
        f" WHERE search_fts MATCH ? AND {where} ORDER BY score DESC, s.rowid LIMIT ? OFFSET ?"
    )
    seen: set[int] = set()
    tiers = [[f"name : {w}" for w in words] + filters] if words else []
    tiers.append(words + filters)
    for terms in tiers:
        offset = 0
        while True:
            rows = conn.execute(sql, [" AND ".join(terms), *params, _PAGE, offset]).fetchall()
            yield [(int(r[0]), float(r[1])) for r in rows if int(r[0]) not in seen]
            seen.update(int(r[0]) for r in rows)
            if len(rows) < _PAGE:
                break
            offset += _PAGE


def _pages_all(
    conn: sqlite3.Connection, where: str, params: list[str]
) -> Iterator[list[tuple[int, float]]]:
    """No words: every dataset in scope, by name."""
    offset = 0
    while True:
        rows = conn.execute(
            f"SELECT d.id FROM datasets d WHERE {where} ORDER BY d.name LIMIT ? OFFSET ?",
            [*params, _PAGE, offset],
        ).fetchall()
        yield [(int(r[0]), 0.0) for r in rows]
        if len(rows) < _PAGE:
            return
        offset += _PAGE


def _has_format(conn: sqlite3.Connection, dataset_id: int, format: str) -> bool:
    row = conn.execute(
        "SELECT formats FROM search_text WHERE dataset_id = ?", (dataset_id,)
    ).fetchone()
    return row is not None and format.lower() in row[0].lower().split()


def _rank_scan(
    conn: sqlite3.Connection, tokens: list[str], where: str = "1", params: Sequence[str] = ()
) -> list[tuple[int, float]]:
    """The fallback: every token must appear (as a word prefix) in some column."""
    scored = []
    for row in conn.execute(
        f"SELECT t.* FROM search_text t JOIN datasets d ON d.id = t.dataset_id WHERE {where}",
        list(params),
    ):
        words = {c: _TOKEN.findall(str(row[c]).lower()) for c in WEIGHTS}
        score, in_name = 0.0, True
        for token in tokens:
            hit = [c for c, ws in words.items() if any(w.startswith(token) for w in ws)]
            if not hit:
                break
            score += sum(WEIGHTS[c] for c in hit)
            in_name = in_name and "name" in hit
        else:
            scored.append((int(row["dataset_id"]), score, in_name))
    ranked = sorted(scored, key=lambda x: (not x[2], -x[1], x[0]))
    return [(dataset_id, score) for dataset_id, score, _ in ranked]
