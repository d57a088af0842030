"""Validation during training: the run's score on candidate lists, measured with the studio's one graded NDCG.

`run_scores` is the ONE place a run's score (as trained) is computed during training: the evaluator that picks
checkpoints and the final validation/test figures all go through it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

from core.scoring.formulas import PRIMARY
from core.scoring.metrics import rank_metrics


def score_samples(model: Any, samples: list[dict[str, Any]]) -> list[np.ndarray]:
    """Cross-encoder scores for every candidate list, in one batched predict."""
    pairs = [[s["query"], d] for s in samples for d in s["documents"]]
    if not pairs:
        return [np.zeros(0) for _ in samples]
    flat = np.asarray(model.predict(pairs, batch_size=64, show_progress_bar=False, convert_to_numpy=True))
    out, at = [], 0
    for s in samples:
        out.append(flat[at : at + len(s["documents"])])
        at += len(s["documents"])
    return out


def run_scores(
    model: Any, samples: list[dict[str, Any]], beta: float | None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(the run's score as trained, the cross-encoder part alone) for every candidate list.

    A residual run scores logit + beta x first-stage cosine; any other run scores the cross-encoder alone."""
    from core.scoring.reranker import Reranker

    reranker = Reranker({"kind": "residual" if beta is not None else "cross-encoder", "beta": beta}, model)
    ce = score_samples(model, samples)
    return [reranker.combine(c, s["first_stage_scores"]) for c, s in zip(ce, samples)], ce


def first_stage_metrics(samples: list[dict[str, Any]]) -> dict[str, float]:
    """NDCG@10 / MRR@10 of the candidate lists in first-stage order (the baseline a reranker must beat)."""
    return rank_metrics(samples, [np.asarray(s["first_stage_scores"], dtype=float) for s in samples])


class RerankingEvaluator(BaseEvaluator):
    """NDCG@10 / MRR@10 of the run's score on the first stage's top-k (the trainer keeps the best by it)."""

    def __init__(self, samples: list[dict[str, Any]], beta: float | None, name: str) -> None:
        super().__init__()
        self.samples, self.beta = samples, beta
        self.name, self.primary_metric = name, PRIMARY
        self.base = first_stage_metrics(samples)

    def __call__(
        self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1
    ) -> dict[str, float]:
        """Score every list, measure it, and record the metrics on the model card."""
        full, ce = run_scores(model, self.samples, self.beta)
        metrics = {
            **rank_metrics(self.samples, full),
            "base_ndcg@10": self.base[PRIMARY],
            "base_mrr@10": self.base["mrr@10"],
        }
        if self.beta is not None:
            metrics["cross_encoder_alone_ndcg@10"] = rank_metrics(self.samples, ce)[PRIMARY]
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics


def make_residual_evaluator(samples: list[dict[str, Any]], beta: float, name: str) -> RerankingEvaluator:
    """The evaluator of a residual run: logit + beta x cosine, as trained."""
    return RerankingEvaluator(samples, beta, name)


def make_evaluator(samples: list[dict[str, Any]], name: str) -> RerankingEvaluator:
    """Reranks the first stage's top-k as it came (positives outside it count as missed; base = first stage)."""
    return RerankingEvaluator(samples, None, name)
