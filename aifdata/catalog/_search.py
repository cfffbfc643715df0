"""Full-text search over dataset names, descriptions, tags and formats.

Ranking: datasets whose *name* holds every word come first, then the others;
within each group, best score first. SQLite's FTS5 scores with BM25 (name 10,
description 3, tags 2, formats 2) where the Python build has FTS5; elsewhere
a scan scores the same columns with the same weights, so both find the same
datasets in the same groups. Name matches are looked up first, so a query
whose word is in most descriptions does not rank every one of them when the
names already fill the page.

On PostgreSQL the index is its own full-text search: one ``tsvector`` per
dataset (``search_document``, GIN-indexed) whose weights A, B, C, D stand for
FTS5's columns (name, description, tags, formats), built from the same Python
tokens as the fallback scan, so both engines split words alike. ``ts_rank`` with
the same column weights orders each group; name matches (``:*A``) still come first.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from ._schema import is_postgres

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
    if is_postgres(conn):
        return False
    try:
        conn.execute("CREATE VIRTUAL TABLE temp.fts5_probe USING fts5(x)")
    except sqlite3.OperationalError:
        return False
    conn.execute("DROP TABLE temp.fts5_probe")
    return True


def has_full_text(conn: sqlite3.Connection) -> bool:
    """Whether the catalog's engine has a full-text index (FTS5, or PostgreSQL's own)."""
    return is_postgres(conn) or has_fts5(conn)


def ensure_index(conn: sqlite3.Connection) -> None:
    """Create (and fill) the FTS5 mirror of ``search_text`` where FTS5 exists (on
    PostgreSQL: the ``tsvector`` table and its GIN index)."""
    if is_postgres(conn):
        _ensure_document(conn)
        return
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


#: One dataset's searchable text: name, description, "k=v ..." tags, comma-joined formats.
_TEXT = {
    "sqlite": "SELECT d.name, d.description,"
    " (SELECT group_concat(key || '=' || value, ' ') FROM tags WHERE dataset_id = d.id),"
    " (SELECT group_concat(DISTINCT f.format) FROM files f WHERE f.version_id ="
    "   (SELECT id FROM versions WHERE dataset_id = d.id ORDER BY number DESC LIMIT 1))"
    " FROM datasets d WHERE d.id = ?",
    "postgresql": "SELECT d.name, d.description,"
    " (SELECT string_agg(key || '=' || value, ' ' ORDER BY key) FROM tags"
    "   WHERE dataset_id = d.id),"
    " (SELECT string_agg(DISTINCT f.format, ',') FROM files f WHERE f.version_id ="
    "   (SELECT id FROM versions WHERE dataset_id = d.id ORDER BY number DESC LIMIT 1))"
    " FROM datasets d WHERE d.id = ?",
}


def reindex(conn: sqlite3.Connection, dataset_id: int) -> None:
    """Refresh one dataset's searchable text (inside the caller's transaction)."""
    dialect = "postgresql" if is_postgres(conn) else "sqlite"
    row = conn.execute(_TEXT[dialect], (dataset_id,)).fetchone()
    values = (dataset_id, row[0], row[1], row[2] or "", (row[3] or "").replace(",", " "))
    conn.execute(
        "INSERT OR REPLACE INTO search_text (dataset_id, name, description, tags, formats)"
        " VALUES (?, ?, ?, ?, ?)",
        values,
    )
    if dialect == "postgresql":
        _write_document(conn, values)
    elif _has_index(conn):
        conn.execute("DELETE FROM search_fts WHERE rowid = ?", (dataset_id,))
        conn.execute(
            "INSERT INTO search_fts (rowid, name, description, tags, formats)"
            " VALUES (?, ?, ?, ?, ?)",
            values,
        )


def _has_index(conn: sqlite3.Connection) -> bool:
    if is_postgres(conn):
        return True
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
    where, params = ["1 = 1"], []
    if owner is not None:
        where.append("d.owner = ?")
        params.append(owner)
    if scope is not None:
        where.append(f"({scope.sql})")
        params.extend(scope.params)
    if fts and (tokens or format or tags) and is_postgres(conn):
        pages = _pages_tsvector(conn, tokens, format, tags, " AND ".join(where), params)
    elif fts and (tokens or format or tags):
        pages = _pages_fts(conn, tokens, format, tags, " AND ".join(where), params)
    elif tokens:
        pages = iter([_rank_scan(conn, tokens, " AND ".join(where), params)])
    else:
        pages = _pages_all(conn, " AND ".join(where), params)
    hits: list[SearchHit] = []
    for page in pages:
        for start in range(0, len(page), _PAGE):
            for hit in _checked(conn, page[start : start + _PAGE], format, tags, visible):
                hits.append(hit)
                if len(hits) >= limit:
                    return hits
    return hits


_PAGE = 200


def _checked(
    conn: sqlite3.Connection,
    candidates: Sequence[tuple[int, float]],
    format: str | None,
    tags: Mapping[str, str] | None,
    visible: Callable[[str], bool] | None,
) -> Iterator[SearchHit]:
    """The candidates (dataset id, score) that pass the exact checks, in their order,
    read with one query per table for the lot (a round trip each on a server)."""
    if not candidates:
        return
    ids = [dataset_id for dataset_id, _ in candidates]
    marks = ",".join("?" * len(ids))
    metas = {
        int(r[0]): r
        for r in conn.execute(
            f"SELECT id, name, description, owner FROM datasets WHERE id IN ({marks})", ids
        ).fetchall()
    }
    all_tags: dict[int, dict[str, str]] = {}
    for dataset_id, key, value in conn.execute(
        f"SELECT dataset_id, key, value FROM tags WHERE dataset_id IN ({marks}) ORDER BY key",
        ids,
    ).fetchall():
        all_tags.setdefault(int(dataset_id), {})[key] = value
    formats: dict[int, str] = {}
    if format is not None:
        formats = {
            int(r[0]): r[1]
            for r in conn.execute(
                f"SELECT dataset_id, formats FROM search_text WHERE dataset_id IN ({marks})", ids
            ).fetchall()
        }
    for dataset_id, score in candidates:
        meta, ds_tags = metas.get(dataset_id), all_tags.get(dataset_id, {})
        if meta is None:
            continue
        if tags and any(ds_tags.get(k) != v for k, v in tags.items()):
            continue
        if format is not None and format.lower() not in formats.get(dataset_id, "").lower().split():
            continue
        if visible is not None and not visible(meta[1]):
            continue
        yield SearchHit(meta[1], meta[2], meta[3], ds_tags, score)


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
    join = "" if where == "1 = 1" else " JOIN datasets d ON d.id = s.rowid"
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


def _rank_scan(
    conn: sqlite3.Connection, tokens: list[str], where: str = "1 = 1", params: Sequence[str] = ()
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


# -- PostgreSQL's full-text search ----------------------------------------------

#: ts_rank's weights, in its order (D, C, B, A): formats, tags, description, name.
_PG_WEIGHTS = (
    "{"
    + ", ".join(
        str(WEIGHTS[c] / WEIGHTS["name"]) for c in ("formats", "tags", "description", "name")
    )
    + "}"
)
_PG_LABELS = {"name": "A", "description": "B", "tags": "C", "formats": "D"}


def _ensure_document(conn: sqlite3.Connection) -> None:
    """The ``tsvector`` of each dataset (weights A-D for its four columns), GIN-indexed."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS search_document ("
        " dataset_id BIGINT PRIMARY KEY REFERENCES datasets(id) ON DELETE CASCADE,"
        " document tsvector NOT NULL)"
    )
    conn.execute(
        "CREATE INDEX IF NOT EXISTS search_document_words ON search_document USING GIN (document)"
    )
    for row in conn.execute(
        "SELECT t.dataset_id, t.name, t.description, t.tags, t.formats FROM search_text t"
        " WHERE NOT EXISTS (SELECT 1 FROM search_document s WHERE s.dataset_id = t.dataset_id)"
    ).fetchall():
        _write_document(conn, tuple(row))


