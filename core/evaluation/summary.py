"""From rankings to figures: per-query metrics, means with bootstrap intervals, paired tests, score distributions."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.evaluation.common import ORACLE, REALISTIC, SNIPPET, Ranking
from core.evaluation.statistics import best_threshold, bootstrap_ci, paired_test
from core.evaluation.testsets import TestSet
from core.scoring.metrics import metric_names, query_metrics

Scores = dict[str, dict[str, float]]  # query key -> passage key -> score


@dataclass
class Work:
    """What one evaluation collects: the candidates, each system and its main and oracle rankings."""

    ts: TestSet
    first_stage: str
    workspace: Path
    fs_lists: dict[str, Ranking]
    groups: list[
        tuple[str, list[str]]
    ]  # query key -> candidates plus (for oracle figures) the added relevant ones
    systems: list[dict[str, Any]] = field(default_factory=list)
    rankings: dict[str, dict[str, Ranking]] = field(default_factory=dict)
    oracle_rankings: dict[str, dict[str, Ranking]] = field(default_factory=dict)
    ce_scores: dict[str, Scores] = field(default_factory=dict)

    @property
    def qkeys(self) -> list[str]:
        """The evaluated queries, in test-set order."""
        return list(self.fs_lists)


def _table(
    ts: TestSet, qkeys: list[str], rk: dict[str, dict[str, Ranking]], top_k: int, n_bootstrap: int, seed: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    names = metric_names(top_k)
    summary, per_query = {}, {}
    for key, lists in rk.items():
        pq = {q: query_metrics([d for d, _ in lists[q]], ts.qrels[q], top_k) for q in qkeys}
        per_query[key] = pq
        summary[key] = {
            "mean": {m: float(np.mean([pq[q][m] for q in qkeys])) for m in names},
            "ci": {m: list(bootstrap_ci([pq[q][m] for q in qkeys], n=n_bootstrap, seed=seed)) for m in names},
        }
    return summary, per_query


def _comparisons(
    systems: list[dict[str, Any]], pq: dict[str, Any], qkeys: list[str], which: str, seed: int
) -> list[dict[str, Any]]:
    """Paired tests on NDCG@10: every reranker against the first stage and the base; a run against its prior."""
    out = []
    rerankers = [s["key"] for s in systems if s["kind"] != "first_stage"]
    refs = ["first_stage"] + [s["key"] for s in systems if s["kind"] == "base"]
    priors = [s["key"] for s in systems if s["key"].startswith("prior:")]
    by_key = {s["key"]: s for s in systems}
    for key in rerankers:
        for ref in refs + (priors if by_key[key]["kind"] == "run" else []):
            if ref == key:
                continue
            a = [pq[ref][q]["ndcg@10"] for q in qkeys]
            b = [pq[key][q]["ndcg@10"] for q in qkeys]
            c = {
                "system": key,
                "reference": ref,
                "metric": "ndcg@10",
                "figures": which,
                **paired_test(a, b, seed=seed),
            }
            used = by_key[key].get("test_labels_used_for")
            if used:
                c["test_labels_used_for"] = used
            out.append(c)
    return out


def _distributions(work: Work, which: str) -> dict[str, Any]:
    """Scores of relevant vs non-relevant candidates per model, with the F1-best threshold (on test labels)."""
    out = {}
    for key, per_q in work.ce_scores.items():
        rel: list[float] = []
        non: list[float] = []
        for q in work.qkeys:
            for d, _ in work.rankings[key][q]:
                (rel if work.ts.qrels[q].get(d, 0.0) > 0 else non).append(per_q[q][d])
        out[key] = {
            "relevant": rel,
            "non_relevant": non,
            "threshold": best_threshold(rel, non),
            "over": f"{which} candidates",
        }
    return out


def summarize(work: Work, top_k: int, n_bootstrap: int, seed: int, which: str = REALISTIC) -> dict[str, Any]:
    """The results dict: main figures under `which` ('realistic', or 'oracle' for oracle candidates), oracle apart."""
    ts, qkeys = work.ts, work.qkeys
    main, pq_main = _table(ts, qkeys, work.rankings, top_k, n_bootstrap, seed)
    extra, pq_extra = _table(ts, qkeys, work.oracle_rankings, top_k, n_bootstrap, seed)
    if which == ORACLE:  # the candidates already hold every relevant passage: no realistic figure exists
        figures, per_query = {REALISTIC: {}, ORACLE: main}, {REALISTIC: {}, ORACLE: pq_main}
    else:
        figures, per_query = {REALISTIC: main, ORACLE: extra}, {REALISTIC: pq_main, ORACLE: pq_extra}
    used = {
        d
        for lists in list(work.rankings.values()) + list(work.oracle_rankings.values())
        for q in qkeys
        for d, _ in lists[q]
    }
    used |= {d for q in qkeys for d in ts.qrels[q]}
    return {
        "systems": work.systems,
        "metrics": metric_names(top_k),
        **figures,
        "per_query": per_query,
        "rankings": {k: {q: [[d, s] for d, s in v[q]] for q in qkeys} for k, v in work.rankings.items()},
        "queries": {
            q: {"text": ts.queries[q], "query_id": ts.query_ids.get(q), "relevant": dict(ts.qrels[q])}
            for q in qkeys
        },
        "passages": {d: ts.corpus[d][:SNIPPET] for d in used if d in ts.corpus},
        "comparisons": _comparisons(work.systems, pq_main, qkeys, which, seed),
        "score_distributions": _distributions(work, which),
    }
