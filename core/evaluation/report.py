"""Exports of an evaluation: a Markdown report (user text escaped) and a per-query CSV, saved in the exports folder."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path
from typing import Any

from core import store
from core.evaluation.common import (
    FILE_ORACLE_NOTE,
    ORACLE,
    ORACLE_NOTE,
    REALISTIC,
    REALISTIC_NOTE,
    EvaluationError,
    figures_kind,
    test_labels_note,
)
from core.evaluation.figures import Results
from core.evaluation.results import headline, results_table, system, wins_and_losses
from core.evaluation.verdict import ALPHA
from core.markdown import escape_markdown as _md  # the one escape rule for user text in Markdown


def _cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run as a formula."""
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _header(results: dict[str, Any]) -> list[str]:
    p = results["params"]
    lines = [
        "# Rerank Studio — evaluation report",
        "",
        f"- Test set: {_md(p['test_set'])} ({p['queries']} queries)",
        f"- First stage: {_md(p['first_stage_label'])}, top-k = {p['top_k']}",
        f"- Figures: {figures_kind(results)}",
        f"- Bootstrap: {p['n_bootstrap']} resamples of queries, seed {p['seed']}; 95% intervals",
        f"- Paired tests: randomization (sign flips) on NDCG@10; significant when p < {ALPHA}; at the test's floor "
        "p is an upper bound (p < ...)",
        f"- Gains: {Results.of(results).gain}",
        "",
    ]
    if p.get("test_labels_used_for"):
        lines.append(f"> **Test labels used**: {_md(test_labels_note(p['test_labels_used_for']))}")
    for note in p.get("notes", []):
        lines.append(f"> {_md(note)}")
    return lines


def _tables(results: dict[str, Any]) -> list[str]:
    lines = []
    oracle_title = FILE_ORACLE_NOTE if figures_kind(results) == ORACLE else ORACLE_NOTE
    for which, title in (
        (REALISTIC, "Realistic figures (" + REALISTIC_NOTE + ")"),
        (ORACLE, "Oracle figures (" + oracle_title + ")"),
    ):
        rows = results_table(results, which)
        if not rows:
            continue
        lines += [
            "",
            f"## {_md(title)}",
            "",
            "| system | " + " | ".join(results["metrics"]) + " |",
            "|---|" + "---|" * len(results["metrics"]),
        ]
        for r in rows:
            cells = [f"{r[m]:.4f} {r[m + ' 95% CI']}" for m in results["metrics"]]
            lines.append(f"| {_md(r['system'])} | " + " | ".join(cells) + " |")
    return lines


def _comparisons(results: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"## Paired tests ({figures_kind(results)} NDCG@10)",
        "",
        "| system | reference | difference | 95% CI | p | significant | wins/losses/ties |",
        "|---|---|---|---|---|---|---|",
    ]
    r = Results.of(results)
    for c in r.comparisons:
        lines.append(
            f"| {_md(r.system(c.system).label)} | {_md(r.system(c.reference).label)} | "
            f"{c.mean_diff:+.4f} | [{c.ci[0]:+.3f}, {c.ci[1]:+.3f}] | {c.p_text} | "
            f"{'yes' if c.significant else 'no'} | {c.wins}/{c.losses}/{c.ties} |"
        )
    for key, dist in results["score_distributions"].items():
        t = dist.get("threshold")
        if t:
            lines.append(
                f"\nThreshold suggestion for {_md(system(results, key)['label'])}: score >= {t['threshold']:.4f} "
                f"(F1 {t['f1']:.3f}, precision {t['precision']:.3f}, recall {t['recall']:.3f}) — "
                f"chosen on {t['chosen_on']}."
            )
    return lines


def report_markdown(results: dict[str, Any], n: int = 5) -> str:
    """A Markdown report with every figure, realistic and oracle in separate tables; user text escaped."""
    lines = _header(results)
    lines += ["", "## Verdict", ""] + [f"- {_md(x)}" for x in headline(results)]
    judged = Results.of(results).judged_notes()
    if judged:
        lines += ["", "## How much of each top 10 is judged", ""] + [f"- {_md(x)}" for x in judged]
    for s in results["systems"]:
        for note in s.get("notes", []):
            lines.append(f"- Note on {_md(s['label'])}: {_md(note)}")
    lines += _tables(results) + _comparisons(results)
    for s in results["systems"]:
        if s["kind"] == "first_stage":
            continue
        wins, losses = wins_and_losses(results, s["key"], n=n)
        lines += [
            "",
            f"## Biggest changes of {_md(s['label'])} over the first stage ({figures_kind(results)} NDCG@10)",
            "",
            "| query | before | after | change |",
            "|---|---|---|---|",
        ]
        for r in wins + losses:
            lines.append(
                f"| {_md(r['query'][:120])} | {r['before']:.3f} | {r['after']:.3f} | {r['delta']:+.3f} |"
            )
    return "\n".join(lines) + "\n"


def per_query_csv(results: dict[str, Any]) -> str:
    """One row per query: text, relevant count, every system's realistic metrics (and oracle, prefixed)."""
    buf = io.StringIO()
    keys = [s["key"] for s in results["systems"]]
    header = ["query_key", "query_id", "query", "relevant"]
    for which in (REALISTIC, ORACLE):
        for k in keys:
            if k in results["per_query"][which]:
                header += [f"{which}:{k}:{m}" for m in results["metrics"]]
    w = csv.writer(buf)
    w.writerow(header)
    for q, info in results["queries"].items():
        row = [
            q,
            info.get("query_id"),
            _cell(info["text"]),
            sum(1 for g in info["relevant"].values() if g > 0),
        ]
        for which in (REALISTIC, ORACLE):
            for k in keys:
                if k in results["per_query"][which]:
                    row += [f"{results['per_query'][which][k][q][m]:.6f}" for m in results["metrics"]]
        w.writerow(row)
    return buf.getvalue()


def write_export(conn: sqlite3.Connection, name: str, content: str) -> Path:
    """Save a report or table into the exports folder (the store's one safe-path rule)."""
    try:
        dest = store.safe_export_path(store.workspace_of(conn), name)
    except store.UnsafePathError as exc:
        raise EvaluationError(str(exc)) from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(content, encoding="utf-8")
    return dest
