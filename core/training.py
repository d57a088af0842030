"""Turn a project's curated pairs into a cross-encoder reranker with CrossEncoderTrainer, reporting to the store.

The job writes everything a page needs (progress, loss, evaluation, messages) to `runs` / `run_events`, so the
page only polls. The same code runs headless (`python -m core train --project NAME`) and under torchrun.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import signal
import sqlite3
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import models, store

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

log = logging.getLogger(__name__)

LOSSES = {
    "bce": "Binary cross-entropy with pos_weight (labelled pairs)",
    "mnrl": "Cached multiple-negatives ranking loss (query, positive, negatives)",
    "lambda": "LambdaLoss (query + several labelled passages, listwise)",
    "listnet": "ListNet (query + several labelled passages, listwise)",
    "residual": "Residual listwise: learn what the embedding model misses (score = logit + beta x cosine)",
}
RESIDUAL = "residual"
VALIDATION = ("split", "test", "none")
FUSION_FILE = "studio_fusion.json"
PRIMARY = "ndcg@10"


class ConfigError(ValueError):
    """A training setting a person must change, with the allowed range."""


# --- configuration ------------------------------------------------------------------------------


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
    """split: hold out a slice of training queries; test: the test set (optimistic); none: no evaluation."""
    validation_fraction: float = 0.1
    """Share of training queries held out for validation when validation = split. Range 0.02 .. 0.5."""
    keep_best: bool = True
    """Reload the checkpoint with the best validation NDCG@10 at the end (load_best_model_at_end)."""
    early_stopping_patience: int = 4
    """Stop after this many evaluations without improvement; 0 = never stop early."""
    hard_negatives: int = 3
    """Mined hard negatives per positive (status unjudged or negative; never a reviewed false negative)."""
    random_negatives: int = 1
    """Random passages per positive, so easy cases stay right."""
    candidates_k: int = 20
    """Evaluation reranks the first stage's (embedding model's) top k; positives outside it count as missed."""
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
    """Residual loss: weight of the embedding cosine in the score; None = fitted on the training lists first."""

    def validate(self) -> TrainConfig:
        """Check ranges before any model is loaded, with messages that say what is allowed."""
        def bad(msg: str) -> None:
            raise ConfigError(msg)

        if self.loss not in LOSSES:
            bad(f"Unknown loss {self.loss!r}: choose one of {', '.join(LOSSES)}.")
        if not (1e-7 <= float(self.learning_rate) <= 1e-2):
            bad(f"Learning rate {self.learning_rate:g} is out of range: use a value between 1e-7 and 1e-2 "
                "(2e-5 .. 1e-4 is usual for cross-encoders).")
        if not (0.1 <= float(self.head_lr_multiplier) <= 1000):
            bad(f"Head learning-rate multiplier {self.head_lr_multiplier:g} is out of range (0.1 .. 1000).")
        if not (isinstance(self.batch_size, int) and 1 <= self.batch_size <= 1024):
            bad(f"Batch size {self.batch_size!r} is out of range: use a whole number between 1 and 1024.")
        if self.loss == "mnrl" and self.batch_size < 2:
            bad("The multiple-negatives ranking loss needs a batch size of at least 2 (in-batch negatives).")
        if not (0 < float(self.epochs) <= 100):
            bad(f"Epochs {self.epochs:g} is out of range: use a value above 0 and at most 100.")
        if not (0 <= float(self.warmup_ratio) <= 0.5):
            bad(f"Warm-up ratio {self.warmup_ratio:g} is out of range: use 0 .. 0.5 (0.1 is usual).")
        if not (16 <= int(self.max_length) <= 8192):
            bad(f"Max length {self.max_length} is out of range: use 16 .. 8192 tokens.")
        if int(self.eval_steps) < 0:
            bad(f"Evaluate every {self.eval_steps} steps is invalid: use 0 (each epoch) or more.")
        if self.validation not in VALIDATION:
            bad(f"Validation {self.validation!r} is unknown: choose split, test or none.")
        if not (0.02 <= float(self.validation_fraction) <= 0.5):
            bad(f"Validation fraction {self.validation_fraction:g} is out of range: use 0.02 .. 0.5.")
        if int(self.early_stopping_patience) < 0:
            bad("Early-stopping patience cannot be negative (0 turns early stopping off).")
        if not (0 <= int(self.hard_negatives) <= 50 and 0 <= int(self.random_negatives) <= 50):
            bad("Negatives per positive must be between 0 and 50 (hard and random).")
        if self.loss != "mnrl" and int(self.hard_negatives) + int(self.random_negatives) == 0:
            bad(f"The {self.loss} loss needs negatives: set at least one hard or random negative per positive.")
        if not (1 <= int(self.candidates_k) <= 1000):
            bad("Candidates per query must be between 1 and 1000.")
        if self.residual_beta is not None and not (0 <= float(self.residual_beta) <= 1000):
            bad(f"Residual beta {self.residual_beta} is out of range (0 .. 1000).")
        if self.pos_weight is not None and not (0 < float(self.pos_weight) <= 1000):
            bad(f"pos_weight {self.pos_weight} is out of range (0 .. 1000).")
        check_base_model(self.base_model)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Ignore keys this version does not know, so old runs stay readable."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def check_base_model(spec: str) -> None:
    """A local folder must be a cross-encoder or a plain encoder with weights; say which it is not."""
    try:
        path = models.resolve(spec)
    except models.ModelError as exc:
        raise ConfigError(str(exc)) from exc
    folder = Path(path)
    if folder.is_dir():
        config = json.loads((folder / "config.json").read_text())
        archs = config.get("architectures") or []
        if archs and not any("SequenceClassification" in a or (a.endswith("Model") and "LMHead" not in a and "For" not in a)
                             for a in archs):
            raise ConfigError(
                f"{spec!r} is not a cross-encoder: its architecture is {archs[0]}; expected a "
                "...ForSequenceClassification model (a CrossEncoder folder) or a bare encoder (...Model)."
            )
        if any("SequenceClassification" in a for a in archs) and config.get("num_labels", len(
            config.get("id2label", {0: 0})
        )) not in (1, None):
            raise ConfigError(
                f"{spec!r} is a classifier with {len(config.get('id2label', {}))} labels; a reranker needs one logit."
            )
        if not any((folder / n).exists() for n in ("model.safetensors", "model.safetensors.index.json")):
            raise ConfigError(
                f"{spec!r} has no model.safetensors: the studio loads weights only from safetensors."
            )


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


def default_config(stats: dict[str, Any], base_model: str = models.BUNDLED, shape: str = "labelled pairs") -> TrainConfig:
    """Defaults that adapt to the data size and base model: a fresh head on little data learns a residual over the
    embedding model with a fast head; a trained cross-encoder needs a gentle touch."""
    positives = int(stats.get("train_positives") or stats.get("train_pairs") or 0)
    queries = int(stats.get("train_queries") or 0)
    fresh = not _is_trained(base_model)
    loss, _ = propose_loss(shape, fresh=fresh)
    cfg = TrainConfig(base_model=base_model, loss=loss)
    if loss == RESIDUAL:
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
        rows = max(1, queries)
    else:
        cfg.hard_negatives, cfg.random_negatives = 3, 1
        cfg.batch_size = 16
        rows = max(1, positives * (1 + cfg.hard_negatives + cfg.random_negatives))
        cfg.learning_rate = 7e-5 if fresh else 2e-5
        cfg.head_lr_multiplier = 20.0 if fresh else 1.0
        cfg.epochs = (2.0 if positives < 20000 else 1.0) if fresh else (2.0 if positives < 2000 else 1.0)
        cfg.max_length = 192 if fresh else 256
        cfg.early_stopping_patience = 4 if fresh else 3
    steps = math.ceil(rows / cfg.batch_size) * cfg.epochs
    cfg.eval_steps = int(max(20, min(500, steps // 6)))
    if queries < 30:
        cfg.validation = "test" if stats.get("test_queries") else "none"
    cfg.validation_fraction = 0.1 if queries >= 300 else 0.2
    return cfg


def _is_trained(spec: str) -> bool:
    try:
        return models.is_trained_cross_encoder(spec)
    except models.ModelError:
        return False


# --- data --------------------------------------------------------------------------------------


@dataclass
class TrainingData:
    """Everything the trainer needs, plus the statistics the run records."""

    train_rows: list[dict[str, Any]]
    eval_samples: list[dict[str, Any]]
    eval_source: str  # split | test | none
    eval_note: str
    test_samples: list[dict[str, Any]]
    stats: dict[str, Any]
    snapshot: dict[str, Any]
    first_stage: dict[str, dict[str, float]] = field(default_factory=dict)  # query -> passage -> score

    @property
    def residual_beta(self) -> float | None:
        """Weight of the embedding cosine when the run learns a residual over it (None otherwise)."""
        return self.stats.get("residual_beta")


def _first_stage(conn: sqlite3.Connection, project: int, queries: list[str], k: int, spec: str,
                 workspace: Path | None) -> tuple[list[list[tuple[int, float]]], dict[int, str]]:
    """Top-k passage ids (with cosine scores) of the embedding model for each query."""
    from core.embeddings import embed_texts

    passages = store.fetch_passages(conn, project)
    ids = [p["id"] for p in passages]
    texts = {p["id"]: p["text"] for p in passages}
    if not queries or not ids:
        return [[] for _ in queries], texts
    P = embed_texts([texts[i] for i in ids], spec, workspace=workspace)
    Q = embed_texts(queries, spec, workspace=workspace)
    sims = Q @ P.T
    k = min(k, len(ids))
    out = []
    for row in sims:
        top = np.argpartition(-row, k - 1)[:k]
        top = top[np.argsort(-row[top])]
        out.append([(ids[j], float(row[j])) for j in top])
    return out, texts


def build_data(conn: sqlite3.Connection, project: int, cfg: TrainConfig, workspace: Path | None = None) -> TrainingData:
    """Datasets from the store: positives (label > 0 and reviewed false negatives), negatives (hard mined ones not
    marked relevant, random ones, uploaded label-0 pairs), a validation slice of training queries, the test set."""
    rng = random.Random(cfg.seed)
    train_pairs = store.fetch_pairs(conn, project, "train")
    if not train_pairs:
        raise ConfigError("The project has no training pairs: import data on the Data page first.")
    qtext: dict[int, str] = {}
    positives: dict[int, set[int]] = {}
    upload_negs: dict[int, set[int]] = {}
    for p in train_pairs:
        qtext[p["query_id"]] = p["query"]
        (positives if p["label"] > 0 else upload_negs).setdefault(p["query_id"], set()).add(p["passage_id"])
    neg_rows = conn.execute(
        """SELECT n.query_id, n.passage_id, n.kind, n.status, n.rank, q.text AS query
           FROM negatives n JOIN queries q ON q.id = n.query_id
           WHERE n.project_id = ? AND q.split = 'train' ORDER BY n.query_id, n.kind, COALESCE(n.rank, 0), n.id""",
        (project,),
    ).fetchall()
    relevant: dict[int, set[int]] = {}
    hard: dict[int, list[int]] = {}
    rand: dict[int, list[int]] = {}
    for r in neg_rows:
        qtext.setdefault(r["query_id"], r["query"])
        if r["status"] == "relevant":  # a reviewed false negative is a positive, never a negative
            relevant.setdefault(r["query_id"], set()).add(r["passage_id"])
        elif r["status"] in ("unjudged", "negative"):
            (hard if r["kind"] == "hard" else rand).setdefault(r["query_id"], []).append(r["passage_id"])
    for q, ps in relevant.items():
        positives.setdefault(q, set()).update(ps)
    if not positives:
        raise ConfigError("The training set has no positive pairs (label > 0): nothing to learn from.")

    # Validation slice: whole queries, so no query is on both sides.
    train_qids = sorted(positives)
    counts = store.project_counts(conn, project)
    eval_source, note = cfg.validation, ""
    val_qids: list[int] = []
    if eval_source == "split":
        n_val = int(round(len(train_qids) * cfg.validation_fraction))
        if n_val < 5 or len(train_qids) - n_val < 5:
            if counts["test_queries"]:
                eval_source = "test"
                note = (f"Only {len(train_qids)} training queries: too few to hold out a validation slice, so the "
                        "test set is used for evaluation during training (optimistic).")
            else:
                eval_source = "none"
                note = (f"Evaluation is off: only {len(train_qids)} training queries (too few to hold out a "
                        "validation slice) and no test set.")
        else:
            val_qids = sorted(rng.sample(train_qids, n_val))
    if eval_source == "test":
        if not counts["test_queries"]:
            eval_source = "none"
            note = "Evaluation is off: the project has no test set (import one on the Data page)."
        elif not note:
            note = "Evaluating on the test set during training: the chosen checkpoint is tuned on it (optimistic)."
    if eval_source == "none" and not note:
        note = "Evaluation is off (chosen in the form): the last checkpoint is kept."
    val_set = set(val_qids)
    fit_qids = [q for q in train_qids if q not in val_set]

    # Hard negatives: from the mining run, else from the first stage's top ranks (recorded as such).
    fit_texts = [qtext[q] for q in fit_qids]
    need_hard = cfg.hard_negatives > 0 and not any(hard.get(q) for q in fit_qids)
    hard_source = "mined (negatives table)"
    all_passage_ids = [r[0] for r in conn.execute("SELECT id FROM passages WHERE project_id = ?", (project,))]
    texts = {r[0]: r[1] for r in conn.execute("SELECT id, text FROM passages WHERE project_id = ?", (project,))}
    if need_hard:
        hard_source = f"first stage top-{cfg.hard_negatives + 10} (no mining run)"
        tops, _ = _first_stage(conn, project, fit_texts, cfg.hard_negatives + 10 + 5, cfg.first_stage_model, workspace)
        for q, top in zip(fit_qids, tops):
            hard[q] = [pid for pid, _ in top if pid not in positives[q]][: cfg.hard_negatives + 10]
    rows: list[dict[str, Any]] = []
    n_hard = n_rand = n_upload = 0
    for q in fit_qids:
        query = qtext[q]
        pos = sorted(positives[q])
        banned = positives[q] | relevant.get(q, set())
        q_hard = [p for p in hard.get(q, []) if p not in banned]
        q_rand = [p for p in rand.get(q, []) if p not in banned]
        want_h = cfg.hard_negatives * len(pos)
        want_r = cfg.random_negatives * len(pos)
        chosen_h = q_hard[:want_h]
        while len(q_rand) < want_r and len(all_passage_ids) > len(banned) + len(q_rand):
            pick = rng.choice(all_passage_ids)
            if pick not in banned and pick not in q_rand and pick not in chosen_h:
                q_rand.append(pick)
        chosen_r = q_rand[:want_r]
        ups = sorted(upload_negs.get(q, set()) - banned)
        negs = chosen_h + chosen_r + ups
        n_hard, n_rand, n_upload = n_hard + len(chosen_h), n_rand + len(chosen_r), n_upload + len(ups)
        if cfg.loss == "bce":
            rows += [{"query": query, "passage": texts[p], "label": 1.0} for p in pos]
            rows += [{"query": query, "passage": texts[p], "label": 0.0} for p in negs]
        elif cfg.loss == "mnrl":
            per = max(1, len(negs) // max(1, len(pos))) if negs else 0
            for i, p in enumerate(pos):
                row = {"query": query, "positive": texts[p]}
                mine = negs[i * per:(i + 1) * per]
                for j in range(min(per, cfg.hard_negatives + cfg.random_negatives)):
                    row[f"negative_{j + 1}"] = texts[mine[j]] if j < len(mine) else texts[negs[j % len(negs)]]
                rows.append(row)
        else:  # listwise
            docs = [texts[p] for p in pos] + [texts[p] for p in negs]
            labels = [1.0] * len(pos) + [0.0] * len(negs)
            order = list(range(len(docs)))
            rng.shuffle(order)
            rows.append({"query": query, "docs": [docs[i] for i in order], "labels": [labels[i] for i in order]})
    if cfg.loss == "mnrl":  # every row needs the same columns
        width = min((len(r) for r in rows), default=2)
        rows = [{k: v for i, (k, v) in enumerate(r.items()) if i < width} for r in rows]
    residual_beta = None
    if cfg.loss == RESIDUAL:
        rows = add_priors(rows, cfg.first_stage_model, workspace)
        residual_beta = float(cfg.residual_beta) if cfg.residual_beta is not None else fit_beta(rows)
    rng.shuffle(rows)

    def samples_for(qids: list[int], qtexts: dict[int, str], pos_map: dict[int, set[int]]) -> list[dict[str, Any]]:
        tops, _ = _first_stage(conn, project, [qtexts[q] for q in qids], cfg.candidates_k, cfg.first_stage_model, workspace)
        out = []
        for q, top in zip(qids, tops):
            out.append({
                "query": qtexts[q],
                "positive": [texts[p] for p in sorted(pos_map[q])],
                "documents": [texts[p] for p, _ in top],
                "first_stage_scores": [s for _, s in top],
            })
        return out

    test_pairs = store.fetch_pairs(conn, project, "test")
    test_q: dict[int, str] = {}
    test_pos: dict[int, set[int]] = {}
    for p in test_pairs:
        test_q[p["query_id"]] = p["query"]
        if p["label"] > 0:
            test_pos.setdefault(p["query_id"], set()).add(p["passage_id"])
    test_samples: list[dict[str, Any]] = []
    if test_pos:
        test_samples = samples_for(sorted(test_pos), test_q, test_pos)
    if eval_source == "split":
        eval_samples = samples_for(val_qids, qtext, positives)
    elif eval_source == "test":
        eval_samples = test_samples
    else:
        eval_samples = []

    n_pos = sum(len(positives[q]) for q in fit_qids)
    n_neg = n_hard + n_rand + n_upload
    stats = {
        "train_queries": len(fit_qids),
        "validation_queries": len(val_qids),
        "test_queries": len(test_samples),
        "positives": n_pos,
        "reviewed_false_negatives_as_positives": sum(len(v) for k, v in relevant.items() if k in set(fit_qids)),
        "hard_negatives": n_hard,
        "random_negatives": n_rand,
        "upload_negatives": n_upload,
        "rows": len(rows),
        "hard_negative_source": hard_source,
        "evaluation": eval_source,
        "candidates": f"first stage ({models.model_key(cfg.first_stage_model)}) top {cfg.candidates_k}",
    }
    if residual_beta is not None:
        stats["residual_beta"] = residual_beta
    digest = hashlib.sha256()
    for r in rows:
        digest.update(json.dumps(r, sort_keys=True).encode())
    for s in eval_samples:
        digest.update(s["query"].encode())
    snapshot = {
        "hash": digest.hexdigest()[:16],
        "data_version": store.data_version(conn, project),
        **{k: v for k, v in stats.items() if isinstance(v, int)},
        "pos_weight": round(n_neg / max(1, n_pos), 3),
    }
    return TrainingData(rows, eval_samples, eval_source, note, test_samples, stats, snapshot)


# --- residual over the embedding model ------------------------------------------------------------


def add_priors(rows: list[dict[str, Any]], spec: str, workspace: Path | None) -> list[dict[str, Any]]:
    """Listwise rows gain the embedding cosine of each passage (cached embeddings), the prior the residual adds to."""
    from core.embeddings import embed_texts

    texts = sorted({r["query"] for r in rows} | {d for r in rows for d in r["docs"]})
    vec = embed_texts(texts, spec, workspace=workspace) if texts else np.zeros((0, 1))
    at = {t: i for i, t in enumerate(texts)}
    out = []
    for r in rows:
        q = vec[at[r["query"]]]
        priors = [float(vec[at[d]] @ q) for d in r["docs"]]
        out.append({"query": r["query"], "docs": r["docs"], "priors": priors, "labels": r["labels"]})
    return out


def fit_beta(rows: list[dict[str, Any]], grid: tuple[float, ...] = (1, 2, 5, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100)) -> float:
    """The cosine weight under which the embedding model alone best explains the training lists (max likelihood of
    the positives under a softmax); the cross-encoder then starts from exactly the embedding model's ranking."""
    def loglik(beta: float) -> float:
        total = 0.0
        for r in rows:
            logits = beta * np.asarray(r["priors"], dtype=float)
            logits -= logits.max()
            logp = logits - np.log(np.exp(logits).sum())
            target = np.asarray(r["labels"], dtype=float)
            total += float((target / target.sum() * logp).sum())
        return total
    return float(max(grid, key=loglik)) if rows else 20.0


