"""Job kinds: kind -> "module:function" of a thin adapter, imported only inside the job's own process.

An adapter is called as fn(conn, project, args, progress, should_cancel) and returns a small JSON-able result.
The targets are imported lazily by dotted path, so core.runs imports none of mining, evaluation, quality, training.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import store
from core.progress import Cancelled, Progress

KINDS: dict[str, str] = {
    "train": "core.runs.kinds:train",
    "mine": "core.runs.kinds:mine",
    "evaluate": "core.runs.kinds:evaluate",
    "quality": "core.runs.kinds:quality",
    "snippets": "core.runs.kinds:snippets",
    "download": "core.bases:download_job",  # a hub model into the local cache (issue 16)
    "distill": "core.training.distill:distill_job",  # a plain cross-encoder from a run's full score (issue 24)
}
# kind -> "module:function(conn, project)" that tidies what a job's process left half-done when it died
# (killed, crashed, or its machine restarted) without running its own clean-up.
STOPPED: dict[str, str] = {
    "mine": "core.mining.stale:close_after_job_death",  # its mining_runs row left 'running' -> 'interrupted'
}
ShouldCancel = Callable[[], bool]
MAX_RESULT_CHARS = 200_000


def resolve(kind: str) -> Callable[..., dict[str, Any]]:
    """The adapter of a job kind (ValueError for an unknown kind)."""
    if kind not in KINDS:
        raise ValueError(f"Unknown job kind {kind!r}; known: {', '.join(KINDS)}.")
    module, name = KINDS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def after_death(conn: sqlite3.Connection, kind: str, project: int) -> str | None:
    """Run the kind's STOPPED hook for a job whose process died; the reason it could not, else None."""
    if kind not in STOPPED:
        return None
    module, name = STOPPED[kind].split(":")
    try:
        getattr(importlib.import_module(module), name)(conn, project)
    except Exception as exc:  # noqa: BLE001 - the next start of that step tidies up too; never block the queue
        return f"{type(exc).__name__}: {exc}"
    return None


def tolerant(
    progress: Progress, should_cancel: ShouldCancel, cancelled: type[BaseException] = Cancelled
) -> Callable[..., None]:
    """A callback accepting (fraction, message), (message, fraction) or (phase, done, total); raises on cancel."""

    def report(*a: Any) -> None:
        if should_cancel():
            raise cancelled("Cancelled by request.")
        if len(a) == 3:
            phase, done, total = a
            progress(float(done) / total if total else 1.0, str(phase))
        elif len(a) == 2 and isinstance(a[0], str):
            progress(float(a[1]), a[0])
        elif len(a) == 2:
            progress(float(a[0]), str(a[1]))

    return report


def _small(value: Any) -> Any:
    """The result as stored in the job row: JSON-able, and only top-level parts of modest size."""
    value = json.loads(json.dumps(value, default=str))
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if len(json.dumps(v)) <= MAX_RESULT_CHARS}
    return value if len(json.dumps(value)) <= MAX_RESULT_CHARS else None


def train(
    conn: sqlite3.Connection,
    project: int,
    args: dict[str, Any],
    progress: Progress,
    should_cancel: ShouldCancel,
) -> dict[str, Any]:
    """Train the run args["run_id"] (it reads its own cancel flag and writes its own progress to the run)."""
    training = importlib.import_module("core.training")
    result = training.execute(conn, args["run_id"])
    status = conn.execute("SELECT status FROM runs WHERE id = ?", (args["run_id"],)).fetchone()[0]
    if status == "cancelled":
        raise Cancelled("Cancelled; a checkpoint was saved.")
    return _small({"run_id": args["run_id"], "metrics": result.get("metrics", {})})


def mine(
    conn: sqlite3.Connection,
    project: int,
    args: dict[str, Any],
    progress: Progress,
    should_cancel: ShouldCancel,
) -> dict[str, Any]:
    """Mine hard negatives with MiningParams(**args["params"]) (optional args["extra_corpus"])."""
    mining = importlib.import_module("core.mining")
    params = mining.MiningParams(**args.get("params", {}))
    report = tolerant(progress, should_cancel, getattr(mining, "MiningCancelled", Cancelled))
    stats = mining.mine(conn, project, params, extra_corpus=args.get("extra_corpus"), progress=report)
    return _small({"stats": stats})


def uploaded_file(conn: sqlite3.Connection, path: str) -> Path:
    """A job's test file: only one the studio kept in the workspace's uploads folder (store.save_upload)."""
    folder = store.uploads_dir(store.workspace_of(conn)).resolve()
    target = Path(path).resolve()
    if not target.is_relative_to(folder) or not target.is_file():
        raise ValueError(f"The test file {path!r} is not an upload kept in {folder}; upload it again.")
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
    evaluation = importlib.import_module("core.evaluation")
    options = {k: v for k, v in args.items() if k not in ("run_ids", "test_file", "test_name")}
    if args.get("test_file"):
        path = uploaded_file(conn, args["test_file"])
        options["test_set"] = evaluation.read_test_file(
            path.read_bytes(), args.get("test_name") or path.name, conn, project
        )
    result = evaluation.evaluate(
        conn, project, list(args.get("run_ids", ())), progress=tolerant(progress, should_cancel), **options
    )
    return _small(result)


def quality(
    conn: sqlite3.Connection,
    project: int,
    args: dict[str, Any],
    progress: Progress,
    should_cancel: ShouldCancel,
) -> dict[str, Any]:
    """Compute (and cache on disk) the quality report; the page then reads it from the cache at once."""
    module = importlib.import_module("core.quality")
    module.analyse(conn, project, progress=tolerant(progress, should_cancel), **args)
    return {"cached": True, **args}


def snippets(
    conn: sqlite3.Connection,
    project: int,
    args: dict[str, Any],
    progress: Progress,
    should_cancel: ShouldCancel,
) -> dict[str, Any]:
    """Propose snippets for the report rows args["rows"] (report options as in `quality`)."""
    module = importlib.import_module("core.quality")
    options = {k: v for k, v in args.items() if k != "rows"}
    report = module.analyse(conn, project, **options)
    models = {k: v for k, v in options.items() if k in ("embed_model", "train_model")}
    found = module.propose_snippets(
        report, list(args["rows"]), progress=tolerant(progress, should_cancel), **models
    )
    return {"snippets": [dataclasses.asdict(s) for s in found]}
