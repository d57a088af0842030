"""The bundle's model card: how to get the evaluated score first, then measured figures and training counts."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from core.evaluation.common import test_labels_note
from core.evaluation.verdict import ALPHA
from core.runs.run_row import Run
from core.training.presenters import verdict as run_verdict

FIGURES = (("ndcg@10", "NDCG@10"), ("mrr@10", "MRR@10"), ("map", "MAP"))


def latest_figures(conn: sqlite3.Connection, run: Run) -> dict[str, Any] | None:
    """The realistic test figures of the newest saved evaluation that includes this run, with intervals, its
    verdict against the first stage (the one rule, p as `format_p` writes it) and any test-label use."""
    from core import evaluation

    key = f"run:{run.id}"
    for row in evaluation.list_evaluations(conn, run.project_id):
        if run.id not in (row.get("params") or {}).get("run_ids", []):
            continue
        r = evaluation.Results.of(evaluation.load_evaluation(conn, row["id"]))
        if not r.has(key, evaluation.REALISTIC):
            continue
        params = r.params
        shipped = f"{key}:fused" if r.has(f"{key}:fused") else key
        out = {
            "evaluation_id": row["id"],
            "created_at": row.get("created_at"),
            "first_stage": params.get("first_stage_label") or params.get("first_stage"),
            "top_k": params.get("top_k"),
            "queries": params.get("queries"),
            "systems": {},
            "verdict": r.verdict(shipped),
            "test_labels_used_for": list(r.system(key).test_labels_used_for),
            "gain": r.gain,
        }
        blended = shipped != key
        for name, label in (
            (shipped, "this model (the evaluated score)"),
            (key, "its cross-encoder alone") if blended else ("", ""),
            ("first_stage", "first stage alone"),
            (f"{key}:cross-encoder", "its cross-encoder part alone"),
        ):
            if name and r.has(name):
                out["systems"][label] = {**r.raw[r.which][name], "judged": r.judged(name)}
        return out
    return None


def _figure_lines(fig: dict[str, Any] | None) -> list[str]:
    if not fig:
        return [
            "No saved evaluation of this run yet: evaluate it in the studio (Evaluate page or "
            "`python -m core evaluate`) and export again to carry the figures.",
            "",
        ]
    lines = [
        f"Evaluation {fig['evaluation_id']} ({fig['created_at']}): {fig['queries']} test queries, the reranker "
        f"sees the top {fig['top_k']} of {fig['first_stage']} (realistic). Mean with 95% bootstrap interval; "
        "judged@10 is the share of the top 10 that has a label.",
        "",
    ]
    if fig.get("test_labels_used_for"):
        lines += [f"> **Optimistic**: {test_labels_note(fig['test_labels_used_for'])}.", ""]
    lines += [
        "| system | " + " | ".join(label for _, label in FIGURES) + " | judged@10 |",
        "|---|" + "---|" * (len(FIGURES) + 1),
    ]
    for label, s in fig["systems"].items():
        cells = [f"{s['mean'][m]:.3f} [{s['ci'][m][0]:.3f}, {s['ci'][m][1]:.3f}]" for m, _ in FIGURES]
        judged = "?" if s.get("judged") is None else f"{s['judged']:.0%}"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {judged} |")
    lines.append("")
    if fig.get("verdict") is not None:
        lines += [f"Verdict (significant when p < {ALPHA}): {fig['verdict'].sentence}", ""]
    return lines + [f"Gains: {fig['gain']}.", ""]


def _test_label_lines(run: Run) -> list[str]:
    """The warning a run that chose with test labels carries into its bundle (every choice, by name)."""
    from core.evaluation import run_test_labels

    used = run_test_labels(run)
    if not used:
        return []
    return [
        "## Test labels used",
        "",
        f"> **Warning**: {test_labels_note(used)}. Choices made with the test labels: {', '.join(used)}.",
        "",
    ]


def _usage_lines(spec: dict[str, Any], name: str) -> list[str]:
    lines = [
        "## Get the evaluated score",
        "",
        "```python",
        'import sys; sys.path.insert(0, "' + name + '")  # this folder',
        "from rerank_studio_bundle import load  # shipped here; needs only sentence-transformers and numpy",
        'reranker = load("' + name + '")',
        'scores = reranker.score("your query", ["passage one", "passage two"])  # higher = more relevant',
        "```",
        "",
        "Or serve it: `python -m core serve --model " + name + "` (POST /v1/rerank), or in Rerank Studio "
        '`core.scoring.reranker.Reranker.load("' + name + '")`.',
        "",
    ]
    if spec["kind"] == "cross-encoder":
        lines += [
            'This is a plain cross-encoder: `sentence_transformers.CrossEncoder("'
            + name
            + '")` gives exactly '
            f"the evaluated score (`predict`, activation {spec['activation']}; `rank` orders by it).",
            "",
        ]
    elif spec["kind"] == "residual":
        lines += [
            f'**Do not use `CrossEncoder("{name}")` alone**: its output is only the correction (a logit). '
            f"The evaluated score is `logit + {spec['beta']:g} x cosine` of the bundled embedding model "
            f"(`{spec['embedding_model']['path']}/`).",
            "",
        ]
    else:
        lines += [
            f'**Do not use `CrossEncoder("{name}")` alone**: the evaluated score blends it with the bundled '
            f"embedding model's cosine (alpha = {spec['alpha']:g}, z-scored over the passages scored together).",
            "",
        ]
    return lines


def _shown_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as the card prints it: the calibration's breakpoints are counted, not listed."""
    cal = spec.get("calibration")
    if not cal or "x" not in cal:
        return spec
    short = {k: v for k, v in cal.items() if k not in ("x", "y")}
    return {**spec, "calibration": {**short, "breakpoints": len(cal["x"])}}


