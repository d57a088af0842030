"""The training domain's background-job adapters (kinds "train" and "distill")."""

from __future__ import annotations

import sqlite3
from typing import Any

from core.errors import Cancelled
from core.progress import Progress
from core.runs.kinds import JobKind, ShouldCancel, small
from core.training.distill import distill_job


def train(
    conn: sqlite3.Connection,
    project: int,
    args: dict[str, Any],
    progress: Progress,
    should_cancel: ShouldCancel,
) -> dict[str, Any]:
    """Train the run args["run_id"] (it reads its own cancel flag and writes its own progress to the run)."""
    from core.training.trainer import (
        execute,  # torch and sentence-transformers load in the job's process only
    )

    result = execute(conn, args["run_id"])
    status = conn.execute("SELECT status FROM runs WHERE id = ?", (args["run_id"],)).fetchone()[0]
    if status == "cancelled":
        raise Cancelled("Cancelled; a checkpoint was saved.")
    return small({"run_id": args["run_id"], "metrics": result.get("metrics", {})})


KIND = JobKind(run=train)
DISTILL = JobKind(run=distill_job)  # a plain cross-encoder from a run's full score (a new run)