def make_residual_loss(model: Any, beta: float, mini_batch_size: int = 32) -> Any:
    """Softmax cross-entropy over a query's passages with the fixed prior beta x cosine added to every logit.

    Written here because no sentence-transformers loss takes a per-passage prior. At the start the model ranks
    exactly like the embedding model; gradients then push only where that ranking is wrong (measured on SciFact:
    BCE on a fresh head stays far below the embedding model after 12 minutes on 2 CPU cores)."""
    import torch
    from sentence_transformers.util import batch_to_device

    class ResidualListwiseLoss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model, self.beta, self.mini_batch_size = model, float(beta), mini_batch_size

        def forward(self, inputs: list[Any], labels: list[Any], prompt: str | None = None,
                    task: str | None = None) -> Any:
            queries, docs_list, priors = inputs
            pairs = [(q, d) for q, docs in zip(queries, docs_list) for d in docs]
            parts = []
            for i in range(0, len(pairs), self.mini_batch_size):
                tokens = self.model.preprocess(pairs[i:i + self.mini_batch_size], prompt=prompt, task=task)
                parts.append(self.model(batch_to_device(tokens, self.model.device))["scores"].view(-1).float())
            logits = torch.cat(parts)
            losses, at = [], 0
            for docs, prior, label in zip(docs_list, priors, labels):
                n = len(docs)
                z = logits[at:at + n] + self.beta * torch.as_tensor(prior, dtype=torch.float32, device=logits.device)
                target = torch.as_tensor(label, dtype=torch.float32, device=logits.device)
                losses.append(-(target / target.sum() * torch.log_softmax(z, 0)).sum())
                at += n
            return torch.stack(losses).mean()

        def get_config_dict(self) -> dict[str, Any]:
            return {"beta": self.beta, "mini_batch_size": self.mini_batch_size}

    return ResidualListwiseLoss()


