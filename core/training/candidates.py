"""Candidate lists a run is validated and tested on: the first stage's (embedding model's) top k for each query."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from core import store
from core.scoring.first_stage import embedding_scores, embedding_search, hybrid_search


def first_stage(
    conn: sqlite3.Connection, project: int, queries: list[str], k: int, spec: str, workspace: Path | None
) -> list[list[tuple[int, float]]]:
    """Top-k passage ids (with cosine scores) of the embedding model for each query, over the project's passages."""
    corpus = {p["id"]: p["text"] for p in store.fetch_passages(conn, project)}
    return embedding_search(corpus, queries, k, spec, workspace=workspace)


def tops(
    conn: sqlite3.Connection,
    project: int,
    queries: list[str],
    k: int,
    spec: str,
    workspace: Path | None,
    kind: str = "embedding",
) -> list[list[tuple[int, float]]]:
    """Top-k passage ids per query from the chosen first stage (embedding cosine, or hybrid RRF scores)."""
    if kind == "hybrid":
        corpus = {p["id"]: p["text"] for p in store.fetch_passages(conn, project)}
        return hybrid_search(corpus, queries, k, spec, workspace=workspace)
    return first_stage(conn, project, queries, k, spec, workspace)


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
    kind: str = "embedding",
    prior: str | None = None,
) -> list[dict[str, Any]]:
    """One validation/test list per query: its first-stage top k, positives by text and their graded gains. When the
    first stage's scores are not the residual's prior (a hybrid's RRF, or a run with a tuned prior model),
    `baseline_scores` give the first stage's order and `first_stage_scores` are the prior's cosines."""
    if not qids:
        return []
    found = tops(conn, project, [qtext[q] for q in qids], k, spec, workspace, kind)
    separate = kind == "hybrid" or bool(prior)
    cosines: list[Any] = (
        embedding_scores(
            [(qtext[q], [texts[p] for p, _ in t]) for q, t in zip(qids, found)], prior or spec, workspace
        )
        if separate
        else [[s for _, s in t] for t in found]
    )
    out = []
    for q, top, cos in zip(qids, found, cosines):
        judged = {p: g for p, g in sorted(grades[q].items()) if g > 0}
        out.append(
            {
                "query": qtext[q],
                "positive": [texts[p] for p in judged],
                "gains": {texts[p]: float(g) for p, g in judged.items()},
                "documents": [texts[p] for p, _ in top],
                "first_stage_scores": [float(c) for c in cos],
                **({"baseline_scores": [s for _, s in top]} if separate else {}),
            }
        )
    return out
