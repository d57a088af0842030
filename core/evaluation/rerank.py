"""Reranking candidates: a base model's cross-encoder scores, and a run's scores through its Reranker — the ONE
call site for a run's score in evaluation (the run's formula, its cross-encoder part and its cosine prior)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core import models
from core.evaluation.common import Ranking
from core.evaluation.testsets import TestSet
from core.progress import Progress, noop
from core.runs.run_row import Run
from core.scoring.first_stage import bm25_scores, embedding_scores
from core.scoring.reranker import Reranker

Groups = list[tuple[str, list[str]]]  # (query text, passage texts)


def predict_pairs(
    model: Any,
    pairs: list[tuple[str, str]],
    *,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = 256,
) -> np.ndarray:
    """Cross-encoder scores in batches, reporting (done, total) between chunks."""
    out = []
    if progress:
        progress(0, len(pairs))
    for start in range(0, len(pairs), chunk):
        part = [list(p) for p in pairs[start : start + chunk]]
        out.append(
            np.asarray(
                model.predict(part, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True),
                dtype=float,
            ).reshape(-1)
        )
        if progress:
            progress(min(start + chunk, len(pairs)), len(pairs))
    return np.concatenate(out) if out else np.zeros(0)


def cross_encoder_scores(
    spec: str, max_length: int, groups: Groups, progress: Progress | None = None, message: str = "reranking"
) -> list[np.ndarray]:
    """Scores of a cross-encoder (model name or folder) for each (query, passages) group."""
    report = progress or noop
    flat = [(q, p) for q, ps in groups for p in ps]
    model = models.load_cross_encoder(spec, max_length=max_length)
    scores = predict_pairs(
        model, flat, progress=lambda d, t: report(d / t if t else 1.0, f"{message}: {d:,}/{t:,}")
    )
    del model
    out, at = [], 0
    for _, ps in groups:
        out.append(scores[at : at + len(ps)])
        at += len(ps)
    return out


def score_run(
    run: Run,
    groups: Groups,
    progress: Progress | None = None,
    message: str = "reranking",
    workspace: Path | None = None,
) -> tuple[Reranker, list[dict[str, np.ndarray]]]:
    """A run's Reranker and its parts per group: `score` (the run's, as evaluated), `cross_encoder`, `cosine`.

    Every run's score in evaluation comes from here: the Reranker applies the run's formula, evaluation none."""
    report = progress or noop
    reranker = Reranker.load(
        run.source,
        max_length=int(run.config["max_length"]),
        workspace=workspace,
    )
    return reranker, reranker.score_parts(groups, lambda f, m: report(f, f"{message}: {m}"))


def order(keys: list[str], scores: np.ndarray) -> Ranking:
    """Keys by score, best first; ties keep the first-stage order."""
    idx = np.argsort(-np.asarray(scores, float), kind="stable")
    return [(keys[i], float(scores[i])) for i in idx]


def rank(
    groups: list[tuple[str, list[str]]], fs_lists: dict[str, Ranking], per_query: dict[str, dict[str, float]]
) -> tuple[dict[str, Ranking], dict[str, Ranking]]:
    """Main rankings (the first stage's candidates only) and oracle rankings (with the added relevant passages)."""
    real, orc = {}, {}
    for q, ds in groups:
        keys = [d for d, _ in fs_lists[q]]
        real[q] = order(keys, np.array([per_query[q][d] for d in keys]))
        orc[q] = order(ds, np.array([per_query[q][d] for d in ds]))
    return real, orc


def fusion_first_stage(
    ts: TestSet,
    groups: list[tuple[str, list[str]]],
    fusion: dict[str, Any],
    first_stage: str,
    fs_lists: dict[str, Ranking],
    workspace: Path,
) -> dict[str, np.ndarray]:
    """The first-stage scores a blend recorded only in the run's record was fitted on (e.g. BM25, which no
    Reranker carries), for every candidate; the blend's formula itself is the Reranker's `combine`."""
    kind = str(fusion.get("first_stage") or "embedding")
    if kind.startswith("bm25"):
        if first_stage == "bm25":
            out = {}
            for q, ds in groups:
                known = dict(fs_lists[q])
                extra = [d for d in ds if d not in known]
                more = dict(zip(extra, bm25_scores(ts.corpus, ts.queries[q], extra))) if extra else {}
                out[q] = np.array([known.get(d, more.get(d, 0.0)) for d in ds])
            return out
        return {q: bm25_scores(ts.corpus, ts.queries[q], ds) for q, ds in groups}
    spec = kind.split(":", 1)[1] if ":" in kind else None
    scores = embedding_scores(
        [(ts.queries[q], [ts.corpus[d] for d in ds]) for q, ds in groups], spec, workspace
    )
    return {q: s for (q, _), s in zip(groups, scores)}
