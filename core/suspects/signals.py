"""Held-out rankings: where the embedding model and BM25 (and any further held-out model, such as the out-of-fold
tuned embedding model of core.suspects.folds) put each labelled and each top-ranked passage for its query over the
project's whole passage pool. None of them ever trained on the label it checks."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.progress import Progress, noop
from core.scoring.first_stage import bm25_search
from core.store.rows import fetch_pairs, fetch_passages

MODELS = ("embedding", "BM25")
NEAR_DUPLICATE = 0.97  # cosine above which two passages say the same thing
CHUNK = 32  # queries scored at once: a chunk x pool score matrix stays small

Rows = Callable[[list[int]], np.ndarray]
"""rows(query ids) -> a query x pool score matrix, the pool in `pool_keys` order."""


@dataclass
class Labelled:
    """The labels a suspect search checks: per query its labelled passages, texts by id."""

    query_text: dict[int, str] = field(default_factory=dict)
    labels: dict[int, dict[int, float]] = field(default_factory=dict)  # query -> passage -> label
    passage_text: dict[int, str] = field(default_factory=dict)  # the whole pool
    judged_elsewhere: dict[int, set[int]] = field(default_factory=dict)  # mined candidates a person judged


@dataclass
class Signals:
    """Each model's rank (1 = best) of the pairs that matter, in a pool of `pool` passages."""

    models: tuple[str, ...]
    pool: int
    ranks: dict[tuple[int, int], tuple[int, ...]]  # (query, passage) -> rank per model
    top: dict[int, list[int]]  # query -> unlabelled passages some model puts in its top `top_k`
    near: dict[tuple[int, int], int] = field(default_factory=dict)  # labelled pair -> its opposite-label twin
    proposers: int = 0  # the last models only propose missing positives; they never judge a label

    @property
    def judges(self) -> tuple[str, ...]:
        """The models whose ranks judge labelled pairs."""
        return self.models[: len(self.models) - self.proposers]

    def judged(self, key: tuple[int, int]) -> tuple[int, ...] | None:
        """A labelled pair's ranks by the judging models (None: not ranked)."""
        ranks = self.ranks.get(key)
        return None if ranks is None else ranks[: len(self.judges)]


def read_labelled(conn: sqlite3.Connection, project: int, split: str = "train") -> Labelled:
    """The split's queries and labelled pairs, the project's passage pool, and the mined candidates already judged."""
    lab = Labelled()
    for r in conn.execute(  # a query whose every label was lost still asks for its missing positive
        "SELECT id, text FROM queries WHERE project_id = ? AND split = ? ORDER BY id", (project, split)
    ):
        lab.query_text[r["id"]] = r["text"]
    for p in fetch_pairs(conn, project, split):
        lab.query_text[p["query_id"]] = p["query"]
        lab.labels.setdefault(p["query_id"], {})[p["passage_id"]] = float(p["label"])
    lab.passage_text = {p["id"]: p["text"] for p in fetch_passages(conn, project)}
    for r in conn.execute(
        "SELECT query_id, passage_id FROM negatives WHERE project_id = ? AND status != 'unjudged'", (project,)
    ):
        lab.judged_elsewhere.setdefault(r["query_id"], set()).add(r["passage_id"])
    return lab


def pool_keys(lab: Labelled) -> list[int]:
    """The pool's passage ids in the order every score row's columns follow."""
    return list(lab.passage_text)


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of every column of one score row (ties broken by pool order)."""
    order = np.argsort(-scores, kind="stable")
    out = np.empty(len(scores), dtype=np.int64)
    out[order] = np.arange(1, len(scores) + 1)
    return out


@dataclass
class PoolVectors:
    """The embedding model's vectors of the whole pool (in `pool_keys` order) and of the split's queries."""

    keys: list[int]
    passages: np.ndarray
    queries: list[int]
    query_vectors: np.ndarray
    row_of: dict[int, int] = field(init=False)  # query id -> row of `query_vectors`
    column_of: dict[int, int] = field(init=False)  # passage id -> column of every pool-wide score row

    def __post_init__(self) -> None:
        self.row_of = {q: i for i, q in enumerate(self.queries)}
        self.column_of = {k: i for i, k in enumerate(self.keys)}

    def cosine(self, chunk: list[int]) -> np.ndarray:
        """Cosine rows of a chunk of queries against the whole pool."""
        return self.query_vectors[[self.row_of[q] for q in chunk]] @ self.passages.T


def pool_vectors(
    lab: Labelled, model: str | None = None, workspace: Path | None = None, progress: Progress = noop
) -> PoolVectors:
    """Embed the pool and the queries once: the embedding model's ranks and any proposer read the same vectors."""
    from core.embeddings import embed_texts

    def count(done: int, total: int) -> None:
        progress(done / total if total else 1.0, f"Embedding passages: {done:,} of {total:,}")

    keys = pool_keys(lab)
    passages = embed_texts([lab.passage_text[k] for k in keys], model, workspace=workspace, progress=count)
    queries = list(lab.query_text)
    vectors = embed_texts([lab.query_text[q] for q in queries], model, workspace=workspace)
    return PoolVectors(keys, passages, queries, vectors)


