"""Ranking metrics with trec_eval semantics — the ONE NDCG@k, MRR@k, MAP and Recall@k of the studio.

NDCG@k uses linear graded gains and the ideal ranking over every judged passage (trec_eval ndcg_cut); MRR@k,
MAP and Recall@k count "relevant" as gain > 0. Training validation (`rank_metrics`) and evaluation
(`query_metrics`) both go through `ndcg_at` / `mrr_at`, so their figures agree on graded data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def ndcg_at(ranking: Sequence[str], qrels: dict[str, float], k: int = 10) -> float:
    """NDCG@k with linear gains (trec_eval ndcg_cut): the ideal uses every judged passage, retrieved or not."""
    dcg = sum(max(qrels.get(d, 0.0), 0.0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at(ranking: Sequence[str], qrels: dict[str, float], k: int = 10) -> float:
    """Reciprocal rank of the first relevant passage within the top k (0 when none)."""
    for i, d in enumerate(ranking[:k]):
        if qrels.get(d, 0.0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def average_precision(ranking: Sequence[str], qrels: dict[str, float]) -> float:
    """AP over the whole list; relevant passages never retrieved count as missed (trec_eval map)."""
    n_rel = sum(1 for g in qrels.values() if g > 0)
    if not n_rel:
        return 0.0
    hits, total = 0, 0.0
    for i, d in enumerate(ranking):
        if qrels.get(d, 0.0) > 0:
            hits += 1
            total += hits / (i + 1)
    return total / n_rel


def recall_at(ranking: Sequence[str], qrels: dict[str, float], k: int) -> float:
    """Share of the relevant passages found in the top k."""
    rel = {d for d, g in qrels.items() if g > 0}
    return len(rel.intersection(ranking[:k])) / len(rel) if rel else 0.0


def metric_names(top_k: int) -> list[str]:
    """The reported metrics; Recall@top-k is the candidate recall (the ceiling a reranker cannot pass)."""
    names = ["ndcg@10", "mrr@10", "map", "recall@10"]
    if top_k != 10:
        names.append(f"recall@{top_k}")
    return names


def query_metrics(ranking: Sequence[str], qrels: dict[str, float], top_k: int) -> dict[str, float]:
    """All reported metrics of one ranked list."""
    out = {
        "ndcg@10": ndcg_at(ranking, qrels, 10),
        "mrr@10": mrr_at(ranking, qrels, 10),
        "map": average_precision(ranking, qrels),
        "recall@10": recall_at(ranking, qrels, 10),
    }
    if top_k != 10:
        out[f"recall@{top_k}"] = recall_at(ranking, qrels, top_k)
    return out


def sample_qrels(sample: dict[str, Any]) -> dict[str, float]:
    """A validation list's judgements: its graded `gains` when present, else gain 1.0 for each positive."""
    qrels = {str(p): 1.0 for p in sample.get("positive", [])}
    qrels.update({str(d): float(g) for d, g in (sample.get("gains") or {}).items()})
    return qrels


def ranked_documents(sample: dict[str, Any], scores: Sequence[float]) -> list[str]:
    """The sample's documents, best score first (ties keep list order)."""
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    return [str(sample["documents"][i]) for i in order]


def rank_metrics(samples: list[dict[str, Any]], scores: list[np.ndarray], k: int = 10) -> dict[str, float]:
    """Mean NDCG@k and MRR@k of reranked candidate lists (positives outside the list count as missed)."""
    ndcgs, mrrs = [], []
    for s, sc in zip(samples, scores):
        ranking, qrels = ranked_documents(s, sc), sample_qrels(s)
        ndcgs.append(ndcg_at(ranking, qrels, k))
        mrrs.append(mrr_at(ranking, qrels, k))
    return {
        f"ndcg@{k}": float(np.mean(ndcgs)) if ndcgs else 0.0,
        f"mrr@{k}": float(np.mean(mrrs)) if mrrs else 0.0,
    }
