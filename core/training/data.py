"""A run's data from the store: training rows, a validation slice of held-out training queries, the test lists.

Test labels never choose anything unless the person asked for it (validation = test): with too few training queries
evaluation during training is off, and the run says so.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core import models, store
from core.scoring.formulas import RESIDUAL
from core.training import candidates, negatives, redraw
from core.training import rows as rowshape
from core.training.adapt import (
    QueryNegatives,
    adapted_notes,
    choose_validation,
    fills_hard_from_first_stage,
    query_negatives,
)
from core.training.beta import fit_beta
from core.training.config import ConfigError, TrainConfig
from core.training.labels import Labels, read_labels


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
    pools: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # query -> judged passages (core.training.redraw)
    pool_texts: list[str] = field(default_factory=list)  # the passages the pools index

    @property
    def residual_beta(self) -> float | None:
        """Weight of the embedding cosine when the run learns a residual over it (None otherwise)."""
        return self.stats.get("residual_beta")


def _hard_negatives(
    conn: sqlite3.Connection,
    project: int,
    cfg: TrainConfig,
    lab: Labels,
    fit_qids: list[int],
    workspace: Path | None,
) -> str:
    """Where the hard negatives come from: the mining run's, or the first stage's top ranks when there is none."""
    if fills_hard_from_first_stage(cfg, lab, fit_qids):
        positives = {q: lab.positives(q) for q in fit_qids}
        return negatives.fill_hard_from_first_stage(
            conn,
            project,
            fit_qids,
            lab.qtext,
            positives,
            lab.hard,
            cfg.hard_negatives,
            cfg.first_stage_model,
            workspace,
            cfg.candidates_from,
        )
    return "mined (negatives table)"


def _fit_rows(
    conn: sqlite3.Connection,
    project: int,
    cfg: TrainConfig,
    lab: Labels,
    fit_qids: list[int],
    rng: random.Random,
    workspace: Path | None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Training rows of the fitted queries, each query's pool of judged passages (for lists drawn afresh), and the
    counts of each kind of negative with what was adapted to the data."""
    counts: dict[str, Any] = {"hard_negatives": 0, "random_negatives": 0, "upload_negatives": 0}
    counts["hard_negative_source"] = _hard_negatives(conn, project, cfg, lab, fit_qids, workspace)
    texts = {
        r[0]: r[1] for r in conn.execute("SELECT id, text FROM passages WHERE project_id = ?", (project,))
    }
    all_ids = sorted(texts)
    index: dict[int, int] = {}
    pools: dict[str, dict[str, Any]] = {}
    taken: list[QueryNegatives] = []
    labelled = 0
    rows: list[dict[str, Any]] = []
    top_grade = max((g for q in fit_qids for g in lab.grades.get(q, {}).values()), default=1.0)
    for q in fit_qids:
        pos = sorted(lab.positives(q))
        neg = query_negatives(cfg, lab, q, len(all_ids))  # random ones fill what the hard ones cannot
        chosen_h, ups = neg.hard, neg.uploads
        chosen_r = negatives.sample_random(
            rng, all_ids, neg.banned, neg.have_random, chosen_h, neg.want_random
        )
        taken.append(replace(neg, random_count=len(chosen_r)))
        labelled += len(pos) + len(ups)
        counts["hard_negatives"] += len(chosen_h)
        counts["random_negatives"] += len(chosen_r)
        counts["upload_negatives"] += len(ups)
        grades = [lab.grades[q][p] for p in pos]
        if cfg.loss == RESIDUAL:
            at = {p: index.setdefault(p, len(index)) for p in pos + chosen_h + chosen_r + ups}
            pools[lab.qtext[q]] = redraw.make_pool(
                [at[p] for p in pos],
                grades,
                [at[p] for p in chosen_h],
                [at[p] for p in chosen_r + ups],
                [at[p] for p in ups],
                rng,
            )
        rows += rowshape.query_rows(
            cfg.loss,
            lab.qtext[q],
            [texts[p] for p in pos],
            [texts[p] for p in chosen_h + chosen_r + ups],
            cfg.hard_negatives + cfg.random_negatives,
            rng,
            grades=grades,
            hard=len(chosen_h),
            top_grade=top_grade,
            hard_per_row=cfg.hard_negatives,
        )
    if cfg.loss == "mnrl":
        rows = rowshape.same_columns(rows)
    counts["labelled_pairs"] = labelled
    counts["adapted"] = adapted_notes(cfg, taken)
    counts["pools"], counts["pool_texts"] = pools, [texts[p] for p in sorted(index, key=lambda p: index[p])]
    return rows, counts


def beta_on_candidates(fit_lists: list[dict[str, Any]], rows: list[dict[str, Any]]) -> float:
    """Beta fitted on the training queries' first-stage candidate lists, the lists the reranker will face; the
    training rows (margin-filtered negatives, the positive usually on top) would make the cosine look near-perfect
    (SciFact: 149 on the rows, 26 on the candidate lists). The rows serve when no candidate list holds a positive."""
    priors = [
        {"priors": s["first_stage_scores"], "labels": [s["gains"].get(d, 0.0) for d in s["documents"]]}
        for s in fit_lists
    ]
    if any(any(g > 0 for g in r["labels"]) and len(r["labels"]) > 1 for r in priors):
        return fit_beta(priors)
    return fit_beta(rows)


