"""Background training jobs: one heavy process at a time, started detached so it outlives the page and the studio.

Queue mechanism (deliberately simple): `submit` stores the run as 'queued' and calls `dispatch`. `dispatch`, inside
one write transaction, starts the oldest queued run only when no run is 'running' with a live process. It is called
(1) on submit and resume, (2) by a finishing job itself (`python -m core train --run` calls it on exit, so the next
run starts even with no browser open) and (3) by every `poll` (which also catches a job that died without calling it).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core import store, training

ROOT = Path(__file__).resolve().parents[1]
HEARTBEAT_TIMEOUT_S = 90.0
CANCEL_GRACE_S = 60.0


def pid_alive(pid: int | None) -> bool:
    """True while the process exists and is not a zombie (a dead child not yet reaped)."""
    if not pid:
        return False
    try:
        os.waitpid(pid, os.WNOHANG)  # reap our own dead child so it stops looking alive
    except (ChildProcessError, OSError):
        pass
    try:
        import psutil

        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - no such process, or psutil missing
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False


def _age_s(stamp: str | None) -> float:
    if not stamp:
        return float("inf")
    return (datetime.now(timezone.utc) - datetime.fromisoformat(stamp)).total_seconds()


def submit(conn: sqlite3.Connection, project: int, cfg: training.TrainConfig) -> str:
    """Queue a run (validated first: bad settings never reach a process) and start it if nothing else runs."""
    run_id = training.create_run(conn, project, cfg, status="queued")
    training.add_event(conn, run_id, "message", {"text": "Queued."})
    dispatch(conn)
    return run_id


def _launch(conn: sqlite3.Connection, run_id: str) -> int:
    folder = training.run_folder(conn, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    # The job inherits the studio's network setting: offline stays offline, an online user's hub id still loads.
    env = {**os.environ, "RERANK_STUDIO_HOME": str(store.workspace_of(conn)), "TOKENIZERS_PARALLELISM": "false"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    log = open(folder / "job.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "core", "train", "--run", run_id], cwd=ROOT, env=env,
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    log.close()
    return proc.pid


def dispatch(conn: sqlite3.Connection) -> str | None:
    """Start the oldest queued run if no live run holds the machine; returns the started run id."""
    reap(conn)
    with store.transaction(conn):
        busy = conn.execute("SELECT id, pid FROM runs WHERE status = 'running'").fetchall()
        if any(pid_alive(r["pid"]) or r["pid"] is None for r in busy):
            return None
        nxt = conn.execute("SELECT id FROM runs WHERE status = 'queued' AND cancel_requested = 0 "
                           "ORDER BY created_at, id LIMIT 1").fetchone()
        if nxt is None:
            return None
        run_id = nxt["id"]
        pid = _launch(conn, run_id)
        conn.execute("UPDATE runs SET status = 'running', pid = ?, heartbeat_at = ?, updated_at = ? WHERE id = ?",
                     (pid, store.now(), store.now(), run_id))
    training.add_event(conn, run_id, "message", {"text": f"Launched as process {pid}."})
    return run_id


def reap(conn: sqlite3.Connection) -> list[str]:
    """Mark 'running' runs whose process is gone (or silent too long) as failed: 'process died'."""
    dead = []
    for r in conn.execute("SELECT id, pid, heartbeat_at, cancel_requested, updated_at FROM runs WHERE status = 'running'").fetchall():
        alive = pid_alive(r["pid"]) if r["pid"] else _age_s(r["updated_at"]) < HEARTBEAT_TIMEOUT_S
        stale = _age_s(r["heartbeat_at"]) > HEARTBEAT_TIMEOUT_S
        if alive and not stale:
            if r["cancel_requested"] and _cancel_age(conn, r["id"]) > CANCEL_GRACE_S:
                _terminate(r["pid"])
                training.update_run(conn, r["id"], status="cancelled", pid=None)
                training.add_event(conn, r["id"], "message", {"text": "Did not stop in time after Cancel: terminated."})
            continue
        if alive and stale:
            _terminate(r["pid"])
        reason = ("process died" if not alive else
                  f"process died (no heartbeat for {int(_age_s(r['heartbeat_at']))} s; terminated)")
        if r["cancel_requested"]:
            training.update_run(conn, r["id"], status="cancelled", pid=None)
        else:
            training.update_run(conn, r["id"], status="failed", error=reason, pid=None)
            training.add_event(conn, r["id"], "error", {"text": reason})
        dead.append(r["id"])
    return dead


def _cancel_age(conn: sqlite3.Connection, run_id: str) -> float:
    row = conn.execute("SELECT at FROM run_events WHERE run_id = ? AND kind = 'cancel' ORDER BY id DESC LIMIT 1",
                       (run_id,)).fetchone()
    return _age_s(row["at"]) if row else 0.0


def _terminate(pid: int | None) -> None:
    if not pid:
        return
    try:
        os.killpg(os.getpgid(pid), signal.SIGTERM)
        time.sleep(2)
        if pid_alive(pid):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def poll(conn: sqlite3.Connection, run_id: str, since_event: int = 0) -> dict[str, Any]:
    """What a page shows: the run (status, progress, metrics) and its events after `since_event`."""
    reap(conn)
    dispatch(conn)
    run = training.get_run(conn, run_id)
    events = [dict(e) | {"data": json.loads(e["data"])} for e in conn.execute(
        "SELECT id, at, kind, step, data FROM run_events WHERE run_id = ? AND id > ? ORDER BY id", (run_id, since_event))]
    run["events"] = events
    run["alive"] = pid_alive(run["pid"])
    return run


def cancel(conn: sqlite3.Connection, run_id: str) -> str:
    """Ask a run to stop: a queued one is cancelled at once; a running one checkpoints and stops at its next step
    (terminated if it has not stopped within CANCEL_GRACE_S)."""
    run = training.get_run(conn, run_id)
    if run["status"] == "queued":
        training.update_run(conn, run_id, status="cancelled", cancel_requested=1)
        training.add_event(conn, run_id, "message", {"text": "Cancelled before it started."})
        return "cancelled"
    if run["status"] != "running":
        raise ValueError(f"Run {run_id} is {run['status']}; only a queued or running run can be cancelled.")
    training.update_run(conn, run_id, cancel_requested=1)
    training.add_event(conn, run_id, "cancel", {"text": "Cancel requested."})
    return "cancelling"


def resume(conn: sqlite3.Connection, run_id: str) -> str:
    """Queue a cancelled or failed run again; it continues from its last checkpoint (or starts over without one)."""
    run = training.get_run(conn, run_id)
    if run["status"] not in ("cancelled", "failed"):
        raise ValueError(f"Run {run_id} is {run['status']}; only a cancelled or failed run can be resumed.")
    ckpt = training._latest_checkpoint(training.run_folder(conn, run_id) / "checkpoints")
    training.update_run(conn, run_id, status="queued", cancel_requested=0, error=None, pid=None)
    training.add_event(conn, run_id, "message", {"text": f"Resume queued from {Path(ckpt).name if ckpt else 'the start (no checkpoint)'}."})
    dispatch(conn)
    return run_id


def list_runs(conn: sqlite3.Connection, project: int) -> list[dict[str, Any]]:
    """Every run of a project, newest first, JSON columns decoded."""
    rows = conn.execute("SELECT id FROM runs WHERE project_id = ? ORDER BY created_at DESC, id DESC", (project,)).fetchall()
    return [training.get_run(conn, r["id"]) for r in rows]


def wait(conn: sqlite3.Connection, run_id: str, timeout: float = 600, every: float = 1.0) -> dict[str, Any]:
    """Block until a run leaves queued/running (scripts and tests)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = poll(conn, run_id)
        if run["status"] not in ("queued", "running"):
            return run
        time.sleep(every)
    raise TimeoutError(f"Run {run_id} still {run['status']} after {timeout} s.")
