"""Defaults that adapt to the data and base model, and the loss proposed for a data shape (the page pre-selects it)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from core import models
from core.scoring.formulas import RESIDUAL
from core.training import prior
from core.training.adapt import MIN_VALIDATION_QUERIES, ProjectShape, adaptation, project_shape
from core.training.config import TrainConfig


def is_trained(spec: str) -> bool:
    """True when the base is already a trained cross-encoder (it is fine-tuned gently, not given a new head)."""
    try:
        return models.is_trained_cross_encoder(spec)
    except models.ModelError:
        return False


def propose_loss(shape: str, fresh: bool = False) -> tuple[str, str]:
    """The loss that fits the data's shape and base model, and why (the page pre-selects it and shows the reason)."""
    if fresh:
        return RESIDUAL, (
            "a new head on a bare encoder: on small data it learns too slowly to beat the embedding model "
            "alone (SciFact: NDCG@10 0.37 vs 0.65 with BCE), so the cross-encoder is trained on top of "
            "the embedding model's score and learns what that score misses (listwise softmax over each "
            "query's positive and negatives). The saved reranker scores logit + beta x cosine."
        )
    s = (shape or "").lower()
    if "several" in s or "list" in s or "multiple" in s:
        return "lambda", (
            "query + several labelled passages: LambdaLoss optimises NDCG over the whole list "
            "(ListNet is the simpler alternative)."
        )
    if "triplet" in s or s in ("pairs", "positive pairs", "query-positive") or "negative" in s:
        return "mnrl", (
            "(query, positive[, negatives]) rows: the cached multiple-negatives ranking loss uses the "
            "other rows of the batch as extra negatives at low memory."
        )
    return "bce", (
        "labelled (query, passage, label) pairs: binary cross-entropy, with pos_weight balancing the "
        "many negatives against the few positives."
    )


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
    """Settings of a pair/triplet/list run; returns the training rows per epoch.

    From a trained cross-encoder: the sentence-transformers recipe for fine-tuning one (BinaryCrossEntropyLoss,
    learning rate 2e-5, warm-up 0.1, no new head) at the base's own max length (capped later by the data's)."""
    cfg.hard_negatives, cfg.random_negatives = 3, 1
    cfg.batch_size = 16
    cfg.learning_rate = 7e-5 if fresh else 2e-5
    cfg.head_lr_multiplier = 20.0 if fresh else 1.0
    cfg.warmup_ratio = 0.1
    cfg.epochs = (2.0 if positives < 20000 else 1.0) if fresh else (2.0 if positives < 2000 else 1.0)
    cfg.max_length = 192 if fresh else base_max_length(cfg.base_model)
    cfg.early_stopping_patience = 4 if fresh else 3
    return max(1, positives * (1 + cfg.hard_negatives + cfg.random_negatives))


def base_max_length(spec: str) -> int:
    """The longest input a base model was made for: its tokenizer's model_max_length, else its position embeddings."""
    try:
        folder = Path(models.resolve(spec))
    except models.ModelError:
        return 512
    found = []
    for name, key in (
        ("tokenizer_config.json", "model_max_length"),
        ("config.json", "max_position_embeddings"),
    ):
        try:
            value = json.loads((folder / name).read_text()).get(key)
        except (OSError, ValueError):
            continue
        if isinstance(value, (int, float)) and 16 <= value <= 100_000:
            found.append(int(value))
    return min(found) if found else 512


DECISION_QUERIES = 30  # held-out queries wanted for a decision; at most a third of a small project's queries


