"""Registering a training run: the config is validated first, so bad settings never reach a process."""

from __future__ import annotations

import sqlite3

from core.runs import records
from core.training.config import TrainConfig


def create_run(conn: sqlite3.Connection, project: int, cfg: TrainConfig, status: str = "queued") -> str:
    """Register a run (validated config) and return its id; its folder is `records.run_folder(conn, run_id)`."""
    cfg.validate()
    return records.create_run(conn, project, cfg.to_dict(), status)
