"""Suspicion of each labelled pair, with its reasons in words: held-out models that rank a positive low (or a
negative high), hub passages labelled relevant for many queries, near-duplicates labelled both ways, and one query
text under two ids with different labels."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

from core.suspects.signals import Labelled, Signals

HUB_MIN_QUERIES = (
    5  # a passage relevant for at least this many queries (and far above the typical count) is a hub
)
LOW_RANK = (
    50  # a model "disagrees" with a positive it ranks below this place (or a negative it ranks above 3rd)
)


@dataclass
class Suspect:
    """One pair the queue shows: what is suspected, how strongly (0-1), why, and the pattern it belongs to."""

    query_id: int
    passage_id: int
    kind: str  # wrong_positive | wrong_negative | missing_positive
    label: float | None
    score: float
    reasons: list[str] = field(default_factory=list)
    pattern: str | None = None
    evidence: dict[str, object] = field(default_factory=dict)


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 11th, 180th."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def depth(rank: int, pool: int) -> float:
    """How far down a rank sits, 0 (first) to 1 (last), on a log scale: 10th of 5,000 is already 0.27."""
    return math.log(max(rank, 1)) / math.log(max(pool, 2))


def rank_suspicion(ranks: tuple[int, ...], pool: int, positive: bool) -> float:
    """Agreement of the held-out models that the label is wrong: the mean log depth of a positive (high when every
    model buries it), or one minus it for a negative (high when every model puts it on top)."""
    d = sum(depth(r, pool) for r in ranks) / len(ranks)
    return d if positive else 1.0 - d


def rank_reason(ranks: tuple[int, ...], models: tuple[str, ...], pool: int, positive: bool) -> str:
    """'labelled relevant, ranked 180th of 210 for its query by 2 of 2 held-out models (embedding 180th, BM25 …)'."""
    if positive:
        agree = sum(r > LOW_RANK for r in ranks)
        head = f"labelled relevant, ranked {ordinal(min(ranks))} or lower of {pool:,} for its query"
        tail = f"by {agree} of {len(ranks)} held-out models" if agree else "by the held-out models"
    else:
        agree = sum(r <= 3 for r in ranks)
        head = f"labelled not relevant, ranked {ordinal(max(ranks))} or higher of {pool:,} for its query"
        tail = f"by {agree} of {len(ranks)} held-out models" if agree else "by the held-out models"
    each = ", ".join(f"{m} {ordinal(r)}" for m, r in zip(models, ranks))
    return f"{head} {tail} ({each})"


def hubs(lab: Labelled) -> dict[int, int]:
    """Passages labelled relevant for far more queries than usual: passage -> how many."""
    count = Counter(p for labels in lab.labels.values() for p, y in labels.items() if y > 0)
    if not count:
        return {}
    typical = sorted(count.values())[len(count) // 2]
    floor = max(HUB_MIN_QUERIES, 10 * typical)
    return {p: n for p, n in count.items() if n >= floor}


def normal_text(text: str) -> str:
    """A query's text as a reader compares it: case, punctuation and spacing ignored."""
    return " ".join(re.findall(r"\w+", text.lower()))


def twin_conflicts(lab: Labelled) -> dict[tuple[int, int], int]:
    """Pairs whose query text recurs under another id that labels the same passage differently (or not at
    all while holding labels): (query, passage) -> the other query id."""
    groups: dict[str, list[int]] = {}
    for q, text in lab.query_text.items():
        groups.setdefault(normal_text(text), []).append(q)
    out: dict[tuple[int, int], int] = {}
    for ids in groups.values():
        for a in ids:
            for b in ids:
                if a == b:
                    continue
                for p, y in lab.labels.get(a, {}).items():
                    other = lab.labels.get(b, {}).get(p, 0.0)
                    if (y > 0) != (other > 0):
                        out[(a, p)] = b
    return out


def score_labelled(lab: Labelled, sig: Signals) -> list[Suspect]:
    """Every labelled pair with its suspicion and reasons, most suspect first."""
    hub = hubs(lab)
    twins = twin_conflicts(lab)
    near = sig.near
    out: list[Suspect] = []
    for q, labels in lab.labels.items():
        for p, y in labels.items():
            ranks = sig.judged((q, p))
            if ranks is None:
                continue
            positive = y > 0
            s = Suspect(q, p, "wrong_positive" if positive else "wrong_negative", y, 0.0)
            s.score = rank_suspicion(ranks, sig.pool, positive)
            s.reasons.append(rank_reason(ranks, sig.judges, sig.pool, positive))
            s.evidence = {"ranks": dict(zip(sig.judges, ranks)), "pool": sig.pool}
            if positive and p in hub:
                s.reasons.insert(0, f"labelled relevant for {hub[p]:,} queries")
                s.pattern = f"hub:{p}"
                s.score = max(s.score, 0.9)
            if (q, p) in near:
                other = "not relevant" if positive else "relevant"
                s.reasons.insert(0, f"a near-duplicate of a passage labelled {other} for the same query")
                s.evidence["near_duplicate_of"] = near[(q, p)]
                s.score = max(s.score, 0.95)
            if (q, p) in twins:
                s.reasons.insert(0, "the same query text under two ids with different labels")
                s.evidence["twin_query"] = twins[(q, p)]
                s.pattern = s.pattern or f"twin:{min(q, twins[(q, p)])}"
                s.score = max(s.score, 0.95)
            out.append(s)
    out.sort(key=lambda s: -s.score)
    return out
