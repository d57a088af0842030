"""Projects: the ONE place that creates, finds, lists and configures them, with their headline counts."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from core.errors import UserError
from core.store.db import inserted_id, now, transaction


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise UserError("A project needs a name.")
    return name


def create_project(conn: sqlite3.Connection, name: str) -> int:
    """Projects are named by people; names are unique and not blank."""
    name = _clean_name(name)
    with transaction(conn):
        existing = conn.execute("SELECT id FROM projects WHERE name = ?", (name,)).fetchone()
        if existing:
            raise UserError(f"A project named {name!r} already exists.")
        cur = conn.execute("INSERT INTO projects (name, created_at) VALUES (?, ?)", (name, now()))
        return inserted_id(cur)


def project_in_transaction(conn: sqlite3.Connection, project: int | str) -> tuple[int, str]:
    """(id, name) of a project id or name, creating a new name, inside the caller's open transaction (so an
    import that fails leaves no empty project behind)."""
    if isinstance(project, int):
        row = conn.execute("SELECT id, name FROM projects WHERE id = ?", (project,)).fetchone()
        if row is None:
            raise UserError(f"No project with id {project}.")
        return int(row[0]), row[1]
    name = _clean_name(project)
    row = conn.execute("SELECT id FROM projects WHERE name = ?", (name,)).fetchone()
    if row:
        return int(row[0]), name
    cur = conn.execute("INSERT INTO projects (name, created_at) VALUES (?, ?)", (name, now()))
    return inserted_id(cur), name


def get_or_create_project(conn: sqlite3.Connection, name: str) -> int:
    """The CLI's --project creates on first use."""
    row = conn.execute("SELECT id FROM projects WHERE name = ?", (name.strip(),)).fetchone()
    return int(row["id"]) if row else create_project(conn, name)


def project_id(conn: sqlite3.Connection, name: str) -> int:
    """Resolve a project name, with a message that lists what exists when it is wrong."""
    row = conn.execute("SELECT id FROM projects WHERE name = ?", (name,)).fetchone()
    if row is None:
        names = [p["name"] for p in list_projects(conn)]
        raise UserError(f"No project named {name!r}. Projects: {', '.join(names) or 'none yet'}.")
    return int(row["id"])


def list_projects(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """All projects, oldest first, with their headline counts."""
    rows = conn.execute(
        """SELECT p.id, p.name, p.created_at,
                  (SELECT COUNT(*) FROM pairs WHERE project_id = p.id) AS pairs
           FROM projects p ORDER BY p.id"""
    ).fetchall()
    return [dict(r) for r in rows]


def delete_project(conn: sqlite3.Connection, project: int) -> None:
    """Remove a project and everything under it in one transaction."""
    with transaction(conn):
        conn.execute("DELETE FROM projects WHERE id = ?", (project,))


def project_settings(conn: sqlite3.Connection, project: int) -> dict[str, Any]:
    """Per-project choices (models, last parameters) that pages remember."""
    row = conn.execute("SELECT settings FROM projects WHERE id = ?", (project,)).fetchone()
    return json.loads(row["settings"]) if row else {}


def update_project_settings(conn: sqlite3.Connection, project: int, **values: Any) -> None:
    """Merge values into the project's settings."""
    with transaction(conn):
        settings = project_settings(conn, project)
        settings.update(values)
        conn.execute("UPDATE projects SET settings = ? WHERE id = ?", (json.dumps(settings), project))


# --- counts the pages show everywhere ---------------------------------------------------------


def project_counts(conn: sqlite3.Connection, project: int) -> dict[str, int]:
    """Headline figures: pairs, unique queries and passages per split, negatives and judgements."""
    one = lambda sql: int(conn.execute(sql, (project,)).fetchone()[0])  # noqa: E731
    return {
        "train_pairs": one(
            "SELECT COUNT(*) FROM pairs p JOIN queries q ON q.id = p.query_id "
            "WHERE p.project_id = ? AND q.split = 'train'"
        ),
        "train_positives": one(
            "SELECT COUNT(*) FROM pairs p JOIN queries q ON q.id = p.query_id "
            "WHERE p.project_id = ? AND q.split = 'train' AND p.label > 0"
        ),
        "test_pairs": one(
            "SELECT COUNT(*) FROM pairs p JOIN queries q ON q.id = p.query_id "
            "WHERE p.project_id = ? AND q.split = 'test'"
        ),
        "train_queries": one("SELECT COUNT(*) FROM queries WHERE project_id = ? AND split = 'train'"),
        "test_queries": one("SELECT COUNT(*) FROM queries WHERE project_id = ? AND split = 'test'"),
        "passages": one("SELECT COUNT(*) FROM passages WHERE project_id = ?"),
        "negatives": one("SELECT COUNT(*) FROM negatives WHERE project_id = ?"),
        "judged": one("SELECT COUNT(*) FROM negatives WHERE project_id = ? AND status != 'unjudged'"),
    }
