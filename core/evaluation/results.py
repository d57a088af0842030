"""Reading an evaluation's results: systems, per-query changes, one query's movement, the verdict, tables.

Every reader takes the main figures from `figures_kind(results)`: 'realistic', or 'oracle' when the candidates
already held every relevant passage — oracle figures are never presented as realistic."""

from __future__ import annotations

from typing import Any

from core.evaluation.common import ORACLE, figures_kind
from core.evaluation.figures import Results


def system(results: dict[str, Any], key: str) -> dict[str, Any]:
    """One system of an evaluation by key."""
    return next(s for s in results["systems"] if s["key"] == key)


def per_query_deltas(
    results: dict[str, Any], key: str, reference: str = "first_stage", metric: str = "ndcg@10"
) -> list[dict[str, Any]]:
    """Per-query change of one system over a reference (main figures), biggest loss first."""
    pq = results["per_query"][figures_kind(results)]
    rows = []
    for q, info in results["queries"].items():
        before, after = pq[reference][q][metric], pq[key][q][metric]
        rows.append(
            {
                "query_key": q,
                "query_id": info.get("query_id"),
                "query": info["text"],
                "before": before,
                "after": after,
                "delta": after - before,
            }
        )
    return sorted(rows, key=lambda r: (r["delta"], r["query_key"]))


def wins_and_losses(
    results: dict[str, Any], key: str, reference: str = "first_stage", n: int = 10, metric: str = "ndcg@10"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The n biggest improvements and the n biggest losses (changes of zero are neither)."""
    rows = per_query_deltas(results, key, reference, metric)
    losses = [r for r in rows if r["delta"] < -1e-12][:n]
    wins = [r for r in reversed(rows) if r["delta"] > 1e-12][:n]
    return wins, losses


def query_movement(results: dict[str, Any], query_key: str, key: str) -> list[dict[str, Any]]:
    """One query's ranking after reranking, each passage with its first-stage rank, new rank and movement."""
    before = {d: i + 1 for i, (d, _) in enumerate(results["rankings"]["first_stage"][query_key])}
    rel = results["queries"][query_key]["relevant"]
    out = []
    for i, (d, score) in enumerate(results["rankings"][key][query_key]):
        b = before.get(d)
        out.append(
            {
                "rank": i + 1,
                "before": b,
                "moved": (b - (i + 1)) if b else None,
                "relevant": rel.get(d, 0.0) > 0,
                "label": rel.get(d),
                "score": score,
                "passage_key": d,
                "passage": results["passages"].get(d, ""),
            }
        )
    return out


def missed_relevant(results: dict[str, Any], query_key: str) -> list[str]:
    """Relevant passages the first stage did not retrieve (no reranker can recover them realistically)."""
    got = {d for d, _ in results["rankings"]["first_stage"][query_key]}
    return [d for d, g in results["queries"][query_key]["relevant"].items() if g > 0 and d not in got]


def main_figures(results: dict[str, Any]) -> dict[str, Any]:
    """The evaluation's main summary table (realistic, or oracle for oracle candidates)."""
    return results[figures_kind(results)]


def headline(results: dict[str, Any]) -> list[str]:
    """Plain sentences: the verdict of every shippable system (a run, a run's blend) against the first stage on
    NDCG@10 by the one rule (`verdict`), with what could make them misleading: oracle candidates, several runs
    picked between on test (judged@10 is said apart: `Results.judged_notes`)."""
    r = Results.of(results)
    lines = []
    if r.which == ORACLE:
        lines.append(
            "No realistic verdict: the candidates hold every relevant passage (the file has no score or rank "
            "column), so every figure below is an ORACLE upper bound."
        )
    lines += [v.sentence for v in r.verdicts()]
    if r.best_of_n_note():
        lines.append(r.best_of_n_note())
    return lines


def results_table(results: dict[str, Any], which: str | None = None) -> list[dict[str, Any]]:
    """Rows for a side-by-side table: one per system, each metric with its 95% CI (main figures by default)."""
    which = which or figures_kind(results)
    rows = []
    for s in results["systems"]:
        fig = results[which].get(s["key"])
        if not fig:
            continue
        row: dict[str, Any] = {"system": s["label"], "figures": which}
        for m in results["metrics"]:
            lo, hi = fig["ci"][m]
            row[m] = round(fig["mean"][m], 4)
            row[f"{m} 95% CI"] = f"[{lo:.3f}, {hi:.3f}]"
        if s.get("test_labels_used_for"):
            row["test labels used for"] = ", ".join(s["test_labels_used_for"])
        rows.append(row)
    return rows
