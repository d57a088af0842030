"""The evaluation background-job adapter (kind "evaluate"), and the one rule for a job's uploaded test file."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from core import store
from core.errors import UserError
from core.progress import Progress
from core.runs.kinds import JobKind, ShouldCancel, small, tolerant


def uploaded_file(conn: sqlite3.Connection, path: str) -> Path:
    """A job's test file: only one the studio kept in the workspace's uploads folder (store.save_upload)."""
    folder = store.uploads_dir(store.workspace_of(conn)).resolve()
    target = Path(path).resolve()
    if not target.is_relative_to(folder) or not target.is_file():
        raise UserError(f"The test file {path!r} is not an upload kept in {folder}; upload it again.")
    return target


def evaluate(
    conn: sqlite3.Connection,
    project: int,
    args: dict[str, Any],
    progress: Progress,
    should_cancel: ShouldCancel,
) -> dict[str, Any]:
    """Evaluate args["run_ids"] on the project's test set, or on an uploaded one (args["test_file"], a path kept
    by store.save_upload, shown as args["test_name"]); the remaining args are keyword options."""
    from core.evaluation.evaluate import evaluate as run_evaluation
    from core.evaluation.testsets import read_test_file

    options = {k: v for k, v in args.items() if k not in ("run_ids", "test_file", "test_name")}
    if args.get("test_file"):
        path = uploaded_file(conn, args["test_file"])
        options["test_set"] = read_test_file(
            path.read_bytes(), args.get("test_name") or path.name, conn, project
        )
    result = run_evaluation(
        conn, project, list(args.get("run_ids", ())), progress=tolerant(progress, should_cancel), **options
    )
    return small(result)


KIND = JobKind(run=evaluate)
