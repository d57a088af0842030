"""Candidate lists a run is validated and tested on: the first stage's (embedding model's) top k for each query."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from core import store
from core.scoring.first_stage import embedding_search


def first_stage(
    conn: sqlite3.Connection, project: int, queries: list[str], k: int, spec: str, workspace: Path | None
) -> list[list[tuple[int, float]]]:
    """Top-k passage ids (with cosine scores) of the embedding model for each query, over the project's passages."""
    corpus = {p["id"]: p["text"] for p in store.fetch_passages(conn, project)}
    return embedding_search(corpus, queries, k, spec, workspace=workspace)


def candidate_samples(
    conn: sqlite3.Connection,
    project: int,
    qids: list[int],
    qtext: dict[int, str],
    grades: dict[int, dict[int, float]],
    texts: dict[int, str],
    k: int,
    spec: str,
    workspace: Path | None,
) -> list[dict[str, Any]]:
    """One validation/test list per query: its first-stage top k, positives by text and their graded gains."""
    if not qids:
        return []
    tops = first_stage(conn, project, [qtext[q] for q in qids], k, spec, workspace)
    out = []
    for q, top in zip(qids, tops):
        judged = {p: g for p, g in sorted(grades[q].items()) if g > 0}
        out.append(
            {
                "query": qtext[q],
                "positive": [texts[p] for p in judged],
                "gains": {texts[p]: float(g) for p, g in judged.items()},
                "documents": [texts[p] for p, _ in top],
                "first_stage_scores": [s for _, s in top],
            }
        )
    return out
