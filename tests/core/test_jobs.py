"""Background jobs with real processes: they outlive the page, one runs at a time, cancel works, and a killed
job (or training run) is marked so with its likely cause within seconds."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from core import progress, queue, store
from core.runs import jobs, liveness, records
from tests.conftest import ROOT, seed_scifact, wait_until

MINE = {"params": {"num_negatives": 2}}


def worker_pid(job_id: int, conn) -> int:
    """The supervised worker (the process doing the work) under a job's supervisor."""

    def child():
        pid = jobs.job(conn, job_id).pid
        kids = psutil.Process(pid).children() if pid and psutil.pid_exists(pid) else []
        return kids[0].pid if kids else None

    return wait_until(child, 30, "the worker process")


@pytest.fixture()
def small(db):
    return db, seed_scifact(db, n_train=8, n_test=2, n_extra=30)


# --- no processes ------------------------------------------------------------------------------


def test_progress_scaled_maps_a_phase_onto_its_share():
    seen = []
    inner = progress.scaled(lambda f, m: seen.append((round(f, 3), m)), 0.5, 0.75)
    inner(0.0, "a")
    inner(0.5, "b")
    inner(2.0, "c")
    assert seen == [(0.5, "a"), (0.625, "b"), (0.75, "c")]
    progress.counted(lambda f, m: seen.append((f, m)), "embedding")(3, 4)
    assert seen[-1] == (0.75, "embedding")


def test_exit_codes_name_their_likely_cause():
    assert liveness.describe_exit(-9) == liveness.KILLED == liveness.describe_exit(137)
    assert "SIGTERM" in liveness.describe_exit(-15)
    assert liveness.describe_exit(3) == "exited with code 3"
    assert "unknown" in liveness.describe_exit(None)


def test_completed_run_needs_a_model_folder_under_runs(small, tmp_path):
    conn, pid = small
    run_id = records.create_run(conn, pid, {"max_length": 64}, status="completed")
    with pytest.raises(records.RunError, match="no model folder"):
        records.completed_run(conn, run_id)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    records.update_run(conn, run_id, model_dir=str(outside))
    with pytest.raises(records.RunError, match="outside the workspace's runs"):
        records.completed_run(conn, run_id)
    inside = records.run_folder(conn, run_id) / "model"
    inside.mkdir(parents=True)
    records.update_run(conn, run_id, model_dir=str(inside))
    assert records.completed_run(conn, run_id, project=pid).id == run_id
    with pytest.raises(records.RunError, match="another project"):
        records.completed_run(conn, run_id, project=pid + 1)
    other = records.create_run(conn, pid, {}, status="failed")
    assert [r.id for r in records.list_runs(conn, pid, status="completed")] == [run_id]
    with pytest.raises(records.RunError, match="only a completed run"):
        records.completed_run(conn, other)


def test_a_job_left_running_by_a_dead_process_is_interrupted_and_can_start_again(small, monkeypatch):
    conn, pid = small
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that is no longer anyone's (like a job of a studio that died with the machine)
    monkeypatch.setattr(jobs, "_launch", lambda c, job_id: 0)  # nothing really starts in this test
    with store.transaction(conn):
        job_id = conn.execute(
            "INSERT INTO jobs (project_id, kind, status, pid, created_at, started_at, heartbeat_at) "
            "VALUES (?, 'mine', 'running', ?, ?, ?, ?)",
            (pid, gone.pid, store.now(), store.now(), store.now()),
        ).lastrowid
    assert queue.reap_and_dispatch(conn)["closed"] == [job_id]
    j = jobs.job(conn, job_id)
    assert j.status == "interrupted" and "process died" in j.error and "unknown" in j.error
    assert queue.retry(conn, job_id) == job_id
    assert jobs.job(conn, job_id).status == "running" and jobs.job(conn, job_id).attempts == 1
    with pytest.raises(jobs.JobError, match="Unknown job kind"):
        queue.submit(conn, pid, "nap", {})


