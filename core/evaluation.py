"""Honest before/after evaluation of rerankers: first stage alone, base model, fine-tuned runs, per query.

Two kinds of figures are kept apart everywhere:
- realistic: the reranker sees only the first stage's top-k candidates (what a user will get);
- oracle: every relevant passage is added to the candidates (an upper bound on reranking, never shown as real).

Metrics follow trec_eval (checked against pytrec_eval in the tests): NDCG@10 with linear graded gains and the ideal
ranking over all judged passages, MRR@10, MAP and Recall@k with "relevant" = label > 0.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import shutil
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import models, store, training

Progress = Callable[[str, int, int], None]  # (phase, done, total)
Ranking = list[tuple[str, float]]  # (passage key, score), best first

FIRST_STAGES = {"bm25": "BM25 (bm25s)", "embedding": "embedding model (exact search)", "file": "candidates from the file"}
FUSION_FILE = training.FUSION_FILE
RESIDUAL = training.RESIDUAL  # a run trained as logit + beta x embedding cosine
SNIPPET = 400
REALISTIC_NOTE = "realistic: the reranker sees only the first stage's top-k candidates"
ORACLE_NOTE = ("oracle: every relevant passage is added to the candidates — an upper bound on reranking, "
               "not a figure a user will see")
RANDOM_HEAD_NOTE = ("the base model is a bare encoder: its one-logit head is new and random, so its figures are "
                    "arbitrary and not a meaningful baseline")


class EvaluationError(ValueError):
    """An evaluation request a person must change (no test set, unfinished run, bad file, unsafe path)."""


# --- metrics (trec_eval semantics) ------------------------------------------------------------


def ndcg_at(ranking: Sequence[str], qrels: dict[str, float], k: int = 10) -> float:
    """NDCG@k with linear gains (trec_eval ndcg_cut): the ideal uses every judged passage, retrieved or not."""
    dcg = sum(max(qrels.get(d, 0.0), 0.0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at(ranking: Sequence[str], qrels: dict[str, float], k: int = 10) -> float:
    """Reciprocal rank of the first relevant passage within the top k (0 when none)."""
    for i, d in enumerate(ranking[:k]):
        if qrels.get(d, 0.0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def average_precision(ranking: Sequence[str], qrels: dict[str, float]) -> float:
    """AP over the whole list; relevant passages never retrieved count as missed (trec_eval map)."""
    n_rel = sum(1 for g in qrels.values() if g > 0)
    if not n_rel:
        return 0.0
    hits, total = 0, 0.0
    for i, d in enumerate(ranking):
        if qrels.get(d, 0.0) > 0:
            hits += 1
            total += hits / (i + 1)
    return total / n_rel


def recall_at(ranking: Sequence[str], qrels: dict[str, float], k: int) -> float:
    """Share of the relevant passages found in the top k."""
    rel = {d for d, g in qrels.items() if g > 0}
    return len(rel.intersection(ranking[:k])) / len(rel) if rel else 0.0


def metric_names(top_k: int) -> list[str]:
    """The reported metrics; Recall@top-k is the candidate recall (the ceiling a reranker cannot pass)."""
    names = ["ndcg@10", "mrr@10", "map", "recall@10"]
    if top_k != 10:
        names.append(f"recall@{top_k}")
    return names


def query_metrics(ranking: Sequence[str], qrels: dict[str, float], top_k: int) -> dict[str, float]:
    """All reported metrics of one ranked list."""
    out = {"ndcg@10": ndcg_at(ranking, qrels, 10), "mrr@10": mrr_at(ranking, qrels, 10),
           "map": average_precision(ranking, qrels), "recall@10": recall_at(ranking, qrels, 10)}
    if top_k != 10:
        out[f"recall@{top_k}"] = recall_at(ranking, qrels, top_k)
    return out


# --- statistics over queries --------------------------------------------------------------------


def bootstrap_ci(values: Sequence[float], *, n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap over queries: how much the mean could move with another sample of queries."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return (float(lo), float(hi))


def paired_test(a: Sequence[float], b: Sequence[float], *, n: int = 10000, seed: int = 0) -> dict[str, Any]:
    """Paired randomization (sign-flip) test of mean(b - a) over the same queries, two-sided, plus a bootstrap CI."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if d.size == 0:
        return {"mean_diff": 0.0, "p_value": 1.0, "ci": [0.0, 0.0], "n": 0, "method": "paired randomization"}
    observed = abs(float(d.mean()))
    rng = np.random.default_rng(seed)
    extreme, done = 0, 0
    while done < n:
        m = min(2000, n - done)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(m, d.size))
        extreme += int((np.abs((signs * d).mean(axis=1)) >= observed - 1e-12).sum())
        done += m
    lo, hi = bootstrap_ci(d, seed=seed)
    return {"mean_diff": float(d.mean()), "p_value": (extreme + 1) / (n + 1), "ci": [lo, hi], "n": int(d.size),
            "wins": int((d > 1e-12).sum()), "losses": int((d < -1e-12).sum()), "ties": int((np.abs(d) <= 1e-12).sum()),
            "method": f"paired randomization test (sign flips, {n} draws), two-sided"}


def best_threshold(relevant: Sequence[float], non_relevant: Sequence[float]) -> dict[str, float] | None:
    """The score cut-off that maximizes F1 of 'relevant' on these labels (optimistic: chosen on the test labels)."""
    scores = np.concatenate([np.asarray(relevant, float), np.asarray(non_relevant, float)])
    labels = np.concatenate([np.ones(len(relevant)), np.zeros(len(non_relevant))])
    if not len(relevant) or not scores.size:
        return None
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    k = np.arange(1, len(s) + 1)
    # only cut between distinct scores
    last = np.r_[s[1:] != s[:-1], True]
    precision, recall = tp / k, tp / len(relevant)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    f1 = np.where(last, f1, -1)
    i = int(np.argmax(f1))
    return {"threshold": float(s[i]), "f1": float(f1[i]), "precision": float(precision[i]), "recall": float(recall[i]),
            "chosen_on": "the test labels (optimistic; confirm on fresh data)"}


# --- test sets --------------------------------------------------------------------------------


@dataclass
class TestSet:
    """Queries with judged passages, the corpus the first stage searches, and candidates a file may give."""

    name: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, float]]
    corpus: dict[str, str]
    query_ids: dict[str, int | None] = field(default_factory=dict)  # key -> project query id (Review link)
    candidates: dict[str, Ranking] | None = None
    notes: list[str] = field(default_factory=list)


