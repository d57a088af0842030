"""Turn a project's curated pairs into a cross-encoder reranker with CrossEncoderTrainer, reporting to the store.

The job writes everything a page needs (progress, loss, evaluation, messages) to `runs` / `run_events`, so the
page only polls. The same code runs headless (`python -m core train --project NAME`) and under torchrun.

Light names (settings, data, presenters) are imported here; names that need torch or sentence-transformers
(the trainer, losses, evaluator, sampler, callbacks) load on first use, so a page that only shows runs stays fast.
Tests that monkeypatch must patch the submodule that uses a name (e.g. `core.training.candidates.first_stage`).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from core.runs.records import add_event, get_run, latest_checkpoint, run_folder, update_run  # noqa: E402
from core.scoring.formulas import FUSION_FILE, PRIMARY, RESIDUAL, fused_scores, residual_score  # noqa: E402
from core.scoring.metrics import rank_metrics  # noqa: E402
from core.training import budget  # noqa: E402
from core.training.beta import fit_beta  # noqa: E402
from core.training.cli import cli_arguments, cli_main  # noqa: E402
from core.training.config import LOSSES, VALIDATION, ConfigError, TrainConfig, check_base_model  # noqa: E402
from core.training.data import TrainingData, build_data  # noqa: E402
from core.training.defaults import default_config, is_trained, project_defaults, propose_loss  # noqa: E402
from core.training.presenters import curves, test_label_note, verdict  # noqa: E402
from core.training.rows import add_priors  # noqa: E402
from core.training.run_record import create_run  # noqa: E402

_latest_checkpoint = latest_checkpoint  # the old name, still used by core/jobs.py and tests/test_faults.py

# name -> submodule, imported on first access (they import torch / sentence-transformers / transformers)
_LAZY = {
    "execute": "trainer",
    "train_project": "trainer",
    "failure_reason": "trainer",
    "pairs_per_row": "trainer",
    "make_loss": "losses",
    "make_residual_loss": "losses",
    "ResidualListwiseLoss": "losses",
    "make_evaluator": "evaluator",
    "make_residual_evaluator": "evaluator",
    "RerankingEvaluator": "evaluator",
    "score_samples": "evaluator",
    "run_scores": "evaluator",
    "LengthGroupedBatchSampler": "sampler",  # pickled TrainingArguments of older checkpoints look for it here
    "StoreProgress": "callbacks",
    "final_metrics": "results",
    "test_labels_used_for": "results",
    "save_model": "model_card",
}


def __getattr__(name: str) -> Any:
    """Load a heavy name's submodule on first use (PEP 562)."""
    if name in _LAZY:
        return getattr(importlib.import_module(f"core.training.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'core.training' has no attribute {name!r}")


__all__ = [
    "FUSION_FILE",
    "LOSSES",
    "PRIMARY",
    "RESIDUAL",
    "VALIDATION",
    "ConfigError",
    "TrainConfig",
    "TrainingData",
    "add_event",
    "add_priors",
    "build_data",
    "check_base_model",
    "cli_arguments",
    "cli_main",
    "create_run",
    "curves",
    "budget",
    "default_config",
    "fit_beta",
    "project_defaults",
    "fused_scores",
    "get_run",
    "is_trained",
    "latest_checkpoint",
    "propose_loss",
    "rank_metrics",
    "residual_score",
    "run_folder",
    "test_label_note",
    "update_run",
    "verdict",
    *_LAZY,
]