def model_card(
    conn: sqlite3.Connection, run: Run, spec: dict[str, Any], check: dict[str, Any], name: str
) -> str:
    """README.md of a bundle; the first lines say how to get the evaluated score."""
    snapshot = {k: v for k, v in (run.snapshot or {}).items() if isinstance(v, int) and k != "data_version"}
    metrics = run.metrics or {}
    lines = [
        f"# Reranker from Rerank Studio run {run.id}",
        "",
        f"Kind: **{spec['kind']}**. Score: `{spec['formula']}`"
        + (f" with beta = {spec['beta']:g}" if "beta" in spec else "")
        + (f" with alpha = {spec['alpha']:g}" if "alpha" in spec else "")
        + ".",
        "",
    ]
    lines += _test_label_lines(run)
    lines += _usage_lines(spec, name)
    lines += ["## Measured test figures", ""] + _figure_lines(latest_figures(conn, run))
    lines += ["## Training data (counts only)", ""]
    lines += [f"- {k.replace('_', ' ')}: {v}" for k, v in snapshot.items()] or ["- (not recorded)"]
    lines += [
        f"- snapshot hash: {(run.snapshot or {}).get('hash', '?')}",
        f"- base model: {spec.get('base_model')}",
        f"- training steps: {metrics.get('steps', '?')}",
        "",
    ]
    if metrics.get("validation"):
        lines += [f"Validation ({metrics.get('evaluation', '?')}): {run_verdict(metrics).sentence}", ""]
    if spec.get("calibration_note"):
        lines += [f"`relevance_score` (P(relevant), in [0, 1]): {spec['calibration_note']}.", ""]
    if metrics.get("distilled_from") and "gap_to_teacher" in metrics:
        lines += [
            f"Distilled from run {metrics['distilled_from']}: validation NDCG@10 {metrics['validation_ndcg@10']:.3f} "
            f"vs the teacher's {metrics['teacher_validation_ndcg@10']:.3f} "
            f"(short by {metrics['gap_to_teacher']:.3f}).",
            "",
        ]
    lines += [
        "## Files",
        "",
        "- `rerank_spec.json`: the scoring spec (kind, formula, beta/alpha, max_length, activation, embedding "
        "model id, revision and sha256 of its weights)",
        "- `rerank_studio_bundle.py`: the standalone loader above",
        "- the cross-encoder at the root (sentence-transformers format, safetensors)",
    ]
    if spec["kind"] != "cross-encoder":
        lines.append(
            f"- `{spec['embedding_model']['path']}/`: the embedding model (sentence-transformers format)"
        )
    lines += [
        "",
        f"Export check: the bundle, loaded afresh, scored {check['pairs_checked']} real pairs within "
        f"{check['max_abs_score_diff']:.2g} of the run's score.",
        "",
        "```json",
        json.dumps(_shown_spec(spec), indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)