def residual_score(ce: Any, cosine: Any, beta: float) -> np.ndarray:
    """The score a residual run was trained to give: logit + beta x embedding cosine (training and evaluation)."""
    return np.asarray(ce, dtype=float) + float(beta) * np.asarray(cosine, dtype=float)


def residual_scores(ce: list[np.ndarray], samples: list[dict[str, Any]], beta: float) -> list[np.ndarray]:
    """`residual_score` for every candidate list (its first-stage scores are the embedding cosines)."""
    return [residual_score(c, s["first_stage_scores"], beta) for c, s in zip(ce, samples)]


def make_residual_evaluator(samples: list[dict[str, Any]], beta: float, name: str) -> Any:
    """NDCG@10 / MRR@10 of the residual score on the first stage's top-k (the trainer keeps the best by it)."""
    from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

    first = rank_metrics(samples, [np.asarray(s["first_stage_scores"], dtype=float) for s in samples])

    class ResidualRerankingEvaluator(BaseEvaluator):
        def __init__(self) -> None:
            super().__init__()
            self.name, self.primary_metric = name, PRIMARY

        def __call__(self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
            ce = score_samples(model, samples)
            combined = rank_metrics(samples, residual_scores(ce, samples, beta))
            alone = rank_metrics(samples, ce)
            metrics = {**combined, "cross_encoder_alone_ndcg@10": alone[PRIMARY], "base_ndcg@10": first[PRIMARY]}
            metrics = self.prefix_name_to_metrics(metrics, self.name)
            self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
            return metrics

    return ResidualRerankingEvaluator()


# --- losses, evaluator, batches ----------------------------------------------------------------


def make_loss(model: Any, cfg: TrainConfig, data: TrainingData) -> Any:
    """The sentence-transformers loss for the configured name."""
    import torch
    from sentence_transformers.cross_encoder import losses

    if cfg.loss == "bce":
        weight = cfg.pos_weight if cfg.pos_weight is not None else data.snapshot["pos_weight"] or 1.0
        return losses.BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(weight)))
    if cfg.loss == "mnrl":
        return losses.CachedMultipleNegativesRankingLoss(model, num_negatives=4, mini_batch_size=16)
    if cfg.loss == RESIDUAL:
        return make_residual_loss(model, data.residual_beta)
    if cfg.loss == "lambda":
        return losses.LambdaLoss(model, mini_batch_size=16)
    return losses.ListNetLoss(model, mini_batch_size=16)