def project_test_set(conn: sqlite3.Connection, project: int) -> TestSet:
    """The project's test split (queries split='test' and their pairs); corpus = all project passages."""
    rows = conn.execute(
        """SELECT p.query_id, p.passage_id, p.label, q.text FROM pairs p JOIN queries q ON q.id = p.query_id
           WHERE p.project_id = ? AND q.split = 'test' ORDER BY p.query_id, p.id""", (project,)).fetchall()
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, float]] = {}
    for r in rows:
        key = str(r["query_id"])
        queries[key] = r["text"]
        qrels.setdefault(key, {})[str(r["passage_id"])] = float(r["label"])
    corpus = {str(p["id"]): p["text"] for p in store.fetch_passages(conn, project)}
    ts = TestSet("project test set", queries, qrels, corpus, {k: int(k) for k in queries})
    return _drop_unjudged(ts)


def _drop_unjudged(ts: TestSet) -> TestSet:
    empty = [q for q in ts.queries if not any(g > 0 for g in ts.qrels.get(q, {}).values())]
    for q in empty:
        ts.queries.pop(q)
        ts.qrels.pop(q, None)
    if empty:
        ts.notes.append(f"{len(empty)} test queries have no relevant passage and are left out.")
    if not ts.queries:
        raise EvaluationError(f"The {ts.name} has no query with a relevant passage (label > 0): nothing to evaluate.")
    return ts


_COLUMNS = {
    "query": ("query", "question", "anchor", "query_text"),
    "passage": ("passage", "document", "text", "doc", "positive", "passage_text", "corpus_text"),
    "label": ("label", "relevance", "grade", "score_label", "rel"),
    "score": ("score", "first_stage_score", "candidate_score", "bm25_score"),
    "rank": ("rank", "position"),
}


def read_test_file(data: bytes, filename: str, conn: sqlite3.Connection | None = None,
                   project: int | None = None) -> TestSet:
    """An uploaded test set (CSV, TSV, JSONL, Parquet): query, passage, label [, score | rank] per row.

    Rows with label 0 are judged non-relevant. When the file lists several passages per query, they are the
    "candidates from the file" (ordered by score, else rank, else file order). The corpus is the project's
    passages plus the file's.
    """
    import pandas as pd

    suffix = Path(filename).suffix.lower()
    try:
        if suffix in (".csv", ".tsv", ".txt"):
            df = pd.read_csv(io.BytesIO(data), sep="\t" if suffix == ".tsv" else None, engine="python", dtype=str,
                             keep_default_na=False)
        elif suffix in (".jsonl", ".json"):
            df = pd.read_json(io.BytesIO(data), lines=suffix == ".jsonl", dtype=False)
        elif suffix == ".parquet":
            df = pd.read_parquet(io.BytesIO(data))
        else:
            raise EvaluationError(f"{filename}: unsupported file type {suffix!r}; use CSV, TSV, JSONL or Parquet.")
    except EvaluationError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure is the file's problem
        raise EvaluationError(f"{filename}: could not be read ({exc}).") from exc
    lower = {str(c).strip().lower(): c for c in df.columns}
    found = {role: next((lower[a] for a in aliases if a in lower), None) for role, aliases in _COLUMNS.items()}
    for role in ("query", "passage"):
        if found[role] is None:
            raise EvaluationError(f"{filename}: no {role} column (expected one of {', '.join(_COLUMNS[role])}); "
                                  f"found {', '.join(map(str, df.columns))}.")
    known: dict[str, str] = {}
    if conn is not None and project is not None:
        known = {store.text_hash(p["text"]): str(p["id"]) for p in store.fetch_passages(conn, project)}
    corpus = {} if conn is None or project is None else {str(p["id"]): p["text"] for p in store.fetch_passages(conn, project)}
    queries: dict[str, str] = {}
    qkeys: dict[str, str] = {}
    qrels: dict[str, dict[str, float]] = {}
    listed: dict[str, list[tuple[str, float, int]]] = {}
    for i, row in enumerate(df.to_dict("records")):
        line = i + 2 if suffix in (".csv", ".tsv", ".txt") else i + 1
        q = str(row[found["query"]] or "").strip()
        p = str(row[found["passage"]] or "").strip()
        if not q or not p:
            col = found["query"] if not q else found["passage"]
            raise EvaluationError(f"{filename}, row {line}, column {col!r}: empty text.")
        label = 1.0
        if found["label"] is not None:
            try:
                label = float(row[found["label"]])
            except (TypeError, ValueError):
                raise EvaluationError(f"{filename}, row {line}, column {found['label']!r}: label "
                                      f"{row[found['label']]!r} is not a number.") from None
        order_value = float(-i)
        for role, sign in (("score", 1.0), ("rank", -1.0)):
            if found[role] is not None and str(row[found[role]]).strip() != "":
                try:
                    order_value = sign * float(row[found[role]])
                except (TypeError, ValueError):
                    raise EvaluationError(f"{filename}, row {line}, column {found[role]!r}: "
                                          f"{row[found[role]]!r} is not a number.") from None
                break
        qk = qkeys.setdefault(q, f"u{len(qkeys)}")
        queries[qk] = q
        h = store.text_hash(p)
        pk = known.get(h) or f"f{h[:12]}"
        corpus.setdefault(pk, p)
        qrels.setdefault(qk, {})[pk] = max(label, qrels.get(qk, {}).get(pk, label))
        listed.setdefault(qk, []).append((pk, order_value, i))
    candidates = {q: [(pk, s) for pk, s, _ in sorted(v, key=lambda t: (-t[1], t[2]))] for q, v in listed.items()}
    ts = TestSet(filename, queries, qrels, corpus, {k: None for k in queries}, candidates)
    if not any(any(qrels[q][pk] <= 0 for pk, _ in c) for q, c in candidates.items()):
        ts.candidates = None
        ts.notes.append("The file lists no non-relevant passage, so it gives no candidates: pick BM25 or the "
                        "embedding model as the first stage.")
    return _drop_unjudged(ts)


# --- first stages -------------------------------------------------------------------------------

_BM25_CACHE: dict[str, Any] = {}


def _bm25_index(corpus: dict[str, str]) -> tuple[Any, Any, list[str]]:
    import bm25s

    keys = list(corpus)
    fp = hashlib.sha1("\x00".join(k + "\x01" + store.text_hash(corpus[k]) for k in keys).encode()).hexdigest()
    if fp not in _BM25_CACHE:
        tokenizer = bm25s.tokenization.Tokenizer(stopwords="en", lower=True)
        ids = tokenizer.tokenize([corpus[k] for k in keys], update_vocab=True, return_as="ids", show_progress=False)
        retriever = bm25s.BM25()
        retriever.index(ids, show_progress=False)
        _BM25_CACHE.clear()
        _BM25_CACHE[fp] = (retriever, tokenizer, keys)
    return _BM25_CACHE[fp]


