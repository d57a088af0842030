"""Missing positives: unjudged passages the held-out models put above a query's labelled positives (or on top of a
query that has none) — the review desk's false-negative logic applied to the whole pool, riskiest first."""

from __future__ import annotations

from core.suspects.neighbours import SimilarQueries
from core.suspects.scoring import Suspect, depth, ordinal
from core.suspects.signals import Labelled, Signals

NO_POSITIVE_FACTOR = 2  # a query with no labelled positive is surely missing one: twice the proposals
PER_QUERY = 3  # proposals kept per query: the riskiest few are what a person can judge


def missing_positives(
    lab: Labelled, sig: Signals, per_query: int = PER_QUERY, similar: SimilarQueries | None = None
) -> list[Suspect]:
    """Per query, its top unlabelled passages that beat every labelled positive in at least one held-out model;
    risk = how far above the query's best positive it sits (log scale, 0-1), averaged over the models: a passage on
    top of a query whose positive sits 500th is riskier than one a place above the positive. A query with no
    positive at all comes first (risk above 0.5) and gets twice the proposals: it surely misses one. `similar` names
    the most similar other query that labels a proposal relevant, when there is one."""
    out: list[Suspect] = []
    for q, candidates in sig.top.items():
        labels = lab.labels.get(q, {})
        positives = [p for p, y in labels.items() if y > 0]
        best = [
            min((sig.ranks[(q, p)][m] for p in positives if (q, p) in sig.ranks), default=None)
            for m in range(len(sig.models))
        ]
        found = []
        for c in candidates:
            ranks = sig.ranks[(q, c)]
            above = [b is None or r < b for r, b in zip(ranks, best)]
            if not any(above):
                continue
            gap = [
                max(0.0, depth(b, sig.pool) - depth(r, sig.pool)) if b else 1.0 - depth(r, sig.pool)
                for r, b in zip(ranks, best)
            ]
            # a training query with no positive at all is surely missing one: it comes before any query that has
            risk = sum(gap) / len(gap) if positives else 1.0 + sum(gap) / len(gap)
            found.append(Suspect(q, c, "missing_positive", None, round(risk, 6)))
            found[-1].reasons = [_reason(ranks, above, sig, bool(positives))]
            found[-1].evidence = {
                "ranks": dict(zip(sig.models, ranks)),
                "pool": sig.pool,
                "best_positive": dict(zip(sig.models, best)),
            }
            source = similar.source(q, c) if similar else None
            if source:
                found[-1].reasons.insert(0, _similar_reason(lab, *source))
                found[-1].evidence["similar_query"] = source[0]
        found.sort(key=lambda s: -s.score)
        keep = per_query if positives else NO_POSITIVE_FACTOR * per_query  # surely missing one: look further
        for s in found[:keep]:
            s.score = round(s.score / 2, 6)  # 0-1: above 0.5 only for a query with no positive
            out.append(s)
    out.sort(key=lambda s: -s.score)
    return out


def _similar_reason(lab: Labelled, other: int, cosine: float) -> str:
    """'labelled relevant for a similar query (0.91 cosine): "…"' — the proposer's evidence a person can check."""
    return f"labelled relevant for a similar query ({cosine:.2f} cosine): {lab.query_text[other]!r}"


def _reason(ranks: tuple[int, ...], above: list[bool], sig: Signals, has_positive: bool) -> str:
    """'not labelled, ranked 2nd of 5,183 ... above every labelled positive by 2 of 2 held-out models'."""
    each = ", ".join(f"{m} {ordinal(r)}" for m, r in zip(sig.models, ranks))
    where = (
        f"above every labelled positive of its query by {sum(above)} of {len(above)} held-out models"
        if has_positive
        else "for a query with no labelled positive"
    )
    return f"not labelled, ranked {ordinal(min(ranks))} of {sig.pool:,} {where} ({each})"