def make_evaluator(samples: list[dict[str, Any]], name: str) -> Any:
    """Reranks the first stage's top-k as it came (always_rerank_positives=False: realistic; base = first stage)."""
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator

    return CrossEncoderRerankingEvaluator(
        [{k: s[k] for k in ("query", "positive", "documents")} for s in samples],
        at_k=10, always_rerank_positives=False, name=name, batch_size=64, write_csv=False,
    )


def _length_sampler_class() -> type:
    from sentence_transformers.base.sampler import DefaultBatchSampler

    class LengthGroupedBatchSampler(DefaultBatchSampler):
        """Shuffle, then sort chunks of 50 batches by length: similar lengths share a batch (less padding)."""

        def __init__(self, dataset: Any, batch_size: int, drop_last: bool, valid_label_columns: Any = None,
                     generator: Any = None, seed: int = 0) -> None:
            super().__init__(dataset, batch_size=batch_size, drop_last=drop_last,
                             valid_label_columns=valid_label_columns, generator=generator, seed=seed)
            cols = [c for c in dataset.column_names if c not in ("label", "labels")]
            self.lengths = [sum(len(str(row[c])) for c in cols) for row in dataset]
            self.epoch = 0

        def __iter__(self):
            rng = random.Random(self.seed + self.epoch)
            self.epoch += 1
            idx = list(range(len(self.lengths)))
            rng.shuffle(idx)
            chunk = self.batch_size * 50
            batches = []
            for s in range(0, len(idx), chunk):
                part = sorted(idx[s:s + chunk], key=lambda i: -self.lengths[i])
                batches += [part[b:b + self.batch_size] for b in range(0, len(part), self.batch_size)]
            if self.drop_last:
                batches = [b for b in batches if len(b) == self.batch_size]
            rng.shuffle(batches)
            yield from batches

        def __len__(self) -> int:
            n = len(self.lengths)
            return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    # TrainingArguments are pickled with checkpoints: make the class findable as core.training.LengthGroupedBatchSampler
    LengthGroupedBatchSampler.__qualname__ = "LengthGroupedBatchSampler"
    LengthGroupedBatchSampler.__module__ = __name__
    globals()["LengthGroupedBatchSampler"] = LengthGroupedBatchSampler
    return LengthGroupedBatchSampler