def bm25_search(corpus: dict[str, str], queries: list[str], k: int) -> list[Ranking]:
    """Top-k passages per query by BM25 (bm25s, Lucene variant, English stop words)."""
    if not corpus:
        raise EvaluationError("The corpus is empty: nothing to retrieve from.")
    retriever, tokenizer, keys = _bm25_index(corpus)
    q_ids = tokenizer.tokenize(queries, update_vocab=False, return_as="ids", show_progress=False)
    k = min(k, len(keys))
    docs, scores = retriever.retrieve(q_ids, k=k, show_progress=False, n_threads=1)
    return [[(keys[int(d)], float(s)) for d, s in zip(drow, srow)] for drow, srow in zip(docs, scores)]


def bm25_scores(corpus: dict[str, str], query: str, keys: list[str]) -> np.ndarray:
    """BM25 scores of chosen passages for one query (for fusion with a BM25 first stage)."""
    retriever, tokenizer, all_keys = _bm25_index(corpus)
    q = tokenizer.tokenize([query], update_vocab=False, return_as="ids", show_progress=False)[0]
    full = retriever.get_scores(q)
    pos = {k: i for i, k in enumerate(all_keys)}
    return np.asarray([float(full[pos[k]]) if k in pos else 0.0 for k in keys])


def embedding_search(corpus: dict[str, str], queries: list[str], k: int, model_spec: str | None = None, *,
                     workspace: Path | None = None, progress: Progress | None = None) -> list[Ranking]:
    """Top-k passages per query by cosine similarity, exact search over cached embeddings."""
    from core.embeddings import embed_texts

    if not corpus:
        raise EvaluationError("The corpus is empty: nothing to retrieve from.")
    keys = list(corpus)
    cb = (lambda d, t: progress("embedding passages", d, t)) if progress else None
    P = embed_texts([corpus[x] for x in keys], model_spec, workspace=workspace, progress=cb)
    Q = embed_texts(queries, model_spec, workspace=workspace)
    k = min(k, len(keys))
    out = []
    for row in Q @ P.T:
        top = np.argpartition(-row, k - 1)[:k]
        top = top[np.argsort(-row[top], kind="stable")]
        out.append([(keys[j], float(row[j])) for j in top])
    return out


def embedding_scores(pairs_by_query: list[tuple[str, list[str]]], model_spec: str | None,
                     workspace: Path | None = None) -> list[np.ndarray]:
    """Cosine scores of (query, passages) groups, for fusion with an embedding first stage."""
    from core.embeddings import embed_texts

    texts = [q for q, _ in pairs_by_query] + [p for _, ps in pairs_by_query for p in ps]
    if not texts:
        return []
    vec = embed_texts(texts, model_spec, workspace=workspace)
    qv, at, out = vec[: len(pairs_by_query)], len(pairs_by_query), []
    for i, (_, ps) in enumerate(pairs_by_query):
        out.append(vec[at: at + len(ps)] @ qv[i])
        at += len(ps)
    return out


# --- rerankers ----------------------------------------------------------------------------------


def predict_pairs(model: Any, pairs: list[tuple[str, str]], *, batch_size: int = 32,
                  progress: Callable[[int, int], None] | None = None, chunk: int = 256) -> np.ndarray:
    """Cross-encoder scores in batches, reporting progress between chunks."""
    out = []
    if progress:
        progress(0, len(pairs))
    for start in range(0, len(pairs), chunk):
        part = [list(p) for p in pairs[start: start + chunk]]
        out.append(np.asarray(model.predict(part, batch_size=batch_size, show_progress_bar=False,
                                            convert_to_numpy=True), dtype=float).reshape(-1))
        if progress:
            progress(min(start + chunk, len(pairs)), len(pairs))
    return np.concatenate(out) if out else np.zeros(0)


def _order(keys: list[str], scores: np.ndarray) -> Ranking:
    idx = np.argsort(-np.asarray(scores, float), kind="stable")  # ties keep the first-stage order
    return [(keys[i], float(scores[i])) for i in idx]


# --- runs -------------------------------------------------------------------------------------


def list_runs(conn: sqlite3.Connection, project: int) -> list[dict[str, Any]]:
    """Completed runs of a project, newest first, with decoded config and metrics."""
    rows = conn.execute("SELECT * FROM runs WHERE project_id = ? AND status = 'completed' ORDER BY created_at DESC",
                        (project,)).fetchall()
    return [_decode_run(r) for r in rows]


def _decode_run(row: sqlite3.Row) -> dict[str, Any]:
    run = dict(row)
    for k in ("config", "metrics", "snapshot", "progress"):
        run[k] = json.loads(run.get(k) or "{}")
    return run


def get_run(conn: sqlite3.Connection, run_id: str, project: int | None = None) -> dict[str, Any]:
    """A completed run with a model folder, or a message saying why it cannot be evaluated."""
    row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise EvaluationError(f"No run {run_id!r} in this workspace.")
    run = _decode_run(row)
    if project is not None and run["project_id"] != project:
        raise EvaluationError(f"Run {run_id!r} belongs to another project.")
    if run["status"] != "completed":
        raise EvaluationError(f"Run {run_id!r} is {run['status']}; only completed runs can be evaluated.")
    if not run.get("model_dir") or not Path(run["model_dir"]).is_dir():
        raise EvaluationError(f"Run {run_id!r} has no model folder ({run.get('model_dir')!r} is missing).")
    return run


def run_fusion(run: dict[str, Any]) -> dict[str, Any] | None:
    """The score fusion a run carries (metrics or the model folder's studio_fusion.json), if any."""
    fusion = run.get("metrics", {}).get("fusion")
    path = Path(run.get("model_dir") or "") / FUSION_FILE
    if not fusion and path.is_file():
        fusion = json.loads(path.read_text())
    return fusion if fusion and ("alpha" in fusion or fusion.get("method") == RESIDUAL) else None


def base_is_random(base_model: str) -> bool:
    """True when the base is a bare encoder, whose new one-logit head is random."""
    try:
        return not models.is_trained_cross_encoder(base_model)
    except models.ModelError:
        return True


# --- the evaluation -------------------------------------------------------------------------------


