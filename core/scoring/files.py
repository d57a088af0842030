"""The names of the files a model folder or an exported bundle holds: one definition every reader and writer uses."""

from __future__ import annotations

RUN_FILE = "studio_run.json"  # a run's model folder: its config, data snapshot and metrics (core.training.model_card)
FUSION_FILE = "studio_fusion.json"  # how the folder's score is formed (residual beta, blend weights)
SPEC_FILE = "rerank_spec.json"  # an exported bundle's machine-readable scoring spec (core.export.bundle)
