"""The job's own process: `python -m core job --id N` supervises `... --work`, which runs the job's kind.

Why two processes: a worker killed by the kernel (out of memory) or by a person cannot say so itself. Its small
supervisor waits for it, reads the exit code, records the likely cause on the job (and on its training run) at
once, and starts the next queued job, whether or not a studio page, or the studio itself, is still there.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from typing import Any

from core import store
from core.errors import Cancelled, StudioError
from core.runs import jobs, records
from core.runs.kinds import Adapter, DeathHook
from core.runs.liveness import Heartbeat, describe_exit

WRITE_EVERY_S = 0.5


class JobProgress:
    """A core.progress.Progress that writes fraction, message and an ETA (from elapsed time) into the job row."""

    def __init__(self, conn: sqlite3.Connection, job_id: int):
        self.conn, self.job_id, self.t0, self.last = conn, job_id, time.time(), 0.0

    def __call__(self, fraction: float, message: str) -> None:
        now = time.time()
        fraction = min(1.0, max(0.0, float(fraction)))
        if now - self.last < WRITE_EVERY_S and fraction < 1.0:
            return
        elapsed = now - self.t0
        eta = elapsed * (1 - fraction) / fraction if fraction >= 0.01 and elapsed > 1 else None
        self.conn.execute(
            "UPDATE jobs SET fraction = ?, message = ?, eta_s = ?, heartbeat_at = ? WHERE id = ?",
            (
                fraction,
                str(message)[:300],
                round(eta, 1) if eta is not None else None,
                store.now(),
                self.job_id,
            ),
        )
        self.last = now


def should_cancel_for(conn: sqlite3.Connection, job_id: int) -> Any:
    """A should_cancel() callable reading the job's cancel flag."""

    def should_cancel() -> bool:
        row = conn.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    return should_cancel


def work(conn: sqlite3.Connection, job_id: int, adapter: Adapter) -> dict[str, Any]:
    """Run the job's adapter in this process and close the job: completed, cancelled or failed (with the reason)."""
    j = jobs.job(conn, job_id)
    should_cancel = should_cancel_for(conn, job_id)
    try:
        with Heartbeat(store.workspace_of(conn), "jobs", job_id):
            result = adapter(conn, j.project_id, j.args, JobProgress(conn, job_id), should_cancel)
        jobs.finish(conn, job_id, "completed", result=result)
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded on this job only
        stopped = isinstance(exc, Cancelled) or should_cancel()
        reason = None if stopped else f"{type(exc).__name__}: {exc}"[:1000]
        jobs.finish(conn, job_id, "cancelled" if stopped else "failed", error=reason)
        if not stopped:
            raise StudioError(reason) from exc
    return {"job_id": job_id, "status": jobs.job(conn, job_id).status}


def supervise(conn: sqlite3.Connection, job_id: int, after_death: DeathHook | None = None) -> dict[str, Any]:
    """Run the worker as a child; if it dies without closing the job, close it with the cause; start the next."""
    attempt = jobs.job(conn, job_id).attempts
    child = subprocess.Popen(
        [sys.executable, "-m", "core", "job", "--id", str(job_id), "--work"], stdout=sys.stderr
    )
    conn.execute("UPDATE jobs SET pid = ? WHERE id = ? AND pid IS NULL", (os.getpid(), job_id))
    signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signal.SIGTERM))
    code = child.wait()
    j = jobs.job(conn, job_id)
    if j.attempts != attempt:  # closed by its worker, then queued again (a resume) and started by another one
        return {"job_id": job_id, "status": "superseded", "exit_code": code}
    if j.status == "running":
        reason = f"process died: {describe_exit(code)}"
        asked = bool(j.cancel_requested)
        jobs.finish(conn, job_id, "cancelled" if asked else "failed", error=None if asked else reason)
        if j.run_id:
            _record_run_death(conn, j.run_id, reason, asked)
    elif j.run_id and code != 0:
        _record_run_death(conn, j.run_id, f"process died: {describe_exit(code)}", bool(j.cancel_requested))
    if (
        code != 0 and after_death
    ):  # the worker may have died before its own clean-up (a mining row left 'running')
        after_death(conn, j.kind, j.project_id)
    try:
        jobs.dispatch(conn, after_death)
    except Exception as exc:  # noqa: BLE001 - the queue is also advanced by every page poll
        print(f"could not start the next queued job: {exc}", file=sys.stderr)
    return {"job_id": job_id, "status": jobs.job(conn, job_id).status, "exit_code": code}


def train_in_foreground(conn: sqlite3.Connection, project: int, run_id: str) -> dict[str, Any]:
    """`python -m core train --project`: train a run now (outside the queue) in a supervised child, so a run the
    kernel kills is recorded as failed with its cause and the CLI exits non-zero with a JSON error line."""
    with store.transaction(conn):
        job_id = store.inserted_id(
            conn.execute(
                "INSERT INTO jobs (project_id, kind, args, run_id, status, pid, created_at, started_at, heartbeat_at, "
                "attempts, message) VALUES (?, 'train', ?, ?, 'running', NULL, ?, ?, ?, 1, 'Started from the command line.')",
                (project, json.dumps({"run_id": run_id}), run_id, store.now(), store.now(), store.now()),
            )
        )
    supervise(conn, job_id)
    run = records.get_run(conn, run_id)
    if run.status == "failed":
        raise StudioError(f"Run {run_id} failed: {run.error}")
    return {"run_id": run_id, "status": run.status, "metrics": run.metrics}


def _record_run_death(conn: sqlite3.Connection, run_id: str, reason: str, cancelled: bool) -> None:
    """Close the run, or sharpen the cause a page's reap recorded before the exit code was known."""
    if jobs.fail_run(conn, run_id, reason, cancelled) or cancelled:
        return
    run = records.get_run(conn, run_id)
    if run.status == "failed" and "exit status is unknown" in (run.error or "") and "unknown" not in reason:
        records.update_run(conn, run_id, error=reason)
        records.add_event(conn, run_id, "error", {"text": reason})
