"""Bulk row writes and fetches shared by ingest, the sample project, pages and tests."""

from __future__ import annotations

import sqlite3
from typing import Any

from core.errors import UserError
from core.store.db import inserted_id, text_hash


def fetch_pairs(conn: sqlite3.Connection, project: int, split: str = "train") -> list[dict[str, Any]]:
    """Labelled pairs of one split with their texts, as plain dicts."""
    rows = conn.execute(
        """SELECT p.id, p.query_id, p.passage_id, p.label, p.origin,
                  q.text AS query, s.text AS passage, q.qid, s.doc_id
           FROM pairs p JOIN queries q ON q.id = p.query_id JOIN passages s ON s.id = p.passage_id
           WHERE p.project_id = ? AND q.split = ? ORDER BY p.id""",
        (project, split),
    ).fetchall()
    return [dict(r) for r in rows]


def fetch_passages(conn: sqlite3.Connection, project: int) -> list[dict[str, Any]]:
    """Every passage of the project (pairs and extra corpus), the pool negatives come from."""
    rows = conn.execute(
        "SELECT id, text, doc_id, source FROM passages WHERE project_id = ? ORDER BY id",
        (project,),
    ).fetchall()
    return [dict(r) for r in rows]


def data_version(conn: sqlite3.Connection, project: int) -> str:
    """A cheap fingerprint that changes whenever pairs, passages or negatives change (cache key)."""
    parts = []
    for table in ("pairs", "passages", "queries", "negatives"):
        row = conn.execute(
            f"SELECT COUNT(*), COALESCE(MAX(id), 0) FROM {table} WHERE project_id = ?", (project,)
        ).fetchone()
        parts.append(f"{row[0]}:{row[1]}")
    for table in (
        "judgements",
        "suspect_judgements",
    ):  # a flipped label keeps the row count and max id of pairs
        row = conn.execute(
            f"SELECT COALESCE(MAX(id), 0) FROM {table} WHERE project_id = ?", (project,)
        ).fetchone()
        parts.append(str(row[0]))
    return "|".join(parts)


# --- bulk writes shared by ingest, the sample project and tests -------------------------------


def upsert_passages(
    conn: sqlite3.Connection,
    project: int,
    texts: list[str],
    *,
    source: str = "pairs",
    doc_ids: list[str | None] | None = None,
) -> list[int]:
    """Ids for these passage texts, inserting the new ones (call inside `transaction`)."""
    ids = []
    for i, text in enumerate(texts):
        h = text_hash(text)
        row = conn.execute(
            "SELECT id FROM passages WHERE project_id = ? AND hash = ?", (project, h)
        ).fetchone()
        if row is None:
            doc_id = doc_ids[i] if doc_ids else None
            cur = conn.execute(
                "INSERT INTO passages (project_id, text, hash, doc_id, source) VALUES (?, ?, ?, ?, ?)",
                (project, text, h, doc_id, source),
            )
            ids.append(inserted_id(cur))
        else:
            ids.append(int(row["id"]))
    return ids


def upsert_query(
    conn: sqlite3.Connection, project: int, text: str, split: str, qid: str | None = None
) -> int:
    """Id of a query text in a split; a query already in the other split is an error (leakage)."""
    h = text_hash(text)
    row = conn.execute(
        "SELECT id, split FROM queries WHERE project_id = ? AND hash = ?", (project, h)
    ).fetchone()
    if row is not None:
        if row["split"] != split:
            raise UserError(
                f"Query {text[:80]!r} is already in the {row['split']} set; a query cannot be on both sides."
            )
        return int(row["id"])
    cur = conn.execute(
        "INSERT INTO queries (project_id, text, hash, qid, split) VALUES (?, ?, ?, ?, ?)",
        (project, text, h, qid, split),
    )
    return inserted_id(cur)


def insert_pairs(
    conn: sqlite3.Connection,
    project: int,
    rows: list[tuple[str, str, float]],
    *,
    split: str = "train",
    origin: str = "upload",
    import_id: int | None = None,
) -> int:
    """Add (query, passage, label) rows, skipping exact duplicates; returns how many were new (inside `transaction`)."""
    added = 0
    passage_ids = upsert_passages(conn, project, [r[1] for r in rows])
    for (query, _, label), passage in zip(rows, passage_ids):
        qid = upsert_query(conn, project, query, split)
        cur = conn.execute(
            "INSERT OR IGNORE INTO pairs (project_id, query_id, passage_id, label, origin, import_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (project, qid, passage, float(label), origin, import_id),
        )
        added += cur.rowcount
    return added
