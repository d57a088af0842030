"""Background jobs: one queue for every long step (training, mining, evaluation, quality, snippets), one heavy
job at a time, each in its own detached process so it outlives the page, a reload and the studio itself.

Queue: `submit_job` stores a 'queued' row and calls `dispatch`. `dispatch`, inside one write transaction, starts the
oldest queued job only when nothing else is running with a live process (a job, or a run started outside the
queue). It is called (1) on submit and retry, (2) by the finished job's own process (core.runs.worker), so the next
job starts with no page open, and (3) by every `reap_and_dispatch`, which pages call while they poll. `reap` marks a
job whose process is gone as failed (cause known) or interrupted (cause unknown) within one poll.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from core import store
from core.errors import UserError
from core.runs import records
from core.runs.job_row import Job, decode
from core.runs.kinds import DeathHook
from core.runs.liveness import (
    HEARTBEAT_TIMEOUT_S,
    adopt,
    age_s,
    describe_exit,
    exit_code,
    kill_group,
    pid_alive,
    terminate,
)

ROOT = Path(__file__).resolve().parents[2]
CANCEL_GRACE_S = 60.0
T = TypeVar("T")
ACTIVE = ("queued", "running")
RETRYABLE = ("failed", "cancelled", "interrupted")
SUPERVISOR_GRACE_S = 3.0


class JobError(UserError):
    """A job request that cannot be honoured (unknown job or kind, wrong state), said plainly."""


# --- reading ----------------------------------------------------------------------------------


def job(conn: sqlite3.Connection, job_id: int) -> Job:
    """One job with args/result decoded and `alive`; JobError when there is none."""
    row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise JobError(f"No job {job_id} in this workspace.")
    return decode(conn, row)


def active_jobs(conn: sqlite3.Connection, project: int | None = None) -> list[Job]:
    """Running and queued jobs (of one project, or all), running first, then in queue order."""
    sql = "SELECT * FROM jobs WHERE status IN ('queued', 'running')"
    params: list[Any] = []
    if project is not None:
        sql, params = sql + " AND project_id = ?", [project]
    rows = conn.execute(sql + " ORDER BY status = 'queued', id", params).fetchall()
    return [decode(conn, r) for r in rows]


def list_jobs(conn: sqlite3.Connection, project: int, kind: str | None = None, limit: int = 20) -> list[Job]:
    """A project's latest jobs (optionally of one kind), newest first."""
    sql = "SELECT * FROM jobs WHERE project_id = ?"
    params: list[Any] = [project]
    if kind:
        sql, params = sql + " AND kind = ?", [project, kind]
    rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", [*params, limit]).fetchall()
    return [decode(conn, r) for r in rows]


def latest_completed(conn: sqlite3.Connection, project: int, kind: str, **args: Any) -> Job | None:
    """The newest completed job of a kind whose args hold these values: a stored result a page shows again."""
    sql = "SELECT * FROM jobs WHERE project_id = ? AND kind = ? AND status = 'completed'"
    params: list[Any] = [project, kind]
    for key, value in args.items():
        sql, params = sql + " AND json_extract(args, ?) = ?", [*params, f'$."{key}"', value]
    row = conn.execute(sql + " ORDER BY id DESC LIMIT 1", params).fetchone()
    return decode(conn, row) if row is not None else None


# --- the queue --------------------------------------------------------------------------------


def submit_job(
    conn: sqlite3.Connection,
    project: int,
    kind: str,
    args: dict[str, Any] | None = None,
    run_id: str | None = None,
    after_death: DeathHook | None = None,
) -> int:
    """Queue a job and start it if nothing else runs; returns its id (core.queue.submit checks the kind first)."""
    text = json.dumps(args or {})  # refuses what a process could not receive
    with store.transaction(conn):
        job_id = store.inserted_id(
            conn.execute(
                "INSERT INTO jobs (project_id, kind, args, run_id, created_at, message) VALUES (?, ?, ?, ?, ?, 'Queued.')",
                (project, kind, text, run_id, store.now()),
            )
        )
    dispatch(conn, after_death)
    return job_id


