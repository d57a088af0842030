"""The shared scoring seams: one graded NDCG for training validation and evaluation, and the score formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.scoring import formulas, metrics


def _old_training_ndcg(sample: dict, scores: np.ndarray, k: int = 10) -> float:
    """The NDCG training validation used before (binary gains, its own code) — kept here to show the disagreement."""
    pos = set(sample["positive"])
    order = np.argsort(-np.asarray(scores), kind="stable")[:k]
    gains = [1.0 if sample["documents"][i] in pos else 0.0 for i in order]
    dcg = sum(g / math.log2(r + 2) for r, g in enumerate(gains))
    ideal = sum(1.0 / math.log2(r + 2) for r in range(min(k, len(pos))))
    return dcg / ideal if ideal else 0.0


GRADED = {
    "query": "q",
    "documents": ["a", "b", "c", "d"],
    "positive": ["a", "b"],
    "gains": {"a": 1.0, "b": 3.0},
}
SCORES = np.array([0.9, 0.1, 0.5, 0.3])  # ranks a, c, d, b: the highly relevant b comes last


def test_rank_metrics_uses_graded_gains_like_evaluation() -> None:
    ranking = ["a", "c", "d", "b"]
    expected = metrics.ndcg_at(ranking, GRADED["gains"], 10)
    old = _old_training_ndcg(GRADED, SCORES)
    assert abs(old - expected) > 0.05  # the old validation figure disagreed with evaluation on graded data
    got = metrics.rank_metrics([GRADED], [SCORES])
    assert got["ndcg@10"] == pytest.approx(expected)
    assert got["mrr@10"] == pytest.approx(metrics.mrr_at(ranking, GRADED["gains"], 10)) == 1.0


def test_training_validation_uses_the_shared_rank_metrics() -> None:

    assert metrics.rank_metrics([GRADED], [SCORES])["ndcg@10"] == pytest.approx(
        metrics.ndcg_at(["a", "c", "d", "b"], GRADED["gains"], 10)
    )


def test_rank_metrics_binary_and_missed_positives() -> None:
    # no gains: each positive counts 1.0; a positive outside the candidate list is missed (ideal still counts it)
    sample = {"query": "q", "documents": ["x", "p1", "y"], "positive": ["p1", "p2"]}
    got = metrics.rank_metrics([sample], [np.array([3.0, 2.0, 1.0])], k=10)
    assert got["ndcg@10"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert got["mrr@10"] == pytest.approx(0.5)
    assert metrics.rank_metrics([], []) == {"ndcg@10": 0.0, "mrr@10": 0.0}


def test_formulas() -> None:
    z = formulas.zscore(np.array([1.0, 2.0, 3.0]))
    assert z.mean() == pytest.approx(0.0) and z.std() == pytest.approx(1.0)
    assert formulas.zscore(np.array([2.0, 2.0])).tolist() == [0.0, 0.0]
    assert formulas.fused_scores(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 1.0).tolist() == [1.0, -1.0]
    assert formulas.residual_score([1.0, 2.0], [0.5, 0.1], 10).tolist() == pytest.approx([6.0, 3.0])
    samples = [{"query": "q", "documents": ["a", "b"], "positive": ["a"], "first_stage_scores": [0.0, 1.0]}]
    choice = formulas.choose_fusion(samples, [np.array([5.0, 0.0])])
    assert choice["alpha"] == 1.0 and choice["alone_validation_ndcg@10"] == 1.0
    assert choice["first_stage_validation_ndcg@10"] < 1.0


def test_a_residual_run_whose_logit_alone_wins_records_test_figures(monkeypatch):
    """When validation picks the cross-encoder alone over the residual score, the test figures are still computed
    (the fusion record then has no blend weight: reading one raised KeyError before)."""
    import numpy as np

    from core.training import results
    from core.training.config import TrainConfig
    from core.training.data import TrainingData

    samples = [
        {
            "query": f"q{i}",
            "documents": ["pos", "neg1", "neg2"],
            "positive": ["pos"],
            "first_stage_scores": [0.1, 0.9, 0.5],
        }
        for i in range(6)
    ]

    def fake_scores(model, lists, beta):  # the logit ranks the positive first; logit + beta x cosine does not
        ce = [np.array([3.0, 0.0, -1.0]) for _ in lists]
        full = [c + (beta or 0.0) * np.asarray(s["first_stage_scores"]) for c, s in zip(ce, lists)]
        return full, ce

    monkeypatch.setattr(results, "run_scores", fake_scores)
    data = TrainingData(
        train_rows=[],
        eval_samples=samples,
        eval_source="split",
        eval_note="",
        test_samples=samples,
        stats={"residual_beta": 50.0},
        snapshot={},
    )
    metrics = results.final_metrics(None, TrainConfig(), data, {})
    assert metrics["scoring"]["mode"] == results.CROSS_ENCODER
    assert metrics["fusion"]["method"] == results.CROSS_ENCODER and "alpha" not in metrics["fusion"]
    assert metrics["test"]["ndcg@10"] == 1.0  # scored as shipped: the logit alone
