"""Training runs through the job queue: what the Train page and scripts call to start, watch, stop and resume a run."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.runs import jobs, records
from core.runs.job_row import Job
from core.runs.liveness import pid_alive
from core.runs.run_row import Run
from core.training.config import TrainConfig


def submit(conn: sqlite3.Connection, project: int, config: TrainConfig) -> str:
    """Queue a training run (validated first: bad settings never reach a process); returns the run id."""
    config.validate()
    run_id = records.create_run(conn, project, config.to_dict())
    records.add_event(conn, run_id, "message", {"text": "Queued."})
    jobs.submit_job(conn, project, "train", {"run_id": run_id}, run_id=run_id)
    return run_id


@dataclass(frozen=True)
class Watched:
    """A run as the Train page watches it: the record, its events since the last look, its process, its job."""

    run: Run
    events: list[dict[str, Any]]
    alive: bool
    job: Job | None

    @property
    def status(self) -> str:
        """The run's status (what waiting loops test)."""
        return self.run.status


def poll(conn: sqlite3.Connection, run_id: str, since_event: int = 0) -> Watched:
    """What the Train page shows: the run (status, progress, metrics), its events after `since_event`, its job."""
    jobs.reap_and_dispatch(conn)
    run = records.get_run(conn, run_id)
    return Watched(
        run, records.run_events(conn, run_id, since_event), pid_alive(run.pid), jobs.job_of_run(conn, run_id)
    )


def cancel(conn: sqlite3.Connection, run_id: str) -> str:
    """Ask a run to stop: a queued one is cancelled at once; a running one checkpoints and stops at its next step."""
    run = records.get_run(conn, run_id)
    j = jobs.job_of_run(conn, run_id)
    if run.status not in jobs.ACTIVE:
        raise jobs.JobError(f"Run {run_id} is {run.status}; only a queued or running run can be cancelled.")
    if j and j.status in jobs.ACTIVE:
        outcome = jobs.cancel_job(conn, j.id)
    else:
        outcome = "cancelled" if run.status == "queued" else "cancelling"
    if outcome == "cancelled":
        records.update_run(conn, run_id, status="cancelled", cancel_requested=1)
        records.add_event(conn, run_id, "message", {"text": "Cancelled before it started."})
    else:
        records.update_run(conn, run_id, cancel_requested=1)
        records.add_event(conn, run_id, "cancel", {"text": "Cancel requested."})
    return outcome


def resume(conn: sqlite3.Connection, run_id: str) -> str:
    """Queue a cancelled or failed run again; it continues from its last checkpoint (or starts over without one)."""
    run = records.get_run(conn, run_id)
    if run.status not in ("cancelled", "failed"):
        raise jobs.JobError(f"Run {run_id} is {run.status}; only a cancelled or failed run can be resumed.")
    ckpt = records.latest_checkpoint(records.run_folder(conn, run_id) / "checkpoints")
    records.update_run(conn, run_id, status="queued", cancel_requested=0, error=None, pid=None)
    records.add_event(
        conn,
        run_id,
        "message",
        {"text": f"Resume queued from {Path(ckpt).name if ckpt else 'the start (no checkpoint)'}."},
    )
    j = jobs.job_of_run(conn, run_id)
    if j and j.status in jobs.RETRYABLE:
        jobs.retry_job(conn, j.id)
    elif not j or j.status == "completed":
        jobs.submit_job(conn, run.project_id, "train", {"run_id": run_id}, run_id=run_id)
    else:
        jobs.dispatch(conn)
    return run_id


def list_runs(conn: sqlite3.Connection, project: int) -> list[Run]:
    """Every run of a project, newest first, JSON columns decoded."""
    return records.list_runs(conn, project)


def wait(conn: sqlite3.Connection, run_id: str, timeout: float = 600, every: float = 1.0) -> Watched:
    """Block until a run leaves queued/running (scripts and tests)."""
    return jobs.settled(lambda: poll(conn, run_id), lambda r: r.status, f"Run {run_id}", timeout, every)
