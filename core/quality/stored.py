"""The quality report as a background job left it on disk: read it back without ever computing it.

A page that must stay instant (the overview, the Quality page while its job runs) asks here; computing is the
quality job's work (core.quality.job.quality -> core.quality.report.analyse, which writes the same cache entry).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core import store
from core.quality.cache import CacheFormatError, cache_folder, load
from core.quality.report import KINDS, QualityReport, report_key

__all__ = ["cached_report", "is_current", "latest_report", "report_key"]  # report_key: the one in report.py

_BY_FILE: dict[
    Path, tuple[float, QualityReport]
] = {}  # cache file -> (mtime, report): the pages redraw often


def cached_report(
    conn: sqlite3.Connection,
    project: int,
    embed_model: str | None = None,
    train_model: str | None = None,
    max_length: int | None = None,
) -> QualityReport | None:
    """The report for the project's current data and this model choice if a job computed it, else None."""
    key = report_key(conn, project, embed_model, train_model, max_length)
    folder = cache_folder(store.workspace_of(conn))
    if not (folder / f"report-{key}.npz").is_file():
        return None
    return _load(folder, f"report-{key}")


def _load(folder: Path, name: str) -> QualityReport | None:
    """One cache entry, remembered by name and modification time (the overview redraws often)."""
    path = folder / f"{name}.json"
    try:
        stamp = path.stat().st_mtime
        memo = _BY_FILE.get(path)
        if memo and memo[0] == stamp:
            return memo[1]
        report = load(folder, name, KINDS)
    except (CacheFormatError, OSError, ValueError, KeyError):
        return None
    if len(_BY_FILE) > 8:
        _BY_FILE.clear()
    _BY_FILE[path] = (stamp, report)
    return report


def latest_report(conn: sqlite3.Connection, project: int) -> QualityReport | None:
    """The newest report on disk for this project, whatever data or model it was computed for."""
    folder: Path = cache_folder(store.workspace_of(conn))
    metas = sorted(folder.glob("report-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for meta in metas:
        report = _load(folder, meta.stem)
        if report is not None and report.project == project:
            return report
    return None


def is_current(conn: sqlite3.Connection, report: QualityReport) -> bool:
    """Whether the report was computed on the project's data as it is now (for its own model and length)."""
    return report.key == report_key(
        conn, report.project, report.embedder, report.tokenizer, report.max_length
    )
