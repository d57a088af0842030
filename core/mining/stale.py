"""Mining runs whose process died: a row left 'running' by a killed or crashed miner is closed as 'interrupted'.

Nothing else needs undoing: a run's negatives (and its extra-corpus passages) are written in the same transaction
that marks it completed (core.mining.results.save_run), so an interrupted run wrote none. A running row records
its process (pid and start time) in its stats; a row is stale once that process is gone. Rows from before that
record are stale when no mining job of the project is running.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any

from core import store
from core.runs.liveness import pid_alive

INTERRUPTED = "the mining process stopped before it finished (killed, or the machine or studio restarted)"
DEATH_GRACE_S = 3.0


def _started(pid: int) -> float | None:
    """When a process started (to tell it from a later one given the same pid); None when unknown."""
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # noqa: BLE001 - no such process, or psutil missing
        return None


def owner() -> dict[str, Any]:
    """What a running row records about the process mining it."""
    return {"pid": os.getpid(), "pid_started": _started(os.getpid())}


def _owner_alive(stats: dict[str, Any]) -> bool | None:
    """Whether the recorded miner still runs; None when the row recorded none."""
    pid = stats.get("pid")
    if not pid:
        return None
    if not pid_alive(int(pid)):
        return False
    then, now = stats.get("pid_started"), _started(int(pid))
    return then is None or now is None or abs(now - float(then)) < 1.0


def _mine_job_running(conn: sqlite3.Connection, project: int) -> bool:
    """A mining job of the project whose process is alive."""
    rows = conn.execute(
        "SELECT pid FROM jobs WHERE project_id = ? AND kind = 'mine' AND status = 'running'", (project,)
    ).fetchall()
    return any(pid_alive(r["pid"]) for r in rows)


def close_stale_runs(conn: sqlite3.Connection, project: int | None = None, grace_s: float = 0.0) -> list[int]:
    """Mark the project's (or every project's) 'running' mining rows with no live miner 'interrupted'; their ids.

    `grace_s`: how long a recorded miner may take to finish dying (just killed with its job)."""
    sql, params = "SELECT id, project_id, stats FROM mining_runs WHERE status = 'running'", []
    if project is not None:
        sql, params = sql + " AND project_id = ?", [project]
    closed, deadline = [], time.time() + grace_s
    for row in conn.execute(sql, params).fetchall():
        stats = json.loads(row["stats"] or "{}")
        alive = _owner_alive(stats)
        while alive and time.time() < deadline:
            time.sleep(0.1)
            alive = _owner_alive(stats)
        if alive is None:
            alive = _mine_job_running(conn, row["project_id"])
        if alive:
            continue
        with store.transaction(conn):
            cur = conn.execute(
                "UPDATE mining_runs SET status = 'interrupted', stats = ? WHERE id = ? "
                "AND status = 'running'",
                (json.dumps({**stats, "error": INTERRUPTED}), row["id"]),
            )
        if cur.rowcount:
            closed.append(int(row["id"]))
    return closed


def close_after_job_death(conn: sqlite3.Connection, project: int) -> list[int]:
    """The mining job kind's tidy-up (core.mining.job.KIND) for a dead mining job: its miner may be dying still."""
    return close_stale_runs(conn, project, grace_s=DEATH_GRACE_S)
