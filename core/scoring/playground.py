"""Try a query: the first stage's top k from the project's passages and each run's reranking of them, side by side."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np

from core import store
from core.errors import UserError
from core.runs import records
from core.scoring.first_stage import search
from core.scoring.reranker import Reranker


def labelled_positives(conn: sqlite3.Connection, project: int, query: str) -> set[str]:
    """Passage ids (as strings) labelled relevant for exactly this query text (any split)."""
    rows = conn.execute(
        "SELECT p.passage_id FROM pairs p JOIN queries q ON q.id = p.query_id "
        "WHERE p.project_id = ? AND q.text = ? AND p.label > 0",
        (project, query.strip()),
    ).fetchall()
    return {str(r[0]) for r in rows}


def try_query(
    conn: sqlite3.Connection,
    project: int,
    query: str,
    run_ids: Sequence[str],
    *,
    first_stage: str = "bm25",
    top_k: int = 10,
) -> dict[str, Any]:
    """{"first_stage": [items], "runs": {run_id: [items]}}; an item: id, text, score, rank, positive, moved (up > 0)."""
    query = (query or "").strip()
    if not query:
        raise UserError("Type a query to try.")
    corpus = {str(p["id"]): p["text"] for p in store.fetch_passages(conn, project)}  # keys as evaluation uses
    if not corpus:
        raise UserError("The project has no passages to search.")
    hits = search(first_stage, corpus, [query], int(top_k), workspace=store.workspace_of(conn))[0]
    positives = labelled_positives(conn, project, query)
    first = [
        {"id": d, "text": corpus[d], "score": float(s), "rank": i + 1, "positive": d in positives, "moved": 0}
        for i, (d, s) in enumerate(hits)
    ]
    out: dict[str, Any] = {"query": query, "first_stage": first, "runs": {}}
    for rid in run_ids:
        run = records.completed_run(conn, rid, project)
        reranker = Reranker.load(
            records.model_folder(conn, run),
            max_length=run.config.get("max_length"),
            workspace=store.workspace_of(conn),
        )
        scores = reranker.score(query, [it["text"] for it in first])
        order = np.argsort(-scores, kind="stable")
        out["runs"][rid] = [
            {**first[i], "score": float(scores[i]), "rank": r + 1, "moved": first[i]["rank"] - (r + 1)}
            for r, i in enumerate(order)
        ]
    return out
