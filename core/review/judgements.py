"""Judgements: each one stored at once in its own transaction with a history row, exact undo (a bulk action
undone as one), two-tab safety through row versions, bulk sweeps and the audit trail."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

from core import store
from core.errors import UserError
from core.review.counts import STATUSES
from core.review.queue import ORDERS, QueueFilter, last_judgement

REVIEW_ORIGIN = "review"  # pairs rows created when a candidate is marked relevant (a false negative)


class ConflictError(UserError):
    """Someone (another tab, another reviewer) changed this candidate since it was shown: nothing was written."""


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
            raise ValueError(
                f"No candidate #{negative_id}: it was deleted (a new mining run replaces candidates)."
            )
        if row["version"] != int(expected_version):
            last = last_judgement(conn, row["id"])
            who = f" by {last['actor']} at {last['at']}" if last else ""
            raise ConflictError(
                f"Candidate #{row['id']} was changed{who} (now {row['status']!r}) after this tab showed it; "
                "nothing was saved. It has been reloaded: judge it again if needed."
            )
        if row["status"] == status:
            return {
                "negative_id": row["id"],
                "old_status": status,
                "new_status": status,
                "version": row["version"],
                "judgement_id": None,
            }
        _apply(conn, row, status, at)
        cur = conn.execute(
            "INSERT INTO judgements (project_id, negative_id, old_status, new_status, at, actor) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (row["project_id"], row["id"], row["status"], status, at, actor),
        )
        return {
            "negative_id": row["id"],
            "old_status": row["status"],
            "new_status": status,
            "version": row["version"] + 1,
            "judgement_id": store.inserted_id(cur),
        }


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
        1
        if row["batch"] is None
        else int(
            conn.execute(
                "SELECT COUNT(*) FROM judgements WHERE batch = ? AND undoes IS NULL", (row["batch"],)
            ).fetchone()[0]
        )
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
            [last]
            if last["batch"] is None
            else conn.execute(
                "SELECT * FROM judgements WHERE batch = ? AND undoes IS NULL AND undone = 0 ORDER BY id",
                (last["batch"],),
            ).fetchall()
        )
        ids = [j["id"] for j in group]
        mine, key = (
            ("j.batch = ? AND j.undoes IS NULL", last["batch"]) if last["batch"] else ("j.id = ?", last["id"])
        )
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
                (
                    project,
                    j["negative_id"],
                    row["status"],
                    j["old_status"],
                    at,
                    actor or j["actor"],
                    j["id"],
                    batch,
                ),
            )
            if len(group) > 1 and batch is None:
                batch = store.inserted_id(cur)
                conn.execute("UPDATE judgements SET batch = ? WHERE id = ?", (batch, batch))
        conn.execute(f"UPDATE judgements SET undone = 1 WHERE {mine.replace('j.', '')}", (key,))
        return {
            "undone": ids,
            "rows": len(ids),
            "negative_id": last["negative_id"],
            "restored": last["old_status"],
            "was": last["new_status"],
        }


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
    conn: sqlite3.Connection,
    project: int,
    flt: QueueFilter,
    status: str = "negative",
    *,
    actor: str = "reviewer",
    expected_rows: int | None = None,
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
                chunk = ids[start : start + 500]
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
        batch = store.inserted_id(first)
        conn.execute("UPDATE judgements SET batch = ? WHERE id = ?", (batch, batch))
        conn.executemany(
            "INSERT INTO judgements (project_id, negative_id, old_status, new_status, at, actor, batch) "
            "VALUES (?, ?, 'unjudged', ?, ?, ?, ?)",
            [(project, i, status, at, actor, batch) for i in ids[1:]],
        )
        return {"rows": len(ids), "batch": batch, "status": status}


def history(
    conn: sqlite3.Connection,
    project: int,
    *,
    limit: int = 200,
    negative_id: int | None = None,
    actor: str | None = None,
) -> list[dict[str, Any]]:
    """The audit trail, newest first: who changed which candidate from what to what, when, and undos."""
    sql: list[str] = ["j.project_id = ?"]
    params: list[Any] = [project]
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
            WHERE {" AND ".join(sql)} ORDER BY j.id DESC LIMIT ?""",
        (*params, int(limit)),
    ).fetchall()
    return [dict(r) for r in rows]
