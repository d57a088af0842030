"""The quality report as a background job left it on disk: read it back without ever computing it.

A page that must stay instant (the overview, the Quality page while its job runs) asks here; computing is the
quality job's work (core.runs.kinds.quality -> core.quality.analyse, which writes the same cache entry).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core import models, store
from core.quality.cache import CacheFormatError, cache_folder, data_fingerprint, digest, load
from core.quality.report import KINDS, REPORT_VERSION, QualityReport, settings_models

_LOADED: dict[str, QualityReport] = {}


def report_key(conn: sqlite3.Connection, project: int, embed_model: str | None = None,
               train_model: str | None = None, max_length: int | None = None) -> str:
    """The cache key `analyse` files the report under (models and length default to the project's choice)."""
    embedder, base, length = settings_models(conn, project)
    return digest(REPORT_VERSION, project, data_fingerprint(conn, project), models.model_key(embed_model or embedder),
                  models.model_key(train_model or base), int(max_length or length))


def cached_report(conn: sqlite3.Connection, project: int, embed_model: str | None = None,
                  train_model: str | None = None, max_length: int | None = None) -> QualityReport | None:
    """The report for the project's current data and this model choice if a job computed it, else None."""
    key = report_key(conn, project, embed_model, train_model, max_length)
    if key in _LOADED:
        return _LOADED[key]
    folder = cache_folder(store.workspace_of(conn))
    if not ((folder / f"report-{key}.json").is_file() and (folder / f"report-{key}.npz").is_file()):
        return None
    try:
        report = load(folder, f"report-{key}", KINDS)
    except (CacheFormatError, OSError, ValueError, KeyError):
        return None
    _LOADED.clear()  # one report per process, as analyse keeps
    _LOADED[key] = report
    return report


def latest_report(conn: sqlite3.Connection, project: int) -> QualityReport | None:
    """The newest report on disk for this project, whatever data it was computed on (the overview says if stale)."""
    folder: Path = cache_folder(store.workspace_of(conn))
    for meta in sorted(folder.glob("report-*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            report = load(folder, meta.stem, KINDS)
        except (CacheFormatError, OSError, ValueError, KeyError):
            continue
        if report.project == project:
            return report
    return None
