"""Training from a trained reranker: its validation score at step 0, and never keeping a model worse than it.

keep-best only compares checkpoints saved during training, so a fine-tuning that only ever hurts would still
return its least bad checkpoint. The base's own score is measured before the first step and, when the best
checkpoint is below it, the base's weights are what the run saves (and the run says so).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from core import models
from core.runs.records import add_event
from core.scoring.formulas import PRIMARY
from core.training.config import TrainConfig
from core.training.defaults import is_trained
from core.training.distributed import is_main

BASE_KEY = f"base_validation_{PRIMARY}"


def stored_base_score(conn: sqlite3.Connection, run_id: str) -> float | None:
    """The step-0 validation score a run recorded at its first start (a resumed run does not measure it again)."""
    row = conn.execute(
        "SELECT data FROM run_events WHERE run_id = ? AND kind = 'eval' AND step = 0 ORDER BY id LIMIT 1",
        (run_id,),
    ).fetchone()
    value = json.loads(row[0]).get(f"val_{PRIMARY}") if row else None
    return float(value) if value is not None else None


def base_validation(
    conn: sqlite3.Connection, run_id: str, cfg: TrainConfig, trainer: Any, resumed: bool
) -> float | None:
    """Validation NDCG@10 of a trained base before any step (rank 0; None for a new head or without validation).

    Recorded as the run's step-0 evaluation point, so the curve starts at the base."""
    evaluator = getattr(trainer, "evaluator", None)
    if evaluator is None or not is_main() or not is_trained(cfg.base_model):
        return None
    if resumed:
        return stored_base_score(conn, run_id)
    metrics = evaluator(trainer.model, epoch=0, steps=0)
    score = float(metrics[f"val_{PRIMARY}"])
    add_event(conn, run_id, "eval", {k: float(v) for k, v in metrics.items()}, 0)
    add_event(
        conn,
        run_id,
        "message",
        {
            "text": (
                f"Base model on validation before training (step 0): NDCG@10 {score:.4f}. "
                + ("Keep-best returns the base's weights if no checkpoint beats it." if cfg.keep_best else "")
            )
        },
        0,
    )
    return score


def reload_base(cfg: TrainConfig, beta: float | None) -> Any:
    """The base cross-encoder as it was before training (a residual run scores logits, as trained)."""
    import torch

    model = models.load_cross_encoder(cfg.base_model, max_length=cfg.max_length)
    model.model_card_data.local_files_only = True
    if beta is not None:
        model.activation_fn = torch.nn.Identity()
    return model.eval()


def keep_base_if_better(
    conn: sqlite3.Connection,
    run_id: str,
    cfg: TrainConfig,
    model: Any,
    base_score: float | None,
    metrics: dict[str, Any],
    beta: float | None,
) -> Any:
    """The model to save: the base when keep-best is on and the best checkpoint is below the base on validation."""
    if base_score is None:
        return model
    metrics[BASE_KEY] = base_score
    best = metrics.get(f"best_validation_{PRIMARY}")
    if not cfg.keep_best or best is None or best >= base_score:
        return model
    metrics.update(
        {
            "kept_base": True,
            "best_step": 0,
            f"best_validation_{PRIMARY}": base_score,
            f"best_fine_tuned_validation_{PRIMARY}": best,
        }
    )
    add_event(
        conn,
        run_id,
        "message",
        {
            "text": (
                f"No checkpoint beat the base model on validation (best {best:.4f} < base {base_score:.4f}): the run "
                "keeps the base's weights, so it is never worse than what it started from."
            )
        },
    )
    return reload_base(cfg, beta)
