"""Defaults that adapt to the data and base model, and the loss proposed for a data shape (the page pre-selects it)."""

from __future__ import annotations

import math
from typing import Any

from core import models
from core.scoring.formulas import RESIDUAL
from core.training.config import TrainConfig

MIN_VALIDATION_QUERIES = 5  # a held-out slice smaller than this says nothing; fewer than 2x this: no slice at all


def is_trained(spec: str) -> bool:
    """True when the base is already a trained cross-encoder (it is fine-tuned gently, not given a new head)."""
    try:
        return models.is_trained_cross_encoder(spec)
    except models.ModelError:
        return False


def propose_loss(shape: str, fresh: bool = False) -> tuple[str, str]:
    """The loss that fits the data's shape and base model, and why (the page pre-selects it and shows the reason)."""
    if fresh:
        return RESIDUAL, ("a new head on a bare encoder: on small data it learns too slowly to beat the embedding model "
                          "alone (SciFact: NDCG@10 0.37 vs 0.65 with BCE), so the cross-encoder is trained on top of "
                          "the embedding model's score and learns what that score misses (listwise softmax over each "
                          "query's positive and negatives). The saved reranker scores logit + beta x cosine.")
    s = (shape or "").lower()
    if "several" in s or "list" in s or "multiple" in s:
        return "lambda", ("query + several labelled passages: LambdaLoss optimises NDCG over the whole list "
                          "(ListNet is the simpler alternative).")
    if "triplet" in s or s in ("pairs", "positive pairs", "query-positive") or "negative" in s:
        return "mnrl", ("(query, positive[, negatives]) rows: the cached multiple-negatives ranking loss uses the "
                        "other rows of the batch as extra negatives at low memory.")
    return "bce", ("labelled (query, passage, label) pairs: binary cross-entropy, with pos_weight balancing the "
                   "many negatives against the few positives.")


def _residual_schedule(cfg: TrainConfig, queries: int) -> int:
    """Settings of a residual run over the embedding model; returns the training rows per epoch."""
    # Measured on SciFact (2 CPU threads): BCE on a fresh head reached NDCG@10 0.37 after 12 min, far below the
    # embedding model (0.65); the residual listwise loss starts at the embedding model's ranking and improves it.
    # Lists of 1 positive + 5 mined + 2 random negatives, 4 lists (32 pairs) a step, ~2.3 s a step at length 128.
    cfg.hard_negatives, cfg.random_negatives = 5, 2
    cfg.batch_size = 4
    cfg.learning_rate = 7e-5  # 1.5e-4 did worse on validation (0.692 vs 0.706 after 200 steps)
    cfg.head_lr_multiplier = 20.0
    cfg.max_length = 128
    # 3 epochs of SciFact's ~730 training queries = 546 steps: 28 min on 2 idle CPU cores, validation
    # NDCG@10 0.690 -> 0.749 and still rising; test 0.648 -> 0.690 (bench/outcome.py).
    cfg.epochs = 3.0 if queries < 5000 else 1.0
    cfg.early_stopping_patience = 3
    return max(1, queries)


def _pairwise_schedule(cfg: TrainConfig, positives: int, fresh: bool) -> int:
    """Settings of a pair/triplet/list run; returns the training rows per epoch."""
    cfg.hard_negatives, cfg.random_negatives = 3, 1
    cfg.batch_size = 16
    cfg.learning_rate = 7e-5 if fresh else 2e-5
    cfg.head_lr_multiplier = 20.0 if fresh else 1.0
    cfg.epochs = (2.0 if positives < 20000 else 1.0) if fresh else (2.0 if positives < 2000 else 1.0)
    cfg.max_length = 192 if fresh else 256
    cfg.early_stopping_patience = 4 if fresh else 3
    return max(1, positives * (1 + cfg.hard_negatives + cfg.random_negatives))


def validation_plan(queries: int) -> tuple[str, float]:
    """(validation, fraction) for a project: held-out training queries (at least 5), never the test set."""
    if queries < 2 * MIN_VALIDATION_QUERIES:
        return "none", 0.2
    if queries >= 300:
        return "split", 0.1
    return "split", round(min(0.5, max(0.2, MIN_VALIDATION_QUERIES / queries)), 2)


def default_config(stats: dict[str, Any], base_model: str = models.BUNDLED, shape: str = "labelled pairs") -> TrainConfig:
    """Defaults that adapt to the data size and base model: a fresh head on little data learns a residual over the
    embedding model with a fast head; a trained cross-encoder needs a gentle touch."""
    positives = int(stats.get("train_positives") or stats.get("train_pairs") or 0)
    queries = int(stats.get("train_queries") or 0)
    fresh = not is_trained(base_model)
    loss, _ = propose_loss(shape, fresh=fresh)
    cfg = TrainConfig(base_model=base_model, loss=loss)
    rows = _residual_schedule(cfg, queries) if loss == RESIDUAL else _pairwise_schedule(cfg, positives, fresh)
    steps = math.ceil(rows / cfg.batch_size) * cfg.epochs
    cfg.eval_steps = int(max(20, min(500, steps // 6)))
    cfg.validation, cfg.validation_fraction = validation_plan(queries)
    return cfg
