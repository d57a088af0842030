"""Training run rows and their events: the ONE place that creates, reads, updates and lists runs."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

from core import store
from core.errors import UserError
from core.runs.run_row import Run, decode


class RunError(UserError):
    """A run that does not exist, belongs elsewhere, or cannot be used the way it was asked for."""


def create_run(conn: sqlite3.Connection, project: int, config: dict[str, Any], status: str = "queued") -> str:
    """Register a run from an already validated config dict; returns the new run id."""
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    now = store.now()
    with store.transaction(conn):
        conn.execute(
            "INSERT INTO runs (id, project_id, created_at, updated_at, status, config) VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, project, now, now, status, json.dumps(config, default=float)),
        )
    return run_id


def cancel_asked(conn: sqlite3.Connection, run_id: str) -> bool:
    """Whether a person asked to cancel the run (the flag every training phase polls between steps)."""
    row = conn.execute("SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
    return bool(row and row[0])


def get_run(conn: sqlite3.Connection, run_id: str) -> Run:
    """A run with its JSON columns decoded; RunError when there is none."""
    row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise RunError(f"No run {run_id!r} in this workspace.")
    return decode(row)


def update_run(conn: sqlite3.Connection, run_id: str, **values: Any) -> None:
    """Set columns of one run (dicts and lists are stored as JSON); only this run's row is touched."""
    if not values:
        return
    cols, params = [], []
    for k, v in values.items():
        cols.append(f"{k} = ?")
        params.append(json.dumps(v, default=float) if isinstance(v, (dict, list)) else v)
    cols.append("updated_at = ?")
    params += [store.now(), run_id]
    with store.transaction(conn):
        conn.execute(f"UPDATE runs SET {', '.join(cols)} WHERE id = ?", params)


def add_event(
    conn: sqlite3.Connection, run_id: str, kind: str, data: dict[str, Any], step: int | None = None
) -> None:
    """One log line of a run (message, loss, eval, error, cancel)."""
    with store.transaction(conn):
        conn.execute(
            "INSERT INTO run_events (run_id, at, kind, step, data) VALUES (?, ?, ?, ?, ?)",
            (run_id, store.now(), kind, step, json.dumps(data, default=float)),
        )


def run_events(conn: sqlite3.Connection, run_id: str, since_event: int = 0) -> list[dict[str, Any]]:
    """A run's events after `since_event`, oldest first, data decoded."""
    rows = conn.execute(
        "SELECT id, at, kind, step, data FROM run_events WHERE run_id = ? AND id > ? ORDER BY id",
        (run_id, since_event),
    ).fetchall()
    return [dict(e) | {"data": json.loads(e["data"])} for e in rows]


def list_runs(conn: sqlite3.Connection, project: int, status: str | None = None) -> list[Run]:
    """A project's runs (optionally only one status), newest first, JSON columns decoded."""
    sql = "SELECT * FROM runs WHERE project_id = ?"
    params: list[Any] = [project]
    if status is not None:
        sql += " AND status = ?"
        params.append(status)
    rows = conn.execute(sql + " ORDER BY created_at DESC, id DESC", params).fetchall()
    return [decode(r) for r in rows]


def run_folder(conn: sqlite3.Connection, run_id: str) -> Path:
    """Where a run keeps its checkpoints, model and job log (under the workspace's runs/)."""
    return store.runs_dir(store.workspace_of(conn)) / run_id


def latest_checkpoint(folder: Path) -> str | None:
    """The newest complete Trainer checkpoint in a folder (one with trainer_state.json), if any."""

    def step(p: Path) -> int:
        tail = p.name.split("-")[-1]
        return int(tail) if tail.isdigit() else -1

    ckpts = [c for c in sorted(folder.glob("checkpoint-*"), key=step) if (c / "trainer_state.json").is_file()]
    return str(ckpts[-1]) if ckpts else None


def model_folder(conn: sqlite3.Connection, run: Run) -> Path:
    """A run's model folder, only if it really lies under the workspace's runs/ (a tampered row reads nothing)."""
    raw = run.model_dir or ""
    runs = store.runs_dir(store.workspace_of(conn)).resolve()
    if not raw:
        raise RunError(f"Run {run.id!r} has no model folder.")
    folder = Path(raw).resolve()
    if ".." in Path(raw).parts or not folder.is_relative_to(runs):
        raise RunError(
            f"The model folder {raw!r} of run {run.id} is outside the workspace's runs "
            f"folder ({runs}); it is not used."
        )
    if not folder.is_dir():
        raise RunError(f"The model folder {raw!r} of run {run.id} no longer exists.")
    return folder


def completed_run(conn: sqlite3.Connection, run_id: str, project: int | None = None) -> Run:
    """A completed run of `project` whose model folder lies under runs/, else RunError saying why not."""
    run = get_run(conn, run_id)
    if project is not None and run.project_id != project:
        raise RunError(f"Run {run_id!r} belongs to another project.")
    if run.status != "completed":
        raise RunError(f"Run {run_id!r} is {run.status}; only a completed run has a model to use.")
    model_folder(conn, run)
    return run
