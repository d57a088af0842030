"""The residual run's cosine weight beta, fitted by maximum likelihood with no grid ceiling.

Fitted on the training queries' first-stage candidate lists (`training.data.beta_on_candidates`). The
log-likelihood of lists under softmax(beta x cosine) is concave in beta, so a bracket that doubles
until the likelihood turns down, then a bounded 1-D search inside it, finds the maximum wherever it lies (a fixed grid
stopped at 100 and cut the fit off on data with long queries).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

DEFAULT_BETA = 20.0  # used only when there are no lists to fit on


def source(residual_beta: float | None) -> str:
    """Where a run's beta comes from, said the same way by the run's message, the CLI plan and the outcome bench."""
    if residual_beta is not None:
        return "beta as set in the run's settings"
    return (
        "beta fitted on the training queries' candidate lists: maximum likelihood of their first-stage top k "
        "under softmax(beta x cosine), graded by gain, expanding bracket (no grid ceiling)"
    )


BETA_LIMIT = (
    1000.0  # the config's range; a fit at the limit says the cosine alone separates the lists perfectly
)


def gain_targets(labels: Any) -> np.ndarray:
    """Listwise target shares from graded labels: gain 2^grade - 1 (NDCG's), normalised; binary labels stay 1/n_pos."""
    g = np.asarray(labels, dtype=float)
    gains = np.where(g > 0, np.power(2.0, g) - 1.0, 0.0)
    total = gains.sum()
    return gains / total if total > 0 else np.full(len(g), 1.0 / max(1, len(g)))


def _prepared(rows: list[dict[str, Any]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(priors, target shares) of every list that has a positive."""
    out = []
    for r in rows:
        labels = np.asarray(r["labels"], dtype=float)
        if (labels > 0).any() and len(labels) > 1:
            out.append((np.asarray(r["priors"], dtype=float), gain_targets(labels)))
    return out


def _loglik(lists: list[tuple[np.ndarray, np.ndarray]], beta: float) -> float:
    """Target-weighted log softmax(beta x priors), summed over the prepared lists."""
    total = 0.0
    for priors, target in lists:
        logits = beta * priors
        logits -= logits.max()
        total += float((target * (logits - np.log(np.exp(logits).sum()))).sum())
    return total


def log_likelihood(rows: list[dict[str, Any]], beta: float) -> float:
    """Sum over lists of target-weighted log softmax(beta x cosine): how well the embedding model alone explains them."""
    return _loglik(_prepared(rows), beta)


def fit_beta(rows: list[dict[str, Any]]) -> float:
    """The cosine weight under which the embedding model alone best explains the lists (max likelihood of the
    positives, graded by gain); the cross-encoder then starts from exactly the embedding model's ranking."""
    lists = _prepared(rows)
    if not lists:
        return DEFAULT_BETA

    def negative(beta: float) -> float:
        return -_loglik(lists, beta)

    hi = 1.0
    while hi < BETA_LIMIT and negative(2 * hi) < negative(
        hi
    ):  # concave: expand until the likelihood turns down
        hi *= 2
    upper = min(BETA_LIMIT, 2 * hi)
    res = minimize_scalar(negative, bounds=(0.0, upper), method="bounded", options={"xatol": 1e-3})
    best = float(res.x)
    return round(best if negative(best) <= negative(upper) else upper, 4)
