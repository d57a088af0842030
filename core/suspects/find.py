"""The suspect search end to end: read the labels, rank them with held-out models, score, save; and the job's
adapter, which reports progress (the worker turns it into an ETA) and stops on request."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from core.errors import UserError
from core.progress import Progress, noop, scaled
from core.quality.report import model_choice
from core.store.db import workspace_of
from core.suspects import folds, neighbours, records
from core.suspects.missing import PER_QUERY, missing_positives
from core.suspects.scoring import score_labelled
from core.suspects.signals import held_out_ranks, pool_vectors, read_labelled


@dataclass
class SearchResult:
    """What one search found, for the job row, the CLI line and the bench."""

    labelled: int
    missing: int
    open: int
    models: list[str]
    pool: int
    seconds: float
    top_reasons: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """A small JSON-able summary."""
        return {
            "labelled_pairs_scored": self.labelled,
            "missing_positives_proposed": self.missing,
            "open": self.open,
            "models": self.models,
            "pool": self.pool,
            "seconds": round(self.seconds, 1),
            "top_reasons": self.top_reasons,
        }


def _reason_kind(reason: str) -> str:
    """A reason's kind, its words without the numbers ('labelled relevant, ranked …' -> 'ranked low')."""
    for key, name in (
        ("for a similar query", "labelled relevant for a similar query"),
        ("queries", "hub passage"),
        ("near-duplicate", "near-duplicate labelled the other way"),
        ("same query text", "same query text, different labels"),
        ("labelled relevant, ranked", "labelled relevant, ranked low by held-out models"),
        ("labelled not relevant", "labelled not relevant, ranked high by held-out models"),
        ("not labelled", "unjudged passage ranked above the positives"),
    ):
        if key in reason:
            return name
    return reason


def find_suspects(
    conn: sqlite3.Connection,
    project: int,
    *,
    split: str = "train",
    embed_model: str | None = None,
    per_query: int = PER_QUERY,
    fold_models: bool = False,
    similar_queries: bool = True,
    progress: Progress = noop,
) -> SearchResult:
    """Score every labelled pair of the split and propose missing positives; saved at once (judged suspects keep
    their judgement). `fold_models` adds the out-of-fold tuned embedding model (core.suspects.folds) as a third
    held-out model when the split has enough queries with a positive: off by default, because on SciFact's planted
    errors it found 2 more missing positives of 40 on the development planting and 1 fewer on the reported one,
    for 8x the time (bench/label_errors.py --fold-models). `similar_queries` lets the passages other similar queries
    label relevant propose missing positives (core.suspects.neighbours; they never judge a label)."""
    started = time.monotonic()
    embedder = model_choice(conn, project, embed_model)[0]
    progress(0.0, "Reading labels")
    lab = read_labelled(conn, project, split)
    if not lab.query_text or not lab.passage_text:
        raise UserError(f"No {split} queries or passages to check: import labelled pairs first.")
    extra, start = [], 0.0
    if fold_models and folds.enough(lab):
        tuned = folds.tuned_vectors(
            lab, embedder, workspace=workspace_of(conn), progress=scaled(progress, 0, 0.6)
        )
        extra, start = [(folds.NAME, tuned.rows)], 0.6
    middle = start + 0.6 * (0.9 - start)  # embedding the pool is most of the rest
    vectors = pool_vectors(lab, embedder, workspace_of(conn), scaled(progress, start, middle))
    similar = neighbours.similar_queries(lab, vectors) if similar_queries else None
    proposers = [(neighbours.NAME, similar.rows)] if similar else []
    sig = held_out_ranks(
        lab, vectors, extra=extra, proposers=proposers, progress=scaled(progress, middle, 0.9)
    )
    progress(0.92, "Scoring labels and proposing missing positives")
    labelled = score_labelled(lab, sig)
    missing = missing_positives(lab, sig, per_query, similar)
    progress(0.96, "Saving")
    open_now = records.save(conn, project, labelled + missing)
    reasons = Counter(
        _reason_kind(r)
        for s in labelled[: max(10, len(labelled) // 10)] + missing[:50]
        for r in s.reasons[:1]
    )
    progress(1.0, "Done")
    return SearchResult(
        len(labelled),
        len(missing),
        open_now,
        list(sig.models),
        sig.pool,
        time.monotonic() - started,
        [{"reason": k, "among_top": n} for k, n in reasons.most_common(5)],
    )
