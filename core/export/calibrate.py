"""What a bundle adds to a run's score for the people who deploy it: P(relevant) and the inputs training saw.

- The calibration is fitted on the run's own validation queries (the same held-out slice, rebuilt from the run's
  seed), over their first-stage candidate lists — the lists the reranker faces — scored exactly as evaluated.
- The cleaning rules are those the project's training data went through at import, so a served text is scored
  as the model saw text in training.
"""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from core import store
from core.scoring.calibration import Calibration, fit_calibration
from core.training import candidates
from core.training.config import TrainConfig
from core.training.data import Labels, choose_validation, read_labels


def _fitting_lists(conn: sqlite3.Connection, project: int, cfg: TrainConfig) -> tuple[Labels, list[int], str]:
    """(labels, query ids, what they are): the run's validation slice, else its training queries (said so)."""
    lab = read_labels(conn, project, "train")
    train_qids = sorted(lab.grades)
    test = read_labels(conn, project, "test")
    source, val_qids, _ = choose_validation(train_qids, cfg, random.Random(cfg.seed), bool(test.grades))
    if source == "split":
        return lab, val_qids, "validation"
    if source == "test":
        return test, sorted(test.grades), "the test set (the run validated on it, as chosen)"
    return lab, train_qids, "training queries (the run had no validation slice, so this is in-sample)"


def calibration_pairs(
    conn: sqlite3.Connection, run: dict[str, Any], workspace: Path | None = None
) -> tuple[list[tuple[str, list[str]]], list[np.ndarray], str]:
    """(groups, relevance labels per group, what they are) of the run's validation candidate lists."""
    cfg = TrainConfig.from_dict(run["config"])
    project = int(run["project_id"])
    lab, qids, fitted_on = _fitting_lists(conn, project, cfg)
    texts = {p["id"]: p["text"] for p in store.fetch_passages(conn, project)}
    samples = candidates.candidate_samples(
        conn, project, qids, lab.qtext, lab.grades, texts, cfg.candidates_k, cfg.first_stage_model, workspace
    )
    groups = [(s["query"], list(s["documents"])) for s in samples]
    labels = [np.array([1.0 if d in s["gains"] else 0.0 for d in s["documents"]]) for s in samples]
    return groups, labels, fitted_on


def run_calibration(
    conn: sqlite3.Connection, run: dict[str, Any], score_groups: Any, workspace: Path | None = None
) -> tuple[Calibration | None, str]:
    """The run's score -> P(relevant) map and a note; None (with the reason) when validation cannot fit one."""
    groups, labels, fitted_on = calibration_pairs(conn, run, workspace)
    if not groups:
        return None, "no calibration: the project has no queries to fit it on"
    scores = np.concatenate([np.asarray(s, dtype=float) for s in score_groups(groups)])
    y = np.concatenate(labels)
    try:
        cal = fit_calibration(scores, y, fitted_on=fitted_on)
    except ValueError as exc:
        return None, f"no calibration: {exc}"
    return cal, f"calibrated on {fitted_on}: {cal.pairs} pairs, {cal.positives} relevant, ECE {cal.ece:.3f}"


def training_cleaning(conn: sqlite3.Connection, project: int) -> list[str]:
    """The cleaning rules of the project's latest training import (none when its data was not imported)."""
    for (summary,) in conn.execute(
        "SELECT summary FROM imports WHERE project_id = ? AND split != 'test' ORDER BY id DESC", (project,)
    ):
        rules = json.loads(summary or "{}").get("cleaning_options")
        if rules is not None:
            return [str(r) for r in rules]
    return []
