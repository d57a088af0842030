"""Which systems an evaluation compares: the runs (through the ONE run lookup), the base model, their fusions."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core import models
from core.evaluation.common import RANDOM_HEAD_NOTE, EvaluationError, test_labels_note
from core.runs import records
from core.runs.run_row import Run
from core.scoring.files import FUSION_FILE
from core.scoring.formulas import RESIDUAL


def evaluable_runs(conn: sqlite3.Connection, project: int | None, run_ids: Sequence[str]) -> list[Run]:
    """Completed runs of this project with a model folder under runs/, or a message saying why one is not."""
    try:
        return [records.completed_run(conn, r, project) for r in run_ids]
    except records.RunError as exc:
        raise EvaluationError(str(exc)) from exc


def run_fusion(run: Run) -> dict[str, Any] | None:
    """The score fusion a run carries (metrics or the model folder's studio_fusion.json), if any."""
    fusion = run.metrics.get("fusion")
    path = Path(run.model_dir or "") / FUSION_FILE
    if not fusion and path.is_file():
        fusion = json.loads(path.read_text())
    return fusion if fusion and ("alpha" in fusion or fusion.get("method") == RESIDUAL) else None


def run_test_labels(run: Run) -> list[str]:
    """What a run chose with the test labels: its recorded `test_labels_used_for`, else inferred from old runs."""
    metrics, cfg = run.metrics or {}, run.config or {}
    used = metrics.get("test_labels_used_for") or cfg.get("test_labels_used_for")
    if used:
        return [str(u) for u in used]
    inferred = []
    if metrics.get("evaluation") == "test":  # older runs validated on the test set without saying so
        if cfg.get("keep_best", True):
            inferred.append("checkpoint")
        if int(cfg.get("early_stopping_patience") or 0) > 0:
            inferred.append("early stopping")
    if (metrics.get("fusion") or {}).get("chosen_on") == "test":
        inferred.append("fusion weight")
    return inferred


def base_is_random(base_model: str) -> bool:
    """True when the base is a bare encoder, whose new one-logit head is random."""
    try:
        return not models.is_trained_cross_encoder(base_model)
    except models.ModelError:
        return True


def base_systems(runs: list[Run]) -> list[dict[str, Any]]:
    """One base-model system per distinct base of the runs (the bundled encoder when there is no run)."""
    bases = {r.config.get("base_model", models.BUNDLED): r.config.get("max_length", 256) for r in runs}
    bases = bases or {models.BUNDLED: 256}
    out = []
    for i, (base, max_length) in enumerate(bases.items()):
        random_head = base_is_random(base)
        key = "base" if len(bases) == 1 else f"base:{i}"
        out.append(
            {
                "key": key,
                "kind": "base",
                "run_id": None,
                "spec": base,
                "max_length": max_length,
                "label": f"Base model: {models.model_key(base)}" + (" (random head)" if random_head else ""),
                "random_head": random_head,
                "notes": [RANDOM_HEAD_NOTE] if random_head else [],
            }
        )
    return out


def run_system(run: Run) -> dict[str, Any]:
    """The system of one fine-tuned run (its cross-encoder alone until its fusion is applied)."""
    cfg = run.config
    if "max_length" not in cfg:
        raise EvaluationError(f"Run {run.id!r} has no max_length in its config.")
    sysinfo = {
        "key": f"run:{run.id}",
        "kind": "run",
        "run_id": run.id,
        "run": run,
        "max_length": int(cfg["max_length"]),
        "label": f"Fine-tuned run {run.id} (cross-encoder alone)",
        "fusion": run_fusion(run),
        "notes": [],
    }
    return with_test_labels(sysinfo, run_test_labels(run))


def with_test_labels(sysinfo: dict[str, Any], used: list[str]) -> dict[str, Any]:
    """Mark a system whose figures a run touched after using test labels: the list, a note, and its label."""
    if used:
        sysinfo["test_labels_used_for"] = list(used)
        sysinfo["notes"] = [*sysinfo.get("notes", []), test_labels_note(used)]
        if "[test labels used" not in sysinfo["label"]:
            sysinfo["label"] += f" [test labels used for {', '.join(used)}]"
    return sysinfo
