"""False-negative risk of each mined candidate: how far it stands out from the run's typical hard negative."""

from __future__ import annotations

from typing import Any

import numpy as np

from core import store

_TFIDF: dict[str, Any] = {}


def z_against_reference(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """z-scores of `x` measured against the mean and spread of `reference` (not of x itself)."""
    sd = float(reference.std()) or 1.0
    return (x - float(reference.mean())) / sd


def risk_scores(
    features: dict[str, np.ndarray], reference: np.ndarray, ce_risk: np.ndarray | None = None
) -> np.ndarray:
    """False-negative risk in [0, 1]: how far a candidate stands out, on five signals, from the run's typical
    hard negative. Signals: similarity to the query, the same relative to the positive's, similarity to the
    positive passage (dense and lexical: a near-duplicate of the positive likely answers too), and lexical
    overlap with the query. Equal weights on z-scores (no fitted weights); a cross-encoder's opinion, when
    given, is averaged in."""
    z = np.mean([z_against_reference(v, v[reference]) for v in features.values()], axis=0)
    risk = 1.0 / (1.0 + np.exp(-2.0 * z))
    if ce_risk is not None:
        risk = 0.5 * risk + 0.5 * ce_risk
    return np.clip(risk, 0.0, 1.0)


def tfidf(pool: list[str]) -> tuple[Any, Any]:
    """TF-IDF of the pool, fitted once per pool per process (re-runs with other parameters reuse it)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    key = store.text_hash("\x00".join(pool))
    if _TFIDF.get("key") != key:
        vec = TfidfVectorizer(sublinear_tf=True, stop_words="english", dtype=np.float32)
        _TFIDF.update(key=key, vec=vec, matrix=vec.fit_transform(pool).tocsr())
    return _TFIDF["vec"], _TFIDF["matrix"]


def lexical(
    pool: list[str], queries: list[str], idx_n: np.ndarray, idx_p: np.ndarray, q_of: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """TF-IDF cosine of each negative with its positive and with its query."""
    vec, P = tfidf(pool)
    Qm = vec.transform(queries).tocsr()
    neg = P[idx_n]
    to_pos = np.asarray(neg.multiply(P[idx_p]).sum(axis=1)).ravel()
    to_query = np.asarray(neg.multiply(Qm[q_of]).sum(axis=1)).ravel()
    return to_pos, to_query


def run_risk(
    rows: list[dict[str, Any]],
    vectors: np.ndarray,
    pool: list[str],
    queries: list[str],
    ce_risk: np.ndarray | None,
) -> np.ndarray:
    """The risk of every candidate row of a run (hard negatives are the reference when there are any)."""
    if not rows:
        return np.zeros(0)
    s = np.array([r["score"] for r in rows])
    ps = np.array([r["pos_score"] for r in rows])
    idx_n = np.array([r["i"] for r in rows])
    idx_p = np.array([r["pos"] for r in rows])
    dense_pos = np.einsum("ij,ij->i", vectors[idx_n], vectors[idx_p])
    lex_pos, lex_query = lexical(pool, queries, idx_n, idx_p, np.array([r["q"] for r in rows]))
    hard_mask = np.array([r["kind"] == "hard" for r in rows])
    reference = hard_mask if hard_mask.any() else np.ones(len(rows), dtype=bool)
    return risk_scores(
        {
            "score": s,
            "score_minus_positive": s - ps,
            "dense_to_positive": dense_pos,
            "lexical_to_positive": lex_pos,
            "lexical_to_query": lex_query,
        },
        reference,
        ce_risk,
    )
