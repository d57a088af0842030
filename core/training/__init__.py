"""Turn a project's curated pairs into a cross-encoder reranker with CrossEncoderTrainer, reporting to the store.

The job writes everything a page needs (progress, loss, evaluation, messages) to `runs` / `run_events`, so the
page only polls. The same code runs headless (`python -m core train --project NAME`) and under torchrun.

This facade names core.training's own public API, grouped by the file that defines it. Light names are imported
here; names that need torch or sentence-transformers load on first use (PEP 562), so a page that only shows runs
stays fast. Tests that monkeypatch must patch the submodule that uses a name.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from core.training import budget  # noqa: E402
from core.training.adapt import Adaptation, ProjectShape, adaptation, project_shape  # noqa: E402
from core.training.beta import fit_beta  # noqa: E402
from core.training.config import (  # noqa: E402
    CANDIDATE_SOURCES,
    LOSSES,
    VALIDATION,
    ConfigError,
    TrainConfig,
    check_base_model,
)
from core.training.data import TrainingData, build_data  # noqa: E402
from core.training.defaults import default_config, is_trained, project_defaults, propose_loss  # noqa: E402
from core.training.presenters import curves, test_label_note, verdict  # noqa: E402
from core.training.rows import add_priors  # noqa: E402
from core.training.run_record import create_run  # noqa: E402

# heavy name -> the submodule that defines it, imported on first access (torch, sentence-transformers)
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
    "Adaptation",
    "ProjectShape",
    "adaptation",
    "project_shape",
    "CANDIDATE_SOURCES",
    "LOSSES",
    "VALIDATION",
    "ConfigError",
    "TrainConfig",
    "TrainingData",
    "add_priors",
    "budget",
    "build_data",
    "check_base_model",
    "create_run",
    "curves",
    "default_config",
    "fit_beta",
    "is_trained",
    "project_defaults",
    "propose_loss",
    "test_label_note",
    "verdict",
    *_LAZY,
]