def _bm25_rows(lab: Labelled, keys: list[int], col: dict[int, int]) -> Callable[[list[int]], np.ndarray]:
    """A function giving the BM25 rows of a chunk of queries against the whole pool (`col`: passage -> column)."""
    corpus = {k: lab.passage_text[k] for k in keys}

    def rows(chunk: list[int]) -> np.ndarray:
        out = np.zeros((len(chunk), len(keys)), dtype=np.float32)
        for i, ranking in enumerate(bm25_search(corpus, [lab.query_text[q] for q in chunk], len(keys))):
            for key, score in ranking:
                out[i, col[key]] = score
        return out

    return rows


def held_out_ranks(
    lab: Labelled,
    vectors: PoolVectors,
    *,
    top_k: int = 10,
    extra: Sequence[tuple[str, Rows]] = (),
    proposers: Sequence[tuple[str, Rows]] = (),
    progress: Progress = noop,
) -> Signals:
    """Rank every labelled pair and each query's top unlabelled passages by each held-out model (the embedding
    model, BM25, then `extra`) and each proposer (ranks that only propose missing positives, never judge a label).
    A labelled positive is ranked among the passages that are not the query's other positives (five positives fill
    five places honestly)."""
    keys, col = vectors.keys, vectors.column_of
    scorers = [vectors.cosine, _bm25_rows(lab, keys, col), *(rows for _, rows in (*extra, *proposers))]
    queries = list(lab.query_text)
    ranks: dict[tuple[int, int], list[int]] = {}
    top: dict[int, list[int]] = {}
    for start in range(0, len(queries), CHUNK):
        chunk = queries[start : start + CHUNK]
        rows = [score(chunk) for score in scorers]
        for i, q in enumerate(chunk):
            per_model = [_ranks(row[i]) for row in rows]
            _rank_query(
                q,
                lab.labels.get(q, {}),
                lab.judged_elsewhere.get(q, set()),
                per_model,
                keys,
                col,
                top_k,
                ranks,
                top,
            )
        progress(min(1.0, (start + len(chunk)) / len(queries)), "Ranking with held-out models")
    near = near_duplicates(lab, vectors.passages, col)
    names = MODELS + tuple(name for name, _ in (*extra, *proposers))
    return Signals(names, len(keys), {k: tuple(v) for k, v in ranks.items()}, top, near, len(proposers))


def _rank_query(
    q: int,
    labels: dict[int, float],
    judged: set[int],
    per_model: list[np.ndarray],
    keys: list[int],
    col: dict[int, int],
    top_k: int,
    ranks: dict[tuple[int, int], list[int]],
    top: dict[int, list[int]],
) -> None:
    """One query's labelled ranks (a positive not penalised for the query's other positives above it) and its
    top unlabelled passages by any model."""
    positives = [col[p] for p, y in labels.items() if y > 0 and p in col]
    skip = labels.keys() | judged
    picked: dict[int, None] = {}
    for r in per_model:
        pos_ranks = np.sort(r[positives]) if positives else np.zeros(0, dtype=np.int64)
        for p, y in labels.items():
            if p in col:
                own = int(r[col[p]])
                above = int(np.searchsorted(pos_ranks, own)) if y > 0 else 0
                ranks.setdefault((q, p), []).append(own - above)
        best = np.argpartition(r, min(top_k + len(skip), len(r) - 1))[: top_k + len(skip)]
        taken = 0
        for j in best[np.argsort(r[best])]:
            if keys[j] not in skip:
                picked.setdefault(keys[j], None)
                taken += 1
                if taken == top_k:
                    break
    top[q] = list(picked)
    for p in top[q]:
        ranks[(q, p)] = [int(r[col[p]]) for r in per_model]


def near_duplicates(
    lab: Labelled, vectors: np.ndarray, col: dict[int, int], threshold: float = NEAR_DUPLICATE
) -> dict[tuple[int, int], int]:
    """Labelled pairs of one query whose passage is a near-copy (cosine >= threshold) of a passage the same query
    labels the other way: (query, passage) -> the other passage. One of the two labels must be wrong."""
    out: dict[tuple[int, int], int] = {}
    for q, labels in lab.labels.items():
        pos = [p for p, y in labels.items() if y > 0 and p in col]
        neg = [p for p, y in labels.items() if y <= 0 and p in col]
        if not pos or not neg:
            continue
        sims = vectors[[col[p] for p in pos]] @ vectors[[col[n] for n in neg]].T
        for i, j in zip(*np.nonzero(sims >= threshold)):
            out[(q, pos[i])] = neg[j]
            out[(q, neg[j])] = pos[i]
    return out