def _snapshot(
    conn: sqlite3.Connection,
    project: int,
    rows: list[dict[str, Any]],
    eval_samples: list[dict[str, Any]],
    stats: dict[str, Any],
    n_pos: int,
    n_neg: int,
) -> dict[str, Any]:
    """What identifies the run's data (hash of rows and validation queries) and its sizes, for `runs.snapshot`."""
    digest = hashlib.sha256()
    for r in rows:
        digest.update(json.dumps(r, sort_keys=True).encode())
    for s in eval_samples:
        digest.update(s["query"].encode())
    return {
        "hash": digest.hexdigest()[:16],
        "data_version": store.data_version(conn, project),
        **{k: v for k, v in stats.items() if isinstance(v, int)},
        "pos_weight": round(n_neg / max(1, n_pos), 3),
    }


def _first_stage_name(cfg: TrainConfig) -> str:
    """The candidate lists' first stage, as the run says it."""
    key = models.model_key(cfg.first_stage_model)
    return f"hybrid: BM25 + {key}, reciprocal rank fusion" if cfg.candidates_from == "hybrid" else key


def _stats(
    cfg: TrainConfig,
    lab: Labels,
    fit_qids: list[int],
    n_val: int,
    n_test: int,
    n_rows: int,
    counts: dict[str, Any],
    eval_source: str,
) -> dict[str, Any]:
    """The counts a run records and shows: queries, positives, negatives by kind, rows, what was adapted."""
    fit_set = set(fit_qids)
    return {
        "train_queries": len(fit_qids),
        "validation_queries": n_val,
        "test_queries": n_test,
        "positives": sum(len(lab.positives(q)) for q in fit_qids),
        "reviewed_false_negatives_as_positives": sum(len(v) for k, v in lab.relevant.items() if k in fit_set),
        **{k: counts[k] for k in ("hard_negatives", "random_negatives", "upload_negatives")},
        "rows": n_rows,
        "labelled_pairs": counts["labelled_pairs"],
        "adapted": counts["adapted"],
        "hard_negative_source": counts["hard_negative_source"],
        "evaluation": eval_source,
        "candidates": f"first stage ({_first_stage_name(cfg)}) top {cfg.candidates_k}",
    }


def build_data(
    conn: sqlite3.Connection,
    project: int,
    cfg: TrainConfig,
    workspace: Path | None = None,
    prior: str | None = None,
) -> TrainingData:
    """Datasets from the store: positives (label > 0 and reviewed false negatives), negatives (hard mined ones not
    marked relevant, random ones, uploaded label-0 pairs), a validation slice of training queries, the test set.
    `prior`: the run's fine-tuned embedding model (core.training.prior), whose cosine the residual adds to."""
    rng = random.Random(cfg.seed)
    if not store.fetch_pairs(conn, project, "train"):
        raise ConfigError("The project has no training pairs: import data on the Data page first.")
    lab = read_labels(conn, project, "train")
    if not lab.grades:
        raise ConfigError("The training set has no positive pairs (label > 0): nothing to learn from.")
    test = read_labels(conn, project, "test")
    train_qids = sorted(lab.grades)
    eval_source, val_qids, note = choose_validation(train_qids, cfg, rng, bool(test.grades))
    val_set = set(val_qids)
    fit_qids = [q for q in train_qids if q not in val_set]
    rows, counts = _fit_rows(conn, project, cfg, lab, fit_qids, rng, workspace)
    texts = {
        r[0]: r[1] for r in conn.execute("SELECT id, text FROM passages WHERE project_id = ?", (project,))
    }

    def lists(qids: list[int], labels: Labels) -> list[dict[str, Any]]:
        return candidates.candidate_samples(
            conn,
            project,
            qids,
            labels.qtext,
            labels.grades,
            texts,
            cfg.candidates_k,
            cfg.first_stage_model,
            workspace,
            cfg.candidates_from,
            prior,
        )

    residual_beta = None
    prior_spec = prior or cfg.first_stage_model
    pools, pool_texts = counts.pop("pools"), counts.pop("pool_texts")
    if cfg.loss == RESIDUAL:
        rows = rowshape.add_priors(rows, prior_spec, workspace)
        pools = redraw.add_cosines(pools, pool_texts, prior_spec, workspace)
        residual_beta = (
            float(cfg.residual_beta)
            if cfg.residual_beta is not None
            else beta_on_candidates(lists(fit_qids, lab), rows)
        )
    rng.shuffle(rows)

    test_samples = lists(sorted(test.grades), test)
    if eval_source == "split":
        eval_samples = lists(val_qids, lab)
    else:
        eval_samples = test_samples if eval_source == "test" else []
    stats = _stats(cfg, lab, fit_qids, len(val_qids), len(test_samples), len(rows), counts, eval_source)
    stats["lists"] = "drawn afresh at each step from every judged passage" if pools else "fixed"
    if residual_beta is not None:
        stats["residual_beta"] = residual_beta
    if prior:
        stats["prior_model"] = prior
    n_neg = counts["hard_negatives"] + counts["random_negatives"] + counts["upload_negatives"]
    snapshot = _snapshot(conn, project, rows, eval_samples, stats, stats["positives"], n_neg)
    return TrainingData(
        rows,
        eval_samples,
        eval_source,
        note,
        test_samples,
        stats,
        snapshot,
        pools=pools,
        pool_texts=pool_texts,
    )
