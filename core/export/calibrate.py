"""What a bundle adds to a run's score for the people who deploy it: P(relevant) and the inputs training saw.

- The calibration is fitted on the run's own validation queries (the same held-out slice, rebuilt from the run's
  seed), over their first-stage candidate lists — the lists the reranker faces — scored exactly as evaluated.
- The cleaning rules are those the project's training data went through at import, so a served text is scored
  as the model saw text in training.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from core import store
from core.progress import Progress, noop, scaled
from core.runs.run_row import Run
from core.scoring.calibration import (
    Calibration,
    apply_calibration,
    expected_calibration_error,
    fit_calibration,
    reliability,
)
from core.training import run_lists
from core.training.config import TrainConfig


@dataclass(frozen=True)
class CalibrationReport:
    """How well a run's relevance_score matches reality on the test set: the Evaluate page's plot and ECE."""

    run_id: str
    calibration: Calibration | None
    note: str
    test_pairs: int = 0
    test_ece: float | None = None  # expected calibration error of relevance_score on the test candidate lists
    raw_sigmoid_ece: float | None = None  # the same for a plain sigmoid of the raw score, for comparison
    bins: list[dict[str, float]] = field(default_factory=list)  # reliability: predicted vs observed per bin
    test_positives: int = 0
    measured_on: str = ""  # which labels the plot and the ECE are measured on, in words

    def to_dict(self) -> dict[str, Any]:
        """The JSON form a calibrate job stores as its result (core.export.job), bins included."""
        return asdict(self)  # the calibration as Calibration.to_dict writes it (its fields, plainly)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibrationReport:
        """The report a job stored, read back as it was measured (keys this version does not know are ignored)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        cal = values.get("calibration")
        if isinstance(cal, dict):
            known = {f.name for f in fields(Calibration)}
            values["calibration"] = Calibration(**{k: v for k, v in cal.items() if k in known})
        values["bins"] = [dict(b) for b in values.get("bins") or []]
        return cls(**values)


def calibration_pairs(
    conn: sqlite3.Connection, run: Run, workspace: Path | None = None, split: str = "validation"
) -> tuple[list[tuple[str, list[str]]], list[np.ndarray], str]:
    """(groups, relevance labels per group, what they are) of the run's validation (or test) candidate lists."""
    cfg = TrainConfig.from_dict(run.config)
    project = int(run.project_id)
    if split == "test":
        samples, fitted_on = run_lists.testset_lists(conn, project, cfg, workspace), "test"
    else:
        samples, fitted_on = run_lists.validation_lists(conn, project, cfg, workspace)
    groups = [(s["query"], list(s["documents"])) for s in samples]
    labels = [np.array([1.0 if d in s["gains"] else 0.0 for d in s["documents"]]) for s in samples]
    return groups, labels, fitted_on


def run_calibration(
    conn: sqlite3.Connection, run: Run, score_groups: Any, workspace: Path | None = None
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


def _phase(progress: Progress, start: float, end: float, what: str) -> Progress:
    """A phase's own 0..1 mapped onto [start, end] of the caller's bar, its messages prefixed with the phase."""
    inner = scaled(progress, start, end)
    return lambda fraction, message: inner(fraction, f"{what}: {message}")


def calibration_report(
    conn: sqlite3.Connection,
    run_id: str,
    project: int | None = None,
    bins: int = 10,
    progress: Progress | None = None,
) -> CalibrationReport:
    """Fit the run's calibration on validation (as its bundle does) and measure it on the test candidate lists.

    progress(fraction, message) hears each phase (a job's callback raises there to cancel)."""
    from core.runs import records
    from core.scoring.reranker import Reranker

    say = progress or noop
    run = records.completed_run(conn, run_id, project)
    workspace = store.workspace_of(conn)
    max_length = run.config.get("max_length")  # as the bundle export loads it
    say(0.0, "loading the run's model")
    reranker = Reranker.load(records.model_folder(conn, run), max_length=max_length, workspace=workspace)
    say(0.05, "fitting on validation: building the candidate lists")
    fit = _phase(say, 0.05, 0.45, "fitting on validation")
    cal, note = run_calibration(conn, run, lambda g: reranker.score_groups(g, fit), workspace)
    say(0.5, "scoring the test candidates: building the candidate lists")
    groups, labels, _ = calibration_pairs(conn, run, workspace, split="test")
    if cal is None or not groups:
        say(1.0, "nothing to measure")
        return CalibrationReport(run_id, cal, note if groups else f"{note}; the project has no test set")
    test = _phase(say, 0.5, 0.95, "scoring the test candidates")
    raw = np.concatenate([np.asarray(s, dtype=float) for s in reranker.score_groups(groups, test)])
    y = np.concatenate(labels)
    probs = apply_calibration(cal, raw)
    cfg = TrainConfig.from_dict(run.config)  # its candidate lists: candidates_k from its candidates_from
    say(1.0, f"measured on {len(y)} test pairs")
    return CalibrationReport(
        run_id,
        cal,
        note,
        test_pairs=len(y),
        test_ece=expected_calibration_error(probs, y, bins),
        raw_sigmoid_ece=expected_calibration_error(apply_calibration(None, raw), y, bins),
        bins=reliability(probs, y, bins),
        test_positives=int(y.sum()),
        measured_on=f"the project's test set: {len(groups)} queries, the top {cfg.candidates_k} candidates of each "
        f"from the run's {cfg.candidates_from} first stage ({len(y)} pairs, {int(y.sum())} labelled relevant)",
    )


def training_cleaning(conn: sqlite3.Connection, project: int) -> list[str]:
    """The cleaning rules of the project's latest training import (none when its data was not imported)."""
    for (summary,) in conn.execute(
        "SELECT summary FROM imports WHERE project_id = ? AND split != 'test' ORDER BY id DESC", (project,)
    ):
        rules = json.loads(summary or "{}").get("cleaning_options")
        if rules is not None:
            return [str(r) for r in rules]
    return []
