"""The suspect-labels background-job adapter (kind "suspects")."""

from __future__ import annotations

import sqlite3
from typing import Any

from core.progress import Progress
from core.runs.kinds import JobKind, ShouldCancel, tolerant
from core.suspects.find import find_suspects


def suspects(
    conn: sqlite3.Connection,
    project: int,
    args: dict[str, Any],
    progress: Progress,
    should_cancel: ShouldCancel,
) -> dict[str, Any]:
    """find_suspects(**args), cancellable at each progress report; nothing is saved when cancelled."""
    return find_suspects(conn, project, progress=tolerant(progress, should_cancel), **args).summary()


KIND = JobKind(run=suspects)
