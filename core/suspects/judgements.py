"""Judging suspects: keep, flip, drop or skip, each saved at once in its own transaction with a history row, the
pairs table changed in step (so the next training run and the export read the corrected labels), exact undo (a
bulk action on a pattern undone as one) and two-tab safety through row versions."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from core.errors import UserError
from core.store.db import inserted_id, now, transaction
from core.suspects.records import SuspectFilter

ACTIONS = {"keep": "kept", "flip": "flipped", "drop": "dropped", "skip": "skipped"}
SUSPECT_ORIGIN = "suspects"  # a pairs row created when an unjudged passage is marked relevant


class SuspectConflict(UserError):
    """The suspect changed since this tab showed it (another tab, another reviewer): nothing was written."""


def _pair(conn: sqlite3.Connection, s: sqlite3.Row) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT * FROM pairs WHERE query_id = ? AND passage_id = ?", (s["query_id"], s["passage_id"])
    ).fetchone()
    if row is None:
        return None
    snippet = conn.execute("SELECT * FROM snippets WHERE pair_id = ?", (row["id"],)).fetchone()
    return {"pair": dict(row), "snippet": dict(snippet) if snippet else None}


def _restore(conn: sqlite3.Connection, s: sqlite3.Row) -> None:
    """Put the pairs row back exactly as it was before the suspect was flipped or dropped."""
    saved = json.loads(s["saved_pair"] or "null")
    conn.execute("DELETE FROM pairs WHERE query_id = ? AND passage_id = ?", (s["query_id"], s["passage_id"]))
    if saved is None:
        return
    pair, snippet = dict(saved["pair"]), saved["snippet"]
    if conn.execute("SELECT 1 FROM pairs WHERE id = ?", (pair["id"],)).fetchone():
        del pair["id"]  # its old id went to a newer pair meanwhile: a new id, the snippet follows it
    cur = conn.execute(
        f"INSERT INTO pairs ({', '.join(pair)}) VALUES ({', '.join('?' * len(pair))})", list(pair.values())
    )
    if snippet:
        snippet = {**snippet, "pair_id": pair.get("id", cur.lastrowid)}
        conn.execute(
            f"INSERT OR REPLACE INTO snippets ({', '.join(snippet)}) VALUES ({', '.join('?' * len(snippet))})",
            list(snippet.values()),
        )


def _move(conn: sqlite3.Connection, s: sqlite3.Row, new: str, at: str) -> None:
    """Move one suspect to status `new`, undoing the old status's change to the pairs table first."""
    if s["status"] in ("flipped", "dropped"):
        _restore(conn, s)
    saved = None
    if new in ("flipped", "dropped"):
        current = _pair(conn, s)
        saved = json.dumps(current)
        if new == "dropped":
            conn.execute(
                "DELETE FROM pairs WHERE query_id = ? AND passage_id = ?", (s["query_id"], s["passage_id"])
            )
        elif current is None:  # an unjudged passage marked relevant: a positive from now on
            conn.execute(
                "INSERT INTO pairs (project_id, query_id, passage_id, label, origin) VALUES (?, ?, ?, 1, ?)",
                (s["project_id"], s["query_id"], s["passage_id"], SUSPECT_ORIGIN),
            )
        else:
            conn.execute(
                "UPDATE pairs SET label = CASE WHEN label > 0 THEN 0 ELSE 1 END WHERE id = ?",
                (current["pair"]["id"],),
            )
    conn.execute(
        "UPDATE suspects SET status = ?, saved_pair = ?, version = version + 1, updated_at = ? WHERE id = ?",
        (new, saved, at, s["id"]),
    )


def _check(action: str, s: sqlite3.Row | None, suspect_id: int) -> str:
    if action not in ACTIONS:
        raise UserError(f"Unknown action {action!r}; expected one of {', '.join(ACTIONS)}.")
    if s is None:
        raise UserError(f"No suspect #{suspect_id}: a new search may have replaced it.")
    if action == "drop" and s["kind"] == "missing_positive":
        raise UserError(
            "An unjudged passage has no label to drop: keep it out (keep) or mark it relevant (flip)."
        )
    return ACTIONS[action]


def judge(
    conn: sqlite3.Connection, suspect_id: int, action: str, expected_version: int, actor: str = "reviewer"
) -> dict[str, Any]:
    """Store one judgement now with its history row; refuse if the suspect changed since it was shown."""
    at = now()
    with transaction(conn):
        s = conn.execute("SELECT * FROM suspects WHERE id = ?", (int(suspect_id),)).fetchone()
        new = _check(action, s, suspect_id)
        if s["version"] != int(expected_version):
            raise SuspectConflict(
                f"Suspect #{s['id']} was changed (now {s['status']!r}) after this tab showed it; nothing was "
                "saved. It has been reloaded: judge it again if needed."
            )
        if s["status"] == new:
            return {"suspect_id": s["id"], "status": new, "version": s["version"], "judgement_id": None}
        _move(conn, s, new, at)
        cur = conn.execute(
            "INSERT INTO suspect_judgements (project_id, suspect_id, old_status, new_status, at, actor) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (s["project_id"], s["id"], s["status"], new, at, actor),
        )
        return {
            "suspect_id": s["id"],
            "status": new,
            "version": s["version"] + 1,
            "judgement_id": cur.lastrowid,
        }


