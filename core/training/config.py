"""A run's settings: one documented dataclass, validated before any model loads; its docstrings are the CLI's help."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from core import models
from core.errors import UserError

LOSSES = {
    "bce": "Binary cross-entropy with pos_weight (labelled pairs)",
    "mnrl": "Cached multiple-negatives ranking loss (query, positive, negatives)",
    "lambda": "LambdaLoss (query + several labelled passages, listwise)",
    "listnet": "ListNet (query + several labelled passages, listwise)",
    "residual": "Residual listwise: learn what the embedding model misses (score = logit + beta x cosine)",
}
VALIDATION = ("split", "test", "none")
CANDIDATE_SOURCES = ("embedding", "hybrid")
# Settings that shape a run's data: a resumed run whose snapshot was built with other values rebuilds it.
DATA_FIELDS = (
    "loss",
    "seed",
    "validation",
    "validation_fraction",
    "hard_negatives",
    "random_negatives",
    "candidates_k",
    "candidates_from",
    "first_stage_model",
    "residual_beta",
    "prior_steps",
)


class ConfigError(UserError):
    """A training setting a person must change, with the allowed range."""


@dataclass
class TrainConfig:
    """Every choice of a run, with the field's defaults; stored in `runs.config` so a run can be reproduced."""

    base_model: str = models.BUNDLED
    """Bundled encoder (gets a new one-logit head), a local CrossEncoder folder, or a hub id (online only)."""
    loss: str = "bce"
    """bce | mnrl | lambda | listnet | residual; see `propose_loss`."""
    epochs: float = 1.0
    """Passes over the training data; early stopping usually ends sooner."""
    learning_rate: float = 2e-5
    """Peak learning rate of the encoder (linear decay after warm-up). Range 1e-7 .. 1e-2."""
    head_lr_multiplier: float = 1.0
    """Learning rate of a new classifier head = learning_rate x this (a fresh head learns faster than the encoder)."""
    batch_size: int = 16
    """Training rows per step. Range 1 .. 1024."""
    warmup_ratio: float = 0.1
    """Share of steps spent warming the learning rate up. Range 0 .. 0.5."""
    max_length: int = 256
    """Tokens of query + passage kept; longer pairs are truncated. Range 16 .. 8192."""
    seed: int = 12
    """Seeds the validation split, negative sampling and the trainer."""
    eval_steps: int = 50
    """Evaluate (and checkpoint) every N optimizer steps; 0 = once per epoch."""
    validation: str = "split"
    """split: hold out training queries (with fewer than 10, evaluation is off and said so); none: no evaluation;
    test: the test set chooses checkpoint, early stop and fusion weight (optimistic; labelled test_labels_used_for)."""
    validation_fraction: float = 0.1
    """Share of training queries held out for validation when validation = split (at least 5). Range 0.02 .. 0.5."""
    keep_best: bool = True
    """At the end, reload the checkpoint kept on validation: the latest unless an earlier one beats it beyond the noise."""
    early_stopping_patience: int = 4
    """Stop after this many evaluations in which no checkpoint was kept (each worse beyond the noise); 0 = never."""
    hard_negatives: int = 3
    """Mined hard negatives per positive (status unjudged or negative; never a reviewed false negative)."""
    random_negatives: int = 1
    """Random passages per positive, so easy cases stay right."""
    candidates_k: int = 20
    """Evaluation reranks the first stage's (embedding model's) top k; positives outside it count as missed."""
    candidates_from: str = "embedding"
    """embedding | hybrid: the first stage whose top k the validation lists, beta fit and unmined hard negatives come
    from (hybrid = BM25 and the embedding model fused by reciprocal rank; the residual prior stays the cosine)."""
    first_stage_model: str = models.BUNDLED
    """Embedding model that makes the candidate lists (and hard negatives when no mining run exists)."""
    fusion: bool = True
    """After training, blend the cross-encoder with the first-stage score if that wins on validation (shown as such)."""
    max_steps: int = -1
    """Stop after N steps regardless of epochs (-1 = use epochs); for quick tests and benches."""
    pos_weight: float | None = None
    """BCE weight of positives; None = negatives / positives of the training set."""
    grouped_batches: bool = False
    """Group rows of similar length in a batch (less padding; the order inside an epoch changes)."""
    residual_beta: float | None = None
    """Residual loss: weight of the embedding cosine in the score; None = fitted on the training queries'
    first-stage candidate lists."""
    prior_steps: int = 0
    """Residual loss: steps (32 judged pairs each) of fine-tuning the embedding model that gives the prior, before the
    cross-encoder trains; 0 = off. The defaults turn it on when the time budget buys less than one epoch."""
    precision: str = "auto"
    """auto | bf16 | fp32: CPU training precision; auto = bf16 autocast where the CPU has bf16 units (AMX)."""
    attention_dropout: bool = True
    """Keep attention dropout. Off lets a bf16 CPU step use PyTorch's fused attention kernel (1.3-1.6x a step in
    bench/training_step.py); not the default until a full run shows the same validation NDCG@10 without it."""

    def validate(self) -> TrainConfig:
        """Check ranges before any model is loaded, with messages that say what is allowed."""
        for problem in (_schedule_problem(self), _data_problem(self)):
            if problem:
                raise ConfigError(problem)
        check_base_model(self.base_model)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The config as stored in `runs.config`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Ignore keys this version does not know, so old runs stay readable."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _schedule_problem(c: TrainConfig) -> str | None:
    """The first out-of-range optimisation setting, as a sentence (None when all are fine)."""
    if c.loss not in LOSSES:
        return f"Unknown loss {c.loss!r}: choose one of {', '.join(LOSSES)}."
    if not (1e-7 <= float(c.learning_rate) <= 1e-2):
        return (
            f"Learning rate {c.learning_rate:g} is out of range: use a value between 1e-7 and 1e-2 "
            "(2e-5 .. 1e-4 is usual for cross-encoders)."
        )
    if not (0.1 <= float(c.head_lr_multiplier) <= 1000):
        return f"Head learning-rate multiplier {c.head_lr_multiplier:g} is out of range (0.1 .. 1000)."
    if not (isinstance(c.batch_size, int) and 1 <= c.batch_size <= 1024):
        return f"Batch size {c.batch_size!r} is out of range: use a whole number between 1 and 1024."
    if c.loss == "mnrl" and c.batch_size < 2:
        return "The multiple-negatives ranking loss needs a batch size of at least 2 (in-batch negatives)."
    if not (0 < float(c.epochs) <= 100):
        return f"Epochs {c.epochs:g} is out of range: use a value above 0 and at most 100."
    if not (0 <= float(c.warmup_ratio) <= 0.5):
        return f"Warm-up ratio {c.warmup_ratio:g} is out of range: use 0 .. 0.5 (0.1 is usual)."
    if not (16 <= int(c.max_length) <= 8192):
        return f"Max length {c.max_length} is out of range: use 16 .. 8192 tokens."
    if int(c.eval_steps) < 0:
        return f"Evaluate every {c.eval_steps} steps is invalid: use 0 (each epoch) or more."
    if int(c.early_stopping_patience) < 0:
        return "Early-stopping patience cannot be negative (0 turns early stopping off)."
    if c.pos_weight is not None and not (0 < float(c.pos_weight) <= 1000):
        return f"pos_weight {c.pos_weight} is out of range (0 .. 1000)."
    return None


