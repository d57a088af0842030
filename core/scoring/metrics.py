"""Ranking metrics with trec_eval semantics — the ONE NDCG@k, MRR@k, MAP and Recall@k of the studio.

The gain of a grade is defined once, here (`gain`): linear, gain = grade (trec_eval's ndcg_cut, as BEIR and MTEB
report). NDCG@k sums it over the ranking with the ideal ranking over every judged passage; the listwise training
targets (`gain_targets`, used by the residual loss and the beta fit) are the same gains, normalised, so the loss
optimises the metric that is reported. MRR@k, MAP and Recall@k count "relevant" as gain > 0; judged@k is the
share of a top k that has a label at all. Training validation (`rank_metrics`) and evaluation (`query_metrics`)
both go through `ndcg_at` / `mrr_at`, so their figures agree on graded data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

GAIN = "linear"
GAIN_NOTE = (
    "NDCG gains are linear (gain = grade, trec_eval's ndcg_cut); training targets use the same gains, so the "
    "loss optimises the NDCG reported"
)


def gain(grade: float) -> float:
    """The gain of a grade, for NDCG and for training targets alike: the grade itself (0 for none or negative)."""
    return max(float(grade), 0.0)


def gain_targets(labels: Any) -> np.ndarray:
    """Listwise target shares from graded labels: each passage's `gain`, normalised (binary labels: 1/n_pos each);
    a list with no positive gets equal shares."""
    gains = np.array([gain(g) for g in np.asarray(labels, dtype=float).reshape(-1)], dtype=float)
    total = gains.sum()
    return gains / total if total > 0 else np.full(len(gains), 1.0 / max(1, len(gains)))


def ndcg_at(ranking: Sequence[str], qrels: dict[str, float], k: int = 10) -> float:
    """NDCG@k with `gain` (linear, trec_eval ndcg_cut): the ideal uses every judged passage, retrieved or not."""
    dcg = sum(gain(qrels.get(d, 0.0)) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted((gain(g) for g in qrels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def judged_at(ranking: Sequence[str], qrels: dict[str, float], k: int = 10) -> float:
    """The share of the top k that has a label (any grade, 0 included): unjudged passages count as not relevant,
    so a low share means NDCG may understate a system that surfaces passages nobody judged."""
    top = list(ranking[:k])
    return sum(1 for d in top if d in qrels) / len(top) if top else 0.0


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


JUDGED = "judged@10"  # not a quality metric: how much of the top 10 the labels cover
LOW_JUDGED = 0.8  # below this share, NDCG@10 may understate a system that surfaces unjudged passages


def metric_names(top_k: int) -> list[str]:
    """The reported figures; Recall@top-k is the candidate recall (the ceiling a reranker cannot pass); judged@10
    last (label coverage of the top 10, reported beside NDCG)."""
    names = ["ndcg@10", "mrr@10", "map", "recall@10"]
    if top_k != 10:
        names.append(f"recall@{top_k}")
    return names + [JUDGED]


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
    out[JUDGED] = judged_at(ranking, qrels, 10)
    return out


def sample_qrels(sample: dict[str, Any]) -> dict[str, float]:
    """A validation list's judgements: its graded `gains` when present, else gain 1.0 for each positive."""
    qrels = {str(p): 1.0 for p in sample.get("positive", [])}
    qrels.update({str(d): float(g) for d, g in (sample.get("gains") or {}).items()})
    return qrels


def ranked_documents(sample: dict[str, Any], scores: Sequence[float] | np.ndarray) -> list[str]:
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
