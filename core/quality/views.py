"""Cheap views over a report, recomputed on every slider move: clusters, diversity, leakage, truncation."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.quality.neighbours import clusters, effective_count
from core.quality.report import QualityReport
from core.quality.sides import TextSide


def query_clusters(report: QualityReport, threshold: float) -> list[list[int]]:
    """Paraphrase groups among training queries at this cosine threshold (row indices of report.queries)."""
    q = report.queries
    return clusters(q.neighbours, q.similarity, threshold, members=q.group == "train")


def passage_clusters(report: QualityReport, threshold: float) -> list[list[int]]:
    """Near-duplicate groups among training passages at this threshold."""
    p = report.passages
    return clusters(p.neighbours, p.similarity, threshold)


def diversity_summary(
    side: TextSide, groups: list[list[int]], members: np.ndarray | None = None
) -> dict[str, Any]:
    """Raw vs effective count, paraphrase share, length and vocabulary figures."""
    rows = np.arange(len(side.texts)) if members is None else np.flatnonzero(members)
    n = len(rows)
    eff = effective_count(n, groups)
    chars, words = side.chars[rows], side.words[rows]
    return {
        "count": n,
        "effective": eff,
        "groups": len(groups),
        "paraphrase_share": (n - eff) / n if n else 0.0,
        "words_median": float(np.median(words)) if n else 0.0,
        "words_p95": float(np.percentile(words, 95)) if n else 0.0,
        "chars_median": float(np.median(chars)) if n else 0.0,
        "vocabulary": side.vocabulary,
    }


def cluster_table(side: TextSide, groups: list[list[int]], limit: int = 200) -> list[dict[str, Any]]:
    """One row per group: its size, centre text and the other members' texts."""
    out = []
    for g in groups[:limit]:
        centre = g[0]
        sims = dict(zip(side.neighbours[centre].tolist(), side.similarity[centre].tolist()))
        out.append(
            {
                "size": len(g),
                "centre": side.texts[centre],
                "members": " | ".join(side.texts[i] for i in g[1:6]) + (" | …" if len(g) > 6 else ""),
                "min_similarity": round(min(sims.get(i, 1.0) for i in g[1:]), 3),
            }
        )
    return out


def leakage(report: QualityReport, threshold: float) -> list[dict[str, Any]]:
    """Test queries within `threshold` of a training query: the test set would reward memorising them."""
    q = report.queries
    if q.cross_neighbour is None or q.cross_similarity is None:
        return []
    rows = np.flatnonzero((q.group == "test") & (q.cross_similarity >= threshold) & (q.cross_neighbour >= 0))
    rows = rows[np.argsort(-q.cross_similarity[rows], kind="stable")]
    return [
        {
            "similarity": round(float(q.cross_similarity[r]), 3),
            "test_query": q.texts[r],
            "train_query": q.texts[int(q.cross_neighbour[r])],
            "test_query_id": int(q.ids[r]),
            "train_query_id": int(q.ids[int(q.cross_neighbour[r])]),
        }
        for r in rows
    ]


def truncated(report: QualityReport, *, split: str | None = "train", kind: str | None = None) -> np.ndarray:
    """Row indices of report.tokens that exceed the context, longest overflow first."""
    t = report.tokens
    mask = t.overflow > 0
    if split:
        mask &= t.split == split
    if kind:
        mask &= t.kind == kind
    rows = np.flatnonzero(mask)
    return rows[np.argsort(-t.overflow[rows], kind="stable")]


def truncated_table(report: QualityReport, rows: np.ndarray, limit: int = 500) -> list[dict[str, Any]]:
    """The truncated examples as plain rows for a table."""
    t = report.tokens
    out = []
    for r in rows[:limit]:
        out.append(
            {
                "id": int(t.pair_id[r]),
                "kind": "mined negative"
                if t.kind[r] == "mined"
                else ("positive" if t.label[r] > 0 else "negative"),
                "query": report.query_text[int(t.query_id[r])],
                "passage": report.passage_text[int(t.passage_id[r])][:300],
                "tokens": int(t.total[r]),
                "cut": int(t.overflow[r]),
                "cut_share": round(float(t.overflow[r]) / float(t.total[r]), 3),
            }
        )
    return out