# --- fusion (last resort, shown as such) --------------------------------------------------------


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 1e-9 else x - x.mean()


def rank_metrics(samples: list[dict[str, Any]], scores: list[np.ndarray], k: int = 10) -> dict[str, float]:
    """NDCG@k and MRR@k of reranked candidate lists (positives outside the list count as missed)."""
    ndcgs, mrrs = [], []
    for s, sc in zip(samples, scores):
        pos = set(s["positive"])
        order = np.argsort(-np.asarray(sc), kind="stable")[:k]
        gains = [1.0 if s["documents"][i] in pos else 0.0 for i in order]
        dcg = sum(g / math.log2(r + 2) for r, g in enumerate(gains))
        ideal = sum(1.0 / math.log2(r + 2) for r in range(min(k, len(pos))))
        ndcgs.append(dcg / ideal if ideal else 0.0)
        mrrs.append(next((1.0 / (r + 1) for r, g in enumerate(gains) if g), 0.0))
    return {f"ndcg@{k}": float(np.mean(ndcgs)) if ndcgs else 0.0, f"mrr@{k}": float(np.mean(mrrs)) if mrrs else 0.0}


def fused_scores(ce: np.ndarray, first: np.ndarray, alpha: float) -> np.ndarray:
    """alpha x z(cross-encoder) + (1 - alpha) x z(first stage), z-scored within one query's candidates."""
    return alpha * _zscore(np.asarray(ce, dtype=float)) + (1 - alpha) * _zscore(np.asarray(first, dtype=float))


def score_samples(model: Any, samples: list[dict[str, Any]]) -> list[np.ndarray]:
    """Cross-encoder scores for every candidate list, in one batched predict."""
    pairs = [[s["query"], d] for s in samples for d in s["documents"]]
    if not pairs:
        return [np.zeros(0) for _ in samples]
    flat = np.asarray(model.predict(pairs, batch_size=64, show_progress_bar=False, convert_to_numpy=True))
    out, at = [], 0
    for s in samples:
        out.append(flat[at:at + len(s["documents"])])
        at += len(s["documents"])
    return out


def choose_fusion(samples: list[dict[str, Any]], ce: list[np.ndarray]) -> dict[str, Any]:
    """Pick alpha on validation from a grid; alpha = 1 means the cross-encoder alone."""
    grid = [round(a, 2) for a in np.linspace(0, 1, 21)]
    results = {}
    for a in grid:
        results[a] = rank_metrics(samples, [fused_scores(c, s["first_stage_scores"], a) for c, s in zip(ce, samples)])[PRIMARY]
    best = max(grid, key=lambda a: (round(results[a], 6), a))
    return {"alpha": best, "validation_ndcg@10": results[best], "alone_validation_ndcg@10": results[1.0],
            "first_stage_validation_ndcg@10": results[0.0]}


# --- progress to the store ---------------------------------------------------------------------


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def add_event(conn: sqlite3.Connection, run_id: str, kind: str, data: dict[str, Any], step: int | None = None) -> None:
    """One log line of a run (message, loss, eval, error)."""
    with store.transaction(conn):
        conn.execute("INSERT INTO run_events (run_id, at, kind, step, data) VALUES (?, ?, ?, ?, ?)",
                     (run_id, store.now(), kind, step, json.dumps(data, default=float)))


def update_run(conn: sqlite3.Connection, run_id: str, **values: Any) -> None:
    """Set columns of one run (dicts are stored as JSON); only this run's row is touched."""
    if not values:
        return
    cols = []
    params = []
    for k, v in values.items():
        cols.append(f"{k} = ?")
        params.append(json.dumps(v, default=float) if isinstance(v, (dict, list)) else v)
    cols.append("updated_at = ?")
    params += [store.now(), run_id]
    with store.transaction(conn):
        conn.execute(f"UPDATE runs SET {', '.join(cols)} WHERE id = ?", params)


