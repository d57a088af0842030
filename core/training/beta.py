"""The residual run's cosine weight beta, fitted by maximum likelihood with no grid ceiling.

Fitted on the training queries' first-stage candidate lists (`training.data.beta_on_candidates`). The
log-likelihood of lists under softmax(beta x cosine) is concave in beta, so a bracket that doubles
until the likelihood turns down, then a bounded 1-D search inside it, finds the maximum wherever it lies (a fixed grid
stopped at 100 and cut the fit off on data with long queries).

On separable lists (every positive tops its list's cosine) the likelihood rises for ever: it has no maximum, and
in floating point it goes flat (each list's log-likelihood rounds to 0 once beta x gap passes ~37), so a search
would return an arbitrary point of that plateau. Such lists are recognised before searching, and the fit returns
the search's limit, BETA_LIMIT, with a note saying why (`fit`); the same note when the maximum lies at or past it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from core.scoring.metrics import gain_targets  # the one gain of the studio (NDCG's and the loss's)

DEFAULT_BETA = 20.0  # used only when there are no lists to fit on
BETA_LIMIT = 1000.0  # the config's range and the search's limit
SEPARABLE_NOTE = (
    "the cosine alone ranks every positive first in every list, so the likelihood has no maximum (it rises "
    f"for ever); beta is the search's limit, {BETA_LIMIT:g}, not a fitted point"
)
AT_LIMIT_NOTE = f"the likelihood still rises at the search's limit, so beta is that limit ({BETA_LIMIT:g})"
FLAT_NOTE = f"the cosine is equal within every list, so it explains nothing: beta left at {DEFAULT_BETA:g}"


def source(residual_beta: float | None, beta: float | None = None) -> str:
    """Where a run's beta comes from, said the same way by the run's message, the CLI plan and the outcome bench;
    a fitted `beta` at the search's limit says so."""
    if residual_beta is not None:
        return "beta as set in the run's settings"
    text = (
        "beta fitted on the training queries' candidate lists: maximum likelihood of their first-stage top k "
        "under softmax(beta x cosine), graded by gain, expanding bracket (no grid ceiling)"
    )
    if beta is not None and float(beta) >= BETA_LIMIT:
        text += f"; at the limit: {AT_LIMIT_NOTE}"
    return text


@dataclass(frozen=True)
class BetaFit:
    """A fitted beta and, when it is not an interior maximum, why (separable lists, the limit, flat lists)."""

    beta: float
    note: str = ""

    @property
    def at_limit(self) -> bool:
        """True when beta is the search's limit rather than a maximum found inside it."""
        return self.beta >= BETA_LIMIT


def _prepared(rows: list[dict[str, Any]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(priors, target shares) of every list that has a positive."""
    out = []
    for r in rows:
        labels = np.asarray(r["labels"], dtype=float)
        if (labels > 0).any() and len(labels) > 1:
            out.append((np.asarray(r["priors"], dtype=float), gain_targets(labels)))
    return out


def _log_softmax(z: np.ndarray) -> np.ndarray:
    """log softmax(z) that stays exact for the top passages when the others are far below (log1p, not log(1+x))."""
    top = z.max()
    at_top = z >= top
    rest = np.exp(z[~at_top] - top).sum()
    n_top = float(at_top.sum())
    return (z - top) - (np.log(n_top) + np.log1p(rest / n_top))


def _loglik(lists: list[tuple[np.ndarray, np.ndarray]], beta: float) -> float:
    """Target-weighted log softmax(beta x priors), summed over the prepared lists."""
    return float(sum((target * _log_softmax(beta * priors)).sum() for priors, target in lists))


def log_likelihood(rows: list[dict[str, Any]], beta: float) -> float:
    """Sum over lists of target-weighted log softmax(beta x cosine): how well the embedding model alone explains them."""
    return _loglik(_prepared(rows), beta)


def separable(lists: list[tuple[np.ndarray, np.ndarray]]) -> bool:
    """Every list's positives sit at its highest cosine, and some list has a lower one: the likelihood only rises."""
    on_top = all(bool((priors[target > 0] >= priors.max()).all()) for priors, target in lists)
    return on_top and any(bool((priors < priors.max()).any()) for priors, _ in lists)


def fit(rows: list[dict[str, Any]]) -> BetaFit:
    """The cosine weight under which the embedding model alone best explains the lists (max likelihood of the
    positives, graded by gain), with a note when that is the search's limit rather than a maximum."""
    lists = _prepared(rows)
    if not lists:
        return BetaFit(DEFAULT_BETA, "no list with a positive to fit on: the default")
    if all(bool((priors >= priors.max()).all()) for priors, _ in lists):
        return BetaFit(DEFAULT_BETA, FLAT_NOTE)
    if separable(lists):
        return BetaFit(BETA_LIMIT, SEPARABLE_NOTE)

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
    if negative(upper) < negative(best) and upper >= BETA_LIMIT:
        return BetaFit(BETA_LIMIT, AT_LIMIT_NOTE)
    return BetaFit(round(best if negative(best) <= negative(upper) else upper, 4))


def fit_beta(rows: list[dict[str, Any]]) -> float:
    """`fit(rows).beta`: the cross-encoder then starts from exactly the embedding model's ranking."""
    return fit(rows).beta
