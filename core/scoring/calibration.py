"""From a run's score to P(relevant): a monotone map fitted on validation, so a threshold means the same in any project.

The map is stored as plain numbers (isotonic: the breakpoints, applied by linear interpolation and clipped at the
ends, exactly as sklearn's IsotonicRegression predicts; Platt: slope and intercept of a logistic), so a bundle's
standalone loader applies it with numpy alone. The order of passages never changes: the map is non-decreasing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.errors import UserError

ISOTONIC = "isotonic"
PLATT = "platt"
ECE_BINS = 10


@dataclass(frozen=True)
class Calibration:
    """A fitted score -> probability map and what it was fitted on (written into a bundle's spec)."""

    method: str
    x: list[float] = field(default_factory=list)  # isotonic breakpoints (scores)
    y: list[float] = field(default_factory=list)  # isotonic probabilities at the breakpoints
    a: float = 1.0  # Platt: p = 1 / (1 + exp(-(a * score + b)))
    b: float = 0.0
    pairs: int = 0
    positives: int = 0
    fitted_on: str = "validation"
    ece: float | None = None  # on the pairs it was fitted on (in-sample)

    def to_dict(self) -> dict:
        """The JSON form stored in rerank_spec.json."""
        return asdict(self)


def apply_calibration(calibration: dict | Calibration | None, scores: np.ndarray) -> np.ndarray:
    """P(relevant) for each score; without a calibration, a sigmoid of the score (bounded, not a probability)."""
    s = np.asarray(scores, dtype=float)
    cal = calibration.to_dict() if isinstance(calibration, Calibration) else calibration
    if not cal:
        return 1.0 / (1.0 + np.exp(-s))
    if cal["method"] == ISOTONIC:
        return np.interp(s, np.asarray(cal["x"], dtype=float), np.asarray(cal["y"], dtype=float))
    return 1.0 / (1.0 + np.exp(-(float(cal["a"]) * s + float(cal["b"]))))


def _platt(scores: np.ndarray, labels: np.ndarray, steps: int = 100) -> tuple[float, float]:
    """Logistic fit of labels on scores by Newton's method, with Platt's smoothed targets (no sklearn needed)."""
    n_pos, n_neg = float(labels.sum()), float(len(labels) - labels.sum())
    t = np.where(labels > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    mu, sd = float(scores.mean()), float(scores.std()) or 1.0
    z = (scores - mu) / sd
    w = np.zeros(2)
    design = np.stack([z, np.ones_like(z)], axis=1)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(design @ w)))
        grad = design.T @ (p - t)
        hess = design.T @ (design * (p * (1 - p))[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(w[0] / sd), float(w[1] - w[0] * mu / sd)


def fit_calibration(
    scores: np.ndarray, labels: np.ndarray, method: str = "auto", fitted_on: str = "validation"
) -> Calibration:
    """Fit the map on (score, relevant?) pairs: isotonic when sklearn is installed (auto), else Platt."""
    s = np.asarray(scores, dtype=float).reshape(-1)
    y = (np.asarray(labels, dtype=float).reshape(-1) > 0).astype(float)
    if len(s) != len(y) or not len(s):
        raise UserError(f"Calibration needs as many labels as scores (got {len(s)} scores, {len(y)} labels).")
    if y.min() == y.max():
        raise UserError(
            "Calibration needs both relevant and non-relevant pairs; the fitting set has one kind."
        )
    if method == "auto":
        try:
            import sklearn.isotonic  # noqa: F401

            method = ISOTONIC
        except ImportError:
            method = PLATT
    common: dict[str, Any] = {"pairs": len(s), "positives": int(y.sum()), "fitted_on": fitted_on}
    if method == ISOTONIC:
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(s, y)
        cal = Calibration(ISOTONIC, x=iso.X_thresholds_.tolist(), y=iso.y_thresholds_.tolist(), **common)
    elif method == PLATT:
        a, b = _platt(s, y)
        cal = Calibration(PLATT, a=a, b=b, **common)
    else:
        raise UserError(f"Unknown calibration method {method!r}: use auto, {ISOTONIC} or {PLATT}.")
    ece = expected_calibration_error(apply_calibration(cal, s), y)
    return Calibration(**{**cal.to_dict(), "ece": round(ece, 6)})


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, float]]:
    """Equal-width bins of predicted probability: mean prediction, observed share relevant and count (the plot)."""
    p = np.clip(np.asarray(probs, dtype=float).reshape(-1), 0.0, 1.0)
    y = (np.asarray(labels, dtype=float).reshape(-1) > 0).astype(float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            out.append(
                {
                    "lower": b / bins,
                    "upper": (b + 1) / bins,
                    "predicted": float(p[mask].mean()),
                    "observed": float(y[mask].mean()),
                    "count": int(mask.sum()),
                }
            )
    return out


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: the count-weighted mean gap between predicted probability and observed share, over equal-width bins."""
    rows = reliability(probs, labels, bins)
    total = sum(r["count"] for r in rows)
    if not total:
        return 0.0
    return float(sum(r["count"] * abs(r["predicted"] - r["observed"]) for r in rows) / total)
