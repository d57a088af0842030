"""The health checklist: the field's rules of thumb for reranker data, each with pass / warn / fail and a figure."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.quality.report import QualityReport
from core.quality.views import diversity_summary, leakage, query_clusters

DEFAULT_THRESHOLD = 0.90


@dataclass
class Check:
    """One rule of thumb, its state and the figure behind it."""

    rule: str
    state: str  # 'pass' | 'warn' | 'fail'
    figure: str
    advice: str


def _state(value: float, pass_at: float, warn_at: float, higher_is_better: bool = True) -> str:
    if higher_is_better:
        return "pass" if value >= pass_at else "warn" if value >= warn_at else "fail"
    return "pass" if value <= pass_at else "warn" if value <= warn_at else "fail"


def _query_checks(report: QualityReport, threshold: float) -> list[Check]:
    """Enough examples, distinct queries, few paraphrases."""
    positives = int(report.counts.get("train_positives", 0))
    summary = diversity_summary(
        report.queries, query_clusters(report, threshold), report.queries.group == "train"
    )
    return [
        Check(
            "At least 256 labelled training examples",
            _state(positives, 256, 100),
            f"{positives:,} positive pairs",
            "Add more (query, relevant passage) pairs on the Data page.",
        ),
        Check(
            "Distinct queries",
            _state(summary["effective"], 100, 30),
            f"{summary['effective']:,} distinct of {summary['count']:,} training queries",
            "Collect queries that real users ask; paraphrases of one question count once.",
        ),
        Check(
            "Few paraphrased queries",
            _state(summary["paraphrase_share"], 0.10, 0.25, higher_is_better=False),
            f"{summary['paraphrase_share']:.1%} of training queries repeat another (cosine ≥ {threshold:.2f})",
            "Drop or replace near-paraphrases: they add little and overweight one intent.",
        ),
    ]


def _documents_check(report: QualityReport) -> Check:
    """A positive and several negatives per query."""
    t = report.tokens
    train_rows = t.split == "train"
    per_query: dict[int, int] = {}
    positive_q: set[int] = set()
    for qid, lab in zip(t.query_id[train_rows].tolist(), t.label[train_rows].tolist()):
        per_query[qid] = per_query.get(qid, 0) + 1
        if lab > 0:
            positive_q.add(qid)
    median_docs = float(np.median(np.array(list(per_query.values()) or [0])))
    state = (
        "fail"
        if median_docs < 2
        else ("pass" if median_docs >= 4 and len(positive_q) == len(per_query) else "warn")
    )
    return Check(
        "Documents per query (a positive and several negatives)",
        state,
        f"median {median_docs:g} passages per query; {len(per_query) - len(positive_q):,} queries without a positive",
        "Mine negatives so each query has one positive and 3+ negatives to compare against.",
    )


def _negatives_and_length_checks(report: QualityReport) -> list[Check]:
    """Hard negatives reviewed; pairs fit the context."""
    c, t = report.counts, report.tokens
    hard, reviewed = int(c.get("hard_negatives", 0)), int(c.get("reviewed_hard", 0))
    share = reviewed / hard if hard else 0.0
    train_rows = t.split == "train"
    n_train = int(train_rows.sum())
    cut = int(((t.overflow > 0) & train_rows).sum())
    cut_share = cut / n_train if n_train else 0.0
    return [
        Check(
            "Hard negatives present and reviewed",
            "fail" if hard == 0 else ("pass" if share >= 0.20 else "warn"),
            f"{hard:,} hard negatives, {reviewed:,} reviewed ({share:.0%}), "
            f"{c.get('false_negatives', 0):,} found relevant",
            "Mine hard negatives, then review the riskiest on the Review page to catch false negatives.",
        ),
        Check(
            f"Query + passage fit in {report.max_length} tokens",
            _state(cut_share, 0.05, 0.20, higher_is_better=False),
            f"{cut:,} of {n_train:,} training examples truncated ({cut_share:.1%})",
            "Accept the proposed snippets for long passages below, or raise the max length.",
        ),
    ]


def _test_and_balance_checks(report: QualityReport, threshold: float) -> list[Check]:
    """A separate test set without near-duplicates of training queries; label balance."""
    t = report.tokens
    n_test = int((report.queries.group == "test").sum())
    leaks = leakage(report, threshold)
    labels = t.label[t.split == "train"]
    pos, neg = int((labels > 0).sum()), int((labels <= 0).sum())
    pshare = pos / (pos + neg) if pos + neg else 0.0
    balance = (
        "fail"
        if neg == 0 or pos == 0
        else ("pass" if 0.10 <= pshare <= 0.50 else ("warn" if 0.03 <= pshare <= 0.90 else "fail"))
    )
    return [
        Check(
            "Separate test set, disjoint from training",
            "fail"
            if n_test == 0
            else ("pass" if not leaks else ("warn" if len(leaks) / n_test <= 0.05 else "fail")),
            f"{n_test:,} test queries; {len(leaks):,} near-duplicates of training queries (cosine ≥ {threshold:.2f})"
            if n_test
            else "no test queries",
            "Import or split off a test set on the Data page; remove test queries that repeat training ones.",
        ),
        Check(
            "Label balance (positives : negatives)",
            balance,
            f"{pos:,} positives : {neg:,} negatives ({pshare:.0%} positive)",
            "Aim for 1 positive to 1-9 negatives; mine or add negatives when there are none.",
        ),
    ]


def checklist(report: QualityReport, threshold: float = DEFAULT_THRESHOLD) -> list[Check]:
    """The field's rules for reranker data, each with pass / warn / fail and its figure."""
    return [
        *_query_checks(report, threshold),
        _documents_check(report),
        *_negatives_and_length_checks(report),
        *_test_and_balance_checks(report, threshold),
    ]
