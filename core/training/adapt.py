"""What a project's data makes a run adapt, known before launch: the held-out query count, each query's hard and
random negatives, the lists a query gets and the rows an epoch holds.

One implementation serves the plan (Train page, `python -m core train --dry-run`, the time budget) and the run
(core.training.data builds its rows from the same per-query counts and records the same notes).
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from core.training.config import TrainConfig
from core.training.labels import Labels, read_labels
from core.training.rows import LISTWISE, MAX_LISTS_PER_QUERY, rows_for_query

# a held-out slice smaller than this says nothing; fewer than 2x this: no slice at all
MIN_VALIDATION_QUERIES = 5
FIRST_STAGE_EXTRA = 10  # hard negatives the first stage gives a query beyond the asked count (no mining run)


def choose_validation(
    train_qids: list[int], cfg: TrainConfig, rng: random.Random, has_test: bool
) -> tuple[str, list[int], str]:
    """(source, held-out query ids, note): whole training queries held out, at least 5 of them and 5 left to train.

    Too few training queries turns evaluation off (no checkpoint choice, no early stop, no fusion weight) — the test
    set is used only when the person chose it."""
    n = len(train_qids)
    if cfg.validation == "split":
        n_val = int(round(n * cfg.validation_fraction))
        note = ""
        if n_val < MIN_VALIDATION_QUERIES and n >= 2 * MIN_VALIDATION_QUERIES:
            n_val = MIN_VALIDATION_QUERIES
            note = (
                f"Only {n} training queries: {MIN_VALIDATION_QUERIES} of them ({n_val / n:.0%}, more than the "
                f"{cfg.validation_fraction:g} asked) are held out for validation, the least that says anything."
            )
        if n_val < MIN_VALIDATION_QUERIES or n - n_val < MIN_VALIDATION_QUERIES:
            return (
                "none",
                [],
                (
                    f"Evaluation is off: only {n} training queries, too few to hold out a validation slice of "
                    f"{MIN_VALIDATION_QUERIES} (test labels are never used to choose). No checkpoint choice, early "
                    "stopping or fusion weight: the last checkpoint is kept"
                    + (
                        "; the test set only reports the final model."
                        if has_test
                        else ", and there is no test set."
                    )
                ),
            )
        return "split", sorted(rng.sample(train_qids, n_val)), note
    if cfg.validation == "test":
        if not has_test:
            return "none", [], "Evaluation is off: the project has no test set (import one on the Data page)."
        return (
            "test",
            [],
            (
                "Evaluating on the test set during training, as chosen: test labels pick the checkpoint, "
                "stop training and choose the fusion weight, so its scores are optimistic (labelled "
                "test_labels_used_for)."
            ),
        )
    return "none", [], "Evaluation is off (chosen in the form): the last checkpoint is kept."


@dataclass(frozen=True)
class QueryNegatives:
    """One training query's negatives as its rows take them: asked for, and what its pool can give."""

    query: str
    positives: int
    banned: set[int]  # its positives and reviewed-relevant passages: never a negative
    hard: list[int]  # hard negatives taken (empty before launch when the first stage gives them)
    # how many it gets (before launch from the first stage: what the first stage is asked for)
    hard_count: int
    have_random: list[int]  # random negatives a mining run already drew
    want_random: int
    random_count: int  # random negatives its pool can give (want_random unless the pool is short)
    uploads: list[int]  # uploaded label-0 pairs

    @property
    def negatives(self) -> int:
        """Every negative the query's rows hold (hard, random and uploaded)."""
        return self.hard_count + self.random_count + len(self.uploads)


def fills_hard_from_first_stage(cfg: TrainConfig, lab: Labels, fit_qids: list[int]) -> bool:
    """True when no training query has a mined hard negative: the run takes the first stage's top ranks instead."""
    return cfg.hard_negatives > 0 and not any(lab.hard.get(q) for q in fit_qids)


def query_negatives(
    cfg: TrainConfig, lab: Labels, q: int, passages: int, first_stage: bool = False
) -> QueryNegatives:
    """Query q's negatives: its share of hard ones, random ones filling what the hard ones cannot (as many as the
    passages outside its positives allow), and its uploaded label-0 pairs; `first_stage`: hard ones not known yet."""
    n_pos = len(lab.positives(q))
    banned = lab.positives(q) | lab.relevant.get(q, set())
    if first_stage:
        hard: list[int] = []
        hard_count = min(
            cfg.hard_negatives + FIRST_STAGE_EXTRA, cfg.hard_negatives * n_pos, max(0, passages - len(banned))
        )
    else:
        hard = [p for p in lab.hard.get(q, []) if p not in banned][: cfg.hard_negatives * n_pos]
        hard_count = len(hard)
    have = [p for p in lab.rand.get(q, []) if p not in banned]
    want = (cfg.hard_negatives + cfg.random_negatives - min(cfg.hard_negatives, hard_count)) * n_pos
    free = passages - len(banned | set(have) | set(hard)) - (hard_count if first_stage else 0)
    got = want if len(have) >= want else min(want, len(have) + max(0, free))
    return QueryNegatives(
        lab.qtext[q],
        n_pos,
        banned,
        hard,
        hard_count,
        have,
        want,
        got,
        sorted(lab.upload_negs.get(q, set()) - banned),
    )