def _words(text: str) -> str:
    """The words of ``text`` as the scan and FTS5 split them, lowercased, space-joined."""
    return " ".join(_TOKEN.findall(str(text).lower()))


def _write_document(conn: sqlite3.Connection, values: Sequence[object]) -> None:
    dataset_id, *columns = values
    vector = " || ".join(
        f"setweight(to_tsvector('simple', ?), '{label}')" for label in _PG_LABELS.values()
    )
    conn.execute(
        f"INSERT INTO search_document (dataset_id, document) VALUES (?, {vector})"
        " ON CONFLICT (dataset_id) DO UPDATE SET document = EXCLUDED.document",
        (dataset_id, *(_words(str(c)) for c in columns)),
    )


def _term(word: str, weights: str = "", prefix: bool = True) -> str:
    """One tsquery lexeme (quoted: a token is letters and digits only)."""
    return f"'{word}'" + (":" if prefix or weights else "") + ("*" if prefix else "") + weights


def _pages_tsvector(
    conn: sqlite3.Connection,
    tokens: list[str],
    format: str | None,
    tags: Mapping[str, str] | None,
    where: str,
    params: list[str],
) -> Iterator[list[tuple[int, float]]]:
    """Name matches, then the other matches, each by ``ts_rank``, a page at a time."""
    filters = [_term(w, "D", prefix=False) for w in _TOKEN.findall((format or "").lower())]
    for key, value in (tags or {}).items():
        filters += [_term(w, "C", prefix=False) for w in _TOKEN.findall(f"{key} {value}".lower())]
    score = f"ts_rank('{_PG_WEIGHTS}', s.document, q.query)" if tokens else "0.0"
    sql = (
        f"SELECT s.dataset_id, {score} AS score FROM search_document s"
        " JOIN datasets d ON d.id = s.dataset_id CROSS JOIN (SELECT CAST(? AS tsquery) AS query) q"
        f" WHERE s.document @@ q.query AND {where}"
        " ORDER BY score DESC, s.dataset_id LIMIT ? OFFSET ?"
    )
    seen: set[int] = set()
    tiers = [[_term(t, "A") for t in tokens] + filters] if tokens else []
    tiers.append([_term(t) for t in tokens] + filters)
    for terms in tiers:
        offset = 0
        while True:
            rows = conn.execute(sql, [" & ".join(terms), *params, _PAGE, offset]).fetchall()
            yield [(int(r[0]), float(r[1])) for r in rows if int(r[0]) not in seen]
            seen.update(int(r[0]) for r in rows)
            if len(rows) < _PAGE:
                break
            offset += _PAGE