def _data_problem(c: TrainConfig) -> str | None:
    """The first out-of-range data setting (validation, negatives, candidates), as a sentence."""
    if c.validation not in VALIDATION:
        return f"Validation {c.validation!r} is unknown: choose split, test or none."
    if not (0.02 <= float(c.validation_fraction) <= 0.5):
        return f"Validation fraction {c.validation_fraction:g} is out of range: use 0.02 .. 0.5."
    if not (0 <= int(c.hard_negatives) <= 50 and 0 <= int(c.random_negatives) <= 50):
        return "Negatives per positive must be between 0 and 50 (hard and random)."
    if c.loss != "mnrl" and int(c.hard_negatives) + int(c.random_negatives) == 0:
        return f"The {c.loss} loss needs negatives: set at least one hard or random negative per positive."
    if c.candidates_from not in CANDIDATE_SOURCES:
        return f"Candidates from {c.candidates_from!r} is unknown: choose {' or '.join(CANDIDATE_SOURCES)}."
    if not (1 <= int(c.candidates_k) <= 1000):
        return "Candidates per query must be between 1 and 1000."
    if not (isinstance(c.prior_steps, int) and 0 <= c.prior_steps <= 100_000):
        return f"Prior steps {c.prior_steps!r} is out of range: use a whole number 0 .. 100000 (0 = off)."
    if c.prior_steps and c.loss != "residual":
        return "Prior steps tune the residual loss's embedding model: set them with the residual loss, or 0."
    if c.residual_beta is not None and not (0 <= float(c.residual_beta) <= 1000):
        return f"Residual beta {c.residual_beta} is out of range (0 .. 1000)."
    return None


def check_base_model(spec: str) -> None:
    """A local folder must be a cross-encoder or a plain encoder with weights; say which it is not."""
    try:
        folder = Path(models.resolve(spec))
    except models.ModelError as exc:
        raise ConfigError(str(exc)) from exc
    if not folder.is_dir():
        return
    config = json.loads((folder / "config.json").read_text())
    archs = config.get("architectures") or []
    if archs and not any(
        "SequenceClassification" in a or (a.endswith("Model") and "LMHead" not in a and "For" not in a)
        for a in archs
    ):
        raise ConfigError(
            f"{spec!r} is not a cross-encoder: its architecture is {archs[0]}; expected a "
            "...ForSequenceClassification model (a CrossEncoder folder) or a bare encoder (...Model)."
        )
    labels = config.get("num_labels", len(config.get("id2label", {0: 0})))
    if any("SequenceClassification" in a for a in archs) and labels not in (1, None):
        raise ConfigError(
            f"{spec!r} is a classifier with {len(config.get('id2label', {}))} labels; a reranker needs one logit."
        )
    if not any((folder / n).exists() for n in ("model.safetensors", "model.safetensors.index.json")):
        raise ConfigError(
            f"{spec!r} has no model.safetensors: the studio loads weights only from safetensors."
        )


@cache
def field_help() -> dict[str, str]:
    """Each TrainConfig field's docstring (the string literal under it), one line: the CLI's --help text."""
    return field_docs(TrainConfig)


def field_docs(cls: type) -> dict[str, str]:
    """Each dataclass field's docstring (the string literal under it), one line: a settings class's --help text."""
    cls_node = ast.parse(inspect.getsource(cls)).body[0]
    assert isinstance(cls_node, ast.ClassDef)
    body = cls_node.body
    docs: dict[str, str] = {}
    for node, following in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs
