"""Nearest neighbours within one set of texts (a k-NN graph with faiss) and the paraphrase groups drawn from it.

This is not a first stage: it links every text to its closest texts of the same side (self excluded, IVF when
large) so clusters and leakage re-run instantly at any threshold; core.scoring.first_stage ranks a corpus for
queries, which is a different computation.
"""

from __future__ import annotations

import numpy as np

EXACT_SEARCH_LIMIT = 1.5e8  # n_queries * n_base above which faiss IVF (approximate) replaces exact search


def _index(base: np.ndarray, n_queries: int):  # noqa: ANN202 - a faiss index
    """Exact inner product when small enough, else IVF trained on a sample of the base."""
    import faiss

    m, d = base.shape
    if n_queries * m <= EXACT_SEARCH_LIMIT or m < 10_000:
        return faiss.IndexFlatIP(d)
    nlist = int(2 * np.sqrt(m))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10
    rng = np.random.default_rng(0)
    index.train(base[rng.choice(m, size=min(m, nlist * 30), replace=False)])
    index.nprobe = 16  # ~5% of the lists: near-duplicates (cosine >= 0.7) share a list almost always
    return index


def nearest(
    queries: np.ndarray, base: np.ndarray, k: int, *, exclude_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k cosine neighbours with faiss: exact when small enough, IVF (approximate) when large."""
    n, m = len(queries), len(base)
    if n == 0 or m == 0:
        return np.full((n, k), -1, dtype=np.int64), np.zeros((n, k), dtype=np.float32)
    kk = min(m, k + (1 if exclude_self else 0))
    base = np.ascontiguousarray(base, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    index = _index(base, n)
    index.add(base)
    sim, idx = index.search(queries, kk)
    if exclude_self:
        own = np.arange(n)[:, None]
        keep = idx != own
        order = np.argsort(~keep, axis=1, kind="stable")  # kept hits first, self hit last
        idx = np.take_along_axis(idx, order, axis=1)[:, : kk - 1]
        sim = np.take_along_axis(sim, order, axis=1)[:, : kk - 1]
    width = idx.shape[1]
    if width < k:  # pad to k so callers see one shape
        idx = np.pad(idx, ((0, 0), (0, k - width)), constant_values=-1)
        sim = np.pad(sim, ((0, 0), (0, k - width)), constant_values=-1.0)
    return idx.astype(np.int64), sim.astype(np.float32)


def clusters(
    neighbours: np.ndarray, similarity: np.ndarray, threshold: float, members: np.ndarray | None = None
) -> list[list[int]]:
    """Near-paraphrase groups: the fast community detection of sentence-transformers (util.community_detection,
    min size 2), run on the k-NN graph instead of the full similarity matrix so it scales and re-runs instantly.
    The first index of each group is its centre; every member is within `threshold` of it."""
    n = len(neighbours)
    allowed = np.ones(n, dtype=bool) if members is None else members.astype(bool)
    close = (similarity >= threshold) & (neighbours >= 0)
    close &= allowed[np.clip(neighbours, 0, None)]
    close[~allowed] = False
    degree = close.sum(1)
    centres = np.flatnonzero(degree > 0)
    centres = centres[np.argsort(-degree[centres], kind="stable")]
    used = np.zeros(n, dtype=bool)
    groups: list[list[int]] = []
    for c in centres:
        if used[c]:
            continue
        mates = neighbours[c][close[c]]
        mates = mates[~used[mates]]
        if len(mates) == 0:
            continue
        group = [int(c)] + [int(x) for x in mates if x != c]
        used[group] = True
        groups.append(group)
    return sorted(groups, key=len, reverse=True)


def effective_count(n: int, groups: list[list[int]]) -> int:
    """Distinct items once each paraphrase group counts as one."""
    return n - sum(len(g) - 1 for g in groups)
