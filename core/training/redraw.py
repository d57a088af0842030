"""Lists drawn afresh at every step from all of a query's judged passages, so every label counts and memory stays
bounded.

A query's pool holds every positive (graded), its hard negatives, its other negatives (random and uploaded label-0
pairs) and each passage's embedding cosine. Each time a training row of the query comes up, the residual loss
replaces the row's list by a fresh one of the same length: the next positive in a fixed shuffled order (highest grades
first) as its anchor, the next hard negatives in turn, the rest sampled from the other negatives and lower-graded
positives. Over visits every positive anchors a list; the loss counts the judged pairs it actually scored.
"""

from __future__ import annotations

import random
from typing import Any


def make_pool(
    pos: list[int],
    grades: list[float],
    hard: list[int],
    others: list[int],
    judged_negatives: list[int],
    rng: random.Random,
) -> dict[str, Any]:
    """A query's pool of passage indices (into the run's pool texts); `order` = the anchors' turn."""
    order = sorted(range(len(pos)), key=lambda i: (-grades[i], rng.random()))
    return {
        "pos": list(pos),
        "grades": [float(g) for g in grades],
        "order": order,
        "hard": list(hard),
        "others": list(others),
        "judged_negatives": list(judged_negatives),
    }


def draw(
    pool: dict[str, Any], visit: int, length: int, hard_per_row: int, rng: random.Random
) -> tuple[list[int], list[float]]:
    """(passage indices, grades) of the query's list at its `visit`-th turn: `length` passages, one anchor."""
    pos, grades, hard = pool["pos"], pool["grades"], pool["hard"]
    i = pool["order"][visit % len(pool["order"])]
    anchor, grade = pos[i], grades[i]
    share = min(length - 1, len(hard), max(0, hard_per_row))
    start = visit * share
    picked = [hard[(start + j) % len(hard)] for j in range(share)] if share else []
    chosen = [(d, 0.0) for d in picked]
    taken = set(picked) | {anchor}
    contrast = [(d, 0.0) for d in pool["others"] if d not in taken] + [
        (p, g) for p, g in zip(pos, grades) if g < grade and p not in taken
    ]
    chosen += rng.sample(contrast, min(length - 1 - len(chosen), len(contrast)))
    if len(chosen) < length - 1:  # too few others: top up with hard negatives not in this list yet
        spare = [d for d in hard if d not in set(picked)]
        chosen += [(d, 0.0) for d in spare[: length - 1 - len(chosen)]]
    items = [(anchor, grade)] + chosen
    rng.shuffle(items)
    return [d for d, _ in items], [g for _, g in items]


def judged(pool: dict[str, Any]) -> set[int]:
    """The query's labelled passages: its positives and its uploaded label-0 pairs."""
    return set(pool["pos"]) | set(pool["judged_negatives"])


def pool_ids(pool: dict[str, Any]) -> list[int]:
    """Every passage of a pool once (the order its cosines are stored in, `pool["cos"]`)."""
    return list(dict.fromkeys(pool["pos"] + pool["hard"] + pool["others"] + pool["judged_negatives"]))


class Redrawer:
    """Fresh lists per visit of a query, and the judged (query, passage) pairs that reached the model."""

    def __init__(
        self, pools: dict[str, dict[str, Any]], texts: list[str], hard_per_row: int, seed: int
    ) -> None:
        self.pools, self.texts = pools, texts
        self.hard_per_row, self.rng = hard_per_row, random.Random(seed)
        self.visits: dict[str, int] = {}
        self.used: set[tuple[str, int]] = set()
        self._judged = {q: judged(p) for q, p in pools.items()}
        self._cos = {q: dict(zip(pool_ids(p), p.get("cos") or [])) for q, p in pools.items()}

    def __call__(
        self, query: str, docs: list[str], priors: list[float], labels: Any
    ) -> tuple[list[str], list[float], list[float]]:
        """The row's list drawn afresh (same length), or the row itself for a query without a pool."""
        pool = self.pools.get(query)
        if not pool or not pool["pos"]:
            return docs, list(priors), [float(x) for x in labels]
        visit = self.visits.get(query, 0)
        self.visits[query] = visit + 1
        idx, grades = draw(pool, visit, len(docs), self.hard_per_row, self.rng)
        cos = self._cos[query]
        self.used.update((query, d) for d in idx if d in self._judged[query])
        return [self.texts[d] for d in idx], [float(cos.get(d, 0.0)) for d in idx], grades


def add_cosines(
    pools: dict[str, dict[str, Any]], texts: list[str], spec: str, workspace: Any
) -> dict[str, dict[str, Any]]:
    """Each pool gains `cos`: the embedding cosine of its passages (in `pool_ids` order), the residual's prior."""
    from core.embeddings import embed_texts

    if not pools:
        return pools
    queries = list(pools)
    vec = embed_texts(texts, spec, workspace=workspace) if texts else None
    qvec = embed_texts(queries, spec, workspace=workspace)
    for qv, q in zip(qvec, queries):
        ids = pool_ids(pools[q])
        pools[q]["cos"] = [round(float(x), 6) for x in (vec[ids] @ qv)] if ids and vec is not None else []
    return pools


def coverage(used: int, labelled: int) -> dict[str, Any]:
    """The run's count of judged pairs that reached the model, as figures and the sentence the run prints."""
    return {
        "labelled_pairs_used": used,
        "labelled_pairs": labelled,
        "labelled_pairs_text": f"trained on {used:,} of {labelled:,} labelled pairs",
    }
