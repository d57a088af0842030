"""Issue 24: a run's calibration measured as a background job (kind "calibrate") stores the very report a direct
call gives, bins included, so the Evaluate page shows it after a reload; a cancel stores nothing."""

from __future__ import annotations

import json

from core import models, queue, store
from core.export import job as calibration_job
from core.export.calibrate import CalibrationReport, calibration_report
from core.runs import worker
from tests.conftest import seed_scifact
from tests.model_folders import MAX_LENGTH, make_model_folder


def _run(db, pid: int, run_id: str = "run-cal") -> str:
    """A completed run whose model folder lies where training leaves it."""
    folder = store.runs_dir(store.workspace_of(db)) / run_id / "model"
    folder.mkdir(parents=True)
    make_model_folder(folder)
    with store.transaction(db):
        db.execute(
            "INSERT INTO runs (id, project_id, created_at, updated_at, status, config, metrics, model_dir) "
            "VALUES (?, ?, ?, ?, 'completed', ?, '{}', ?)",
            (
                run_id,
                pid,
                store.now(),
                store.now(),
                json.dumps({"max_length": MAX_LENGTH, "base_model": models.BUNDLED}),
                str(folder),
            ),
        )
    return run_id


def _running_job(db, pid: int, run_id: str) -> int:
    with store.transaction(db):
        cur = db.execute(
            "INSERT INTO jobs (project_id, kind, args, status, created_at) VALUES (?, ?, ?, 'running', ?)",
            (pid, calibration_job.NAME, json.dumps({"run_id": run_id}), store.now()),
        )
    return int(cur.lastrowid)


def test_the_job_stores_the_report_a_direct_call_gives_and_a_cancel_stores_none(db):
    assert queue.KINDS["calibrate"] is calibration_job.KIND
    pid = seed_scifact(db, name="calibrated", n_train=18, n_test=8, n_extra=80)
    run_id = _run(db, pid)
    run = calibration_job.KIND.run

    stopped = _running_job(db, pid, run_id)
    db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (stopped,))
    db.commit()
    assert worker.work(db, stopped, run)["status"] == "cancelled"
    assert calibration_job.stored_report(db, pid, run_id) is None

    heard: list[tuple[float, str]] = []
    want = calibration_report(db, run_id, pid, progress=lambda f, m: heard.append((f, m)))
    assert want.calibration is not None and want.test_ece is not None and want.bins
    assert heard[-1][0] == 1.0 and [f for f, _ in heard] == sorted(f for f, _ in heard)
    assert any(m.startswith("fitting on validation") for _, m in heard)
    assert any(m.startswith("scoring the test candidates") for _, m in heard)
    assert CalibrationReport.from_dict(json.loads(json.dumps(want.to_dict()))) == want

    done = _running_job(db, pid, run_id)
    assert worker.work(db, done, run)["status"] == "completed"
    row = db.execute("SELECT fraction, result FROM jobs WHERE id = ?", (done,)).fetchone()
    assert row["fraction"] == 1.0 and json.loads(row["result"])["run_id"] == run_id
    assert calibration_job.stored_report(db, pid, run_id) == want
    assert calibration_job.stored_report(db, pid, "another-run") is None