def evaluate(conn: sqlite3.Connection, project: int, run_ids: Sequence[str] = (), *, test_set: TestSet | None = None,
             first_stage: str = "bm25", top_k: int = 20, include_base: bool = True, oracle: bool = True,
             embedding_model: str | None = None, n_bootstrap: int = 1000, seed: int = 0,
             progress: Progress | None = None, save: bool = True) -> dict[str, Any]:
    """First stage alone, the base model and each run on one test set; realistic and oracle kept apart."""
    started = time.time()
    if first_stage not in FIRST_STAGES:
        raise EvaluationError(f"Unknown first stage {first_stage!r}; choose one of {', '.join(FIRST_STAGES)}.")
    if not 1 <= int(top_k) <= 1000:
        raise EvaluationError(f"top-k must be between 1 and 1000, got {top_k}.")
    top_k = int(top_k)
    ts = test_set or project_test_set(conn, project)
    runs = [get_run(conn, r, project) for r in run_ids]
    workspace = store.workspace_of(conn)
    note = progress or (lambda phase, d, t: None)
    qkeys = list(ts.queries)
    qtexts = [ts.queries[q] for q in qkeys]

    # 1. candidates
    note("first stage", 0, len(qkeys))
    if first_stage == "bm25":
        lists = bm25_search(ts.corpus, qtexts, top_k)
    elif first_stage == "embedding":
        lists = embedding_search(ts.corpus, qtexts, top_k, embedding_model, workspace=workspace, progress=progress)
    else:
        if not ts.candidates:
            raise EvaluationError("This test set gives no candidates; choose BM25 or the embedding model.")
        lists = [ts.candidates.get(q, [])[:top_k] for q in qkeys]
    note("first stage", len(qkeys), len(qkeys))
    fs_lists = dict(zip(qkeys, lists))
    oracle_extra = {q: [d for d, g in ts.qrels[q].items() if g > 0 and d not in {x for x, _ in fs_lists[q]}]
                    for q in qkeys}

    fs_label = FIRST_STAGES[first_stage] + (f" ({models.model_key(embedding_model)})" if first_stage == "embedding" else "")
    systems: list[dict[str, Any]] = [{"key": "first_stage", "label": f"First stage alone: {fs_label}",
                                      "kind": "first_stage", "run_id": None, "notes": []}]
    rankings: dict[str, dict[str, Ranking]] = {"first_stage": {q: fs_lists[q] for q in qkeys}}
    oracle_rankings: dict[str, dict[str, Ranking]] = {}
    ce_scores: dict[str, dict[str, dict[str, float]]] = {}

    # 2. which cross-encoders
    todo: list[tuple[str, dict[str, Any]]] = []
    if include_base:
        bases = {r["config"].get("base_model", models.BUNDLED): r["config"].get("max_length", 256) for r in runs}
        if not bases:
            bases = {models.BUNDLED: 256}
        for i, (base, max_length) in enumerate(bases.items()):
            random_head = base_is_random(base)
            key = "base" if len(bases) == 1 else f"base:{i}"
            todo.append((key, {"key": key, "kind": "base", "run_id": None, "spec": base, "max_length": max_length,
                               "label": f"Base model: {models.model_key(base)}" + (" (random head)" if random_head else ""),
                               "random_head": random_head, "notes": [RANDOM_HEAD_NOTE] if random_head else []}))
    for run in runs:
        cfg = run["config"]
        if "max_length" not in cfg:
            raise EvaluationError(f"Run {run['id']!r} has no max_length in its config.")
        todo.append((f"run:{run['id']}", {"key": f"run:{run['id']}", "kind": "run", "run_id": run["id"],
                                          "spec": run["model_dir"], "max_length": int(cfg["max_length"]),
                                          "label": f"Fine-tuned run {run['id']} (cross-encoder alone)",
                                          "fusion": run_fusion(run), "notes": []}))

    # 3. score candidates (realistic lists plus the oracle additions) once per model
    groups = [(q, [d for d, _ in fs_lists[q]] + (oracle_extra[q] if oracle else [])) for q in qkeys]
    flat = [(ts.queries[q], ts.corpus[d]) for q, ds in groups for d in ds]
    for n_model, (key, sysinfo) in enumerate(todo):
        phase = f"reranking with {sysinfo['label']} ({n_model + 1}/{len(todo)})"
        note(phase, 0, len(flat))
        if sysinfo["kind"] == "base":
            import torch

            torch.manual_seed(seed)  # the same random head on every evaluation, still arbitrary
        model = models.load_cross_encoder(sysinfo["spec"], max_length=sysinfo["max_length"])
        scores = predict_pairs(model, flat, progress=lambda d, t, p=phase: note(p, d, t))
        del model
        at, per_query = 0, {}
        for q, ds in groups:
            per_query[q] = dict(zip(ds, scores[at: at + len(ds)].tolist()))
            at += len(ds)
        fusion = sysinfo.pop("fusion", None)
        if fusion and fusion.get("method") == RESIDUAL:
            # the run's score is what it was trained to give; its cross-encoder part is shown apart, as a component
            ckey = f"{key}:cross-encoder"
            ce_scores[ckey] = per_query
            rankings[ckey], oracle_rankings[ckey] = _rank(groups, fs_lists, per_query)
            cos = _fusion_first_stage(ts, groups, fusion, first_stage, embedding_model, fs_lists, workspace)
            beta = float(fusion["beta"])
            per_query = {q: dict(zip(ds, training.residual_score([per_query[q][d] for d in ds], cos[q], beta).tolist()))
                         for q, ds in groups}
            sysinfo["label"] = (f"Fine-tuned run {sysinfo['run_id']} (as trained: cross-encoder + {beta:g} x "
                                f"embedding cosine)")
            sysinfo["residual_beta"] = beta
            sysinfo["notes"] = [f"residual run: {fusion.get('formula', 'score = logit + beta x cosine')}; "
                                f"embedding model {fusion.get('first_stage', '?')}"]
            systems.append({k: v for k, v in sysinfo.items() if k not in ("spec",)})
            systems.append({"key": ckey, "kind": "component", "run_id": sysinfo["run_id"],
                            "label": f"Run {sysinfo['run_id']}: its cross-encoder part alone (a correction, not a "
                                     "ranker on its own)", "notes": []})
            if first_stage != "embedding" and f"prior:{fusion.get('first_stage')}" not in rankings:
                # what the run's prior alone does to these candidates: the cross-encoder's share is the rest
                pkey = f"prior:{fusion.get('first_stage')}"
                prior = {q: dict(zip(ds, np.asarray(cos[q], float).tolist())) for q, ds in groups}
                rankings[pkey], oracle_rankings[pkey] = _rank(groups, fs_lists, prior)
                ce_scores[pkey] = prior
                systems.append({"key": pkey, "kind": "component", "run_id": None,
                                "label": "Embedding cosine alone reranking these candidates (a residual run's prior, "
                                         "no cross-encoder)", "notes": []})
            fusion = None
        else:
            systems.append({k: v for k, v in sysinfo.items() if k not in ("spec",)})
        ce_scores[key] = per_query
        rankings[key], oracle_rankings[key] = _rank(groups, fs_lists, per_query)
        if fusion:
            fkey = f"{key}:fused"
            fs_scores = _fusion_first_stage(ts, groups, fusion, first_stage, embedding_model, fs_lists, workspace)
            fused = {q: dict(zip(ds, training.fused_scores(np.array([per_query[q][d] for d in ds]), fs_scores[q], fusion["alpha"])
                                 .tolist())) for q, ds in groups}
            # realistic and oracle are fused separately: z-scores are taken over each candidate list
            fused_real = {q: dict(zip([d for d, _ in fs_lists[q]],
                                      training.fused_scores(np.array([per_query[q][d] for d, _ in fs_lists[q]]),
                                           fs_scores[q][: len(fs_lists[q])], fusion["alpha"]).tolist()))
                          for q in qkeys}
            rankings[fkey] = {q: _order(list(fused_real[q]), np.array(list(fused_real[q].values()))) for q in qkeys}
            oracle_rankings[fkey] = {q: _order(list(fused[q]), np.array(list(fused[q].values()))) for q in qkeys}
            systems.append({"key": fkey, "kind": "fused", "run_id": sysinfo["run_id"],
                            "label": f"Fine-tuned run {sysinfo['run_id']} fused (blended with first stage, "
                                     f"alpha={fusion['alpha']})",
                            "fusion": fusion, "notes": [
                                f"score fusion: {fusion.get('method', 'alpha*z(ce)+(1-alpha)*z(first stage)')}; "
                                f"alpha={fusion['alpha']} chosen on {fusion.get('chosen_on', 'validation')}, "
                                f"first stage of the blend: {fusion.get('first_stage', '?')}"]})

    results = _summarize(ts, qkeys, systems, rankings, oracle_rankings if oracle else {}, ce_scores, top_k,
                         n_bootstrap, seed)
    results["params"] = {"first_stage": first_stage, "first_stage_label": fs_label, "top_k": top_k,
                         "test_set": ts.name, "queries": len(qkeys), "run_ids": list(run_ids),
                         "include_base": include_base, "oracle": oracle, "seed": seed, "n_bootstrap": n_bootstrap,
                         "embedding_model": models.model_key(embedding_model) if first_stage == "embedding" else None,
                         "notes": ts.notes, "realistic_note": REALISTIC_NOTE, "oracle_note": ORACLE_NOTE}
    results["wall_s"] = round(time.time() - started, 2)
    if save:
        results["evaluation_id"] = save_evaluation(conn, project, results)
    return results


