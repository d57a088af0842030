"""The review queue: which mined candidates the desk shows, in what order, with their full texts — and one
render's worth of desk state (current candidate, position, progress)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from core.review.counts import SNIPPET, progress

JUDGED = ("negative", "relevant", "skipped")
STATES = ("unjudged", "judged", "all", *JUDGED)
ORDERS = {
    "risk": "n.risk DESC, n.id",  # riskiest first: false negatives hide there
    "safest": "n.risk ASC, n.id",
    "rank": "n.query_id, n.rank, n.id",  # query by query, in mining order
}


@dataclass(frozen=True)
class QueueFilter:
    """What part of the queue the desk shows; every field narrows it, defaults show the whole unjudged queue."""

    query_id: int | None = None
    """Only this query's candidates (None: every query)."""
    risk_min: float | None = None
    """Risk at least this (inclusive)."""
    risk_max: float | None = None
    """Risk at most this (inclusive)."""
    risk_below: float | None = None
    """Risk strictly below this (the bulk sweep's 'below a risk level')."""
    state: str = "unjudged"
    """unjudged | judged | all | negative | relevant | skipped."""
    kind: str | None = None
    """hard | random | None for both."""
    order: str = "risk"
    """risk (riskiest first) | safest | rank (query by query, mining order)."""

    def source(self) -> str:
        """The table, with the per-query index forced when one query is asked for (no ANALYZE statistics
        exist, and the planner would otherwise walk the project's whole risk index)."""
        return "negatives n INDEXED BY negatives_query" if self.query_id is not None else "negatives n"

    def where(self, project: int) -> tuple[str, list[Any]]:
        """SQL condition and parameters over `negatives n`."""
        if self.state not in STATES:
            raise ValueError(f"Unknown queue state {self.state!r}; expected one of {', '.join(STATES)}.")
        if self.kind not in (None, "hard", "random"):
            raise ValueError(f"Unknown negative kind {self.kind!r}; expected hard or random.")
        if self.order not in ORDERS:
            raise ValueError(f"Unknown order {self.order!r}; expected one of {', '.join(ORDERS)}.")
        sql: list[str] = ["n.project_id = ?"]
        params: list[Any] = [project]
        if self.state == "judged":
            sql.append("n.status IN ('negative', 'relevant', 'skipped')")
        elif self.state != "all":
            sql.append("n.status = ?")
            params.append(self.state)
        if self.query_id is not None:
            sql.append("n.query_id = ?")
            params.append(int(self.query_id))
        if self.risk_min is not None:
            sql.append("n.risk >= ?")
            params.append(float(self.risk_min))
        if self.risk_max is not None:
            sql.append("n.risk <= ?")
            params.append(float(self.risk_max))
        if self.risk_below is not None:
            sql.append("n.risk < ?")
            params.append(float(self.risk_below))
        if self.kind is not None:
            sql.append("n.kind = ?")
            params.append(self.kind)
        return " AND ".join(sql), params


_ROW = """n.id, n.query_id, n.passage_id, n.positive_id, n.kind, n.rank, n.score, n.positive_score,
          n.ce_score, n.risk, n.status, n.version, n.updated_at"""


def queue(
    conn: sqlite3.Connection,
    project: int,
    flt: QueueFilter = QueueFilter(),
    *,
    limit: int = 1,
    offset: int = 0,
    snippet: int | None = SNIPPET,
) -> list[dict[str, Any]]:
    """Candidates in desk order with short texts (the table and the 'next' candidate)."""
    where, params = flt.where(project)
    text = (lambda col: f"substr({col}, 1, {int(snippet)})") if snippet else (lambda col: col)
    rows = conn.execute(
        f"""SELECT {_ROW}, {text("q.text")} AS query, {text("p.text")} AS candidate
            FROM {flt.source()} JOIN queries q ON q.id = n.query_id JOIN passages p ON p.id = n.passage_id
            WHERE {where} ORDER BY {ORDERS[flt.order]} LIMIT ? OFFSET ?""",
        (*params, int(limit), int(offset)),
    ).fetchall()
    return [dict(r) for r in rows]


def queue_size(conn: sqlite3.Connection, project: int, flt: QueueFilter = QueueFilter()) -> int:
    """How many candidates the filter holds."""
    where, params = flt.where(project)
    return int(conn.execute(f"SELECT COUNT(*) FROM {flt.source()} WHERE {where}", params).fetchone()[0])


def candidate(conn: sqlite3.Connection, negative_id: int) -> dict[str, Any]:
    """One candidate with full texts: the query, the positive it was mined against, every known positive."""
    row = conn.execute(
        f"""SELECT {_ROW}, n.project_id, q.text AS query, q.qid, p.text AS candidate, p.doc_id,
                   pos.text AS positive, pos.doc_id AS positive_doc_id
            FROM negatives n JOIN queries q ON q.id = n.query_id JOIN passages p ON p.id = n.passage_id
            LEFT JOIN passages pos ON pos.id = n.positive_id WHERE n.id = ?""",
        (int(negative_id),),
    ).fetchone()
    if row is None:
        raise ValueError(
            f"No candidate #{negative_id}: it was deleted (a new mining run replaces candidates)."
        )
    out = dict(row)
    out["positives"] = [
        dict(r)
        for r in conn.execute(
            """SELECT s.id, s.text, s.doc_id, p.origin FROM pairs p JOIN passages s ON s.id = p.passage_id
               WHERE p.query_id = ? AND p.label > 0 AND p.passage_id != ? ORDER BY p.id""",
            (out["query_id"], out["passage_id"]),
        )
    ]
    if out["positive"] is None and out["positives"]:
        out["positive"] = out["positives"][0]["text"]
        out["positive_id"] = out["positives"][0]["id"]
    out["last_judgement"] = last_judgement(conn, out["id"])
    return out


def last_judgement(conn: sqlite3.Connection, negative_id: int) -> dict[str, Any] | None:
    """The newest history row of a candidate (None when never judged)."""
    row = conn.execute(
        "SELECT id, old_status, new_status, at, actor, undoes, undone, batch FROM judgements "
        "WHERE negative_id = ? ORDER BY id DESC LIMIT 1",
        (negative_id,),
    ).fetchone()
    return dict(row) if row else None


def desk(
    conn: sqlite3.Connection,
    project: int,
    flt: QueueFilter = QueueFilter(),
    *,
    position: int = 0,
    focus: int | None = None,
) -> dict[str, Any]:
    """Everything one render of the desk needs: the current candidate (or the focused one), where it sits in
    the queue, and progress overall and for its query."""
    size = queue_size(conn, project, flt)
    position = max(0, min(int(position), max(size - 1, 0)))
    current = None
    if focus is not None:
        try:
            current = candidate(conn, focus)
        except ValueError:
            current = None
        if current is not None and current["project_id"] != project:
            current = None
    if current is None and size:
        top = queue(conn, project, flt, limit=1, offset=position, snippet=None)
        current = candidate(conn, top[0]["id"]) if top else None
    return {
        "size": size,
        "position": position,
        "current": current,
        "overall": progress(conn, project),
        "query": progress(conn, project, current["query_id"]) if current else None,
    }
