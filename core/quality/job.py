"""The quality analysis's background-job adapters (kinds "quality" and "snippets")."""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

from core.progress import Progress
from core.runs.kinds import JobKind, ShouldCancel, tolerant


def quality(
    conn: sqlite3.Connection,
    project: int,
    args: dict[str, Any],
    progress: Progress,
    should_cancel: ShouldCancel,
) -> dict[str, Any]:
    """Compute (and cache on disk) the quality report; the page then reads it from the cache at once."""
    from core.quality.report import analyse

    analyse(conn, project, progress=tolerant(progress, should_cancel), **args)
    return {"cached": True, **args}


def snippets(
    conn: sqlite3.Connection,
    project: int,
    args: dict[str, Any],
    progress: Progress,
    should_cancel: ShouldCancel,
) -> dict[str, Any]:
    """Propose snippets for the report rows args["rows"] (report options as in `quality`)."""
    from core.quality.report import analyse
    from core.quality.snippets import propose_snippets

    options = {k: v for k, v in args.items() if k != "rows"}
    report = analyse(conn, project, **options)
    models = {k: v for k, v in options.items() if k in ("embed_model", "train_model")}
    found = propose_snippets(report, list(args["rows"]), progress=tolerant(progress, should_cancel), **models)
    return {"snippets": [dataclasses.asdict(s) for s in found]}


QUALITY = JobKind(run=quality)
SNIPPETS = JobKind(run=snippets)
