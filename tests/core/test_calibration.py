"""Score -> P(relevant): a monotone map fitted on labelled pairs, applied with numpy alone, and its ECE."""

from __future__ import annotations

import numpy as np
import pytest

from core.scoring.calibration import (
    apply_calibration,
    expected_calibration_error,
    fit_calibration,
    reliability,
)


def _pairs(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores on an unbounded scale (like logit + beta x cosine) whose true P(relevant) is a logistic of them."""
    rng = np.random.default_rng(seed)
    s = rng.normal(0, 8, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.4 * s - 2)))).astype(float)
    return s, y


def test_isotonic_is_monotone_bounded_and_predicts_like_sklearn():
    from sklearn.isotonic import IsotonicRegression

    s, y = _pairs()
    cal = fit_calibration(s, y)
    assert cal.method == "isotonic" and cal.pairs == 2000 and cal.positives == int(y.sum())
    grid = np.linspace(-60, 60, 500)
    p = apply_calibration(cal.to_dict(), grid)
    assert np.all(np.diff(p) >= 0) and p.min() >= 0 and p.max() <= 1
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(s, y)
    assert np.allclose(p, iso.predict(grid), atol=1e-12)
    held_s, held_y = _pairs(seed=1)
    assert expected_calibration_error(apply_calibration(cal, held_s), held_y) < 0.05
    # the raw score squashed by a plain sigmoid is far from calibrated on this scale
    assert expected_calibration_error(apply_calibration(None, held_s), held_y) > 0.1


def test_platt_recovers_the_logistic_without_sklearn():
    s, y = _pairs(20000)
    cal = fit_calibration(s, y, method="platt")
    assert cal.method == "platt" and abs(cal.a - 0.4) < 0.05 and abs(cal.b + 2) < 0.2
    assert cal.ece is not None and cal.ece < 0.03
    p = apply_calibration(cal.to_dict(), np.array([-5.0, 0.0, 5.0]))
    assert np.all(np.diff(p) > 0)


def test_ece_and_reliability_on_known_values():
    probs = np.array([0.05, 0.05, 0.95, 0.95, 0.55, 0.55])
    labels = np.array([0, 0, 1, 1, 1, 1])
    rows = reliability(probs, labels)
    assert [(r["count"], r["observed"]) for r in rows] == [(2, 0.0), (2, 1.0), (2, 1.0)]
    # gaps 0.05, 0.45 and 0.05, each over a third of the pairs
    assert expected_calibration_error(probs, labels) == pytest.approx((0.05 + 0.45 + 0.05) / 3)
    assert expected_calibration_error(np.array([1.0, 0.0]), np.array([1, 0])) == 0.0


def test_fit_refuses_one_class_and_mismatched_lengths():
    with pytest.raises(ValueError, match="both relevant and non-relevant"):
        fit_calibration(np.array([1.0, 2.0]), np.array([0, 0]))
    with pytest.raises(ValueError, match="as many labels as scores"):
        fit_calibration(np.array([1.0, 2.0]), np.array([0]))
    with pytest.raises(ValueError, match="Unknown calibration method"):
        fit_calibration(np.array([1.0, 2.0]), np.array([0, 1]), method="beta")
