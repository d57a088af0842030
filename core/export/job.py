"""The calibration background-job adapter (kind "calibrate"): a run's relevance_score measured off the page, its
report kept on the job row, so a reload or a restarted studio shows the latest measurement again."""

from __future__ import annotations

import sqlite3
from typing import Any

from core.export.calibrate import CalibrationReport, calibration_report
from core.progress import Progress
from core.runs import jobs
from core.runs.kinds import JobKind, ShouldCancel, tolerant

NAME = "calibrate"


def calibrate(
    conn: sqlite3.Connection,
    project: int,
    args: dict[str, Any],
    progress: Progress,
    should_cancel: ShouldCancel,
) -> dict[str, Any]:
    """Measure args["run_id"]'s calibration (fit on validation, score the test lists); the report is the result."""
    run_id = str(args["run_id"])
    report = calibration_report(conn, run_id, project, progress=tolerant(progress, should_cancel))
    return {"run_id": run_id, "report": report.to_dict()}


def stored_report(conn: sqlite3.Connection, project: int, run_id: str) -> CalibrationReport | None:
    """The report of the run's newest completed calibration job (None when it was never measured)."""
    done = jobs.latest_completed(conn, project, NAME, run_id=run_id)
    report = done.result.get("report") if done is not None else None
    return CalibrationReport.from_dict(report) if isinstance(report, dict) else None


KIND = JobKind(run=calibrate)
