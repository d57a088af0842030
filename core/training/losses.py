"""The loss of a run: sentence-transformers' losses by name, and the residual listwise loss the studio adds."""

from __future__ import annotations

from typing import Any

import torch
from sentence_transformers.cross_encoder import losses
from sentence_transformers.util import batch_to_device

from core.scoring.formulas import RESIDUAL
from core.scoring.metrics import gain_targets
from core.training.config import TrainConfig
from core.training.data import TrainingData
from core.training.redraw import Redrawer, coverage


class ResidualListwiseLoss(torch.nn.Module):
    """Softmax cross-entropy over a query's passages with the fixed prior beta x cosine added to every logit.

    Written here because no sentence-transformers loss takes a per-passage prior. At the start the model ranks
    exactly like the embedding model; gradients then push only where that ranking is wrong (measured on SciFact:
    BCE on a fresh head stays far below the embedding model after 12 minutes on 2 CPU cores)."""

    def __init__(
        self, model: Any, beta: float, mini_batch_size: int = 32, redrawer: Redrawer | None = None
    ) -> None:
        super().__init__()
        self.model, self.beta, self.mini_batch_size = model, float(beta), mini_batch_size
        self.redrawer = (
            redrawer  # lists drawn afresh from each query's judged passages (None: the rows as built)
        )

    def forward(
        self, inputs: list[Any], labels: list[Any], prompt: str | None = None, task: str | None = None
    ) -> torch.Tensor:
        """Mean over the batch's lists of -sum(target share x log softmax(logit + beta x prior)); a graded passage's
        share is its gain (core.scoring.metrics.gain: the grade, as NDCG counts it; binary labels share equally)."""
        queries, docs_list, priors = inputs
        if self.redrawer is not None:
            drawn = [self.redrawer(q, d, p, y) for q, d, p, y in zip(queries, docs_list, priors, labels)]
            docs_list, priors, labels = [x[0] for x in drawn], [x[1] for x in drawn], [x[2] for x in drawn]
        pairs = [(q, d) for q, docs in zip(queries, docs_list) for d in docs]
        parts = []
        for i in range(0, len(pairs), self.mini_batch_size):
            tokens = self.model.preprocess(pairs[i : i + self.mini_batch_size], prompt=prompt, task=task)
            parts.append(self.model(batch_to_device(tokens, self.model.device))["scores"].view(-1).float())
        logits = torch.cat(parts)
        out, at = [], 0
        for docs, prior, label in zip(docs_list, priors, labels):
            n = len(docs)
            z = logits[at : at + n] + self.beta * torch.as_tensor(
                prior, dtype=torch.float32, device=logits.device
            )
            target = torch.as_tensor(gain_targets(label), dtype=torch.float32, device=logits.device)
            out.append(-(target * torch.log_softmax(z, 0)).sum())
            at += n
        return torch.stack(out).mean()

    def get_config_dict(self) -> dict[str, Any]:
        """What the model card records about the loss."""
        return {"beta": self.beta, "mini_batch_size": self.mini_batch_size}


def make_residual_loss(
    model: Any, beta: float, mini_batch_size: int = 32, redrawer: Redrawer | None = None
) -> ResidualListwiseLoss:
    """The residual listwise loss of `model` with cosine weight `beta` (lists drawn afresh when given a redrawer)."""
    return ResidualListwiseLoss(model, beta, mini_batch_size, redrawer)


def rows_judged(rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """The judged (query, passage) pairs fixed rows hold: every row is seen once an epoch."""
    judged: set[tuple[str, str]] = set()
    for r in rows:
        if "docs" in r:
            judged |= {(r["query"], d) for d, y in zip(r["docs"], r["labels"]) if y > 0}
        elif "positive" in r or r.get("label", 0) > 0:
            judged.add((r["query"], r.get("positive") or r["passage"]))
    return judged


def labelled_pairs_used(
    loss: Any, data: TrainingData, prior_pairs: set[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """How many of the run's judged pairs reached a model: counted by the loss when lists are drawn afresh, else
    the judged pairs the fixed rows hold (every row is seen once an epoch), with those the tuned prior saw."""
    labelled = int(data.stats.get("labelled_pairs") or 0)
    redrawer = getattr(loss, "redrawer", None)
    judged = (
        {(q, data.pool_texts[i]) for q, i in redrawer.used}
        if redrawer is not None
        else rows_judged(data.train_rows)
    )
    out = {
        **coverage(len(judged | (prior_pairs or set())), max(labelled, len(judged))),
        "adapted": data.stats.get("adapted") or [],
    }
    if prior_pairs:
        out["labelled_pairs_text"] += (
            f" (cross-encoder {len(judged):,}; the embedding model, fine-tuned first, {len(prior_pairs):,})"
        )
        out["labelled_pairs_by_model"] = {"cross_encoder": len(judged), "embedding_model": len(prior_pairs)}
    return out


def make_loss(model: Any, cfg: TrainConfig, data: TrainingData) -> torch.nn.Module:
    """The sentence-transformers loss for the configured name."""
    if cfg.loss == "bce":
        weight = cfg.pos_weight if cfg.pos_weight is not None else data.snapshot["pos_weight"] or 1.0
        return losses.BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(weight)))
    if cfg.loss == "mnrl":
        return losses.CachedMultipleNegativesRankingLoss(model, num_negatives=4, mini_batch_size=16)
    if cfg.loss == RESIDUAL:
        redrawer = Redrawer(data.pools, data.pool_texts, cfg.hard_negatives, cfg.seed) if data.pools else None
        assert data.residual_beta is not None  # build_data fits beta for every residual run
        return make_residual_loss(model, data.residual_beta, redrawer=redrawer)
    if cfg.loss == "lambda":
        return losses.LambdaLoss(model, mini_batch_size=16)
    return losses.ListNetLoss(model, mini_batch_size=16)
