"""First-stage retrieval — the ONE BM25, the ONE embedding search (exact cosine) and their reciprocal-rank fusion
(hybrid), used by training and evaluation.

A corpus is a mapping passage key -> text (keys may be strings or ints); a ranking is a list of
(key, score), best first. An empty corpus gives empty rankings; callers that need a corpus say so themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Ranking = list[tuple[Any, float]]  # (passage key, score), best first
Count = Callable[[int, int], None]  # (done, total) while passages are embedded

_BM25_CACHE: dict[str, Any] = {}


def _fingerprint(corpus: Mapping[Any, str]) -> str:
    """Identity of a corpus (keys and texts), so one BM25 index serves repeated searches."""
    h = hashlib.sha1()
    for k, text in corpus.items():
        h.update(f"{k!r}\x01{hashlib.sha1(text.encode()).hexdigest()}\x00".encode())
    return h.hexdigest()


def _bm25_index(corpus: Mapping[Any, str]) -> tuple[Any, Any, list[Any]]:
    """The BM25 index of a corpus (built once, the last one cached)."""
    import bm25s

    keys = list(corpus)
    fp = _fingerprint(corpus)
    if fp not in _BM25_CACHE:
        tokenizer = bm25s.tokenization.Tokenizer(stopwords="en", lower=True)
        ids = tokenizer.tokenize(
            [corpus[k] for k in keys], update_vocab=True, return_as="ids", show_progress=False
        )
        retriever = bm25s.BM25()
        retriever.index(ids, show_progress=False)
        _BM25_CACHE.clear()
        _BM25_CACHE[fp] = (retriever, tokenizer, keys)
    return _BM25_CACHE[fp]


def bm25_search(corpus: Mapping[Any, str], queries: Sequence[str], k: int) -> list[Ranking]:
    """Top-k passages per query by BM25 (bm25s, Lucene variant, English stop words)."""
    if not corpus:
        return [[] for _ in queries]
    retriever, tokenizer, keys = _bm25_index(corpus)
    q_ids = tokenizer.tokenize(list(queries), update_vocab=False, return_as="ids", show_progress=False)
    k = min(k, len(keys))
    docs, scores = retriever.retrieve(q_ids, k=k, show_progress=False, n_threads=1)
    return [[(keys[int(d)], float(s)) for d, s in zip(drow, srow)] for drow, srow in zip(docs, scores)]


def bm25_scores(corpus: Mapping[Any, str], query: str, keys: Sequence[Hashable]) -> np.ndarray:
    """BM25 scores of chosen passages for one query (0 for a key outside the corpus)."""
    if not corpus:
        return np.zeros(len(keys))
    retriever, tokenizer, all_keys = _bm25_index(corpus)
    q = tokenizer.tokenize([query], update_vocab=False, return_as="ids", show_progress=False)[0]
    full = retriever.get_scores(q)
    pos = {key: i for i, key in enumerate(all_keys)}
    return np.asarray([float(full[pos[key]]) if key in pos else 0.0 for key in keys])


def top_k(sims: np.ndarray, keys: Sequence[Hashable], k: int) -> list[Ranking]:
    """The k best keys of each similarity row, best first (ties keep corpus order)."""
    k = min(k, len(keys))
    out = []
    for row in sims:
        top = np.argpartition(-row, k - 1)[:k] if k else np.zeros(0, dtype=int)
        top = top[np.argsort(-row[top], kind="stable")]
        out.append([(keys[int(j)], float(row[j])) for j in top])
    return out


def embedding_search(
    corpus: Mapping[Any, str],
    queries: Sequence[str],
    k: int,
    model_spec: str | None = None,
    *,
    workspace: Path | None = None,
    progress: Count | None = None,
) -> list[Ranking]:
    """Top-k passages per query by cosine similarity, exact search over cached (normalized) embeddings."""
    from core.embeddings import embed_texts

    if not corpus or not queries:
        return [[] for _ in queries]
    keys = list(corpus)
    P = embed_texts([corpus[x] for x in keys], model_spec, workspace=workspace, progress=progress)
    Q = embed_texts(list(queries), model_spec, workspace=workspace)
    return top_k(Q @ P.T, keys, k)


def embedding_scores(
    groups: Sequence[tuple[str, Sequence[str]]], model_spec: str | None, workspace: Path | None = None
) -> list[np.ndarray]:
    """Cosine scores of (query, passages) groups, e.g. a residual run's prior or a fusion's first stage."""
    from core.embeddings import embed_texts

    texts = [q for q, _ in groups] + [p for _, ps in groups for p in ps]
    if not texts:
        return []
    vec = embed_texts(texts, model_spec, workspace=workspace)
    qv, at, out = vec[: len(groups)], len(groups), []
    for i, (_, ps) in enumerate(groups):
        out.append(vec[at : at + len(ps)] @ qv[i])
        at += len(ps)
    return out


RRF_K = 60  # reciprocal rank fusion's constant (Cormack, Clarke and Buettcher, SIGIR 2009)
HYBRID_DEPTH = 100  # ranks of each first stage that the fusion looks at
FIRST_STAGES = ("bm25", "embedding", "hybrid")


def rrf(rankings: Sequence[Ranking], k: int, constant: int = RRF_K) -> Ranking:
    """Reciprocal rank fusion: each passage scores sum(1 / (constant + rank)) over the rankings; the best k, ties in
    order of first appearance."""
    scores: dict[Any, float] = {}
    for ranking in rankings:
        for rank, (key, _) in enumerate(ranking, 1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (constant + rank)
    return sorted(scores.items(), key=lambda kv: -kv[1])[:k]


def hybrid_search(
    corpus: Mapping[Any, str],
    queries: Sequence[str],
    k: int,
    model_spec: str | None = None,
    *,
    workspace: Path | None = None,
    progress: Count | None = None,
) -> list[Ranking]:
    """Top-k passages per query by BM25 and the embedding model fused by reciprocal rank (scores are RRF scores):
    words the embedding model blurs and meanings BM25 misses both reach the reranker's candidates."""
    depth = max(k, HYBRID_DEPTH)
    lexical = bm25_search(corpus, queries, depth)
    dense = embedding_search(corpus, queries, depth, model_spec, workspace=workspace, progress=progress)
    return [rrf([b, e], k) for b, e in zip(lexical, dense)]


def search(
    kind: str,
    corpus: Mapping[Any, str],
    queries: Sequence[str],
    k: int,
    model_spec: str | None = None,
    *,
    workspace: Path | None = None,
    progress: Count | None = None,
) -> list[Ranking]:
    """The named first stage's top k (bm25 | embedding | hybrid), the one entry every caller offering a choice uses."""
    if kind == "bm25":
        return bm25_search(corpus, queries, k)
    if kind == "embedding":
        return embedding_search(corpus, queries, k, model_spec, workspace=workspace, progress=progress)
    if kind == "hybrid":
        return hybrid_search(corpus, queries, k, model_spec, workspace=workspace, progress=progress)
    raise ValueError(f"Unknown first stage {kind!r}: choose one of {', '.join(FIRST_STAGES)}.")
