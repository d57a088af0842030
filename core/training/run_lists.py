"""A finished run's candidate lists, rebuilt from its config and seed: the queries it trained on, its validation
slice (the same held-out queries as in training) and the test set, each as the first stage's top k.

Distillation trains on the training lists and keeps its best checkpoint on validation; the bundle's calibration is
fitted on validation; both must see the very queries the run held out, so the split is rebuilt here, once.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import store
from core.training import candidates
from core.training.adapt import choose_validation
from core.training.config import TrainConfig
from core.training.labels import Labels, read_labels


@dataclass(frozen=True)
class RunSplit:
    """The run's training and validation query ids (as in training) and what the validation lists are."""

    train: Labels
    test: Labels
    fit_qids: list[int]
    validation_qids: list[int]
    validation_source: str  # split, test or none (choose_validation's answer)


def run_split(conn: sqlite3.Connection, project: int, cfg: TrainConfig) -> RunSplit:
    """The held-out queries exactly as the run chose them (its seed drives the first draw of its generator)."""
    lab = read_labels(conn, project, "train")
    test = read_labels(conn, project, "test")
    train_qids = sorted(lab.grades)
    source, val_qids, _ = choose_validation(train_qids, cfg, random.Random(cfg.seed), bool(test.grades))
    held = set(val_qids)
    return RunSplit(lab, test, [q for q in train_qids if q not in held], val_qids, source)


def lists(
    conn: sqlite3.Connection,
    project: int,
    cfg: TrainConfig,
    qids: list[int],
    labels: Labels,
    k: int | None = None,
    workspace: Path | None = None,
) -> list[dict[str, Any]]:
    """The run's first stage's top k (its candidates_k by default) for these queries, with their positives: a hybrid
    run's distillation and calibration see the candidates it was validated on."""
    texts = {p["id"]: p["text"] for p in store.fetch_passages(conn, project)}
    return candidates.candidate_samples(
        conn,
        project,
        qids,
        labels.qtext,
        labels.grades,
        texts,
        k or cfg.candidates_k,
        cfg.first_stage_model,
        workspace,
        cfg.candidates_from,
    )


def validation_lists(
    conn: sqlite3.Connection, project: int, cfg: TrainConfig, workspace: Path | None = None
) -> tuple[list[dict[str, Any]], str]:
    """(lists, what they are): the run's validation slice; the test set if the run validated on it; else its
    training queries (in-sample, said so)."""
    split = run_split(conn, project, cfg)
    if split.validation_source == "split":
        return lists(
            conn, project, cfg, split.validation_qids, split.train, workspace=workspace
        ), "validation"
    if split.validation_source == "test":
        test_qids = sorted(split.test.grades)
        return (
            lists(conn, project, cfg, test_qids, split.test, workspace=workspace),
            "the test set (the run validated on it, as chosen)",
        )
    return (
        lists(conn, project, cfg, sorted(split.train.grades), split.train, workspace=workspace),
        "training queries (the run had no validation slice, so this is in-sample)",
    )


def testset_lists(
    conn: sqlite3.Connection, project: int, cfg: TrainConfig, workspace: Path | None = None
) -> list[dict[str, Any]]:
    """The test set's candidate lists (the first stage's top k of each test query)."""
    test = read_labels(conn, project, "test")
    return lists(conn, project, cfg, sorted(test.grades), test, workspace=workspace)
