"""The mining background-job adapter (kind "mine"), with the tidy-up for a miner whose process died."""

from __future__ import annotations

import sqlite3
from typing import Any

from core.mining.params import MiningParams
from core.mining.stale import close_after_job_death
from core.progress import Progress
from core.runs.kinds import JobKind, ShouldCancel, small, tolerant


def mine(
    conn: sqlite3.Connection,
    project: int,
    args: dict[str, Any],
    progress: Progress,
    should_cancel: ShouldCancel,
) -> dict[str, Any]:
    """Mine hard negatives with MiningParams(**args["params"]) (optional args["extra_corpus"])."""
    from core.mining.miner import mine as run_miner  # embeddings and faiss load in the job's process only

    params = MiningParams(**args.get("params", {}))
    report = tolerant(progress, should_cancel)
    stats = run_miner(conn, project, params, extra_corpus=args.get("extra_corpus"), progress=report)
    return small({"stats": stats})


KIND = JobKind(
    run=mine, after_death=close_after_job_death
)  # its mining_runs row left 'running' -> 'interrupted'
