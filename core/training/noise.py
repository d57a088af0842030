"""Differences larger than the noise: the validation figure's interval, and the paired test that keep-best, early
stopping and the residual-vs-alone choice act on (a difference within the noise keeps the simpler choice).

With a handful of validation queries a checkpoint's NDCG@10 moves by several points from one evaluation to the next
by chance alone (the graded web set: step 54 of 216 chosen on ~5 queries); a paired difference over the same queries
is judged against its own standard error instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.scoring.metrics import ndcg_at, ranked_documents, sample_qrels

Z_ONE_SIDED = (
    1.645  # a change is acted on when it is better at p < 0.05 (one-sided paired test, normal approx.)
)
BOOTSTRAP_ROUNDS = 1000


@dataclass(frozen=True)
class Difference:
    """A paired difference of per-query NDCG@10: mean, standard error, and whether it is beyond the noise."""

    mean: float
    se: float
    queries: int

    @property
    def beyond_noise(self) -> bool:
        """Better at p < 0.05 (one-sided); with under 2 queries nothing is."""
        return self.queries >= 2 and self.mean > 0 and self.mean > Z_ONE_SIDED * self.se

    @property
    def worse_beyond_noise(self) -> bool:
        """Worse at p < 0.05 (one-sided): a drop the log must not call noise."""
        return self.queries >= 2 and self.mean < 0 and -self.mean > Z_ONE_SIDED * self.se

    def text(self) -> str:
        """'+0.0070 ± 0.0041 (SE) on 81 queries'."""
        return f"{self.mean:+.4f} ± {self.se:.4f} (SE) on {self.queries} queries"


def per_query_ndcg(samples: list[dict[str, Any]], scores: list[Any], k: int = 10) -> np.ndarray:
    """NDCG@k of each reranked candidate list, in sample order (positives outside the list count as missed)."""
    return np.asarray(
        [ndcg_at(ranked_documents(s, sc), sample_qrels(s), k) for s, sc in zip(samples, scores)], dtype=float
    )


def interval(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of the mean (queries resampled); (mean, mean) with fewer than 2 queries."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        m = float(v.mean()) if len(v) else 0.0
        return m, m
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(BOOTSTRAP_ROUNDS, len(v)))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def difference(new: np.ndarray, old: np.ndarray) -> Difference:
    """The paired difference new - old over the same queries."""
    d = np.asarray(new, dtype=float) - np.asarray(old, dtype=float)
    n = len(d)
    se = float(d.std(ddof=1) / np.sqrt(n)) if n >= 2 else float("inf")
    return Difference(float(d.mean()) if n else 0.0, se, n)
