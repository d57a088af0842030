"""Small model folders for the Reranker, bundle and server tests: the bundled encoder with a fixed saved head."""

from __future__ import annotations

import json
from pathlib import Path

MAX_LENGTH = 32


def make_model_folder(
    folder: Path, fusion: dict | None = None, activation: str = "sigmoid", seed: int = 0
) -> Path:
    """A run-like model folder (CrossEncoder format + studio_run.json [+ studio_fusion.json]) without training."""
    import torch

    from core import models
    from core.scoring.files import FUSION_FILE

    torch.manual_seed(seed)
    ce = models.load_cross_encoder(models.BUNDLED, max_length=MAX_LENGTH)
    if activation == "identity":
        ce.activation_fn = torch.nn.Identity()
    ce.save_pretrained(str(folder))
    (folder / "studio_run.json").write_text(
        json.dumps({"config": {"max_length": MAX_LENGTH, "base_model": models.BUNDLED}, "metrics": {}})
    )
    if fusion:
        (folder / FUSION_FILE).write_text(json.dumps(fusion))
    return folder
