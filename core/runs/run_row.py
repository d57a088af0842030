"""A training run as every caller reads it: one typed record instead of a row's dict."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

JSON_COLUMNS = ("config", "snapshot", "metrics", "progress")


@dataclass(frozen=True)
class Run:
    """One row of the runs table with its JSON columns decoded (or a shipped bundle described as a run)."""

    id: str
    status: str  # queued, running, completed, failed or cancelled
    project_id: int = 0  # 0 (no project) for a bundle scored outside any project
    config: dict[str, Any] = field(default_factory=dict)
    snapshot: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)
    model_dir: str | None = None
    pid: int | None = None
    heartbeat_at: str | None = None
    cancel_requested: int = 0
    error: str | None = None
    created_at: str = ""
    updated_at: str = ""
    bundle: str | None = None  # the bundle folder when this record describes a shipped bundle

    @property
    def source(self) -> str:
        """The folder a Reranker loads this run from: the bundle when there is one, else the model folder."""
        return self.bundle or self.model_dir or ""


def decode(row: sqlite3.Row) -> Run:
    """The row as a Run, JSON columns decoded (an empty column reads as {})."""
    out = dict(row)
    for k in JSON_COLUMNS:
        out[k] = json.loads(out.get(k) or "{}")
    return Run(**{k: v for k, v in out.items() if k in Run.__dataclass_fields__})