def _rank(groups: list[tuple[str, list[str]]], fs_lists: dict[str, Ranking],
          per_query: dict[str, dict[str, float]]) -> tuple[dict[str, Ranking], dict[str, Ranking]]:
    real, orc = {}, {}
    for q, ds in groups:
        keys = [d for d, _ in fs_lists[q]]
        real[q] = _order(keys, np.array([per_query[q][d] for d in keys]))
        orc[q] = _order(ds, np.array([per_query[q][d] for d in ds]))
    return real, orc


def _fusion_first_stage(ts: TestSet, groups: list[tuple[str, list[str]]], fusion: dict[str, Any], first_stage: str,
                        embedding_model: str | None, fs_lists: dict[str, Ranking],
                        workspace: Path) -> dict[str, np.ndarray]:
    """The first-stage scores the fusion was trained with, for every candidate (recomputed when the stage differs)."""
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
    scores = embedding_scores([(ts.queries[q], [ts.corpus[d] for d in ds]) for q, ds in groups], spec, workspace)
    return {q: s for (q, _), s in zip(groups, scores)}


def _summarize(ts: TestSet, qkeys: list[str], systems: list[dict[str, Any]], rankings: dict[str, dict[str, Ranking]],
               oracle_rankings: dict[str, dict[str, Ranking]], ce_scores: dict[str, dict[str, dict[str, float]]],
               top_k: int, n_bootstrap: int, seed: int) -> dict[str, Any]:
    names = metric_names(top_k)

    def table(rk: dict[str, dict[str, Ranking]]) -> tuple[dict[str, Any], dict[str, Any]]:
        summary, per_query = {}, {}
        for key, lists in rk.items():
            pq = {q: query_metrics([d for d, _ in lists[q]], ts.qrels[q], top_k) for q in qkeys}
            per_query[key] = pq
            summary[key] = {"mean": {m: float(np.mean([pq[q][m] for q in qkeys])) for m in names},
                            "ci": {m: list(bootstrap_ci([pq[q][m] for q in qkeys], n=n_bootstrap, seed=seed))
                                   for m in names}}
        return summary, per_query

    realistic, pq_real = table(rankings)
    oracle_summary, pq_oracle = table(oracle_rankings)
    comparisons = []
    rerankers = [s["key"] for s in systems if s["kind"] != "first_stage"]
    refs = ["first_stage"] + [s["key"] for s in systems if s["kind"] == "base"]
    priors = [s["key"] for s in systems if s["key"].startswith("prior:")]
    kinds = {s["key"]: s["kind"] for s in systems}
    for key in rerankers:
        for ref in refs + (priors if kinds[key] == "run" else []):
            if ref == key:
                continue
            a = [pq_real[ref][q]["ndcg@10"] for q in qkeys]
            b = [pq_real[key][q]["ndcg@10"] for q in qkeys]
            comparisons.append({"system": key, "reference": ref, "metric": "ndcg@10", "figures": "realistic",
                                **paired_test(a, b, seed=seed)})
    distributions = {}
    for key, per_q in ce_scores.items():
        rel, non = [], []
        for q in qkeys:
            for d, _ in rankings[key][q]:
                (rel if ts.qrels[q].get(d, 0.0) > 0 else non).append(per_q[q][d])
        distributions[key] = {"relevant": rel, "non_relevant": non, "threshold": best_threshold(rel, non),
                              "over": "realistic candidates"}
    used = {d for lists in list(rankings.values()) + list(oracle_rankings.values()) for q in qkeys for d, _ in lists[q]}
    used |= {d for q in qkeys for d in ts.qrels[q]}
    return {
        "systems": systems, "metrics": names,
        "realistic": realistic, "oracle": oracle_summary,
        "per_query": {"realistic": pq_real, "oracle": pq_oracle},
        "rankings": {k: {q: [[d, s] for d, s in v[q]] for q in qkeys} for k, v in rankings.items()},
        "queries": {q: {"text": ts.queries[q], "query_id": ts.query_ids.get(q),
                        "relevant": {d: g for d, g in ts.qrels[q].items()}} for q in qkeys},
        "passages": {d: ts.corpus[d][:SNIPPET] for d in used if d in ts.corpus},
        "comparisons": comparisons, "score_distributions": distributions,
    }


