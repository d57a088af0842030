"""Training rows in the shape each loss needs, and the embedding prior a residual run learns on top of.

Memory is bounded by construction: a listwise row is ONE positive with a fixed number of negatives (its share of the
query's hard negatives, the rest sampled from the query's other passages), so one step scores batch x (1 + k) pairs
however many passages a query has labelled. A query with many positives yields more rows (up to 8), never longer ones (one
list holding all 200 judged passages of a query, 4 lists a step, was killed for memory at 23.5 GB).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from core.training.beta import fit_beta  # noqa: F401 - the old import path (core.training.rows.fit_beta)

LISTWISE = ("lambda", "listnet", "residual")
MAX_LISTS_PER_QUERY = (
    8  # lists anchored per query (highest grades first): more are near-copies that only cost time
)


def bce_rows(
    query: str, pos: list[str], negs: list[str], grades: list[float], top_grade: float
) -> list[dict[str, Any]]:
    """Labelled pairs; a graded positive's label is its grade / the project's top grade (a soft BCE target)."""
    top = max(1.0, float(top_grade))
    return [
        {"query": query, "passage": p, "label": round(min(1.0, g / top), 4)} for p, g in zip(pos, grades)
    ] + [{"query": query, "passage": n, "label": 0.0} for n in negs]


def mnrl_rows(query: str, pos: list[str], negs: list[str], negatives_per_row: int) -> list[dict[str, Any]]:
    """(query, positive, negative_1..k) rows: each positive gets its share of the negatives."""
    per = max(1, len(negs) // max(1, len(pos))) if negs else 0
    rows = []
    for i, p in enumerate(pos):
        row = {"query": query, "positive": p}
        mine = negs[i * per : (i + 1) * per]
        for j in range(min(per, negatives_per_row)):
            row[f"negative_{j + 1}"] = mine[j] if j < len(mine) else negs[j % len(negs)]
        rows.append(row)
    return rows


def list_rows(
    query: str,
    pos: list[str],
    grades: list[float],
    negs: list[str],
    hard: int,
    negatives_per_row: int,
    rng: random.Random,
    hard_per_row: int | None = None,
) -> list[dict[str, Any]]:
    """One list per positive (at most MAX_LISTS_PER_QUERY, highest grades first): the positive, `hard_per_row` of the hard negatives (negs[:hard], taken in turn), and the
    rest sampled from the query's other negatives and its lower-graded positives (graded contrast); labels = grades.
    Every list has the same length, however many passages the query has."""
    hard_negs, others = negs[:hard], negs[hard:]
    share = min(
        negatives_per_row, len(hard_negs), negatives_per_row if hard_per_row is None else hard_per_row
    )
    order = sorted(range(len(pos)), key=lambda i: (-grades[i], rng.random()))[:MAX_LISTS_PER_QUERY]
    out = []
    for i, (p, g) in enumerate((pos[i], grades[i]) for i in sorted(order)):
        picked = [hard_negs[(i * share + j) % len(hard_negs)] for j in range(share)] if share else []
        chosen = [(d, 0.0) for d in picked]
        pool = [(d, 0.0) for d in others] + [(q, h) for q, h in zip(pos, grades) if h < g]
        chosen += rng.sample(pool, min(negatives_per_row - len(chosen), len(pool)))
        if len(chosen) < negatives_per_row:  # too few others: top up with hard negatives not in this list yet
            chosen += [(d, 0.0) for d in hard_negs if d not in picked][: negatives_per_row - len(chosen)]
        items = [(p, g)] + chosen
        rng.shuffle(items)
        out.append({"query": query, "docs": [d for d, _ in items], "labels": [float(x) for _, x in items]})
    return out


def query_rows(
    loss: str,
    query: str,
    pos: list[str],
    negs: list[str],
    negatives_per_row: int,
    rng: random.Random,
    grades: list[float] | None = None,
    hard: int = 0,
    top_grade: float = 1.0,
    hard_per_row: int | None = None,
) -> list[dict[str, Any]]:
    """One query's rows: labelled pairs (bce), (query, positive, negatives...) rows (mnrl) or bounded lists (listwise).

    `negs` holds the hard negatives first (`hard` of them), then the random and uploaded ones; `grades` are the
    positives' labels (1.0 each when absent)."""
    grades = list(grades) if grades is not None else [1.0] * len(pos)
    if loss == "bce":
        return bce_rows(query, pos, negs, grades, top_grade)
    if loss == "mnrl":
        return mnrl_rows(query, pos, negs, negatives_per_row)
    return list_rows(query, pos, grades, negs, hard, max(1, negatives_per_row), rng, hard_per_row)


def rows_for_query(loss: str, positives: int, negatives: int) -> int:
    """Training rows `query_rows` builds for a query with these counts (the plan and the time budget count with it):
    every labelled pair (bce), one row a positive (mnrl), one list a positive up to MAX_LISTS_PER_QUERY (listwise)."""
    if loss == "bce":
        return positives + negatives
    if loss == "mnrl":
        return positives
    return min(positives, MAX_LISTS_PER_QUERY)


def same_columns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """(query, positive, negatives...) rows cut to the narrowest row: a dataset needs the same columns in every row."""
    width = min((len(r) for r in rows), default=2)
    return [{k: v for i, (k, v) in enumerate(r.items()) if i < width} for r in rows]


def max_pairs_per_row(rows: list[dict[str, Any]]) -> float:
    """The most (query, passage) pairs one training row makes the model score (what a step's memory grows with)."""
    if rows and "docs" in rows[0]:
        return max(len(r["docs"]) for r in rows)
    if rows and "positive" in rows[0]:
        return float(len(rows[0]) - 1)
    return 1.0


def add_priors(rows: list[dict[str, Any]], spec: str, workspace: Path | None) -> list[dict[str, Any]]:
    """Listwise rows gain the embedding cosine of each passage (cached embeddings), the prior the residual adds to."""
    from core.embeddings import embed_texts

    texts = sorted({r["query"] for r in rows} | {d for r in rows for d in r["docs"]})
    vec = embed_texts(texts, spec, workspace=workspace) if texts else np.zeros((0, 1))
    at = {t: i for i, t in enumerate(texts)}
    out = []
    for r in rows:
        q = vec[at[r["query"]]]
        priors = [float(vec[at[d]] @ q) for d in r["docs"]]
        out.append({"query": r["query"], "docs": r["docs"], "priors": priors, "labels": r["labels"]})
    return out