def get_run(conn: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    """A run with its JSON columns decoded."""
    row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise ValueError(f"No run {run_id!r} in this workspace.")
    run = dict(row)
    for k in ("config", "snapshot", "metrics", "progress"):
        run[k] = json.loads(run[k] or "{}")
    return run


def create_run(conn: sqlite3.Connection, project: int, cfg: TrainConfig, status: str = "queued") -> str:
    """Register a run (validated config) and its folder; returns the run id."""
    cfg.validate()
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    now = store.now()
    with store.transaction(conn):
        conn.execute(
            "INSERT INTO runs (id, project_id, created_at, updated_at, status, config) VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, project, now, now, status, json.dumps(cfg.to_dict())),
        )
    return run_id


def run_folder(conn: sqlite3.Connection, run_id: str) -> Path:
    return store.runs_dir(store.workspace_of(conn)) / run_id


class _Heartbeat:
    """Writes runs.heartbeat_at every few seconds from a thread, so slow loading or evaluation is not 'dead'."""

    def __init__(self, workspace: Path, run_id: str, every: float = 5.0):
        self.workspace, self.run_id, self.every = workspace, run_id, every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        conn = store.connect(self.workspace)
        try:
            while not self.stop.is_set():
                try:
                    conn.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", (store.now(), self.run_id))
                except sqlite3.Error:
                    pass
                self.stop.wait(self.every)
        finally:
            conn.close()

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(5)


def _make_callback(conn: sqlite3.Connection, run_id: str, state: dict[str, Any]) -> Any:
    from transformers import TrainerCallback

    class StoreProgress(TrainerCallback):
        """Progress, loss and evaluation to the store; honours runs.cancel_requested (checkpoint, then stop)."""

        def __init__(self) -> None:
            self.t0 = time.time()
            self.start_step = None
            self.last_write = 0.0
            self.progress: dict[str, Any] = {}

        def _write(self, args: Any, st: Any, force: bool = False, **extra: Any) -> None:
            if not _is_main():
                return
            now = time.time()
            if self.start_step is None:
                self.start_step = st.global_step
            done = st.global_step - self.start_step
            rate = done / max(now - self.t0, 1e-6)
            left = (st.max_steps - st.global_step) / rate if rate > 0 else None
            self.progress.update({
                "phase": "training", "step": st.global_step, "total": st.max_steps,
                "epoch": round(float(st.epoch or 0), 3), "elapsed_s": round(now - state["t0"], 1),
                "eta_s": round(left, 1) if left is not None else None, **extra,
            })
            if force or now - self.last_write > 1.0:
                update_run(conn, run_id, progress=self.progress, heartbeat_at=store.now())
                self.last_write = now

        def on_step_end(self, args, st, control, **kw):
            self._write(args, st)
            cancel = state.get("signal") or conn.execute(
                "SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
            if cancel and not state.get("cancelled"):
                state["cancelled"] = True
                control.should_save = True
                control.should_training_stop = True
                if _is_main():
                    add_event(conn, run_id, "message", {"text": f"Cancel requested: checkpoint at step {st.global_step}, stopping."}, st.global_step)
            return control

        def on_log(self, args, st, control, logs=None, **kw):
            logs = logs or {}
            if "loss" in logs and _is_main():
                add_event(conn, run_id, "loss", {"loss": logs["loss"], "epoch": st.epoch,
                                                  "learning_rate": logs.get("learning_rate")}, st.global_step)
                self._write(args, st, force=True, loss=logs["loss"])

        def on_evaluate(self, args, st, control, metrics=None, **kw):
            m = {k.removeprefix("eval_"): float(v) for k, v in (metrics or {}).items()
                 if isinstance(v, (int, float)) and "runtime" not in k and "per_second" not in k}
            if _is_main():
                add_event(conn, run_id, "eval", m, st.global_step)
                self._write(args, st, force=True, eval=m)

    return StoreProgress()


# --- the run ----------------------------------------------------------------------------------


def _latest_checkpoint(folder: Path) -> str | None:
    ckpts = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1)
    ckpts = [c for c in ckpts if (c / "trainer_state.json").is_file()]
    return str(ckpts[-1]) if ckpts else None


def execute(conn: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    """Train one run to the end (or cancel / failure); returns its final metrics. Only rank 0 writes the store."""
    main = _is_main()
    run = get_run(conn, run_id)
    workspace = store.workspace_of(conn)
    folder = run_folder(conn, run_id)
    state: dict[str, Any] = {"t0": time.time()}

    def on_term(signum: int, frame: Any) -> None:  # SIGTERM = cancel: checkpoint and stop
        state["signal"] = True

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)
    beat = _Heartbeat(workspace, run_id) if main else None
    try:
        if beat:
            beat.__enter__()
        if main:
            update_run(conn, run_id, status="running", pid=os.getpid(), error=None, heartbeat_at=store.now(),
                       progress={"phase": "preparing data"})
            add_event(conn, run_id, "message", {"text": f"Started (pid {os.getpid()})."})
        result = _train(conn, run, folder, workspace, state)
        if main:
            if state.get("cancelled"):
                update_run(conn, run_id, status="cancelled", pid=None,
                           progress={**get_run(conn, run_id)["progress"], "phase": "cancelled"})
                add_event(conn, run_id, "message", {"text": "Cancelled; a checkpoint was saved, Resume continues from it."})
            else:
                update_run(conn, run_id, status="completed", pid=None, metrics=result["metrics"],
                           model_dir=result["model_dir"],
                           progress={**get_run(conn, run_id)["progress"], "phase": "completed", "eta_s": 0})
                add_event(conn, run_id, "message", {"text": "Completed: model saved to " + result["model_dir"]})
        return result
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded on this run only
        reason = _reason(exc)
        if main:
            try:
                update_run(conn, run_id, status="failed", error=reason, pid=None)
                add_event(conn, run_id, "error", {"text": reason, "trace": traceback.format_exc()[-4000:]})
            except Exception:  # noqa: BLE001
                pass
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise RuntimeError(reason) from exc
    finally:
        if beat:
            beat.__exit__()


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower() or "DefaultCPUAllocator" in str(exc):
        return ("Out of memory: " + str(exc)[:300] + " — lower the batch size or max length "
                "(or pick the BCE loss, which needs less memory than in-batch losses).")
    if isinstance(exc, (ConfigError, models.ModelError)):
        return str(exc)
    return text[:1000]


def _train(conn: sqlite3.Connection, run: dict[str, Any], folder: Path, workspace: Path, state: dict[str, Any]) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from transformers import EarlyStoppingCallback

    main = _is_main()
    run_id = run["id"]
    cfg = TrainConfig.from_dict(run["config"]).validate()
    torch.manual_seed(cfg.seed)
    folder.mkdir(parents=True, exist_ok=True)
    ckpt_dir = folder / "checkpoints"
    data = build_data(conn, run["project_id"], cfg, workspace)
    if not data.train_rows:
        raise ConfigError("No training rows could be built (no positives outside the validation slice).")
    if main:
        update_run(conn, run_id, snapshot=data.snapshot,
                   progress={"phase": "loading model", "evaluation": data.eval_source})
        add_event(conn, run_id, "message", {"text": f"Data: {json.dumps(data.stats)}"})
        if data.eval_note:
            add_event(conn, run_id, "message", {"text": data.eval_note})
    model = models.load_cross_encoder(cfg.base_model, max_length=cfg.max_length)
    model.model_card_data.local_files_only = True
    fresh = not _is_trained(cfg.base_model)
    beta = data.residual_beta
    if beta is not None:
        model.activation_fn = torch.nn.Identity()  # scores are logits, to which beta x cosine is added
        head = getattr(model.model, "classifier", None)
        if fresh and isinstance(head, torch.nn.Linear):  # a zero head: step 0 ranks exactly like the embedding model
            torch.nn.init.zeros_(head.weight)
            torch.nn.init.zeros_(head.bias)
        if main:
            add_event(conn, run_id, "message", {"text": (
                f"Residual over the embedding model: score = logit + {beta:g} x cosine (beta fitted on the "
                "training lists); at step 0 the reranker ranks exactly like the embedding model.")})
    if not data.eval_samples:
        evaluator = None
    elif beta is not None:
        evaluator = make_residual_evaluator(data.eval_samples, beta, "val")
    else:
        evaluator = make_evaluator(data.eval_samples, "val")
    metric = f"eval_val_{PRIMARY}"
    evaluating = evaluator is not None
    steps_per_epoch = math.ceil(len(data.train_rows) / cfg.batch_size / int(os.environ.get("WORLD_SIZE", "1")))
    eval_steps = cfg.eval_steps or steps_per_epoch
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    eval_steps = max(1, min(eval_steps, total_steps))
    lr_map = {r"classifier\.": cfg.learning_rate * cfg.head_lr_multiplier} if (fresh and cfg.head_lr_multiplier != 1) else None
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    args = CrossEncoderTrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=64,
        learning_rate=cfg.learning_rate,
        learning_rate_mapping=lr_map,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of the total steps in transformers 5
        seed=cfg.seed,
        eval_strategy="steps" if evaluating else "no",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=bool(evaluating and cfg.keep_best),
        metric_for_best_model=metric if evaluating else None,
        greater_is_better=True,
        logging_steps=max(1, min(10, eval_steps)),
        logging_first_step=True,
        dataloader_pin_memory=False,
        report_to="none",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        ddp_backend=("gloo" if not torch.cuda.is_available() else None) if distributed else None,
        ddp_find_unused_parameters=False if distributed else None,
        batch_sampler=_length_sampler_class() if cfg.grouped_batches else "batch_sampler",
        save_only_model=False,
    )
    callbacks = [_make_callback(conn, run_id, state)]
    if evaluating and cfg.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    trainer = CrossEncoderTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(data.train_rows),
        loss=make_loss(model, cfg, data), evaluator=evaluator, callbacks=callbacks,
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the store is the log; stdout stays one JSON line
    resume = _latest_checkpoint(ckpt_dir)
    if resume and main:
        add_event(conn, run_id, "message", {"text": f"Resuming from {Path(resume).name}."})
    if main:
        update_run(conn, run_id, progress={"phase": "training", "step": 0, "total": total_steps,
                                           "evaluation": data.eval_source})
    t_train = time.time()
    out = trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.time() - t_train
    if state.get("cancelled"):
        return {"metrics": {}, "model_dir": None, "cancelled": True}
    metrics: dict[str, Any] = {
        "train_loss": float(out.training_loss), "steps": int(trainer.state.global_step),
        "train_seconds": round(train_seconds, 1), "pairs_per_s": round(trainer.state.global_step * cfg.batch_size * _pairs_per_row(data.train_rows)
                              / max(train_seconds, 1e-6), 2),
        "evaluation": data.eval_source, "evaluation_note": data.eval_note,
        "candidates": data.stats["candidates"],
    }
    if trainer.state.best_metric is not None:
        metrics["best_step"] = _best_step(trainer)
        metrics["best_validation_ndcg@10"] = float(trainer.state.best_metric)
    model_dir = folder / "model"
    if main:
        update_run(conn, run_id, progress={**get_run(conn, run_id)["progress"], "phase": "final evaluation"})
        model.eval()
        if beta is not None:
            metrics["fusion"] = {"method": RESIDUAL, "beta": beta,
                                 "first_stage": f"embedding:{models.model_key(cfg.first_stage_model)}",
                                 "formula": "score = cross-encoder logit + beta x cosine(query, passage) of the "
                                            "embedding model (as trained)"}
        if data.eval_samples:
            ce_val = score_samples(model, data.eval_samples)
            val = rank_metrics(data.eval_samples, _as_trained(ce_val, data.eval_samples, beta))
            base = rank_metrics(data.eval_samples, [np.asarray(s["first_stage_scores"]) for s in data.eval_samples])
            metrics["validation"] = {**val, "first_stage_ndcg@10": base[PRIMARY], "first_stage_mrr@10": base["mrr@10"]}
            if beta is not None:
                metrics["validation"]["cross_encoder_alone_ndcg@10"] = rank_metrics(data.eval_samples, ce_val)[PRIMARY]
            metrics["beats_first_stage"] = bool(val[PRIMARY] > base[PRIMARY])
            if cfg.fusion and beta is None:
                fusion = choose_fusion(data.eval_samples, ce_val)
                if fusion["alpha"] < 1.0 and fusion["validation_ndcg@10"] > val[PRIMARY]:
                    metrics["fusion"] = {"alpha": fusion["alpha"], "first_stage": f"embedding:{models.model_key(cfg.first_stage_model)}",
                                         "method": "alpha*z(ce)+(1-alpha)*z(first_stage cosine), z-scored per query over the top-k",
                                         "chosen_on": data.eval_source, **{k: v for k, v in fusion.items() if k != "alpha"}}
        if data.test_samples and data.eval_source != "test":
            ce_test = score_samples(model, data.test_samples)
            test = rank_metrics(data.test_samples, _as_trained(ce_test, data.test_samples, beta))
            base_t = rank_metrics(data.test_samples, [np.asarray(s["first_stage_scores"]) for s in data.test_samples])
            metrics["test"] = {**test, "first_stage_ndcg@10": base_t[PRIMARY], "first_stage_mrr@10": base_t["mrr@10"]}
            if beta is not None:
                metrics["test"]["cross_encoder_alone_ndcg@10"] = rank_metrics(data.test_samples, ce_test)[PRIMARY]
            elif "fusion" in metrics:
                a = metrics["fusion"]["alpha"]
                metrics["test"]["fused_ndcg@10"] = rank_metrics(
                    data.test_samples, [fused_scores(c, s["first_stage_scores"], a) for c, s in zip(ce_test, data.test_samples)])[PRIMARY]
        save_model(model, model_dir, cfg, data, metrics)
    if distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
    return {"metrics": metrics, "model_dir": str(model_dir)}


