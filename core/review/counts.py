"""Review progress: judged / total overall and per query, read from the store's indexes (fast at 100k)."""

from __future__ import annotations

import sqlite3
from typing import Any

STATUSES = ("unjudged", "negative", "relevant", "skipped")  # every state a candidate can be in
SNIPPET = 160  # characters of a text shown in tables


def progress(conn: sqlite3.Connection, project: int, query_id: int | None = None) -> dict[str, Any]:
    """Judged / total and counts by status, for the project or one query (index-only: fast at 100k)."""
    if query_id is None:
        sql, params = (
            "SELECT status, COUNT(*) AS n FROM negatives WHERE project_id = ? GROUP BY status",
            [project],
        )
    else:  # without ANALYZE statistics the planner would pick the status index and scan the whole project
        sql = (
            "SELECT status, COUNT(*) AS n FROM negatives INDEXED BY negatives_query "
            "WHERE project_id = ? AND query_id = ? GROUP BY status"
        )
        params = [project, int(query_id)]
    counts = {s: 0 for s in STATUSES}
    for r in conn.execute(sql, params):
        counts[r["status"]] += r["n"]
    total = sum(counts.values())
    judged = total - counts["unjudged"]
    return {
        "total": total,
        "judged": judged,
        "fraction": judged / total if total else 0.0,
        "by_status": counts,
    }


def query_progress(conn: sqlite3.Connection, project: int) -> list[dict[str, Any]]:
    """Per query: candidates, judged, false negatives found, the riskiest one still waiting."""
    rows = conn.execute(
        """SELECT g.query_id, substr(q.text, 1, ?) AS query, g.total, g.judged, g.relevant, g.max_risk
           FROM (SELECT query_id, COUNT(*) AS total, SUM(status != 'unjudged') AS judged,
                        SUM(status = 'relevant') AS relevant,
                        MAX(CASE WHEN status = 'unjudged' THEN risk END) AS max_risk
                 FROM negatives WHERE project_id = ? GROUP BY query_id) g
           JOIN queries q ON q.id = g.query_id ORDER BY g.query_id""",
        (SNIPPET, project),
    ).fetchall()
    return [dict(r) for r in rows]


def labelled_query(conn: sqlite3.Connection, query_id: int) -> dict[str, Any] | None:
    """A query with its labelled passages (best label first), for a query that has no mined candidates to judge."""
    q = conn.execute("SELECT text, split FROM queries WHERE id = ?", (int(query_id),)).fetchone()
    if q is None:
        return None
    labelled = conn.execute(
        "SELECT s.text AS passage, p.label FROM pairs p JOIN passages s ON s.id = p.passage_id "
        "WHERE p.query_id = ? ORDER BY p.label DESC",
        (int(query_id),),
    ).fetchall()
    return {"text": q["text"], "split": q["split"], "labelled": [dict(r) for r in labelled]}