def test_a_supervisor_leaves_alone_a_job_that_was_resumed_before_it_looked(small, monkeypatch):
    """A cancelled run resumed at once: the first supervisor wakes up after the job is running again under a new
    worker and must not close it as 'process died: exited with code 0' (it did, under load)."""
    from core.runs import worker

    conn, pid = small
    monkeypatch.setattr(jobs, "_launch", lambda c, job_id: 0)
    run_id = records.create_run(conn, pid, {"base_model": "x"}, status="running")
    with store.transaction(conn):
        job_id = conn.execute(
            "INSERT INTO jobs (project_id, kind, args, run_id, status, created_at, started_at, "
            "heartbeat_at, attempts) VALUES (?, 'train', '{}', ?, 'running', ?, ?, ?, 1)",
            (pid, run_id, store.now(), store.now(), store.now()),
        ).lastrowid

    class ResumedWhileExiting:  # the worker closed the job as cancelled; a resume re-queued and restarted it
        def __init__(self, *args, **kwargs):
            pass

        def send_signal(self, sig):
            pass

        def wait(self):
            jobs.finish(conn, job_id, "cancelled")
            records.update_run(conn, run_id, status="cancelled")
            assert queue.retry(conn, job_id) == job_id
            records.update_run(conn, run_id, status="running")
            return 0

    monkeypatch.setattr(worker.subprocess, "Popen", ResumedWhileExiting)
    monkeypatch.setattr(worker.signal, "signal", lambda *a: None)
    assert worker.supervise(conn, job_id)["status"] == "superseded"
    assert jobs.job(conn, job_id).status == "running" and not jobs.job(conn, job_id).error
    assert records.get_run(conn, run_id).status == "running"


def test_an_uploaded_test_set_reaches_the_evaluate_job_as_a_kept_file(small, tmp_path):
    """Issue 15 follow-up: job args are JSON, so the upload is kept in the workspace and the job reads it back."""
    from core import evaluation
    from core.evaluation import job as evaluation_job

    conn, pid = small
    test = evaluation.project_test_set(conn, pid)
    q = next(iter(test.queries))
    ranked = [d for d in test.corpus if d not in test.qrels[q]][:2] + list(test.qrels[q])
    buf = io.StringIO()
    csv.writer(buf).writerows(
        [["query", "passage", "label", "score"]]
        + [[test.queries[q], test.corpus[d], int(d in test.qrels[q]), 9 - i] for i, d in enumerate(ranked)]
    )
    data = buf.getvalue().encode()
    path = store.save_upload(store.workspace_of(conn), "../../etc/odd name?.csv", data)
    assert path.parent == store.uploads_dir(store.workspace_of(conn)) and path.name.endswith("-odd_name_.csv")
    assert store.save_upload(store.workspace_of(conn), "../../etc/odd name?.csv", data) == path  # kept once
    args = {
        "run_ids": [],
        "test_file": str(path),
        "test_name": "odd name?.csv",
        "first_stage": "file",
        "top_k": 10,
        "include_base": False,
        "oracle": False,
        "n_bootstrap": 20,
    }
    json.dumps(args)  # what a job row can carry
    result = evaluation_job.evaluate(conn, pid, args, progress.noop, lambda: False)
    stored = evaluation.load_evaluation(conn, result["evaluation_id"])
    assert stored["params"]["test_set"] == "odd name?.csv" and stored["params"]["queries"] == 1
    assert stored["realistic"]["first_stage"]["mean"]["mrr@10"] == pytest.approx(1 / 3)
    outside = tmp_path / "elsewhere.csv"
    outside.write_bytes(data)
    with pytest.raises(ValueError, match="not an upload kept"):
        evaluation_job.evaluate(conn, pid, {**args, "test_file": str(outside)}, progress.noop, lambda: False)


# --- real job processes ------------------------------------------------------------------------


def test_mine_jobs_run_without_a_page_one_at_a_time(small):
    conn, pid = small
    first = queue.submit(conn, pid, "mine", MINE)
    second = queue.submit(conn, pid, "mine", MINE)
    third = queue.submit(conn, pid, "mine", MINE)
    assert [jobs.job(conn, j).status for j in (first, second, third)] == ["running", "queued", "queued"]
    assert jobs.cancel_job(conn, third) == "cancelled"  # a queued job is cancelled at once
    assert [j.id for j in jobs.active_jobs(conn, pid)] == [first, second]
    # Nobody polls: the first job's own process starts the second when it ends.
    later = store.connect(store.workspace_of(conn))
    done = wait_until(
        lambda: jobs.job(later, second).status not in jobs.ACTIVE and jobs.job(later, second),
        240,
        "both jobs",
    )
    one = jobs.job(later, first)
    assert one.status == "completed" and done.status == "completed", (one.error, done.error)
    assert one.fraction == 1.0 and one.result["stats"]
    assert done.started_at >= one.finished_at  # the queue held the second until the first had ended
    assert conn.execute("SELECT count(*) FROM negatives WHERE project_id = ?", (pid,)).fetchone()[0] > 0
    assert jobs.job(later, third).status == "cancelled" and jobs.active_jobs(later) == []
    later.close()


