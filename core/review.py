"""The review desk's engine: a risk-ordered queue of mined negatives, judgements that land in their own
transaction with history, exact undo, two-tab safety and bulk sweeps — so hours of labelling are never lost."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from typing import Any

from core import store

STATUSES = ("unjudged", "negative", "relevant", "skipped")
JUDGED = ("negative", "relevant", "skipped")
STATES = ("unjudged", "judged", "all", *JUDGED)
ORDERS = {
    "risk": "n.risk DESC, n.id",  # riskiest first: false negatives hide there
    "safest": "n.risk ASC, n.id",
    "rank": "n.query_id, n.rank, n.id",  # query by query, in mining order
}
REVIEW_ORIGIN = "review"  # pairs rows created when a candidate is marked relevant (a false negative)
SNIPPET = 160


class ConflictError(RuntimeError):
    """Someone (another tab, another reviewer) changed this candidate since it was shown: nothing was written."""


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
        sql, params = ["n.project_id = ?"], [project]
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


# --- reading the queue ------------------------------------------------------------------------

_ROW = """n.id, n.query_id, n.passage_id, n.positive_id, n.kind, n.rank, n.score, n.positive_score,
          n.ce_score, n.risk, n.status, n.version, n.updated_at"""


def queue(
    conn: sqlite3.Connection, project: int, flt: QueueFilter = QueueFilter(), *, limit: int = 1,
    offset: int = 0, snippet: int | None = SNIPPET,
) -> list[dict[str, Any]]:
    """Candidates in desk order with short texts (the table and the 'next' candidate)."""
    where, params = flt.where(project)
    text = (lambda col: f"substr({col}, 1, {int(snippet)})") if snippet else (lambda col: col)
    rows = conn.execute(
        f"""SELECT {_ROW}, {text('q.text')} AS query, {text('p.text')} AS candidate
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
        raise ValueError(f"No candidate #{negative_id}: it was deleted (a new mining run replaces candidates).")
    out = dict(row)
    out["positives"] = [
        dict(r) for r in conn.execute(
            """SELECT s.id, s.text, s.doc_id, p.origin FROM pairs p JOIN passages s ON s.id = p.passage_id
               WHERE p.query_id = ? AND p.label > 0 AND p.passage_id != ? ORDER BY p.id""",
            (out["query_id"], out["passage_id"]),
        )
    ]
    if out["positive"] is None and out["positives"]:
        out["positive"] = out["positives"][0]["text"]
        out["positive_id"] = out["positives"][0]["id"]
    out["last_judgement"] = _last_judgement(conn, out["id"])
    return out


def _last_judgement(conn: sqlite3.Connection, negative_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT id, old_status, new_status, at, actor, undoes, undone, batch FROM judgements "
        "WHERE negative_id = ? ORDER BY id DESC LIMIT 1",
        (negative_id,),
    ).fetchone()
    return dict(row) if row else None


# --- progress ---------------------------------------------------------------------------------


def progress(conn: sqlite3.Connection, project: int, query_id: int | None = None) -> dict[str, Any]:
    """Judged / total and counts by status, for the project or one query (index-only: fast at 100k)."""
    if query_id is None:
        sql, params = "SELECT status, COUNT(*) AS n FROM negatives WHERE project_id = ? GROUP BY status", [project]
    else:  # without ANALYZE statistics the planner would pick the status index and scan the whole project
        sql = ("SELECT status, COUNT(*) AS n FROM negatives INDEXED BY negatives_query "
               "WHERE project_id = ? AND query_id = ? GROUP BY status")
        params = [project, int(query_id)]
    counts = {s: 0 for s in STATUSES}
    for r in conn.execute(sql, params):
        counts[r["status"]] += r["n"]
    total = sum(counts.values())
    judged = total - counts["unjudged"]
    return {"total": total, "judged": judged, "fraction": judged / total if total else 0.0, "by_status": counts}


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
        "WHERE p.query_id = ? ORDER BY p.label DESC", (int(query_id),)).fetchall()
    return {"text": q["text"], "split": q["split"], "labelled": [dict(r) for r in labelled]}


def desk(
    conn: sqlite3.Connection, project: int, flt: QueueFilter = QueueFilter(), *, position: int = 0,
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


# --- judging ----------------------------------------------------------------------------------


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"Unknown judgement {status!r}; expected one of {', '.join(STATUSES)}.")


def _apply(conn: sqlite3.Connection, row: sqlite3.Row, new: str, at: str) -> None:
    """Move one candidate to `new`, keeping the pairs table's positives in step (inside a transaction)."""
    old = row["status"]
    conn.execute(
        "UPDATE negatives SET status = ?, version = version + 1, updated_at = ? WHERE id = ?",
        (new, at, row["id"]),
    )
    if new == "relevant" and old != "relevant":
        # A false negative is a positive for its query from now on: training, quality and export see a pair.
        conn.execute(
            "INSERT OR IGNORE INTO pairs (project_id, query_id, passage_id, label, origin) VALUES (?, ?, ?, 1, ?)",
            (row["project_id"], row["query_id"], row["passage_id"], REVIEW_ORIGIN),
        )
    elif old == "relevant" and new != "relevant":
        conn.execute(
            "DELETE FROM pairs WHERE query_id = ? AND passage_id = ? AND origin = ?",
            (row["query_id"], row["passage_id"], REVIEW_ORIGIN),
        )


