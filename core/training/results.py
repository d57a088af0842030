"""The figures a finished run records: validation (and the fusion weight chosen on it), test, and any test-label use."""

from __future__ import annotations

from typing import Any

from core import models
from core.evaluation.statistics import paired_test
from core.scoring.formulas import PRIMARY, RESIDUAL, choose_fusion
from core.scoring.metrics import rank_metrics
from core.scoring.reranker import Reranker
from core.training.config import TrainConfig
from core.training.data import TrainingData
from core.training.evaluator import first_stage_metrics, first_stage_order, run_scores
from core.training.noise import Difference, difference, per_query_ndcg
from core.training.presenters import verdict

CROSS_ENCODER = "cross-encoder"  # a residual run whose logit alone won on validation scores alone


SCORING_CHOICE = "residual vs cross-encoder alone"  # what `choose_scoring` decides on the validation lists


def test_labels_used_for(cfg: TrainConfig, eval_source: str, beta: float | None) -> list[str]:
    """The choices the test labels made in this run: none unless the person asked to validate on the test set.
    Then every choice made on the validation lists was made on test: the checkpoint, early stopping, the fusion
    weight, whether a residual run ships its residual score or its cross-encoder alone, and the figures."""
    if eval_source != "test":
        return []
    used = ["checkpoint"] if cfg.keep_best else []
    if cfg.early_stopping_patience > 0:
        used.append("early stopping")
    if cfg.fusion and beta is None:
        used.append("fusion weight")
    if beta is not None:
        used.append(SCORING_CHOICE)
    return used + ["validation figures"]


def vs_first_stage(samples: list[dict[str, Any]], scores: list[Any]) -> dict[str, Any]:
    """The paired randomization test of a scoring against the first stage's order, per list (NDCG@10)."""
    first = first_stage_order(samples)
    test = paired_test(per_query_ndcg(samples, first).tolist(), per_query_ndcg(samples, scores).tolist())
    keep = ("mean_diff", "p_value", "significant", "n", "draws", "method")
    return {k: test[k] for k in keep}


def _figures(
    model: Any, samples: list[dict[str, Any]], beta: float | None
) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """NDCG@10 / MRR@10 of the run's score and of the first stage on some lists; the cross-encoder's and the run's
    scores."""
    full, ce = run_scores(model, samples, beta)
    base = first_stage_metrics(samples)
    out = {
        **rank_metrics(samples, full),
        "first_stage_ndcg@10": base[PRIMARY],
        "first_stage_mrr@10": base["mrr@10"],
    }
    if beta is not None:
        out["cross_encoder_alone_ndcg@10"] = rank_metrics(samples, ce)[PRIMARY]
    return out, ce, full


def prior_model(cfg: TrainConfig, data: TrainingData) -> str:
    """The embedding model whose cosine the run's score adds: its tuned prior if it has one, else the first stage's."""
    return str(data.stats.get("prior_model") or models.model_key(cfg.first_stage_model))


def _fusion(cfg: TrainConfig, data: TrainingData, ce_val: list[Any], alone: float) -> dict[str, Any] | None:
    """The blend with the first stage, chosen on validation, kept only when it beats the cross-encoder alone."""
    fusion = choose_fusion(data.eval_samples, ce_val)
    if fusion["alpha"] < 1.0 and fusion["validation_ndcg@10"] > alone:
        return {
            "alpha": fusion["alpha"],
            "first_stage": f"embedding:{prior_model(cfg, data)}",
            "method": "alpha*z(ce)+(1-alpha)*z(first_stage cosine), z-scored per query over the top-k",
            "chosen_on": data.eval_source,
            **{k: v for k, v in fusion.items() if k != "alpha"},
        }
    return None