def _pairs_per_row(rows: list[dict[str, Any]]) -> float:
    """(query, passage) pairs the model scores per training row: 1 for pairs, the list length for listwise rows."""
    if rows and "docs" in rows[0]:
        return sum(len(r["docs"]) for r in rows) / len(rows)
    if rows and "positive" in rows[0]:
        return float(len(rows[0]) - 1)
    return 1.0


def _as_trained(ce: list[np.ndarray], samples: list[dict[str, Any]], beta: float | None) -> list[np.ndarray]:
    return residual_scores(ce, samples, beta) if beta is not None else ce


def _best_step(trainer: Any) -> int | None:
    ck = trainer.state.best_model_checkpoint
    if ck and ck.rsplit("-", 1)[-1].isdigit():
        return int(ck.rsplit("-", 1)[-1])
    return None


def save_model(model: Any, model_dir: Path, cfg: TrainConfig, data: TrainingData, metrics: dict[str, Any]) -> None:
    """CrossEncoder folder + model card (sentence-transformers' README plus the studio's data and results)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(model_dir))
    lines = [
        "", "## Rerank Studio", "",
        "Trained with Rerank Studio from a curated project.", "",
        "### Training data", "",
        *[f"- {k.replace('_', ' ')}: {v}" for k, v in data.stats.items()],
        f"- snapshot hash: {data.snapshot['hash']}", "",
        "### Configuration", "", "```json", json.dumps(cfg.to_dict(), indent=2), "```", "",
        "### Results", "",
        f"Candidates reranked: {data.stats['candidates']}. NDCG@10 / MRR@10 below are on those lists.", "",
        "```json", json.dumps(metrics, indent=2, default=float), "```", "",
    ]
    if "fusion" in metrics:
        f = metrics["fusion"]
        if f.get("method") == RESIDUAL:
            lines += [f"**How to score with this model:** it was trained as a residual over the embedding model "
                      f"`{f['first_stage']}`: score = `model.predict(pairs)` (a logit) + {f['beta']:g} x cosine of the "
                      f"query and passage embeddings. The logit alone is only the correction — see `{FUSION_FILE}`.", ""]
        else:
            lines += [f"**Note:** the cross-encoder alone did not reach its best validation score; the studio blends "
                      f"it with the first-stage score (alpha = {f['alpha']}) — see `{FUSION_FILE}`.", ""]
        (model_dir / FUSION_FILE).write_text(json.dumps(f, indent=2))
    readme = model_dir / "README.md"
    readme.write_text((readme.read_text() if readme.exists() else "# Cross-encoder reranker\n") + "\n".join(lines))
    (model_dir / "studio_run.json").write_text(json.dumps({"config": cfg.to_dict(), "snapshot": data.snapshot,
                                                           "metrics": metrics}, indent=2, default=float))


def train_project(conn: sqlite3.Connection, project: int, cfg: TrainConfig) -> tuple[str, dict[str, Any]]:
    """Create a run and train it in this process (CLI / tests)."""
    run_id = create_run(conn, project, cfg, status="running")
    result = execute(conn, run_id)
    return run_id, result["metrics"]


# --- CLI -------------------------------------------------------------------------------------


def cli_arguments(parser: Any) -> None:
    """`python -m core train --project NAME [options]` or `--run RUN_ID` (the background job)."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--project", help="project name: create a run and train it here")
    which.add_argument("--run", help="train an existing run (the studio's background job)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(flag, dest=f.name, type=lambda s: s.lower() in ("1", "true", "yes"), default=None)
        elif f.name == "pos_weight":
            parser.add_argument(flag, dest=f.name, type=float, default=None)
        else:
            kind = {"int": int, "float": float, "str": str}.get(str(f.type), str)
            parser.add_argument(flag, dest=f.name, type=kind, default=None)
    parser.add_argument("--defaults", choices=("adaptive", "plain"), default="adaptive",
                        help="adaptive: defaults from data size and base model (default); plain: TrainConfig()")


def _init_distributed() -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def _broadcast(value: Any) -> Any:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return value


def cli_main(args: Any) -> dict[str, Any] | None:
    """Rank 0 creates the run and prints the JSON line; other ranks train silently."""
    logging.basicConfig(level=logging.WARNING)
    _init_distributed()
    conn = store.connect()
    try:
        if args.run:
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    result = execute(conn, args.run)
            finally:
                _start_next(conn)
            run = get_run(conn, args.run)
            return {"run_id": args.run, "status": run["status"], "metrics": result["metrics"]} if _is_main() else None
        project = store.project_id(conn, args.project)
        overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                     if getattr(args, f.name, None) is not None}
        if args.defaults == "adaptive":
            base = overrides.get("base_model", models.BUNDLED)
            cfg = default_config(store.project_counts(conn, project), base)
        else:
            cfg = TrainConfig()
        cfg = TrainConfig.from_dict({**cfg.to_dict(), **overrides})
        run_id = create_run(conn, project, cfg, status="running") if _is_main() else None
        run_id = _broadcast(run_id)
        with contextlib.redirect_stdout(sys.stderr):
            result = execute(conn, run_id)
        return {"run_id": run_id, "status": get_run(conn, run_id)["status"], "metrics": result["metrics"]} if _is_main() else None
    finally:
        conn.close()


