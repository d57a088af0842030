"""What the Train page shows about a run: its loss and validation curves, and its verdict (the one rule)."""

from __future__ import annotations

import json
from typing import Any

from core.evaluation.verdict import Verdict, without_figures
from core.evaluation.verdict import verdict as judge
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


def _where(metrics: dict[str, Any]) -> str:
    if metrics.get("evaluation") == "test" or metrics.get("test_labels_used_for"):
        return "on the test set"
    return "on validation"


def _advice(metrics: dict[str, Any], loses: bool) -> str:
    """What to do when the reranker does not beat the first stage, and the blend the run keeps."""
    fusion = metrics.get("fusion") or {}
    text = ""
    if loses:
        text = (
            " It ranks like the embedding model at best; more or better-judged data should help."
            if fusion.get("method") == RESIDUAL
            else " Using it alone would make search worse."
        )
    if "alpha" in fusion:
        text += (
            f" Blending it with the first-stage score (alpha {fusion['alpha']}, chosen {_where(metrics)}) gives "
            f"{fusion['validation_ndcg@10']:.3f}; the model folder records this blend ({FUSION_FILE})."
        )
    return text


def verdict(metrics: dict[str, Any]) -> Verdict:
    """The run's validation figures judged by the one rule (`core.evaluation.verdict`): it beats the first stage
    only when the margin is positive AND the paired test over the validation lists is significant (runs recorded
    before that test was stored are 'untested'). Unpacks as (level, sentence) for the Train page."""
    val = metrics.get("validation")
    if not val:
        return without_figures(
            "The reranker",
            "No validation was possible, so nobody knows yet whether this reranker helps: evaluate it on a test set.",
        )
    test = metrics.get("validation_vs_first_stage") or {}
    fusion = metrics.get("fusion") or {}
    what = (
        f"The reranker (cross-encoder + {fusion['beta']:g} x embedding cosine, as trained)"
        if fusion.get("method") == RESIDUAL
        else "The reranker"
    )
    loses = float(val[PRIMARY]) <= float(val["first_stage_ndcg@10"])
    return judge(
        what,
        val[PRIMARY],
        val["first_stage_ndcg@10"],
        test.get("p_value"),
        where=_where(metrics),
        figures="validation",
        draws=test.get("draws"),
        note=_advice(metrics, loses) + test_label_note(metrics),
    )