def judge(
    conn: sqlite3.Connection, negative_id: int, status: str, expected_version: int, actor: str = "reviewer"
) -> dict[str, Any]:
    """Store one judgement now, with its history row, in one transaction; refuse if the candidate changed
    since the tab showed it (`expected_version`), so two tabs never overwrite each other silently."""
    _check_status(status)
    at = store.now()
    with store.transaction(conn):
        row = conn.execute(
            "SELECT id, project_id, query_id, passage_id, status, version FROM negatives WHERE id = ?",
            (int(negative_id),),
        ).fetchone()
        if row is None:
            raise ValueError(f"No candidate #{negative_id}: it was deleted (a new mining run replaces candidates).")
        if row["version"] != int(expected_version):
            last = _last_judgement(conn, row["id"])
            who = f" by {last['actor']} at {last['at']}" if last else ""
            raise ConflictError(
                f"Candidate #{row['id']} was changed{who} (now {row['status']!r}) after this tab showed it; "
                "nothing was saved. It has been reloaded: judge it again if needed."
            )
        if row["status"] == status:
            return {"negative_id": row["id"], "old_status": status, "new_status": status,
                    "version": row["version"], "judgement_id": None}
        _apply(conn, row, status, at)
        cur = conn.execute(
            "INSERT INTO judgements (project_id, negative_id, old_status, new_status, at, actor) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (row["project_id"], row["id"], row["status"], status, at, actor),
        )
        return {"negative_id": row["id"], "old_status": row["status"], "new_status": status,
                "version": row["version"] + 1, "judgement_id": int(cur.lastrowid)}


def _undoable(conn: sqlite3.Connection, project: int, actor: str | None) -> sqlite3.Row | None:
    sql = "SELECT * FROM judgements WHERE project_id = ? AND undone = 0 AND undoes IS NULL"
    params: list[Any] = [project]
    if actor is not None:
        sql += " AND actor = ?"
        params.append(actor)
    return conn.execute(sql + " ORDER BY id DESC LIMIT 1", params).fetchone()


def last_undoable(conn: sqlite3.Connection, project: int, actor: str | None = None) -> dict[str, Any] | None:
    """What `undo` would revert next (for the button's label); None when there is nothing left."""
    row = _undoable(conn, project, actor)
    if row is None:
        return None
    out = dict(row)
    out["rows"] = (
        1 if row["batch"] is None else
        int(conn.execute("SELECT COUNT(*) FROM judgements WHERE batch = ? AND undoes IS NULL",
                         (row["batch"],)).fetchone()[0])
    )
    return out


def undo(conn: sqlite3.Connection, project: int, actor: str | None = "reviewer") -> dict[str, Any] | None:
    """Revert the last judgement not yet undone (a whole bulk action at once), exactly, with history of its
    own; call again to go further back. `actor` limits it to that reviewer's judgements (None: anyone's)."""
    at = store.now()
    with store.transaction(conn):
        last = _undoable(conn, project, actor)
        if last is None:
            return None
        group = (
            [last] if last["batch"] is None else
            conn.execute("SELECT * FROM judgements WHERE batch = ? AND undoes IS NULL AND undone = 0 "
                         "ORDER BY id", (last["batch"],)).fetchall()
        )
        ids = [j["id"] for j in group]
        mine, key = ("j.batch = ? AND j.undoes IS NULL", last["batch"]) if last["batch"] else ("j.id = ?", last["id"])
        # Superseded: someone judged the candidate again after this and that judgement still stands.
        superseded = conn.execute(
            f"""SELECT j.negative_id, k.actor, k.at FROM judgements j JOIN judgements k
                  ON k.negative_id = j.negative_id AND k.id > j.id AND k.undoes IS NULL AND k.undone = 0
                WHERE {mine} LIMIT 1""",
            (key,),
        ).fetchone()
        if superseded:
            raise ConflictError(
                f"Cannot undo: candidate #{superseded['negative_id']} was judged again since "
                f"(by {superseded['actor']} at {superseded['at']}); nothing was undone."
            )
        batch = None
        for j in group:
            row = conn.execute(
                "SELECT id, project_id, query_id, passage_id, status, version FROM negatives WHERE id = ?",
                (j["negative_id"],),
            ).fetchone()
            _apply(conn, row, j["old_status"], at)
            cur = conn.execute(
                "INSERT INTO judgements (project_id, negative_id, old_status, new_status, at, actor, undoes, batch) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (project, j["negative_id"], row["status"], j["old_status"], at, actor or j["actor"], j["id"], batch),
            )
            if len(group) > 1 and batch is None:
                batch = int(cur.lastrowid)
                conn.execute("UPDATE judgements SET batch = ? WHERE id = ?", (batch, batch))
        conn.execute(f"UPDATE judgements SET undone = 1 WHERE {mine.replace('j.', '')}", (key,))
        return {"undone": ids, "rows": len(ids), "negative_id": last["negative_id"],
                "restored": last["old_status"], "was": last["new_status"]}


# --- bulk sweeps ------------------------------------------------------------------------------


def _bulk_filter(flt: QueueFilter) -> QueueFilter:
    """Bulk actions only ever touch candidates nobody has judged yet."""
    return replace(flt, state="unjudged")


def preview(conn: sqlite3.Connection, project: int, flt: QueueFilter) -> dict[str, Any]:
    """How many unjudged candidates a bulk action on `flt` would change (for its confirmation)."""
    where, params = _bulk_filter(flt).where(project)
    row = conn.execute(
        f"""SELECT COUNT(*) AS rows, COUNT(DISTINCT n.query_id) AS queries, SUM(n.kind = 'hard') AS hard,
                   SUM(n.kind = 'random') AS random, MIN(n.risk) AS min_risk, MAX(n.risk) AS max_risk
            FROM {flt.source()} WHERE {where}""",
        params,
    ).fetchone()
    out = dict(row)
    out["hard"], out["random"] = out["hard"] or 0, out["random"] or 0
    return out


def bulk_judge(
    conn: sqlite3.Connection, project: int, flt: QueueFilter, status: str = "negative", *,
    actor: str = "reviewer", expected_rows: int | None = None,
) -> dict[str, Any]:
    """Judge every unjudged candidate of `flt` in one transaction, a history row each, undone as one batch;
    refuse when the count differs from what the confirmation said (`expected_rows`)."""
    _check_status(status)
    if status == "unjudged":
        raise ValueError("A bulk action judges candidates; use undo to take judgements back.")
    where, params = _bulk_filter(flt).where(project)
    at = store.now()
    with store.transaction(conn):
        rows = conn.execute(
            f"SELECT n.id, n.project_id, n.query_id, n.passage_id, n.status, n.version FROM {flt.source()} "
            f"WHERE {where} ORDER BY {ORDERS[flt.order]}",
            params,
        ).fetchall()
        if expected_rows is not None and len(rows) != int(expected_rows):
            raise ConflictError(
                f"The confirmation said {expected_rows} candidates, but {len(rows)} match now (someone judged "
                "some meanwhile); nothing was changed. Check the new count and confirm again."
            )
        if not rows:
            return {"rows": 0, "batch": None}
        ids = [r["id"] for r in rows]
        if status == "relevant":
            for r in rows:
                _apply(conn, r, status, at)
        else:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                conn.execute(
                    f"UPDATE negatives SET status = ?, version = version + 1, updated_at = ? "
                    f"WHERE id IN ({','.join('?' * len(chunk))})",
                    (status, at, *chunk),
                )
        first = conn.execute(
            "INSERT INTO judgements (project_id, negative_id, old_status, new_status, at, actor) "
            "VALUES (?, ?, 'unjudged', ?, ?, ?)",
            (project, ids[0], status, at, actor),
        )
        batch = int(first.lastrowid)
        conn.execute("UPDATE judgements SET batch = ? WHERE id = ?", (batch, batch))
        conn.executemany(
            "INSERT INTO judgements (project_id, negative_id, old_status, new_status, at, actor, batch) "
            "VALUES (?, ?, 'unjudged', ?, ?, ?, ?)",
            [(project, i, status, at, actor, batch) for i in ids[1:]],
        )
        return {"rows": len(ids), "batch": batch, "status": status}


# --- audit trail ------------------------------------------------------------------------------


def history(
    conn: sqlite3.Connection, project: int, *, limit: int = 200, negative_id: int | None = None,
    actor: str | None = None,
) -> list[dict[str, Any]]:
    """The audit trail, newest first: who changed which candidate from what to what, when, and undos."""
    sql, params = ["j.project_id = ?"], [project]
    if negative_id is not None:
        sql.append("j.negative_id = ?")
        params.append(int(negative_id))
    if actor is not None:
        sql.append("j.actor = ?")
        params.append(actor)
    rows = conn.execute(
        f"""SELECT j.id, j.at, j.actor, j.negative_id, j.old_status, j.new_status, j.undoes, j.undone, j.batch,
                   substr(q.text, 1, 80) AS query, substr(p.text, 1, 80) AS candidate
            FROM judgements j JOIN negatives n ON n.id = j.negative_id
            JOIN queries q ON q.id = n.query_id JOIN passages p ON p.id = n.passage_id
            WHERE {' AND '.join(sql)} ORDER BY j.id DESC LIMIT ?""",
        (*params, int(limit)),
    ).fetchall()
    return [dict(r) for r in rows]