def _start_next(conn: sqlite3.Connection) -> None:
    """A finished job starts the next queued one (see core.jobs for the queue)."""
    if not _is_main():
        return
    try:
        from core import jobs

        jobs.dispatch(conn)
    except Exception as exc:  # noqa: BLE001 - the queue is also advanced by every poll
        print(f"could not start the next queued run: {exc}", file=sys.stderr)


def curves(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Loss points and validation points (metric names without the evaluator prefix) from a run's events."""
    loss, evals = [], []
    for e in events:
        d = e["data"] if isinstance(e["data"], dict) else json.loads(e["data"])
        if e["kind"] == "loss" and "loss" in d:
            loss.append({"step": e["step"], "loss": d["loss"]})
        elif e["kind"] == "eval":
            evals.append({"step": e["step"], **{k.split("_", 1)[1] if k.startswith("val_") else k: v for k, v in d.items()}})
    return loss, evals


def verdict(metrics: dict[str, Any]) -> tuple[str, str]:
    """(level, sentence) the page shows: plain words when the reranker does not beat the first stage."""
    val = metrics.get("validation")
    if not val:
        return "info", "No validation was possible, so nobody knows yet whether this reranker helps: evaluate it on a test set."
    alone, base = val[PRIMARY], val["first_stage_ndcg@10"]
    fusion = metrics.get("fusion") or {}
    if fusion.get("method") == RESIDUAL:
        what = f"The reranker (cross-encoder + {fusion['beta']:g} x embedding cosine, as trained)"
        if alone > base:
            return "success", f"{what} beats the first stage on validation: NDCG@10 {alone:.3f} vs {base:.3f}."
        return "warning", (f"{what} does NOT beat the first stage on validation: NDCG@10 {alone:.3f} vs {base:.3f}. "
                           "It ranks like the embedding model at best; more or better-judged data should help.")
    if alone > base:
        return "success", f"The reranker beats the first stage on validation: NDCG@10 {alone:.3f} vs {base:.3f}."
    text = (f"The reranker does NOT beat the first stage on validation: NDCG@10 {alone:.3f} vs {base:.3f} for the "
            "embedding model alone. Using it alone would make search worse.")
    if "fusion" in metrics:
        f = metrics["fusion"]
        text += (f" Blending it with the first-stage score (alpha {f['alpha']}, chosen on validation) gives "
                 f"{f['validation_ndcg@10']:.3f}; the model folder records this blend ({FUSION_FILE}).")
    return "warning", text
