"""The studio's job kinds, each mapped to the adapter its domain owns, and the queue calls that need the map.

core.runs runs any job and knows no domain; this module, at the top, is the one place that names every kind.
Pages, the CLI and scripts submit, poll, retry and wait through here, so a dead job's domain can tidy up after it.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from typing import Any

from core import bases, store
from core.evaluation import job as evaluation_job
from core.export import job as export_job
from core.mining import job as mining_job
from core.quality import job as quality_job
from core.runs import jobs, worker
from core.runs.job_row import Job
from core.runs.kinds import JobKind
from core.suspects import job as suspects_job
from core.training import job as training_job

KINDS: dict[str, JobKind] = {
    "train": training_job.KIND,
    "mine": mining_job.KIND,
    "evaluate": evaluation_job.KIND,
    "quality": quality_job.QUALITY,
    "snippets": quality_job.SNIPPETS,
    "download": JobKind(run=bases.download_job),  # a hub model into the local cache (issue 16)
    "distill": training_job.DISTILL,  # a plain cross-encoder from any run (issue 24)
    "suspects": suspects_job.KIND,  # suspect labels and missing positives (issue 25)
    export_job.NAME: export_job.KIND,  # a run's relevance_score measured on the test set (issue 24)
}


def kind_of(name: str) -> JobKind:
    """The registered kind (UserError naming the known ones otherwise)."""
    if name not in KINDS:
        raise jobs.JobError(f"Unknown job kind {name!r}; known: {', '.join(KINDS)}.")
    return KINDS[name]


def after_death(conn: sqlite3.Connection, kind: str, project: int) -> str | None:
    """Run the kind's tidy-up for a job whose process died; the reason it could not, else None."""
    hook = KINDS[kind].after_death if kind in KINDS else None
    if hook is None:
        return None
    try:
        hook(conn, project)
    except Exception as exc:  # noqa: BLE001 - the next start of that step tidies up too; never block the queue
        return f"{type(exc).__name__}: {exc}"
    return None


def submit(conn: sqlite3.Connection, project: int, kind: str, args: dict[str, Any] | None = None) -> int:
    """Queue a job of a known kind and start it if nothing else runs; returns its id."""
    kind_of(kind)
    return jobs.submit_job(conn, project, kind, args, after_death=after_death)


def reap_and_dispatch(conn: sqlite3.Connection) -> dict[str, Any]:
    """Close dead jobs (each kind tidying its own leftovers) and start the next queued one."""
    return jobs.reap_and_dispatch(conn, after_death)


def retry(conn: sqlite3.Connection, job_id: int) -> int:
    """Queue a failed, cancelled or interrupted job again."""
    return jobs.retry_job(conn, job_id, after_death)


def wait(conn: sqlite3.Connection, job_id: int, timeout: float = 600, every: float = 0.5) -> Job:
    """Block until a job leaves queued/running (scripts and tests)."""
    return jobs.wait_job(conn, job_id, timeout, every, after_death)


# --- CLI: `python -m core job --id N` (the studio starts these) --------------------------------


def cli_arguments(parser: Any) -> None:
    """`python -m core job --id N` (the studio starts these; `--work` is the supervised child)."""
    parser.add_argument("--id", type=int, required=True, help="the job's id in the workspace's jobs table")
    parser.add_argument("--work", action="store_true", help="internal: run the job in this very process")


def cli_main(args: Any) -> dict[str, Any] | None:
    """Supervise (or, with --work, run) one job; exits non-zero with a JSON error line when the job failed."""
    conn = store.connect()
    try:
        if args.work:
            out = worker.work(conn, args.id, kind_of(jobs.job(conn, args.id).kind).run)
        else:
            out = worker.supervise(conn, args.id, after_death)
        if out["status"] == "failed":
            print(json.dumps({"error": jobs.job(conn, args.id).error, "job_id": args.id}), file=sys.stderr)
            raise SystemExit(1)
        return out
    finally:
        conn.close()


__all__ = ["KINDS", "after_death", "kind_of", "retry", "reap_and_dispatch", "submit", "wait"]