def bulk_judge(
    conn: sqlite3.Connection,
    project: int,
    pattern: str,
    action: str,
    *,
    actor: str = "reviewer",
    expected_rows: int | None = None,
) -> dict[str, Any]:
    """Judge every open suspect of one pattern (a hub passage, a twin query) at once, undone as one batch;
    refuse when the count differs from what the confirmation said."""
    at = now()
    where, params = SuspectFilter(kinds=("wrong_positive", "wrong_negative"), pattern=pattern).where(project)
    with transaction(conn):
        rows = conn.execute(f"SELECT s.* FROM suspects s WHERE {where} ORDER BY s.id", params).fetchall()
        if expected_rows is not None and len(rows) != int(expected_rows):
            raise SuspectConflict(
                f"The confirmation said {expected_rows} suspects, but {len(rows)} are open now; nothing was changed."
            )
        batch = None
        for s in rows:
            new = _check(action, s, s["id"])
            _move(conn, s, new, at)
            cur = conn.execute(
                "INSERT INTO suspect_judgements (project_id, suspect_id, old_status, new_status, at, actor, batch) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (project, s["id"], s["status"], new, at, actor, batch),
            )
            if batch is None:
                batch = inserted_id(cur)
                conn.execute("UPDATE suspect_judgements SET batch = ? WHERE id = ?", (batch, batch))
        return {"rows": len(rows), "batch": batch, "status": ACTIONS[action]}


def last_undoable(conn: sqlite3.Connection, project: int, actor: str | None = None) -> dict[str, Any] | None:
    """What `undo` would revert next (None when nothing is left), with how many rows it holds."""
    sql = "project_id = ? AND undone = 0 AND undoes IS NULL"
    params: list[Any] = [project]
    if actor is not None:
        sql, params = sql + " AND actor = ?", [project, actor]
    row = conn.execute(
        f"SELECT * FROM suspect_judgements WHERE {sql} ORDER BY id DESC LIMIT 1", params
    ).fetchone()
    if row is None:
        return None
    group = conn.execute(
        "SELECT COUNT(*) FROM suspect_judgements WHERE batch = ? AND undoes IS NULL", (row["batch"],)
    ).fetchone()[0]
    return {**dict(row), "rows": int(group) if row["batch"] is not None else 1}


def undo(conn: sqlite3.Connection, project: int, actor: str | None = "reviewer") -> dict[str, Any] | None:
    """Revert the last judgement not yet undone (a bulk action at once), exactly, with history of its own."""
    at = now()
    with transaction(conn):
        last = last_undoable(conn, project, actor)
        if last is None:
            return None
        group = (
            conn.execute(
                "SELECT * FROM suspect_judgements WHERE batch = ? AND undoes IS NULL AND undone = 0 ORDER BY id DESC",
                (last["batch"],),
            ).fetchall()
            if last["batch"] is not None
            else [last]
        )
        for j in group:
            s = conn.execute("SELECT * FROM suspects WHERE id = ?", (j["suspect_id"],)).fetchone()
            if s["status"] != j["new_status"]:
                raise SuspectConflict(
                    f"Cannot undo: suspect #{s['id']} was judged again since (now {s['status']!r}); nothing was undone."
                )
            _move(conn, s, j["old_status"], at)
            conn.execute(
                "INSERT INTO suspect_judgements (project_id, suspect_id, old_status, new_status, at, actor, undoes) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (project, s["id"], s["status"], j["old_status"], at, actor or j["actor"], j["id"]),
            )
            conn.execute("UPDATE suspect_judgements SET undone = 1 WHERE id = ?", (j["id"],))
        return {"rows": len(group), "suspect_id": last["suspect_id"], "restored": last["old_status"]}


def history(conn: sqlite3.Connection, project: int, limit: int = 200) -> list[dict[str, Any]]:
    """The audit trail of suspect judgements, newest first."""
    rows = conn.execute(
        """SELECT j.id, j.at, j.actor, j.suspect_id, s.kind, j.old_status, j.new_status, j.undoes, j.undone, j.batch,
                  substr(q.text, 1, 80) AS query, substr(p.text, 1, 80) AS passage
           FROM suspect_judgements j JOIN suspects s ON s.id = j.suspect_id
           JOIN queries q ON q.id = s.query_id JOIN passages p ON p.id = s.passage_id
           WHERE j.project_id = ? ORDER BY j.id DESC LIMIT ?""",
        (project, int(limit)),
    ).fetchall()
    return [dict(r) for r in rows]