def choose_scoring(
    val: dict[str, Any], beta: float, source: str, diff: Difference | None = None
) -> dict[str, Any]:
    """Residual (logit + beta x cosine) or the cross-encoder alone: the alone score only when it is better on
    validation beyond the noise (`diff` = alone - residual, paired per query); otherwise the residual as trained."""
    full, alone = float(val[PRIMARY]), float(val["cross_encoder_alone_ndcg@10"])
    figures = f"NDCG@10 on {source} validation: residual (logit + {beta:g} x cosine) {full:.4f}, cross-encoder alone {alone:.4f}"
    if alone > full and diff is not None and not diff.beyond_noise:
        return {
            "mode": RESIDUAL,
            "reason": f"{figures}: the alone score is ahead by {diff.text()}, within the noise, so the residual "
            "score (as trained) is kept",
            "residual_ndcg@10": full,
            "cross_encoder_alone_ndcg@10": alone,
            "chosen_on": source,
        }
    if alone > full:
        return {
            "mode": CROSS_ENCODER,
            "reason": f"{figures}: the cross-encoder alone is better, so it scores alone",
            "residual_ndcg@10": full,
            "cross_encoder_alone_ndcg@10": alone,
            "chosen_on": source,
        }
    return {
        "mode": RESIDUAL,
        "reason": f"{figures}: the residual score is at least as good, so it is kept",
        "residual_ndcg@10": full,
        "cross_encoder_alone_ndcg@10": alone,
        "chosen_on": source,
    }


def final_metrics(
    model: Any, cfg: TrainConfig, data: TrainingData, metrics: dict[str, Any]
) -> dict[str, Any]:
    """Add validation, fusion, test and test-label use to the training metrics (rank 0, after training)."""
    beta = data.residual_beta
    if beta is not None:
        metrics["fusion"] = {
            "method": RESIDUAL,
            "beta": beta,
            "first_stage": f"embedding:{prior_model(cfg, data)}",
            "formula": "score = cross-encoder logit + beta x cosine(query, passage) of the "
            "embedding model (as trained)",
        }
        if data.stats.get("prior_model"):
            metrics["fusion"]["prior"] = (
                "the first stage's embedding model, fine-tuned on the judged pairs first"
            )
    used = test_labels_used_for(cfg, data.eval_source, beta)
    if used:
        metrics["test_labels_used_for"] = used
    if data.eval_samples:
        val, ce_val, full_val = _figures(model, data.eval_samples, beta)
        shipped = full_val  # the scores of what the run ships (the cross-encoder's when it scores alone)
        if beta is not None:
            diff = difference(
                per_query_ndcg(data.eval_samples, ce_val), per_query_ndcg(data.eval_samples, full_val)
            )
            metrics["scoring"] = choose_scoring(val, beta, data.eval_source, diff)
            if (
                metrics["scoring"]["mode"] == CROSS_ENCODER
            ):  # the logit alone won on validation: ship it alone
                metrics["fusion"] = {
                    "method": CROSS_ENCODER,
                    "chosen_on": data.eval_source,
                    "reason": metrics["scoring"]["reason"],
                    "trained_as": metrics["fusion"],
                }
                val = {**val, **rank_metrics(data.eval_samples, ce_val), "residual_ndcg@10": val[PRIMARY]}
                beta, shipped = None, ce_val
        metrics["validation"] = val
        metrics["validation_vs_first_stage"] = vs_first_stage(data.eval_samples, shipped)
        metrics["beats_first_stage"] = verdict(metrics).beats  # positive AND significant (the one rule)
        if (
            cfg.fusion
            and beta is None
            and "fusion" not in metrics
            and (fusion := _fusion(cfg, data, ce_val, val[PRIMARY]))
        ):
            metrics["fusion"] = fusion
    elif beta is not None:
        metrics["scoring"] = {
            "mode": RESIDUAL,
            "reason": "no validation slice to compare on: the residual score (as trained) is kept",
        }
    if data.test_samples and data.eval_source != "test":
        test, ce_test, _ = _figures(model, data.test_samples, beta)
        if beta is None and "alpha" in metrics.get("fusion", {}):  # a blend, not the logit alone
            blend = Reranker(
                {"kind": "blended", "alpha": metrics["fusion"]["alpha"]}, model
            )  # the run's formula
            fused = [blend.combine(c, s["first_stage_scores"]) for c, s in zip(ce_test, data.test_samples)]
            test["fused_ndcg@10"] = rank_metrics(data.test_samples, fused)[PRIMARY]
        metrics["test"] = test
    return metrics