def adapted_notes(cfg: TrainConfig, negs: list[QueryNegatives]) -> list[str]:
    """What the data made the run change from the configured counts, said plainly (the plan and the run show it)."""
    notes, queries = [], len(negs)
    short_random = [n for n in negs if n.random_count < n.want_random]
    if short_random:
        worst = max(short_random, key=lambda n: n.want_random - n.random_count)
        notes.append(
            f"random negatives: {len(short_random)} of {queries} queries have fewer eligible passages than their "
            f"lists ask for, so they take every eligible one (e.g. {worst.query[:60]!r}: {worst.random_count} of "
            f"{worst.want_random}) and their lists are completed with lower-graded positives and hard negatives"
        )
    short_hard = sum(n.hard_count < cfg.hard_negatives for n in negs)
    if short_hard:
        notes.append(
            f"hard negatives: {short_hard} of {queries} queries have fewer than {cfg.hard_negatives}; their lists "
            "are filled with random negatives (same list length)"
        )
    capped = [n for n in negs if n.positives > MAX_LISTS_PER_QUERY]
    if cfg.loss in LISTWISE and capped:
        turn = (
            "drawn afresh at each step, they take every positive in turn as the anchor"
            if cfg.loss == "residual"
            else "their highest-graded positives anchor them"
        )
        notes.append(
            f"lists per query: {len(capped)} of {queries} queries have more than {MAX_LISTS_PER_QUERY} positives "
            f"(up to {max(n.positives for n in capped):,}); each gets {MAX_LISTS_PER_QUERY} lists an epoch, so "
            f"one query cannot swamp the others; {turn}"
        )
    return notes


@dataclass(frozen=True)
class ProjectShape:
    """What the plan reads from a project: its training judgements, its passage count, whether it has a test set."""

    labels: Labels
    passages: int
    has_test: bool


def project_shape(conn: sqlite3.Connection, project: int) -> ProjectShape:
    """The project's shape as the run will read it (the same labels, the same passages)."""
    passages = conn.execute("SELECT COUNT(*) FROM passages WHERE project_id = ?", (project,)).fetchone()[0]
    test = read_labels(conn, project, "test")
    return ProjectShape(read_labels(conn, project, "train"), int(passages), bool(test.grades))


@dataclass(frozen=True)
class Adaptation:
    """A run's counts adapted to the project's data, before launch: what the plan shows and the estimate uses."""

    train_queries: int
    validation_queries: int
    validation: str  # split | test | none, as choose_validation decides
    rows_per_epoch: int
    pairs_per_row: int
    hard_source: str
    notes: list[str] = field(default_factory=list)

    @property
    def epoch_rows(self) -> tuple[int, int]:
        """(rows an epoch, pairs a row) as the time budget and the estimate count them (at least one row)."""
        return max(1, self.rows_per_epoch), self.pairs_per_row

    def text(self) -> str:
        """'292 rows an epoch (8 passages each) from 657 training queries, 73 held out for validation'."""
        held = f", {self.validation_queries} held out for validation" if self.validation == "split" else ""
        each = f" ({self.pairs_per_row} passages each)" if self.pairs_per_row > 1 else ""
        return (
            f"{self.rows_per_epoch:,} rows an epoch{each} from {self.train_queries:,} training queries{held}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The adaptation as the CLI prints it."""
        return {
            "train_queries": self.train_queries,
            "validation_queries": self.validation_queries,
            "validation": self.validation,
            "rows_per_epoch": self.rows_per_epoch,
            "pairs_per_row": self.pairs_per_row,
            "hard_negatives_from": self.hard_source,
            "notes": self.notes,
            "text": self.text(),
        }


def adaptation(cfg: TrainConfig, shape: ProjectShape) -> Adaptation:
    """The run's held-out queries, negatives, lists and rows per epoch for `cfg` on this project, as the run will
    build them (the same validation draw from the run's seed, the same per-query counts)."""
    lab = shape.labels
    train_qids = sorted(lab.grades)
    source, val_qids, val_note = choose_validation(train_qids, cfg, random.Random(cfg.seed), shape.has_test)
    held = set(val_qids)
    fit_qids = [q for q in train_qids if q not in held]
    first_stage = fills_hard_from_first_stage(cfg, lab, fit_qids)
    negs = [query_negatives(cfg, lab, q, shape.passages, first_stage) for q in fit_qids]
    rows = sum(rows_for_query(cfg.loss, n.positives, n.negatives) for n in negs)
    notes = ([val_note] if cfg.validation == "split" and val_note else []) + adapted_notes(cfg, negs)
    if first_stage:
        notes.append(
            "hard negatives: no mining run, so each query's are the first stage's top ranks minus its positives "
            f"(taken at launch; up to {cfg.hard_negatives + FIRST_STAGE_EXTRA} a query)"
        )
    return Adaptation(
        len(fit_qids),
        len(val_qids),
        source,
        rows,
        1 if cfg.loss == "bce" else 1 + cfg.hard_negatives + cfg.random_negatives,
        "first stage" if first_stage else ("mined" if cfg.hard_negatives else "none asked"),
        notes,
    )