# --- reading results ----------------------------------------------------------------------------


def save_evaluation(conn: sqlite3.Connection, project: int, results: dict[str, Any]) -> int:
    """One row in `evaluations`; run_id holds the first run evaluated (all are in params)."""
    params = results.get("params", {})
    run_id = (params.get("run_ids") or [None])[0]
    with store.transaction(conn):
        cur = conn.execute("INSERT INTO evaluations (project_id, run_id, created_at, params, results) "
                           "VALUES (?, ?, ?, ?, ?)", (project, run_id, store.now(), json.dumps(params),
                                                      json.dumps({k: v for k, v in results.items() if k != "params"})))
    return int(cur.lastrowid)


def list_evaluations(conn: sqlite3.Connection, project: int) -> list[dict[str, Any]]:
    """Stored evaluations of a project, newest first (params only, results are loaded on demand)."""
    rows = conn.execute("SELECT id, run_id, created_at, params FROM evaluations WHERE project_id = ? ORDER BY id DESC",
                        (project,)).fetchall()
    return [{**dict(r), "params": json.loads(r["params"])} for r in rows]


def load_evaluation(conn: sqlite3.Connection, evaluation_id: int) -> dict[str, Any]:
    """A stored evaluation as `evaluate` returned it."""
    row = conn.execute("SELECT * FROM evaluations WHERE id = ?", (evaluation_id,)).fetchone()
    if row is None:
        raise EvaluationError(f"No evaluation {evaluation_id}.")
    return {**json.loads(row["results"]), "params": json.loads(row["params"]), "evaluation_id": int(row["id"])}


def system(results: dict[str, Any], key: str) -> dict[str, Any]:
    return next(s for s in results["systems"] if s["key"] == key)


def per_query_deltas(results: dict[str, Any], key: str, reference: str = "first_stage",
                     metric: str = "ndcg@10") -> list[dict[str, Any]]:
    """Per-query change of one system over a reference (realistic figures), biggest loss first."""
    pq = results["per_query"]["realistic"]
    rows = []
    for q, info in results["queries"].items():
        before, after = pq[reference][q][metric], pq[key][q][metric]
        rows.append({"query_key": q, "query_id": info.get("query_id"), "query": info["text"], "before": before,
                     "after": after, "delta": after - before})
    return sorted(rows, key=lambda r: (r["delta"], r["query_key"]))


def wins_and_losses(results: dict[str, Any], key: str, reference: str = "first_stage", n: int = 10,
                    metric: str = "ndcg@10") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The n biggest improvements and the n biggest losses (changes of zero are neither)."""
    rows = per_query_deltas(results, key, reference, metric)
    losses = [r for r in rows if r["delta"] < -1e-12][:n]
    wins = [r for r in reversed(rows) if r["delta"] > 1e-12][:n]
    return wins, losses


def query_movement(results: dict[str, Any], query_key: str, key: str) -> list[dict[str, Any]]:
    """One query's ranking after reranking, each passage with its first-stage rank, new rank and movement."""
    before = {d: i + 1 for i, (d, _) in enumerate(results["rankings"]["first_stage"][query_key])}
    rel = results["queries"][query_key]["relevant"]
    out = []
    for i, (d, score) in enumerate(results["rankings"][key][query_key]):
        b = before.get(d)
        out.append({"rank": i + 1, "before": b, "moved": (b - (i + 1)) if b else None, "relevant": rel.get(d, 0.0) > 0,
                    "label": rel.get(d), "score": score, "passage_key": d,
                    "passage": results["passages"].get(d, "")})
    return out


def missed_relevant(results: dict[str, Any], query_key: str) -> list[str]:
    """Relevant passages the first stage did not retrieve (no reranker can recover them realistically)."""
    got = {d for d, _ in results["rankings"]["first_stage"][query_key]}
    return [d for d, g in results["queries"][query_key]["relevant"].items() if g > 0 and d not in got]


def headline(results: dict[str, Any]) -> list[str]:
    """Plain sentences: does each model beat the first stage (realistic NDCG@10), and is it significant."""
    lines = []
    fs = results["realistic"]["first_stage"]["mean"]["ndcg@10"]
    for c in results["comparisons"]:
        if c["reference"] != "first_stage":
            continue
        s = system(results, c["system"])
        val = results["realistic"][c["system"]]["mean"]["ndcg@10"]
        sig = "significant" if c["p_value"] < 0.05 else "not significant"
        verdict = "beats" if val > fs else "does NOT beat"
        lines.append(f"{s['label']} {verdict} the first stage on realistic NDCG@10: {val:.3f} vs {fs:.3f} "
                     f"({c['mean_diff']:+.3f}, p = {c['p_value']:.3g}, {sig}).")
    return lines


def results_table(results: dict[str, Any], which: str = "realistic") -> list[dict[str, Any]]:
    """Rows for a side-by-side table: one per system, each metric with its 95% CI."""
    rows = []
    for s in results["systems"]:
        fig = results[which].get(s["key"])
        if not fig:
            continue
        row: dict[str, Any] = {"system": s["label"], "figures": which}
        for m in results["metrics"]:
            lo, hi = fig["ci"][m]
            row[m] = round(fig["mean"][m], 4)
            row[f"{m} 95% CI"] = f"[{lo:.3f}, {hi:.3f}]"
        rows.append(row)
    return rows


# --- exports --------------------------------------------------------------------------------------


def _md(text: Any) -> str:
    """User text made inert in Markdown (and HTML) reports."""
    import html

    s = html.escape(str(text), quote=False).replace("\n", " ")
    for ch in "\\`*_{}[]()#+-!~|":
        s = s.replace(ch, "\\" + ch)
    return s