def validation_plan(queries: int) -> tuple[str, float]:
    """(validation, fraction) for a project: held-out training queries (at least 5, and up to 30 when a third of the
    queries allows it: 5 queries cannot tell a checkpoint from noise), never the test set."""
    if queries < 2 * MIN_VALIDATION_QUERIES:
        return "none", 0.2
    decision = min(DECISION_QUERIES, queries // 3) / queries
    if queries >= 300:
        return "split", 0.1
    return "split", round(min(0.5, max(0.2, MIN_VALIDATION_QUERIES / queries, decision)), 2)


def default_config(
    stats: dict[str, Any], base_model: str = models.BUNDLED, shape: str = "labelled pairs"
) -> TrainConfig:
    """Defaults that adapt to the data size and base model: a fresh head on little data learns a residual over the
    embedding model with a fast head; a trained cross-encoder needs a gentle touch."""
    positives = int(stats.get("train_positives") or stats.get("train_pairs") or 0)
    queries = int(stats.get("train_queries") or 0)
    fresh = not is_trained(base_model)
    loss = (
        propose_loss(shape, fresh=fresh)[0] if fresh else "bce"
    )  # a trained reranker: the recipe's BCE, no residual
    cfg = TrainConfig(base_model=base_model, loss=loss)
    rows = _residual_schedule(cfg, queries) if loss == RESIDUAL else _pairwise_schedule(cfg, positives, fresh)
    steps = math.ceil(rows / cfg.batch_size) * cfg.epochs
    cfg.eval_steps = int(max(20, min(500, steps // 6)))
    cfg.validation, cfg.validation_fraction = validation_plan(queries)
    return cfg


# --- defaults from the project's own measurements -----------------------------------------------------------------

TIME_BUDGET_S = 1800.0  # default training time on this machine (~30 min), shown as an ETA
LENGTH_QUANTILE = 0.9  # the max length covers this share of (query, passage) pairs
LENGTH_STEP = 32
MIN_LENGTH = 64
LENGTH_FLOOR_FOR_TIME = (
    128  # the time budget never pushes the length below this (the SciFact-measured default)
)
LENGTH_SAMPLE = 2000  # pairs tokenized to measure the distribution
MIN_PASSES = {
    RESIDUAL: 3.0
}  # passes the budget keeps before it buys length (SciFact: a fresh residual still rose at 3)


def pair_token_lengths(pairs: list[tuple[str, str]], spec: str) -> np.ndarray:
    """Tokens of each (query, passage) pair with the base model's tokenizer, special tokens included (+3)."""
    from core.quality.tokens import token_counts

    if not pairs:
        return np.zeros(0, dtype=int)
    tok = models.load_tokenizer(spec)
    q = token_counts([a for a, _ in pairs], tok)
    p = token_counts([b for _, b in pairs], tok)
    return q.astype(int) + p.astype(int) + 3


def length_from_data(lengths: np.ndarray, limit: int) -> tuple[int, str]:
    """(max length, why): the 90th percentile of pair lengths rounded up to a multiple of 32, within the model's limit."""
    if not len(lengths):
        return min(limit, 128), "no pairs to measure: 128"
    p90 = float(np.quantile(lengths, LENGTH_QUANTILE))
    length = max(MIN_LENGTH, int(math.ceil(p90 / LENGTH_STEP) * LENGTH_STEP))
    covered = float((lengths <= min(length, limit)).mean())
    why = f"90% of pairs are at most {p90:.0f} tokens (query + passage)"
    if length > limit:
        return limit, why + f"; capped at the model's limit {limit} (covers {covered:.0%})"
    return length, why + f": {length} covers {covered:.0%}"


def rows_per_epoch(cfg: TrainConfig, shape: ProjectShape) -> tuple[int, int]:
    """(training rows, pairs per row) one epoch will have: the rows the run builds (core.training.adapt), so the time
    budget counts what the redrawn lists train on."""
    return adaptation(cfg, shape).epoch_rows


def rate_precision(cfg: TrainConfig) -> str | None:
    """The precision the run's training rate is for: its setting, or None ('auto': what this process would use)."""
    asked = (getattr(cfg, "precision", None) or "auto").strip().lower()
    return None if asked == "auto" else asked


def epoch_seconds(cfg: TrainConfig, rows: int, per_row: int, workspace: Path | None) -> float:
    """Seconds one epoch takes at the measured (or default) training rate in the run's precision, at cfg.max_length."""
    from core import estimates

    rate, _ = estimates.rate(workspace, "train_pairs_per_s", rate_precision(cfg))
    return rows * per_row / (rate / estimates.length_factor(cfg.max_length, training=True))


def fit_time_budget(
    cfg: TrainConfig, shape: ProjectShape, budget_s: float, workspace: Path | None
) -> list[str]:
    """Lower the length (not below 128) until the minimum passes fit the budget, then epochs = what the budget buys
    (at most the schedule's). Returns the reasons, for the form and the CLI; the last one (epochs) says the rate it
    planned with, so a faster machine or precision shows what it bought."""
    from core import estimates

    rows, per_row = rows_per_epoch(cfg, shape)
    passes = min(cfg.epochs, MIN_PASSES.get(cfg.loss, 1.0))
    notes = []
    start = cfg.max_length
    while (
        cfg.max_length - LENGTH_STEP >= LENGTH_FLOOR_FOR_TIME
        and passes * epoch_seconds(cfg, rows, per_row, workspace) > budget_s
    ):
        cfg.max_length -= LENGTH_STEP
    if cfg.max_length < start:
        notes.append(
            f"max length lowered from {start} to {cfg.max_length} so {passes:g} passes fit the "
            f"{budget_s / 60:.0f}-minute budget"
        )
    epoch_s = epoch_seconds(cfg, rows, per_row, workspace)
    epochs = max(0.1, min(cfg.epochs, math.floor(10 * budget_s / epoch_s) / 10))
    notes.append(
        f"{epochs:g} epochs of {rows:,} rows x {per_row} pairs (~{epoch_s / 60:.0f} min each) fit the "
        f"{budget_s / 60:.0f}-minute budget"
        if epochs < cfg.epochs
        else f"{epochs:g} epochs (~{epoch_s * epochs / 60:.0f} min), within the {budget_s / 60:.0f}-minute budget"
    )
    notes[-1] += f" {estimates.training_rate_words(workspace, rate_precision(cfg))}"
    cfg.epochs = epochs
    return notes


def prior_plan(cfg: TrainConfig, budget_s: float, workspace: Path | None) -> tuple[str, float]:
    """Give the embedding model's fine-tuning its share of the budget (sets cfg.prior_steps); (why, seconds)."""
    seconds = budget_s * prior.PRIOR_SHARE
    cfg.prior_steps = prior.planned_steps(seconds, workspace, rate_precision(cfg), cfg.max_length)
    why = (
        f"the budget buys the cross-encoder less than one epoch, so the embedding model that gives the prior is "
        f"fine-tuned first: {cfg.prior_steps} steps x {prior.PRIOR_BATCH} judged pairs (~{seconds / 60:.0f} min, "
        "every query in turn); chosen on NFCorpus dev (bench/prior_tuning.py)"
    )
    return why, seconds


def project_defaults(
    conn: Any,
    project: int,
    base_model: str = models.BUNDLED,
    shape: str = "labelled pairs",
    budget_s: float = TIME_BUDGET_S,
    workspace: Path | None = None,
) -> tuple[TrainConfig, dict[str, str]]:
    """`default_config` refined by the project's measurements: max length from its pairs' token lengths (capped at the
    base's limit and by the time budget), epochs from the time budget. Returns the config and the reasons."""
    import random

    from core import store

    stats = store.project_counts(conn, project)
    cfg = default_config(stats, base_model, shape)
    pairs = [(p["query"], p["passage"]) for p in store.fetch_pairs(conn, project, "train")]
    if len(pairs) > LENGTH_SAMPLE:
        pairs = random.Random(cfg.seed).sample(pairs, LENGTH_SAMPLE)
    limit = base_max_length(base_model)
    try:
        cfg.max_length, length_why = length_from_data(pair_token_lengths(pairs, base_model), limit)
    except models.ModelError as exc:
        length_why = f"token lengths not measured ({exc}); kept {cfg.max_length}"
    reasons = {"max_length": length_why}
    judged = project_shape(conn, project)
    trial = dataclasses.replace(cfg)
    notes = fit_time_budget(trial, judged, budget_s, workspace)
    if prior.wanted(trial, trial.epochs if trial.epochs < cfg.epochs else 1.0):
        reasons["prior_steps"], prior_s = prior_plan(cfg, budget_s, workspace)
        notes = fit_time_budget(cfg, judged, budget_s - prior_s, workspace)
    else:
        cfg = trial
    if notes[:-1]:
        reasons["max_length"] += "; " + notes[0]
    reasons["epochs"] = notes[-1]
    steps = math.ceil(rows_per_epoch(cfg, judged)[0] / cfg.batch_size * cfg.epochs)
    cfg.eval_steps = int(max(20, min(500, steps // 6)))
    return cfg, reasons
