"""A background job as pages, the CLI and tests read it: one typed record instead of a row's dict."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from core.runs.liveness import pid_alive


@dataclass(frozen=True)
class Job:
    """One row of the jobs table, args and result decoded, with a training run's own progress mirrored in."""

    id: int
    project_id: int
    kind: str
    status: str  # queued, running, completed, failed, cancelled or interrupted
    run_id: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    fraction: float = 0.0
    message: str = ""
    eta_s: float | None = None
    pid: int | None = None
    error: str | None = None
    attempts: int = 0
    cancel_requested: int = 0
    created_at: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    heartbeat_at: str | None = None
    alive: bool = False  # running with a live process


def decode(conn: sqlite3.Connection, row: sqlite3.Row) -> Job:
    """The row as a Job; a running training run's step count stands in for the job's own progress."""
    out = dict(row)
    out["args"], out["result"] = json.loads(out["args"] or "{}"), json.loads(out["result"] or "{}")
    out["alive"] = out["status"] == "running" and pid_alive(out["pid"])
    if out["run_id"] and out["status"] == "running":  # a training run writes its own progress: mirror it
        prog = json.loads(
            conn.execute("SELECT progress FROM runs WHERE id = ?", (out["run_id"],)).fetchone()[0] or "{}"
        )
        if prog.get("total"):
            out["fraction"] = min(1.0, (prog.get("step") or 0) / prog["total"])
            out["message"] = (
                f"{prog.get('phase', 'training')}: step {prog.get('step') or 0} of {prog['total']}"
            )
            out["eta_s"] = prog.get("eta_s")
        elif prog.get("phase"):
            out["message"] = prog["phase"]
    return Job(**{k: v for k, v in out.items() if k in Job.__dataclass_fields__})