def _cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run as a formula."""
    return "'" + value if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def report_markdown(results: dict[str, Any], n: int = 5) -> str:
    """A Markdown report with every figure, realistic and oracle in separate tables; user text escaped."""
    p = results["params"]
    lines = ["# Rerank Studio — evaluation report", "",
             f"- Test set: {_md(p['test_set'])} ({p['queries']} queries)",
             f"- First stage: {_md(p['first_stage_label'])}, top-k = {p['top_k']}",
             f"- Bootstrap: {p['n_bootstrap']} resamples of queries, seed {p['seed']}; 95% intervals", ""]
    for note in p.get("notes", []):
        lines.append(f"> {_md(note)}")
    lines += ["", "## Verdict", ""] + [f"- {_md(x)}" for x in headline(results)]
    for s in results["systems"]:
        for note in s.get("notes", []):
            lines.append(f"- Note on {_md(s['label'])}: {_md(note)}")
    for which, title in (("realistic", "Realistic figures (" + REALISTIC_NOTE + ")"),
                         ("oracle", "Oracle figures (" + ORACLE_NOTE + ")")):
        rows = results_table(results, which)
        if not rows:
            continue
        lines += ["", f"## {_md(title)}", "", "| system | " + " | ".join(results["metrics"]) + " |",
                  "|---|" + "---|" * len(results["metrics"])]
        for r in rows:
            cells = [f"{r[m]:.4f} {r[m + ' 95% CI']}" for m in results["metrics"]]
            lines.append(f"| {_md(r['system'])} | " + " | ".join(cells) + " |")
    lines += ["", "## Paired tests (realistic NDCG@10)", "", "| system | reference | difference | 95% CI | p | wins/losses/ties |",
              "|---|---|---|---|---|---|"]
    for c in results["comparisons"]:
        lines.append(f"| {_md(system(results, c['system'])['label'])} | {_md(system(results, c['reference'])['label'])} | "
                     f"{c['mean_diff']:+.4f} | [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}] | {c['p_value']:.4g} | "
                     f"{c['wins']}/{c['losses']}/{c['ties']} |")
    for key, dist in results["score_distributions"].items():
        t = dist.get("threshold")
        if t:
            lines.append(f"\nThreshold suggestion for {_md(system(results, key)['label'])}: score >= {t['threshold']:.4f} "
                         f"(F1 {t['f1']:.3f}, precision {t['precision']:.3f}, recall {t['recall']:.3f}) — "
                         f"chosen on {t['chosen_on']}.")
    for s in results["systems"]:
        if s["kind"] == "first_stage":
            continue
        wins, losses = wins_and_losses(results, s["key"], n=n)
        lines += ["", f"## Biggest changes of {_md(s['label'])} over the first stage (NDCG@10)", "",
                  "| query | before | after | change |", "|---|---|---|---|"]
        for r in wins + losses:
            lines.append(f"| {_md(r['query'][:120])} | {r['before']:.3f} | {r['after']:.3f} | {r['delta']:+.3f} |")
    return "\n".join(lines) + "\n"


def per_query_csv(results: dict[str, Any]) -> str:
    """One row per query: text, relevant count, every system's realistic metrics (and oracle, prefixed)."""
    buf = io.StringIO()
    keys = [s["key"] for s in results["systems"]]
    header = ["query_key", "query_id", "query", "relevant"]
    for which in ("realistic", "oracle"):
        for k in keys:
            if k in results["per_query"][which]:
                header += [f"{which}:{k}:{m}" for m in results["metrics"]]
    w = csv.writer(buf)
    w.writerow(header)
    for q, info in results["queries"].items():
        row = [q, info.get("query_id"), _cell(info["text"]), sum(1 for g in info["relevant"].values() if g > 0)]
        for which in ("realistic", "oracle"):
            for k in keys:
                if k in results["per_query"][which]:
                    row += [f"{results['per_query'][which][k][q][m]:.6f}" for m in results["metrics"]]
        w.writerow(row)
    return buf.getvalue()


def exports_dir(workspace: Path | None = None) -> Path:
    return (workspace or store.workspace_dir()) / "exports"


def safe_export_path(workspace: Path, name: str) -> Path:
    """A destination inside the workspace's exports folder; `..`, absolute paths and escapes are refused."""
    name = str(name).strip()
    if not name or ".." in Path(name).parts or Path(name).is_absolute() or "\x00" in name:
        raise EvaluationError(f"Export name {name!r} is not allowed: give a plain name inside the exports folder.")
    root = exports_dir(workspace).resolve()
    dest = (root / name).resolve()
    if root != dest and root not in dest.parents:
        raise EvaluationError(f"Export name {name!r} points outside the workspace's exports folder.")
    return dest


def export_model_folder(conn: sqlite3.Connection, run_id: str, name: str | None = None) -> Path:
    """Copy a run's model folder (weights, tokenizer, model card, fusion file) into the workspace exports folder."""
    run = get_run(conn, run_id)
    dest = safe_export_path(store.workspace_of(conn), name or f"model-{run_id}")
    if dest.exists():
        raise EvaluationError(f"{dest} already exists; choose another name.")
    source = run_model_dir(conn, run)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("checkpoint-*", "optimizer.pt"))
    return dest


def run_model_dir(conn: sqlite3.Connection, run: dict[str, Any]) -> Path:
    """A run's model folder, only if it really lies under the workspace's runs/ (a tampered row copies nothing)."""
    raw = str(run.get("model_dir") or "")
    runs = store.runs_dir(store.workspace_of(conn)).resolve()
    folder = Path(raw).resolve()
    if ".." in Path(raw).parts or not folder.is_relative_to(runs):
        raise EvaluationError(f"The model folder {raw!r} of run {run.get('id')} is outside the workspace's runs "
                              f"folder ({runs}); it is not exported.")
    if not folder.is_dir():
        raise EvaluationError(f"The model folder {raw!r} of run {run.get('id')} no longer exists.")
    return folder