def test_cancel_stops_a_running_job_at_its_next_progress_report(small):
    conn, pid = small
    job_id = queue.submit(conn, pid, "mine", MINE)
    wait_until(lambda: jobs.job(conn, job_id).message not in ("Starting.", "Queued."), 120, "progress")
    assert jobs.cancel_job(conn, job_id) == "cancelling"
    j = queue.wait(conn, job_id, timeout=60)
    assert j.status == "cancelled" and not j.error
    with pytest.raises(jobs.JobError, match="only a queued or running job"):
        jobs.cancel_job(conn, job_id)


def mining_row(conn, project: int):
    """The project's newest mining_runs row once one exists (the miner has started)."""
    return wait_until(
        lambda: conn.execute(
            "SELECT id, status FROM mining_runs WHERE project_id = ? ORDER BY id DESC", (project,)
        ).fetchone(),
        120,
        "the mining run's row",
    )


def test_a_killed_worker_is_marked_failed_with_its_cause_and_can_be_retried(small):
    conn, pid = small
    job_id = queue.submit(conn, pid, "mine", MINE)
    worker = worker_pid(job_id, conn)
    row = mining_row(conn, pid)
    os.kill(worker, signal.SIGKILL)
    t0 = time.time()
    j = wait_until(lambda: (r := jobs.job(conn, job_id)).status != "running" and r, 10, "the death recorded")
    assert time.time() - t0 < 10
    assert j.status == "failed" and j.error == f"process died: {liveness.KILLED}"
    # its mining row is closed by the supervisor (it was left 'running' forever), and nothing was half-written
    wait_until(
        lambda: (
            conn.execute("SELECT status FROM mining_runs WHERE id = ?", (row["id"],)).fetchone()[0]
            == "interrupted"
        ),
        10,
        "the mining row closed",
    )
    assert (
        conn.execute("SELECT count(*) FROM negatives WHERE mining_run_id = ?", (row["id"],)).fetchone()[0]
        == 0
    )
    queue.retry(conn, job_id)
    j = queue.wait(conn, job_id, timeout=180)
    assert j.status == "completed" and j.attempts == 2, j.error


def test_a_killed_job_group_is_reaped_by_the_next_poll(small):
    conn, pid = small
    job_id = queue.submit(conn, pid, "mine", MINE)
    supervisor = jobs.job(conn, job_id).pid
    worker_pid(job_id, conn)
    row = mining_row(conn, pid)
    os.killpg(supervisor, signal.SIGKILL)  # nobody is left to say what happened
    wait_until(lambda: not liveness.pid_alive(supervisor), 10, "the job to die")
    assert queue.reap_and_dispatch(conn)["closed"] == [job_id]
    j = jobs.job(conn, job_id)
    assert (
        j.status == "failed" and j.error == f"process died: {liveness.KILLED}"
    )  # we launched it: code known
    # the reap closes its mining row through the kind's hook (core.runs imports nothing of core.mining)
    assert (
        conn.execute("SELECT status FROM mining_runs WHERE id = ?", (row["id"],)).fetchone()[0]
        == "interrupted"
    )
    assert conn.execute("SELECT count(*) FROM negatives WHERE project_id = ?", (pid,)).fetchone()[0] == 0


@pytest.mark.slow
def test_a_killed_training_cli_run_is_failed_with_its_cause_and_exits_nonzero(db):
    """Issue 17: SIGKILL (as the kernel's OOM killer sends) marks the run failed with the cause in seconds."""
    seed_scifact(db, name="tiny", n_train=16, n_test=4, n_extra=40)
    env = {**os.environ, "RERANK_STUDIO_HOME": str(store.workspace_of(db))}
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core",
            "train",
            "--project",
            "tiny",
            "--defaults",
            "plain",
            "--max-steps",
            "400",
            "--batch-size",
            "8",
            "--max-length",
            "64",
            "--validation",
            "none",
            "--hard-negatives",
            "1",
            "--random-negatives",
            "1",
            "--candidates-k",
            "8",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run = wait_until(
            lambda: (r := db.execute("SELECT id, pid FROM runs").fetchone()) and r["pid"] and r,
            120,
            "the training process",
        )
        os.kill(run["pid"], signal.SIGKILL)
        t0 = time.time()
        out, err = cli.communicate(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert time.time() - t0 < 10
    assert cli.returncode != 0
    line = json.loads(err.strip().splitlines()[-1])
    assert "killed (likely out of memory" in line["error"]
    failed = records.get_run(db, run["id"])
    assert failed.status == "failed" and failed.error == f"process died: {liveness.KILLED}"
    assert jobs.reap(db) == [] and records.get_run(db, run["id"]).status == "failed"
