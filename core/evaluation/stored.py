"""Stored evaluations: one row per evaluation in the `evaluations` table, loaded back as `evaluate` returned it."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from core import store
from core.evaluation.common import EvaluationError


def save_evaluation(conn: sqlite3.Connection, project: int, results: dict[str, Any]) -> int:
    """One row in `evaluations`; run_id holds the first run evaluated (all are in params)."""
    params = results.get("params", {})
    run_id = (params.get("run_ids") or [None])[0]
    with store.transaction(conn):
        cur = conn.execute(
            "INSERT INTO evaluations (project_id, run_id, created_at, params, results) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                project,
                run_id,
                store.now(),
                json.dumps(params),
                json.dumps({k: v for k, v in results.items() if k != "params"}),
            ),
        )
    return store.inserted_id(cur)


def list_evaluations(conn: sqlite3.Connection, project: int) -> list[dict[str, Any]]:
    """Stored evaluations of a project, newest first (params only, results are loaded on demand)."""
    rows = conn.execute(
        "SELECT id, run_id, created_at, params FROM evaluations WHERE project_id = ? ORDER BY id DESC",
        (project,),
    ).fetchall()
    return [{**dict(r), "params": json.loads(r["params"])} for r in rows]


def load_evaluation(conn: sqlite3.Connection, evaluation_id: int) -> dict[str, Any]:
    """A stored evaluation as `evaluate` returned it."""
    row = conn.execute("SELECT * FROM evaluations WHERE id = ?", (evaluation_id,)).fetchone()
    if row is None:
        raise EvaluationError(f"No evaluation {evaluation_id}.")
    return {
        **json.loads(row["results"]),
        "params": json.loads(row["params"]),
        "evaluation_id": int(row["id"]),
    }
