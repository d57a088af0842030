"""Score formulas shared by training and evaluation: z-scores, fusion with the first stage, residual score."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.scoring.metrics import rank_metrics

RESIDUAL = "residual"  # a run trained as logit + beta x embedding cosine
PRIMARY = "ndcg@10"  # the metric that chooses checkpoints and fusion weights


def zscore(x: np.ndarray) -> np.ndarray:
    """Scores centred and scaled within one candidate list (a constant list is only centred)."""
    x = np.asarray(x, dtype=float)
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 1e-9 else x - x.mean()


def fused_scores(ce: np.ndarray, first: np.ndarray, alpha: float) -> np.ndarray:
    """alpha x z(cross-encoder) + (1 - alpha) x z(first stage), z-scored within one query's candidates."""
    return alpha * zscore(np.asarray(ce, dtype=float)) + (1 - alpha) * zscore(np.asarray(first, dtype=float))


def residual_score(ce: Any, cosine: Any, beta: float) -> np.ndarray:
    """The score a residual run was trained to give: logit + beta x embedding cosine (training and evaluation)."""
    return np.asarray(ce, dtype=float) + float(beta) * np.asarray(cosine, dtype=float)


def choose_fusion(samples: list[dict[str, Any]], ce: list[np.ndarray]) -> dict[str, Any]:
    """Pick alpha on validation from a grid; alpha = 1 means the cross-encoder alone."""
    grid = [round(a, 2) for a in np.linspace(0, 1, 21)]
    results = {}
    for a in grid:
        fused = [fused_scores(c, s["first_stage_scores"], a) for c, s in zip(ce, samples)]
        results[a] = rank_metrics(samples, fused)[PRIMARY]
    best = max(grid, key=lambda a: (round(results[a], 6), a))
    return {
        "alpha": best,
        "validation_ndcg@10": results[best],
        "alone_validation_ndcg@10": results[1.0],
        "first_stage_validation_ndcg@10": results[0.0],
    }
