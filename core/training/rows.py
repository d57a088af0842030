"""Training rows in the shape each loss needs, and the embedding prior a residual run learns on top of."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np


def query_rows(loss: str, query: str, pos: list[str], negs: list[str], negatives_per_row: int,
               rng: random.Random) -> list[dict[str, Any]]:
    """One query's rows: labelled pairs (bce), (query, positive, negatives...) rows (mnrl) or one list (listwise)."""
    if loss == "bce":
        return ([{"query": query, "passage": p, "label": 1.0} for p in pos]
                + [{"query": query, "passage": n, "label": 0.0} for n in negs])
    if loss == "mnrl":
        per = max(1, len(negs) // max(1, len(pos))) if negs else 0
        rows = []
        for i, p in enumerate(pos):
            row = {"query": query, "positive": p}
            mine = negs[i * per:(i + 1) * per]
            for j in range(min(per, negatives_per_row)):
                row[f"negative_{j + 1}"] = mine[j] if j < len(mine) else negs[j % len(negs)]
            rows.append(row)
        return rows
    docs = pos + negs
    labels = [1.0] * len(pos) + [0.0] * len(negs)
    order = list(range(len(docs)))
    rng.shuffle(order)
    return [{"query": query, "docs": [docs[i] for i in order], "labels": [labels[i] for i in order]}]


def same_columns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """(query, positive, negatives...) rows cut to the narrowest row: a dataset needs the same columns in every row."""
    width = min((len(r) for r in rows), default=2)
    return [{k: v for i, (k, v) in enumerate(r.items()) if i < width} for r in rows]


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


def fit_beta(rows: list[dict[str, Any]], grid: tuple[float, ...] = (1, 2, 5, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100)) -> float:
    """The cosine weight under which the embedding model alone best explains the training lists (max likelihood of
    the positives under a softmax); the cross-encoder then starts from exactly the embedding model's ranking."""
    def loglik(beta: float) -> float:
        total = 0.0
        for r in rows:
            logits = beta * np.asarray(r["priors"], dtype=float)
            logits -= logits.max()
            logp = logits - np.log(np.exp(logits).sum())
            target = np.asarray(r["labels"], dtype=float)
            total += float((target / target.sum() * logp).sum())
        return total
    return float(max(grid, key=loglik)) if rows else 20.0
