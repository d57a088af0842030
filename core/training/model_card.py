"""The saved model folder: CrossEncoder weights, a model card with the studio's data and results, and how to score."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.scoring.files import FUSION_FILE, RUN_FILE
from core.scoring.formulas import RESIDUAL
from core.training.config import TrainConfig
from core.training.data import TrainingData


def _scoring_note(fusion: dict[str, Any]) -> str:
    """How a reader must score with this model when its score is more than the cross-encoder's output."""
    if fusion.get("method") == RESIDUAL:
        return (
            f"**How to score with this model:** it was trained as a residual over the embedding model "
            f"`{fusion['first_stage']}`: score = `model.predict(pairs)` (a logit) + {fusion['beta']:g} x cosine of "
            f"the query and passage embeddings. The logit alone is only the correction — see `{FUSION_FILE}`."
        )
    if "alpha" not in fusion:
        return f"**How to score with this model:** `model.predict(pairs)` alone. {fusion.get('reason', '')}".strip()
    return (
        f"**Note:** the cross-encoder alone did not reach its best validation score; the studio blends "
        f"it with the first-stage score (alpha = {fusion['alpha']}) — see `{FUSION_FILE}`."
    )


def card_lines(cfg: TrainConfig, data: TrainingData, metrics: dict[str, Any]) -> list[str]:
    """The studio's section of the model card: training data, configuration, results."""
    lines = [
        "",
        "## Rerank Studio",
        "",
        "Trained with Rerank Studio from a curated project.",
        "",
        "### Training data",
        "",
        *[f"- {k.replace('_', ' ')}: {v}" for k, v in data.stats.items()],
        f"- snapshot hash: {data.snapshot['hash']}",
        "",
        "### Configuration",
        "",
        "```json",
        json.dumps(cfg.to_dict(), indent=2),
        "```",
        "",
        "### Results",
        "",
        f"Candidates reranked: {data.stats['candidates']}. NDCG@10 / MRR@10 below are on those lists.",
        "",
    ]
    if metrics.get("test_labels_used_for"):
        lines += [
            f"**Test labels were used for: {', '.join(metrics['test_labels_used_for'])}** — the test figures "
            "are optimistic.",
            "",
        ]
    lines += ["```json", json.dumps(metrics, indent=2, default=float), "```", ""]
    if "fusion" in metrics:
        lines += [_scoring_note(metrics["fusion"]), ""]
    if metrics.get("scoring"):
        lines += [
            f"**Scoring mode: {metrics['scoring']['mode']}** (chosen on validation) — "
            f"{metrics['scoring']['reason']}.",
            "",
        ]
    return lines


def save_model(
    model: Any, model_dir: Path, cfg: TrainConfig, data: TrainingData, metrics: dict[str, Any]
) -> None:
    """CrossEncoder folder + model card (sentence-transformers' README plus the studio's data and results)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(model_dir))
    if "fusion" in metrics:
        (model_dir / FUSION_FILE).write_text(json.dumps(metrics["fusion"], indent=2))
    readme = model_dir / "README.md"
    head = readme.read_text() if readme.exists() else "# Cross-encoder reranker\n"
    readme.write_text(head + "\n".join(card_lines(cfg, data, metrics)))
    (model_dir / RUN_FILE).write_text(
        json.dumps(
            {"config": cfg.to_dict(), "snapshot": data.snapshot, "metrics": metrics}, indent=2, default=float
        )
    )
