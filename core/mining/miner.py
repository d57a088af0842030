"""A mining run: sentence-transformers' miner fed from the embedding cache, random negatives on top, a
false-negative risk per candidate, and the result stored in one transaction (judged negatives are kept)."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from core import models, store
from core.errors import Cancelled
from core.mining.encoder import CachedEncoder
from core.mining.params import MiningParams
from core.mining.plan import Plan, cross_encoder_cost, plan
from core.mining.results import save_run
from core.mining.risk import run_risk
from core.mining.stale import close_stale_runs, owner
from core.progress import Progress, noop


def library_mine(p: Plan, encoder: Any, cross_encoder: Any = None) -> dict[str, list[tuple[int, float]]]:
    """Run sentence-transformers' miner; returns query text -> [(pool index, library score)] in its order."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    params = p.params
    dataset = Dataset.from_dict(
        {
            "query": [q for q, pos in zip(p.query_texts, p.positives) for _ in pos],
            "positive": [p.pool_texts[i] for pos in p.positives for i in pos],
        }
    )
    random.seed(params.seed)  # the library samples with the global `random`
    out = mine_hard_negatives(
        dataset,
        encoder,
        anchor_column_name="query",
        positive_column_name="positive",
        corpus=p.pool_texts,
        cross_encoder=cross_encoder if params.cross_encoder_rescoring else None,
        range_min=params.range_min,
        range_max=p.range_max,
        max_score=params.max_score,
        min_score=params.min_score,
        absolute_margin=params.absolute_margin,
        relative_margin=params.relative_margin,
        num_negatives=params.num_negatives,
        sampling_strategy=params.sampling_strategy,  # type: ignore[arg-type]  # MiningParams checks it is random or top
        output_format="labeled-pair",
        output_scores=True,
        batch_size=params.batch_size,
        faiss_batch_size=params.faiss_batch_size,
        use_faiss=params.use_faiss,
        verbose=False,
    )
    index_of = {t: i for i, t in enumerate(p.pool_texts)}
    positives = {q: set(pos) for q, pos in zip(p.query_texts, p.positives)}
    result: dict[str, list[tuple[int, float]]] = {q: [] for q in p.query_texts}
    cols = out.to_dict()
    for q, text, score in zip(cols["query"], cols["positive"], cols["score"]):
        i = index_of[text]
        if i not in positives[q]:
            result[q].append((i, float(score)))
    return result


def short_reason(params: MiningParams, cand: np.ndarray, pos_score: float, available: int) -> str:
    """Why one query got fewer negatives than asked: the filter that removed the most of its window."""
    removed = {}
    if params.absolute_margin is not None:
        removed["absolute_margin"] = int((cand + params.absolute_margin > pos_score).sum())
    if params.relative_margin is not None:
        removed["relative_margin"] = int((cand > pos_score - abs(pos_score) * params.relative_margin).sum())
    if params.max_score is not None:
        removed["max_score"] = int((cand > params.max_score).sum())
    if params.min_score is not None:
        removed["min_score"] = int((cand < params.min_score).sum())
    if params.cross_encoder_rescoring and params.has_filter:
        return "cross-encoder score filters"
    if removed and max(removed.values()) > 0:
        return max(removed, key=lambda k: removed[k])
    return (
        "corpus too small for the rank range"
        if available < params.range_min + params.num_negatives
        else "range_max"
    )


def _query_rows(
    p: Plan,
    qi: int,
    scores: np.ndarray,
    ordered: np.ndarray,
    hard: list[tuple[int, float]],
    rng: np.random.Generator,
    found: dict[str, Any],
) -> list[dict[str, Any]]:
    """One query's hard and random candidates with their scores and pool ranks; notes why it fell short."""
    params, pos, n_pool = p.params, p.positives[qi], len(p.pool_texts)
    pscores = scores[pos]
    found["positive_scores"].extend(float(x) for x in pscores)
    harder = int(np.argmin(pscores))  # margins are measured against the harder positive, as in the library
    pos_idx, pos_score = pos[harder], float(pscores[harder])
    picked = [i for i, _ in hard]
    found["per_query"].append(len(hard))
    if len(hard) < params.num_negatives:
        cand = np.delete(scores, pos)
        window = -np.partition(-cand, min(p.range_max, len(cand)) - 1)[: p.range_max]
        reason = short_reason(params, window, pos_score, len(cand))
        found["short"][reason] = found["short"].get(reason, 0) + 1
    taken = set(pos) | set(picked)
    randoms: list[int] = []
    while len(randoms) < params.random_negatives:
        i = int(rng.integers(n_pool))
        if i not in taken:
            taken.add(i)
            randoms.append(i)
    rows = []
    for kind, items in (("hard", picked), ("random", randoms)):
        for i in items:
            score = float(scores[i])
            # Rank 1 = the passage most similar to the query in the whole pool (positives included).
            rank = int(n_pool - np.searchsorted(ordered, score, side="right")) + 1
            rows.append(dict(q=qi, i=i, kind=kind, score=score, pos=pos_idx, pos_score=pos_score, rank=rank))
    return rows