def _launch(conn: sqlite3.Connection, job_id: int) -> int:
    """Start `python -m core job --id N` detached (own session), logging to a file; returns its pid."""
    row = conn.execute("SELECT run_id FROM jobs WHERE id = ?", (job_id,)).fetchone()
    folder = records.run_folder(conn, row["run_id"]) if row["run_id"] else store.workspace_of(conn) / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    # The job inherits the studio's network setting: offline stays offline, an online user's hub id still loads.
    env = {
        **os.environ,
        "RERANK_STUDIO_HOME": str(store.workspace_of(conn)),
        "TOKENIZERS_PARALLELISM": "false",
    }
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    with open(folder / ("job.log" if row["run_id"] else f"job-{job_id}.log"), "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "core", "job", "--id", str(job_id)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return adopt(proc)


def _busy(conn: sqlite3.Connection) -> bool:
    """A job, or a run started outside the queue (the CLI), holds the machine."""
    for r in conn.execute("SELECT pid, started_at FROM jobs WHERE status = 'running'"):
        if pid_alive(r["pid"]) or (not r["pid"] and age_s(r["started_at"]) < HEARTBEAT_TIMEOUT_S):
            return True
    for r in conn.execute("SELECT pid, updated_at FROM runs WHERE status = 'running'"):
        if pid_alive(r["pid"]) or (not r["pid"] and age_s(r["updated_at"]) < HEARTBEAT_TIMEOUT_S):
            return True
    return False


def dispatch(conn: sqlite3.Connection, after_death: DeathHook | None = None) -> int | None:
    """Start the oldest queued job if nothing holds the machine; returns the started job's id."""
    reap(conn, after_death)
    with store.transaction(conn):
        if _busy(conn):
            return None
        nxt = conn.execute(
            "SELECT id, run_id FROM jobs WHERE status = 'queued' AND cancel_requested = 0 ORDER BY id LIMIT 1"
        ).fetchone()
        if nxt is None:
            return None
        pid, now = _launch(conn, nxt["id"]), store.now()
        conn.execute(
            "UPDATE jobs SET status = 'running', pid = ?, started_at = ?, heartbeat_at = ?, finished_at = NULL, "
            "attempts = attempts + 1, message = 'Starting.' WHERE id = ?",
            (pid, now, now, nxt["id"]),
        )
        if nxt["run_id"]:
            conn.execute(
                "UPDATE runs SET status = 'running', pid = ?, heartbeat_at = ?, updated_at = ? WHERE id = ?",
                (pid, now, now, nxt["run_id"]),
            )
    if nxt["run_id"]:
        records.add_event(conn, nxt["run_id"], "message", {"text": f"Launched as process {pid}."})
    return nxt["id"]


def finish(
    conn: sqlite3.Connection,
    job_id: int,
    status: str,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    """Close a running job once (the first writer wins); True when this call closed it."""
    done = status == "completed"
    with store.transaction(conn):
        cur = conn.execute(
            "UPDATE jobs SET status = ?, result = ?, error = ?, pid = NULL, finished_at = ?, "
            "fraction = CASE WHEN ? THEN 1 ELSE fraction END, eta_s = CASE WHEN ? THEN 0 ELSE NULL END, "
            "message = ? WHERE id = ? AND status = 'running'",
            (
                status,
                json.dumps(result or {}, default=str),
                error,
                store.now(),
                done,
                done,
                {"completed": "Done.", "cancelled": "Cancelled."}.get(status, error or status),
                job_id,
            ),
        )
    return cur.rowcount == 1


def fail_run(conn: sqlite3.Connection, run_id: str, reason: str, cancelled: bool = False) -> bool:
    """Mark a run whose process is gone failed (or cancelled, when that was asked) once; True when this call did."""
    status = "cancelled" if cancelled else "failed"
    with store.transaction(conn):
        cur = conn.execute(
            "UPDATE runs SET status = ?, error = ?, pid = NULL, updated_at = ? "
            "WHERE id = ? AND status IN ('running', 'queued')",
            (status, None if cancelled else reason, store.now(), run_id),
        )
    if cur.rowcount:
        records.add_event(
            conn,
            run_id,
            "message" if cancelled else "error",
            {"text": "Cancelled: the process stopped." if cancelled else reason},
        )
    return cur.rowcount == 1


def _wait_closed(conn: sqlite3.Connection, sql: str, key: Any, seconds: float) -> bool:
    """Give a live supervisor a moment to record its child's death itself (it knows the exit code)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if conn.execute(sql, (key,)).fetchone()[0] != "running":
            return True
        time.sleep(0.1)
    return False


def reap(conn: sqlite3.Connection, after_death: DeathHook | None = None) -> list[int]:
    """Close running jobs (and runs) whose process is gone or silent too long, with the likely cause.

    `after_death` (core.queue's) lets the job's domain tidy what its process left half-done."""
    closed = []
    for r in conn.execute("SELECT * FROM jobs WHERE status = 'running'").fetchall():
        alive = pid_alive(r["pid"]) if r["pid"] else age_s(r["started_at"]) < HEARTBEAT_TIMEOUT_S
        stale = age_s(r["heartbeat_at"]) > HEARTBEAT_TIMEOUT_S
        asked = r["cancel_requested"]
        if alive and not stale:
            if asked and time.time() - asked > CANCEL_GRACE_S:
                terminate(r["pid"])
                if finish(conn, r["id"], "cancelled") and after_death:
                    after_death(conn, r["kind"], r["project_id"])
                if r["run_id"]:
                    fail_run(conn, r["run_id"], "", cancelled=True)
            continue
        if alive:
            terminate(r["pid"])
            cause, status = f"no heartbeat for {int(age_s(r['heartbeat_at']))} s; terminated", "failed"
        else:
            code = exit_code(r["pid"])
            kill_group(r["pid"])  # workers orphaned by a killed supervisor
            cause, status = describe_exit(code), "failed" if code is not None else "interrupted"
        reason = f"process died: {cause}"
        if finish(conn, r["id"], "cancelled" if asked else status, error=None if asked else reason):
            closed.append(r["id"])
            if after_death:
                after_death(conn, r["kind"], r["project_id"])
        if r["run_id"]:
            fail_run(conn, r["run_id"], reason, cancelled=bool(asked))
    _reap_runs(conn)
    return closed


def _reap_runs(conn: sqlite3.Connection) -> None:
    """Runs whose own training process died (its job's supervisor may still be recording why)."""
    for r in conn.execute(
        "SELECT id, pid, updated_at, heartbeat_at, cancel_requested FROM runs WHERE status = 'running'"
    ).fetchall():
        alive = pid_alive(r["pid"]) if r["pid"] else age_s(r["updated_at"]) < HEARTBEAT_TIMEOUT_S
        stale = age_s(r["heartbeat_at"]) > HEARTBEAT_TIMEOUT_S
        if alive and not stale:
            continue
        supervised = conn.execute(
            "SELECT pid FROM jobs WHERE run_id = ? AND status = 'running'", (r["id"],)
        ).fetchone()
        if (
            supervised
            and pid_alive(supervised["pid"])
            and _wait_closed(conn, "SELECT status FROM runs WHERE id = ?", r["id"], SUPERVISOR_GRACE_S)
        ):
            continue
        if alive:
            terminate(r["pid"])
        cause = (
            f"no heartbeat for {int(age_s(r['heartbeat_at']))} s; terminated"
            if alive
            else describe_exit(exit_code(r["pid"]))
        )
        fail_run(conn, r["id"], f"process died: {cause}", cancelled=bool(r["cancel_requested"]))


def reap_and_dispatch(conn: sqlite3.Connection, after_death: DeathHook | None = None) -> dict[str, Any]:
    """What a page calls while it polls (and the studio once at start-up): close dead jobs, start the next."""
    closed = reap(conn, after_death)
    return {"closed": closed, "started": dispatch(conn, after_death)}


def job_of_run(conn: sqlite3.Connection, run_id: str) -> Job | None:
    """The latest job that ran (or queues) a training run, if any."""
    row = conn.execute("SELECT * FROM jobs WHERE run_id = ? ORDER BY id DESC LIMIT 1", (run_id,)).fetchone()
    return decode(conn, row) if row else None


def cancel_job(conn: sqlite3.Connection, job_id: int) -> str:
    """Stop a job: a queued one at once ('cancelled'); a running one at its next progress report ('cancelling'),
    terminated if it has not stopped within CANCEL_GRACE_S."""
    j = job(conn, job_id)
    if j.status not in ACTIVE:
        raise JobError(f"Job {job_id} is {j.status}; only a queued or running job can be cancelled.")
    with store.transaction(conn):
        conn.execute(
            "UPDATE jobs SET cancel_requested = ?, message = 'Cancel requested.' WHERE id = ?",
            (int(time.time()), job_id),
        )
        if j.status == "queued":
            conn.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, message = 'Cancelled before it "
                "started.' WHERE id = ?",
                (store.now(), job_id),
            )
        if j.run_id:
            conn.execute(
                "UPDATE runs SET cancel_requested = 1, updated_at = ? WHERE id = ?",
                (store.now(), j.run_id),
            )
    return "cancelled" if j.status == "queued" else "cancelling"


def retry_job(conn: sqlite3.Connection, job_id: int, after_death: DeathHook | None = None) -> int:
    """Queue a failed, cancelled or interrupted job again (a training run continues from its last checkpoint)."""
    j = job(conn, job_id)
    if j.status not in RETRYABLE:
        raise JobError(
            f"Job {job_id} is {j.status}; only a failed, cancelled or interrupted job can be retried."
        )
    with store.transaction(conn):
        conn.execute(
            "UPDATE jobs SET status = 'queued', cancel_requested = 0, error = NULL, fraction = 0, eta_s = NULL, "
            "pid = NULL, finished_at = NULL, result = '{}', message = 'Queued again.' WHERE id = ?",
            (job_id,),
        )
        if j.run_id:
            conn.execute(
                "UPDATE runs SET status = 'queued', cancel_requested = 0, error = NULL, pid = NULL, "
                "updated_at = ? WHERE id = ?",
                (store.now(), j.run_id),
            )
    dispatch(conn, after_death)
    return job_id


def wait_job(
    conn: sqlite3.Connection,
    job_id: int,
    timeout: float = 600,
    every: float = 0.5,
    after_death: DeathHook | None = None,
) -> Job:
    """Block until a job leaves queued/running (scripts and tests)."""

    def fetch() -> Job:
        reap_and_dispatch(conn, after_death)
        return job(conn, job_id)

    return settled(fetch, lambda j: j.status, f"Job {job_id}", timeout, every)


def settled(fetch: Callable[[], T], status: Callable[[T], str], what: str, timeout: float, every: float) -> T:
    """Poll `fetch` until its item leaves queued/running; TimeoutError after `timeout` seconds."""
    deadline = time.time() + timeout
    item = fetch()
    while status(item) in ACTIVE:
        if time.time() > deadline:
            raise TimeoutError(f"{what} still {status(item)} after {timeout} s.")
        time.sleep(every)
        item = fetch()
    return item
