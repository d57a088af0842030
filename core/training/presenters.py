"""What the Train page shows about a run: its loss and validation curves, and a plain-words verdict."""

from __future__ import annotations

import json
from typing import Any

from core.scoring.files import FUSION_FILE
from core.scoring.formulas import PRIMARY, RESIDUAL


def curves(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Loss points and validation points (metric names without the evaluator prefix) from a run's events."""
    loss, evals = [], []
    for e in events:
        d = e["data"] if isinstance(e["data"], dict) else json.loads(e["data"])
        if e["kind"] == "loss" and "loss" in d:
            loss.append({"step": e["step"], "loss": d["loss"]})
        elif e["kind"] == "eval":
            evals.append(
                {
                    "step": e["step"],
                    **{k.split("_", 1)[1] if k.startswith("val_") else k: v for k, v in d.items()},
                }
            )
    return loss, evals


def test_label_note(metrics: dict[str, Any]) -> str:
    """The label every figure chosen with test labels carries ('' when none were used)."""
    used = metrics.get("test_labels_used_for") or []
    if not used:
        return ""
    return (
        f" Test labels were used for: {', '.join(used)} — these figures are on the test set and optimistic, "
        "not a realistic estimate."
    )


def verdict(metrics: dict[str, Any]) -> tuple[str, str]:
    """(level, sentence) the page shows: plain words when the reranker does not beat the first stage."""
    val = metrics.get("validation")
    if not val:
        return (
            "info",
            "No validation was possible, so nobody knows yet whether this reranker helps: evaluate it on a test set.",
        )
    alone, base = val[PRIMARY], val["first_stage_ndcg@10"]
    where = "on the test set" if metrics.get("test_labels_used_for") else "on validation"
    note = test_label_note(metrics)
    fusion = metrics.get("fusion") or {}
    if fusion.get("method") == RESIDUAL:
        what = f"The reranker (cross-encoder + {fusion['beta']:g} x embedding cosine, as trained)"
        if alone > base:
            return (
                "success",
                f"{what} beats the first stage {where}: NDCG@10 {alone:.3f} vs {base:.3f}.{note}",
            )
        return "warning", (
            f"{what} does NOT beat the first stage {where}: NDCG@10 {alone:.3f} vs {base:.3f}. "
            f"It ranks like the embedding model at best; more or better-judged data should help.{note}"
        )
    if alone > base:
        return (
            "success",
            f"The reranker beats the first stage {where}: NDCG@10 {alone:.3f} vs {base:.3f}.{note}",
        )
    text = (
        f"The reranker does NOT beat the first stage {where}: NDCG@10 {alone:.3f} vs {base:.3f} for the "
        "embedding model alone. Using it alone would make search worse."
    )
    if "alpha" in (metrics.get("fusion") or {}):
        f = metrics["fusion"]
        text += (
            f" Blending it with the first-stage score (alpha {f['alpha']}, chosen {where}) gives "
            f"{f['validation_ndcg@10']:.3f}; the model folder records this blend ({FUSION_FILE})."
        )
    return "warning", text + note