def candidates(
    p: Plan, mined: dict[str, list[tuple[int, float]]], Q: np.ndarray, C: np.ndarray
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every query's candidates; query x pool similarities in chunks, so a large pool stays in memory."""
    rng = np.random.default_rng(p.params.seed)
    found: dict[str, Any] = {"short": {}, "per_query": [], "positive_scores": []}
    rows: list[dict[str, Any]] = []
    chunk = max(1, 2**26 // max(len(p.pool_texts), 1))  # ~256 MB of float32 scores per chunk
    for first in range(0, len(p.query_texts), chunk):
        S = Q[first : first + chunk] @ C.T
        S_sorted = np.sort(S, axis=1)
        for qi in range(first, min(first + chunk, len(p.query_texts))):
            rows += _query_rows(
                p, qi, S[qi - first], S_sorted[qi - first], mined[p.query_texts[qi]], rng, found
            )
        del S, S_sorted
    return rows, found


def second_opinion(ce: Any, p: Plan, rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """The cross-encoder's probability for each candidate and its risk: sigmoid(candidate - positive logit)."""
    import torch

    def logits(pairs: list[tuple[str, str]]) -> np.ndarray:
        return np.asarray(
            ce.predict(
                pairs,
                batch_size=p.params.batch_size,
                activation_fn=torch.nn.Identity(),
                show_progress_bar=False,
            ),
            dtype=float,
        )

    neg_logits = logits([(p.query_texts[r["q"]], p.pool_texts[r["i"]]) for r in rows])
    pos_pairs = sorted({(r["q"], r["pos"]) for r in rows})
    pos_logits = dict(zip(pos_pairs, logits([(p.query_texts[q], p.pool_texts[i]) for q, i in pos_pairs])))
    ce_scores = 1 / (1 + np.exp(-neg_logits))
    ce_risk = 1 / (1 + np.exp(-(neg_logits - np.array([pos_logits[(r["q"], r["pos"])] for r in rows]))))
    return ce_scores, ce_risk


def _run(
    conn: sqlite3.Connection, p: Plan, run_id: int, progress: Progress, cost: dict[str, Any]
) -> dict[str, Any]:
    """Embed (cached), mine, add random negatives, score risk and store; returns the run's stats."""
    params = p.params
    t0 = time.perf_counter()
    encoder = CachedEncoder(params.model, store.workspace_of(conn), progress)
    ce = (
        models.load_cross_encoder(params.cross_encoder, max_length=params.cross_encoder_max_length)
        if params.cross_encoder
        else None
    )
    mined = library_mine(p, encoder, ce)
    t_mine = time.perf_counter() - t0
    progress(0.8, "scoring risk")
    texts_c, C = encoder.embeddings["passages"]
    texts_q, Q = encoder.embeddings["queries"]
    assert texts_c == p.pool_texts, "the miner re-ordered the corpus"
    q_row = {t: i for i, t in enumerate(texts_q)}
    rows, found = candidates(p, mined, Q[[q_row[t] for t in p.query_texts]], C)
    ce_scores = ce_risk = None
    if ce is not None and rows:
        progress(0.82, "cross-encoder second opinion")
        ce_scores, ce_risk = second_opinion(ce, p, rows)
    risk = run_risk(rows, C, p.pool_texts, p.query_texts, ce_risk)
    progress(0.9, "saving")
    seconds = {
        "embedding": round(encoder.seconds, 2),
        "mining": round(t_mine, 2),
        "search_and_select": round(t_mine - encoder.seconds, 2),
    }
    stats = save_run(
        conn,
        p,
        run_id,
        rows,
        risk,
        ce_scores,
        found,
        {"cache": dict(encoder.cache), "cross_encoder_cost": cost, "seconds": seconds},
    )
    progress(1.0, "saved")
    return stats


def mine(
    conn: sqlite3.Connection,
    project: int,
    params: MiningParams,
    *,
    extra_corpus: Sequence[str] | str | Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Mine, score risk, and replace the project's unjudged negatives in one transaction; returns the stats."""
    started = time.perf_counter()
    p = plan(conn, project, params, extra_corpus)
    cost = cross_encoder_cost(p)
    close_stale_runs(conn, project)  # a run whose process died earlier stays 'running' no longer
    with store.transaction(conn):
        run_id = store.inserted_id(
            conn.execute(
                "INSERT INTO mining_runs (project_id, created_at, status, params, stats) VALUES (?, ?, 'running', ?, ?)",
                (project, store.now(), json.dumps(asdict(params)), json.dumps(owner())),
            )
        )
    try:
        stats = _run(conn, p, run_id, progress or noop, cost)
    except BaseException as exc:
        status = (
            "cancelled"
            if isinstance(exc, (Cancelled, KeyboardInterrupt))
            or type(exc).__name__ in ("StopException", "RerunException")
            else "failed"
        )
        with store.transaction(conn):
            conn.execute(
                "UPDATE mining_runs SET status = ?, stats = ? WHERE id = ?",
                (status, json.dumps({"error": f"{type(exc).__name__}: {exc}"}), run_id),
            )
        raise
    stats["seconds"]["total"] = round(time.perf_counter() - started, 2)
    conn.execute("UPDATE mining_runs SET stats = ? WHERE id = ?", (json.dumps(stats), run_id))
    return stats