def write_export(conn: sqlite3.Connection, name: str, content: str) -> Path:
    """Save a report or table into the exports folder (same path rules)."""
    dest = safe_export_path(store.workspace_of(conn), name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(content, encoding="utf-8")
    return dest


def export_onnx(conn: sqlite3.Connection, run_id: str, name: str | None = None,
                check_pairs: Sequence[tuple[str, str]] | None = None) -> dict[str, Any]:
    """ONNX export of the run's transformer (torch.onnx, TorchScript exporter) verified with onnxruntime.

    sentence-transformers' own exporters need `optimum`, which cannot be installed beside this transformers;
    the exported graph takes input_ids/attention_mask/token_type_ids and returns the relevance logit.
    """
    import onnxruntime as ort
    import torch

    run = get_run(conn, run_id)
    dest = safe_export_path(store.workspace_of(conn), name or f"onnx-{run_id}")
    if dest.exists():
        raise EvaluationError(f"{dest} already exists; choose another name.")
    max_length = int(run["config"].get("max_length", 256))
    ce = models.load_cross_encoder(str(run_model_dir(conn, run)), max_length=max_length, device="cpu")
    ce.eval()
    hf, tok = ce.model, ce.tokenizer
    hf.eval()
    pairs = list(check_pairs or [("what does a reranker do", "A reranker orders candidate passages by relevance."),
                                 ("onnx export", "An unrelated passage about cooking pasta at home.")])
    enc = tok([a for a, _ in pairs], [b for _, b in pairs], padding=True, truncation=True, max_length=max_length,
              return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in enc]

    class Logit(torch.nn.Module):
        def __init__(self, m: Any):
            super().__init__()
            self.m = m

        def forward(self, *args: Any) -> Any:
            return self.m(**dict(zip(names, args))).logits

    dest.mkdir(parents=True)
    onnx_path = dest / "model.onnx"
    torch.onnx.export(Logit(hf), tuple(enc[n] for n in names), str(onnx_path), input_names=names,
                      output_names=["logits"], dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names},
                                                             "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    tok.save_pretrained(str(dest))
    hf.config.save_pretrained(str(dest))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(["logits"], {n: enc[n].numpy() for n in names})[0].reshape(-1)
    # the reference is the CrossEncoder itself (its own tokenization and forward), logits and activated scores
    torch_logits = np.asarray(ce.predict([list(p) for p in pairs], activation_fn=torch.nn.Identity(),
                                         convert_to_numpy=True)).reshape(-1)
    ce_scores = np.asarray(ce.predict([list(p) for p in pairs], convert_to_numpy=True)).reshape(-1)
    onnx_scores = 1 / (1 + np.exp(-onnx_logits))  # the CrossEncoder's sigmoid activation
    info = {"path": str(onnx_path), "pairs_checked": len(pairs),
            "max_abs_logit_diff": float(np.max(np.abs(onnx_logits - torch_logits))),
            "max_abs_score_diff_vs_cross_encoder": float(np.max(np.abs(onnx_scores - ce_scores))),
            "exporter": "torch.onnx.export (TorchScript), verified with onnxruntime",
            "note": "sentence-transformers' ONNX export needs optimum, which is not installable here"}
    (dest / "studio_onnx.json").write_text(json.dumps({**info, "max_length": max_length, "inputs": names,
                                                       "activation": "sigmoid(logits)"}, indent=2))
    if info["max_abs_logit_diff"] > 1e-3:
        raise EvaluationError(f"ONNX scores differ from the model's by {info['max_abs_logit_diff']:.2g}; export refused.")
    return info


# --- CLI --------------------------------------------------------------------------------------


def cli_arguments(parser: Any) -> None:
    """`python -m core evaluate --project NAME --run RUN_ID [--first-stage bm25|embedding] [--top-k K]`."""
    parser.add_argument("--project", required=True, help="project name")
    parser.add_argument("--run", action="append", default=[], help="run id to evaluate (repeatable)")
    parser.add_argument("--first-stage", choices=("bm25", "embedding"), default="bm25")
    parser.add_argument("--top-k", type=int, default=20, help="candidates reranked per query")
    parser.add_argument("--embedding-model", default=None, help="embedding model of the embedding first stage")
    parser.add_argument("--base", action="store_true", help="also evaluate the base model")
    parser.add_argument("--no-oracle", action="store_true", help="skip the oracle figures")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    parser.add_argument("--seed", type=int, default=0)


def _r(x: float) -> float:
    return round(float(x), 6)


def cli_main(args: Any) -> dict[str, Any]:
    """Evaluate and summarize the first run's realistic figures (plus fused, base and oracle when present)."""
    conn = store.connect()
    try:
        project = store.project_id(conn, args.project)
        res = evaluate(conn, project, args.run, first_stage=args.first_stage, top_k=args.top_k,
                       include_base=args.base, oracle=not args.no_oracle, embedding_model=args.embedding_model,
                       n_bootstrap=args.bootstrap, seed=args.seed)
    finally:
        conn.close()
    real, orc = res["realistic"], res["oracle"]
    out: dict[str, Any] = {"evaluation_id": res["evaluation_id"], "run_id": args.run[0] if args.run else None,
                           "first_stage": args.first_stage, "top_k": args.top_k, "queries": res["params"]["queries"],
                           "figures": "realistic (first-stage candidates only)"}

    def put(prefix: str, fig: dict[str, Any]) -> None:
        for m, short in (("ndcg@10", "ndcg10"), ("mrr@10", "mrr10"), ("map", "map"), ("recall@10", "recall10")):
            out[f"{prefix}_{short}"] = _r(fig["mean"][m])
            out[f"{prefix}_{short}_ci"] = [_r(v) for v in fig["ci"][m]]

    put("first_stage", real["first_stage"])
    if args.run:
        key = f"run:{args.run[0]}"
        put("reranked", real[key])
        p = next(c for c in res["comparisons"] if c["system"] == key and c["reference"] == "first_stage")
        out["reranked_vs_first_stage_p"] = _r(p["p_value"])
        out["beats_first_stage"] = real[key]["mean"]["ndcg@10"] > real["first_stage"]["mean"]["ndcg@10"]
        if f"{key}:fused" in real:
            put("fused", real[f"{key}:fused"])
            out["fused_alpha"] = system(res, f"{key}:fused")["fusion"]["alpha"]
        if f"{key}:cross-encoder" in real:
            put("cross_encoder_part", real[f"{key}:cross-encoder"])
            out["residual_beta"] = system(res, key).get("residual_beta")
            prior = next((k for k in real if k.startswith("prior:")), None)
            if prior:
                put("prior_only", real[prior])
                c = next(c for c in res["comparisons"] if c["system"] == key and c["reference"] == prior)
                out["reranked_vs_prior_only_p"] = _r(c["p_value"])
        if key in orc:
            out["oracle_reranked_ndcg10"] = _r(orc[key]["mean"]["ndcg@10"])
        for extra in args.run[1:]:
            out[f"reranked_ndcg10[{extra}]"] = _r(real[f"run:{extra}"]["mean"]["ndcg@10"])
    if "base" in real:
        put("base", real["base"])
        out["base_random_head"] = system(res, "base").get("random_head", False)
    out["wall_s"] = res["wall_s"]
    return out
