"""Hard-negative mining: sentence-transformers' miner fed from the studio's embedding cache, plus random
negatives and a false-negative risk per candidate, stored as rows the Review page works through."""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from core import models, store
from core.embeddings import embed_texts

Progress = Callable[[str, int, int], None]  # (phase, done, total)

CROSS_ENCODER_PAIRS_PER_SECOND = 35.0  # bundled-size cross-encoder on 2 CPU threads


class MiningError(ValueError):
    """A mining request that cannot run, said before any work starts."""


class MiningCancelled(RuntimeError):
    """Raised by a progress callback to stop a run; the previous negatives stay as they were."""


@dataclass
class MiningParams:
    """Every knob of `sentence_transformers.util.mine_hard_negatives`, plus the studio's additions.

    Library parameters (same names, same meaning):
      num_negatives: hard negatives per query (library default 3; 10 or fewer recommended).
      range_min: skip this many of the most similar candidates first (they are the likeliest false negatives).
      range_max: look no further than this rank; None derives it like the library does
        (range_min + num_negatives [x10 when a margin or score filter is set] + positives per query).
      max_score / min_score: drop candidates whose similarity to the query is above / below this.
      absolute_margin: drop candidates with similarity + margin > the positive's similarity.
      relative_margin: drop candidates above positive - |positive| * margin (0.05 = NV-Retriever's TopK-PercPos 95%).
      sampling_strategy: "top" takes the best surviving candidates, "random" samples among them.
      batch_size: embedding (and cross-encoder) batch size; faiss_batch_size: queries per search batch.
      use_faiss: search with a faiss IndexFlatIP (exact) instead of a torch matrix product.
      cross_encoder_rescoring: pass the cross-encoder to the miner, which rescores every candidate in the range
        before filtering (only when a margin or score filter is set, as in the library). Costs
        queries x (range_max + positives) predictions.
    Studio additions:
      model: embedding model (bundled default, local folder or hub id); embeddings are cached on disk.
      random_negatives: N random pool passages per query on top of the hard ones (keeps easy cases easy).
      cross_encoder: a cross-encoder (e.g. a trained run's folder) that gives each mined negative a second
        opinion (ce_score) which joins the false-negative risk.
      cross_encoder_max_length: tokens per pair for the cross-encoder.
      seed: makes random sampling repeatable.
    """

    num_negatives: int = 3
    range_min: int = 0
    range_max: int | None = None
    max_score: float | None = None
    min_score: float | None = None
    absolute_margin: float | None = None
    relative_margin: float | None = None
    sampling_strategy: str = "top"
    batch_size: int = 32
    faiss_batch_size: int = 16384
    use_faiss: bool = True
    cross_encoder_rescoring: bool = False
    model: str = models.BUNDLED
    random_negatives: int = 0
    cross_encoder: str | None = None
    cross_encoder_max_length: int = 256
    seed: int = 12

    @property
    def has_filter(self) -> bool:
        """The library widens the range and (optionally) rescores only when a filter is set."""
        return any(
            v is not None
            for v in (self.absolute_margin, self.relative_margin, self.max_score, self.min_score)
        )


PRESETS: dict[str, dict[str, Any]] = {
    # NV-Retriever's best: top-k with a positive-aware relative margin of 5% (TopK-PercPos 95%).
    "recommended": dict(num_negatives=5, range_min=0, range_max=None, relative_margin=0.05,
                        absolute_margin=None, max_score=None, min_score=None, sampling_strategy="top"),
    # The miner's own defaults: 3 negatives, top sampling, no margins.
    "library": {},
    # Fewer false negatives at the price of easier negatives: skip the 10 closest, wider margin, cap the score,
    # sample within ranks 10-100.
    "strict": dict(num_negatives=5, range_min=10, range_max=100, relative_margin=0.1, absolute_margin=None,
                   max_score=0.85, min_score=None, sampling_strategy="random"),
}


def preset(name: str, **overrides: Any) -> MiningParams:
    """A named preset with any parameter overridden."""
    if name not in PRESETS:
        raise MiningError(f"Unknown preset {name!r}: choose one of {', '.join(PRESETS)}.")
    return replace(MiningParams(**PRESETS[name]), **overrides)


# --- the plan: everything checked before any model loads -------------------------------------------


@dataclass
class Plan:
    """What a run will mine: queries, their positives, the passage pool and the excluded passages."""

    project: int
    params: MiningParams
    query_ids: list[int]
    query_texts: list[str]
    positives: list[list[int]]  # per query: pool indices of its positives (label > 0 or judged relevant)
    pool_ids: list[int | None]  # passage ids; None for extra-corpus texts not yet stored
    pool_texts: list[str]
    extra_texts: list[str]
    range_max: int
    max_positives: int
    skipped_queries: int = 0  # train queries without any positive

    @property
    def pair_count(self) -> int:
        return sum(len(p) for p in self.positives)


def read_corpus_file(path: str | Path) -> list[str]:
    """Extra passages from .txt (one per line), .jsonl ({"text"[, "title"]}) or .csv/.tsv (a "text" column)."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise MiningError(f"Extra corpus file {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    texts: list[str] = []
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            if suffix == ".txt":
                texts = [line.strip() for line in fh]
            elif suffix in (".jsonl", ".ndjson"):
                for row, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        item = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise MiningError(f"{path.name}, row {row}: not valid JSON ({exc.msg}).") from exc
                    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                        raise MiningError(f"{path.name}, row {row}, column 'text': expected a string field "
                                          f"\"text\", found {type(item.get('text') if isinstance(item, dict) else item).__name__}.")
                    title = item.get("title") if isinstance(item.get("title"), str) else ""
                    texts.append(f"{title.strip()}. {item['text'].strip()}" if title.strip() else item["text"].strip())
            elif suffix in (".csv", ".tsv"):
                reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
                columns = reader.fieldnames or []
                column = "text" if "text" in columns else (columns[0] if len(columns) == 1 else None)
                if column is None:
                    raise MiningError(f"{path.name}: expected a 'text' column (or a single column), "
                                      f"found columns {columns}.")
                texts = [(r.get(column) or "").strip() for r in reader]
            else:
                raise MiningError(f"Extra corpus {path.name}: expected .txt, .jsonl, .csv or .tsv, found {suffix or 'no extension'!r}.")
    except UnicodeDecodeError as exc:
        raise MiningError(f"{path.name}: not UTF-8 text (byte {exc.start}).") from exc
    texts = [" ".join(t.split()) for t in texts]
    texts = list(dict.fromkeys(t for t in texts if t))
    if not texts:
        raise MiningError(f"Extra corpus {path.name} holds no passages.")
    return texts


def _derived_range_max(params: MiningParams, max_positives: int) -> int:
    """The library's own rule for range_max=None (kept in step with hard_negatives.py)."""
    if params.has_filter:
        return params.range_min + params.num_negatives * 10 + max_positives
    return params.range_min + params.num_negatives + max_positives


def plan(conn: sqlite3.Connection, project: int, params: MiningParams,
         extra_corpus: Sequence[str] | str | Path | None = None) -> Plan:
    """Check every input and gather the data, raising MiningError/ModelError with the reason before any work."""
    if params.sampling_strategy not in ("top", "random"):
        raise MiningError(f"sampling_strategy must be 'top' or 'random', got {params.sampling_strategy!r}.")
    if params.num_negatives < 1:
        raise MiningError(f"num_negatives must be at least 1, got {params.num_negatives}.")
    if params.range_min < 0:
        raise MiningError(f"range_min must be 0 or more, got {params.range_min}.")
    if params.random_negatives < 0:
        raise MiningError(f"random_negatives must be 0 or more, got {params.random_negatives}.")
    if params.relative_margin is not None and params.relative_margin < 0:
        raise MiningError(f"relative_margin must be 0 or more, got {params.relative_margin}.")
    if params.max_score is not None and params.min_score is not None and params.min_score >= params.max_score:
        raise MiningError(f"min_score ({params.min_score}) must be below max_score ({params.max_score}): "
                          "no candidate could satisfy both.")
    if params.range_max is not None:
        if params.range_max <= params.range_min:
            raise MiningError(f"range_max ({params.range_max}) must be larger than range_min ({params.range_min}).")
        if params.num_negatives > params.range_max - params.range_min:
            raise MiningError(
                f"Cannot pick {params.num_negatives} negatives per query from ranks {params.range_min}-"
                f"{params.range_max}: that range holds only {params.range_max - params.range_min}. Lower "
                "num_negatives or range_min, or raise range_max.")
    if params.cross_encoder_rescoring and not params.cross_encoder:
        raise MiningError("Cross-encoder rescoring needs a cross-encoder: set cross_encoder to a model folder.")
    # Models: resolve() fails fast on a folder that is not a model, without loading anything.
    models.resolve(params.model)
    if params.cross_encoder:
        models.resolve(params.cross_encoder)

    if isinstance(extra_corpus, (str, Path)):
        extra = read_corpus_file(extra_corpus)
    else:
        extra = [" ".join(t.split()) for t in (extra_corpus or [])]
        extra = list(dict.fromkeys(t for t in extra if t))

    rows = conn.execute(
        """SELECT q.id AS qid, q.text AS query, p.passage_id AS pid
           FROM pairs p JOIN queries q ON q.id = p.query_id
           WHERE p.project_id = ? AND q.split = 'train' AND p.label > 0
           UNION
           SELECT n.query_id, q.text, n.passage_id FROM negatives n JOIN queries q ON q.id = n.query_id
           WHERE n.project_id = ? AND n.status = 'relevant' AND q.split = 'train'
           ORDER BY 1, 3""",
        (project, project),
    ).fetchall()
    if not rows:
        raise MiningError("This project has no training pairs with a positive label: import (query, relevant "
                          "passage) pairs on the Data page first.")
    train_queries = int(conn.execute(
        "SELECT COUNT(*) FROM queries WHERE project_id = ? AND split = 'train'", (project,)).fetchone()[0])

    passages = store.fetch_passages(conn, project)
    pool_ids: list[int | None] = [p["id"] for p in passages]
    pool_texts = [p["text"] for p in passages]
    known = {store.text_hash(t) for t in pool_texts}
    extra_new = [t for t in extra if store.text_hash(t) not in known]
    pool_ids += [None] * len(extra_new)
    pool_texts += extra_new
    index_of = {pid: i for i, pid in enumerate(pool_ids) if pid is not None}

    query_ids: list[int] = []
    query_texts: list[str] = []
    positives: list[list[int]] = []
    for r in rows:
        if not query_ids or query_ids[-1] != r["qid"]:
            query_ids.append(r["qid"])
            query_texts.append(r["query"])
            positives.append([])
        if index_of[r["pid"]] not in positives[-1]:
            positives[-1].append(index_of[r["pid"]])
    max_positives = max(len(p) for p in positives)

    pool = len(pool_texts)
    if params.range_max is None:
        range_max = min(_derived_range_max(params, max_positives), pool - max_positives)
        if range_max - params.range_min < params.num_negatives:
            raise MiningError(
                f"The corpus holds {pool} passages: too few to pick {params.num_negatives} negatives after "
                f"skipping range_min={params.range_min} and up to {max_positives} positives per query. Add "
                "passages (an extra corpus file) or lower num_negatives / range_min.")
    else:
        range_max = params.range_max
        if pool - max_positives < range_max:
            raise MiningError(
                f"The corpus holds {pool} passages, fewer than the rank range needs: range_max={range_max} plus "
                f"up to {max_positives} positives per query. Add passages (an extra corpus file) or lower "
                f"range_max to at most {max(pool - max_positives, 0)}.")
    if params.random_negatives and pool - max_positives - params.num_negatives < params.random_negatives:
        raise MiningError(f"The corpus holds {pool} passages: too few for {params.random_negatives} random "
                          f"negatives on top of {params.num_negatives} hard ones per query.")
    return Plan(project, params, query_ids, query_texts, positives, pool_ids, pool_texts, extra_new,
                range_max, max_positives, skipped_queries=train_queries - len(query_ids))


def cross_encoder_cost(p: Plan) -> dict[str, Any]:
    """Pairs a cross-encoder must score and the seconds that takes, shown before the user commits to it."""
    params = p.params
    if not params.cross_encoder:
        return {"pairs": 0, "seconds": 0.0}
    n_queries = len(p.query_ids)
    rescoring = (n_queries * (p.range_max + p.max_positives) + p.pair_count
                 if params.cross_encoder_rescoring and params.has_filter else 0)
    opinion = n_queries * (params.num_negatives + params.random_negatives) + p.pair_count
    pairs = rescoring + opinion
    return {"pairs": pairs, "rescoring_pairs": rescoring, "second_opinion_pairs": opinion,
            "seconds": round(pairs / CROSS_ENCODER_PAIRS_PER_SECOND, 1)}


# --- the library's miner, served from the cache ---------------------------------------------------------


class CachedEncoder:
    """A SentenceTransformer stand-in for `mine_hard_negatives`: encode_query/encode_document come from the
    studio's disk cache (prompts applied as the library would), everything else from the real model."""

    def __init__(self, spec: str, workspace: Path, progress: Progress | None = None,
                 trust_remote_code: bool = False):
        self._spec, self._workspace, self._progress = spec, workspace, progress
        self._trust = trust_remote_code
        self._model = models.load_embedder(spec, trust_remote_code=trust_remote_code)
        self.cache = {"cached": 0, "computed": 0}
        self.seconds = 0.0
        self.embeddings: dict[str, tuple[list[str], np.ndarray]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def _prompt(self, prompt: str | None, prompt_name: str | None, defaults: tuple[str, ...]) -> str:
        prompts = getattr(self._model, "prompts", {}) or {}
        if prompt is not None:
            return prompt
        if prompt_name is None:
            prompt_name = next((n for n in defaults if n in prompts), None)
        return prompts.get(prompt_name, "") if prompt_name else ""

    def _encode(self, role: str, inputs: Sequence[str], prompt: str, batch_size: int, **kwargs: Any) -> np.ndarray:
        if kwargs.get("pool") is not None or kwargs.get("convert_to_tensor"):
            raise MiningError("Multi-process encoding is not supported with the studio's embedding cache.")
        start = time.perf_counter()
        texts = [prompt + t for t in inputs] if prompt else list(inputs)
        progress = self._progress
        stats: dict[str, int] = {}
        vectors = embed_texts(
            texts, self._spec, workspace=self._workspace, batch_size=batch_size, stats=stats,
            trust_remote_code=self._trust,
            progress=(lambda done, total: progress(f"embedding {role}", done, total)) if progress else None,
        )
        for k in self.cache:
            self.cache[k] += stats.get(k, 0)
        self.embeddings[role] = (list(inputs), vectors)
        self.seconds += time.perf_counter() - start
        if progress:
            progress("searching" if role == "queries" else f"embedding {role}", 1, 1)
        return vectors

    def encode_document(self, inputs: Sequence[str], prompt_name: str | None = None, prompt: str | None = None,
                        batch_size: int = 32, **kwargs: Any) -> np.ndarray:
        return self._encode("passages", inputs, self._prompt(prompt, prompt_name, ("document", "passage", "corpus")),
                            batch_size, **kwargs)

    def encode_query(self, inputs: Sequence[str], prompt_name: str | None = None, prompt: str | None = None,
                     batch_size: int = 32, **kwargs: Any) -> np.ndarray:
        return self._encode("queries", inputs, self._prompt(prompt, prompt_name, ("query",)), batch_size, **kwargs)


def _library_mine(p: Plan, encoder: Any, cross_encoder: Any = None) -> dict[str, list[tuple[int, float]]]:
    """Run sentence-transformers' miner; returns query text -> [(pool index, library score)] in its order."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    params = p.params
    dataset = Dataset.from_dict({
        "query": [q for q, pos in zip(p.query_texts, p.positives) for _ in pos],
        "positive": [p.pool_texts[i] for pos in p.positives for i in pos],
    })
    random.seed(params.seed)  # the library samples with the global `random`
    out = mine_hard_negatives(
        dataset, encoder, anchor_column_name="query", positive_column_name="positive",
        corpus=p.pool_texts, cross_encoder=cross_encoder if params.cross_encoder_rescoring else None,
        range_min=params.range_min, range_max=p.range_max, max_score=params.max_score,
        min_score=params.min_score, absolute_margin=params.absolute_margin,
        relative_margin=params.relative_margin, num_negatives=params.num_negatives,
        sampling_strategy=params.sampling_strategy, output_format="labeled-pair", output_scores=True,
        batch_size=params.batch_size, faiss_batch_size=params.faiss_batch_size, use_faiss=params.use_faiss,
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


# --- false-negative risk -------------------------------------------------------------------------------


def _zscore(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    sd = float(ref.std()) or 1.0
    return (x - float(ref.mean())) / sd


def risk_scores(features: dict[str, np.ndarray], reference: np.ndarray, ce_risk: np.ndarray | None = None) -> np.ndarray:
    """False-negative risk in [0, 1]: how far a candidate stands out, on five signals, from the run's typical
    hard negative. Signals: similarity to the query, the same relative to the positive's, similarity to the
    positive passage (dense and lexical: a near-duplicate of the positive likely answers too), and lexical
    overlap with the query. Equal weights on z-scores (no fitted weights); a cross-encoder's opinion, when
    given, is averaged in."""
    z = np.mean([_zscore(v, v[reference]) for v in features.values()], axis=0)
    risk = 1.0 / (1.0 + np.exp(-2.0 * z))
    if ce_risk is not None:
        risk = 0.5 * risk + 0.5 * ce_risk
    return np.clip(risk, 0.0, 1.0)


_TFIDF: dict[str, Any] = {}


def _tfidf(pool: list[str]) -> tuple[Any, Any]:
    """TF-IDF of the pool, fitted once per pool per process (re-runs with other parameters reuse it)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    key = store.text_hash("\x00".join(pool))
    if _TFIDF.get("key") != key:
        vec = TfidfVectorizer(sublinear_tf=True, stop_words="english", dtype=np.float32)
        _TFIDF.update(key=key, vec=vec, matrix=vec.fit_transform(pool).tocsr())
    return _TFIDF["vec"], _TFIDF["matrix"]


def _lexical(p: Plan, idx_n: np.ndarray, idx_p: np.ndarray, q_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TF-IDF cosine of each negative with its positive and with its query."""
    vec, P = _tfidf(p.pool_texts)
    Qm = vec.transform(p.query_texts).tocsr()
    neg = P[idx_n]
    to_pos = np.asarray(neg.multiply(P[idx_p]).sum(axis=1)).ravel()
    to_query = np.asarray(neg.multiply(Qm[q_of]).sum(axis=1)).ravel()
    return to_pos, to_query


# --- the run ---------------------------------------------------------------------------------------------


def _summary(x: np.ndarray) -> dict[str, float]:
    if len(x) == 0:
        return {"count": 0}
    q = np.quantile(x, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {"count": int(len(x)), "mean": round(float(x.mean()), 4), "min": round(float(q[0]), 4),
            "p25": round(float(q[1]), 4), "median": round(float(q[2]), 4), "p75": round(float(q[3]), 4),
            "max": round(float(q[4]), 4)}


def _short_reason(params: MiningParams, cand: np.ndarray, pos_score: float, available: int) -> str:
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
    return "corpus too small for the rank range" if available < params.range_min + params.num_negatives else "range_max"


def mine(conn: sqlite3.Connection, project: int, params: MiningParams, *,
         extra_corpus: Sequence[str] | str | Path | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Mine, score risk, and replace the project's unjudged negatives in one transaction; returns the stats."""
    started = time.perf_counter()
    p = plan(conn, project, params, extra_corpus)
    cost = cross_encoder_cost(p)
    with store.transaction(conn):
        run_id = int(conn.execute(
            "INSERT INTO mining_runs (project_id, created_at, status, params) VALUES (?, ?, 'running', ?)",
            (project, store.now(), json.dumps(asdict(params))),
        ).lastrowid)
    try:
        stats = _run(conn, p, run_id, progress, cost)
    except BaseException as exc:
        status = "cancelled" if isinstance(exc, (MiningCancelled, KeyboardInterrupt)) or \
            type(exc).__name__ in ("StopException", "RerunException") else "failed"
        with store.transaction(conn):
            conn.execute("UPDATE mining_runs SET status = ?, stats = ? WHERE id = ?",
                         (status, json.dumps({"error": f"{type(exc).__name__}: {exc}"}), run_id))
        raise
    stats["seconds"]["total"] = round(time.perf_counter() - started, 2)
    conn.execute("UPDATE mining_runs SET stats = ? WHERE id = ?", (json.dumps(stats), run_id))
    return stats


def _run(conn: sqlite3.Connection, p: Plan, run_id: int, progress: Progress | None,
         cost: dict[str, Any]) -> dict[str, Any]:
    params = p.params
    t0 = time.perf_counter()
    encoder = CachedEncoder(params.model, store.workspace_of(conn), progress)
    ce = models.load_cross_encoder(params.cross_encoder, max_length=params.cross_encoder_max_length) \
        if params.cross_encoder else None
    mined = _library_mine(p, encoder, ce)
    t_mine = time.perf_counter() - t0
    if progress:
        progress("scoring risk", 0, 1)

    texts_c, C = encoder.embeddings["passages"]
    texts_q, Q = encoder.embeddings["queries"]
    assert texts_c == p.pool_texts, "the miner re-ordered the corpus"
    q_row = {t: i for i, t in enumerate(texts_q)}
    Qp = Q[[q_row[t] for t in p.query_texts]]

    # Query x pool similarities (in chunks, so a large pool stays in memory) serve positives, ranks, random
    # negatives and the short-query reasons.
    rng = np.random.default_rng(params.seed)
    rows: list[dict[str, Any]] = []
    short: dict[str, int] = {}
    per_query: list[int] = []
    positive_scores: list[float] = []
    n_pool = len(p.pool_texts)
    chunk = max(1, 2**26 // max(n_pool, 1))  # ~256 MB of float32 scores per chunk
    for first in range(0, len(p.query_texts), chunk):
        S = Qp[first : first + chunk] @ C.T
        S_sorted = np.sort(S, axis=1)
        for qi in range(first, min(first + chunk, len(p.query_texts))):
            qtext, pos = p.query_texts[qi], p.positives[qi]
            scores, ordered = S[qi - first], S_sorted[qi - first]
            pscores = scores[pos]
            positive_scores.extend(float(x) for x in pscores)
            harder = int(np.argmin(pscores))  # margins are measured against the harder positive, as in the library
            pos_idx, pos_score = pos[harder], float(pscores[harder])
            hard = mined[qtext]
            picked = [i for i, _ in hard]
            per_query.append(len(hard))
            if len(hard) < params.num_negatives:
                cand = np.delete(scores, pos)
                window = -np.partition(-cand, min(p.range_max, len(cand)) - 1)[: p.range_max]
                reason = _short_reason(params, window, pos_score, len(cand))
                short[reason] = short.get(reason, 0) + 1
            taken = set(pos) | set(picked)
            randoms: list[int] = []
            while len(randoms) < params.random_negatives:
                i = int(rng.integers(n_pool))
                if i not in taken:
                    taken.add(i)
                    randoms.append(i)
            for kind, items in (("hard", picked), ("random", randoms)):
                for i in items:
                    score = float(scores[i])
                    # Rank 1 = the passage most similar to the query in the whole pool (positives included).
                    rank = int(n_pool - np.searchsorted(ordered, score, side="right")) + 1
                    rows.append(dict(q=qi, i=i, kind=kind, score=score, pos=pos_idx, pos_score=pos_score,
                                     rank=rank))
        del S, S_sorted

    ce_scores = ce_risk = None
    if ce is not None and rows:
        if progress:
            progress("cross-encoder second opinion", 0, cost["second_opinion_pairs"])
        import torch

        neg_logits = ce.predict([(p.query_texts[r["q"]], p.pool_texts[r["i"]]) for r in rows],
                                batch_size=params.batch_size, activation_fn=torch.nn.Identity(),
                                show_progress_bar=False)
        pos_pairs = sorted({(r["q"], r["pos"]) for r in rows})
        pos_logits = dict(zip(pos_pairs, ce.predict([(p.query_texts[q], p.pool_texts[i]) for q, i in pos_pairs],
                                                    batch_size=params.batch_size,
                                                    activation_fn=torch.nn.Identity(), show_progress_bar=False)))
        neg_logits = np.asarray(neg_logits, dtype=float)
        ce_scores = 1 / (1 + np.exp(-neg_logits))
        ce_risk = 1 / (1 + np.exp(-(neg_logits - np.array([pos_logits[(r["q"], r["pos"])] for r in rows]))))
        if progress:
            progress("cross-encoder second opinion", cost["second_opinion_pairs"], cost["second_opinion_pairs"])

    risk = np.zeros(0)
    if rows:
        s = np.array([r["score"] for r in rows])
        ps = np.array([r["pos_score"] for r in rows])
        idx_n = np.array([r["i"] for r in rows])
        idx_p = np.array([r["pos"] for r in rows])
        dense_pos = np.einsum("ij,ij->i", C[idx_n], C[idx_p])
        lex_pos, lex_query = _lexical(p, idx_n, idx_p, np.array([r["q"] for r in rows]))
        hard_mask = np.array([r["kind"] == "hard" for r in rows])
        reference = hard_mask if hard_mask.any() else np.ones(len(rows), dtype=bool)
        risk = risk_scores({"score": s, "score_minus_positive": s - ps, "dense_to_positive": dense_pos,
                            "lexical_to_positive": lex_pos, "lexical_to_query": lex_query}, reference, ce_risk)
    if progress:
        progress("scoring risk", 1, 1)

    # One transaction: new passages, unjudged negatives replaced, judged ones kept.
    with store.transaction(conn):
        if progress:
            progress("saving", 0, len(rows))
        ids = list(p.pool_ids)
        if p.extra_texts:
            new_ids = store.upsert_passages(conn, p.project, p.extra_texts, source="corpus")
            ids[len(ids) - len(new_ids):] = new_ids
        replaced = conn.execute("DELETE FROM negatives WHERE project_id = ? AND status = 'unjudged'",
                                (p.project,)).rowcount
        inserted = 0
        now = store.now()
        for k, r in enumerate(rows):
            cur = conn.execute(
                """INSERT OR IGNORE INTO negatives (project_id, query_id, passage_id, positive_id, mining_run_id,
                       kind, rank, score, positive_score, ce_score, risk, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (p.project, p.query_ids[r["q"]], ids[r["i"]], ids[r["pos"]], run_id, r["kind"], r["rank"],
                 r["score"], r["pos_score"], None if ce_scores is None else float(ce_scores[k]),
                 float(risk[k]), now),
            )
            inserted += cur.rowcount
        kept = int(conn.execute("SELECT COUNT(*) FROM negatives WHERE project_id = ? AND status != 'unjudged'",
                                (p.project,)).fetchone()[0])
        if progress:
            progress("saving", len(rows), len(rows))
        hard_scores = np.array([r["score"] for r in rows if r["kind"] == "hard"])
        random_scores = np.array([r["score"] for r in rows if r["kind"] == "random"])
        per = np.array(per_query)
        stats = {
            "run_id": run_id,
            "queries": len(p.query_ids),
            "queries_without_positive": p.skipped_queries,
            "pool": len(p.pool_texts),
            "extra_corpus_added": len(p.extra_texts),
            "range_max": p.range_max,
            "asked_per_query": params.num_negatives,
            "hard_negatives": int(len(hard_scores)),
            "random_negatives": int(len(random_scores)),
            "negatives_per_query": {"min": int(per.min()), "mean": round(float(per.mean()), 2),
                                    "max": int(per.max())},
            "short_queries": int(sum(short.values())),
            "short_reasons": short,
            "positive_scores": _summary(np.array(positive_scores)),
            "negative_scores": _summary(hard_scores),
            "random_scores": _summary(random_scores),
            "cache": dict(encoder.cache),
            "cross_encoder_cost": cost,
            "stored": inserted,
            "replaced_unjudged": replaced,
            "kept_judged": kept,
            "already_judged": len(rows) - inserted,
            "seconds": {"embedding": round(encoder.seconds, 2), "mining": round(t_mine, 2),
                        "search_and_select": round(t_mine - encoder.seconds, 2)},
        }
        conn.execute("UPDATE mining_runs SET status = 'completed', stats = ? WHERE id = ?",
                     (json.dumps(stats), run_id))
    return stats


# --- reading results back -------------------------------------------------------------------------------


def latest_run(conn: sqlite3.Connection, project: int) -> dict[str, Any] | None:
    """The newest mining run with its parameters and stats."""
    row = conn.execute("SELECT * FROM mining_runs WHERE project_id = ? ORDER BY id DESC LIMIT 1",
                       (project,)).fetchone()
    if row is None:
        return None
    out = dict(row)
    out["params"], out["stats"] = json.loads(out["params"]), json.loads(out["stats"])
    return out


def fetch_negatives(conn: sqlite3.Connection, project: int, limit: int | None = None) -> list[dict[str, Any]]:
    """Mined negatives with their texts, riskiest first."""
    sql = """SELECT n.id, n.risk, n.kind, n.rank, n.score, n.positive_score, n.ce_score, n.status,
                    q.text AS query, s.text AS passage, n.query_id, n.passage_id, n.positive_id
             FROM negatives n JOIN queries q ON q.id = n.query_id JOIN passages s ON s.id = n.passage_id
             WHERE n.project_id = ? ORDER BY n.risk DESC, n.id"""
    params: tuple[Any, ...] = (project,)
    if limit:
        sql += " LIMIT ?"
        params += (limit,)
    return [dict(r) for r in conn.execute(sql, params).fetchall()]


def score_distributions(conn: sqlite3.Connection, project: int) -> dict[str, list[float]]:
    """Similarity of positives vs hard and random negatives, for the histogram."""
    pos = conn.execute(
        "SELECT DISTINCT query_id, positive_id, positive_score FROM negatives WHERE project_id = ? "
        "AND positive_score IS NOT NULL", (project,)).fetchall()
    out = {"positive": [float(r["positive_score"]) for r in pos]}
    for kind in ("hard", "random"):
        out[f"{kind} negative"] = [float(r[0]) for r in conn.execute(
            "SELECT score FROM negatives WHERE project_id = ? AND kind = ? AND score IS NOT NULL",
            (project, kind))]
    return out


# --- CLI ---------------------------------------------------------------------------------------------------

_FLAGS = {f.name: f for f in fields(MiningParams)}


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags are the miner's parameter names in kebab case; anything unset comes from the preset."""
    parser.add_argument("--project", required=True, help="project name")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="recommended")
    parser.add_argument("--corpus", help="extra corpus file (.txt/.jsonl/.csv/.tsv), added as passages")
    parser.add_argument("--num-negatives", type=int)
    parser.add_argument("--range-min", type=int)
    parser.add_argument("--range-max", type=int)
    for name in ("max_score", "min_score", "absolute_margin", "relative_margin"):
        parser.add_argument("--" + name.replace("_", "-"), type=float)
    parser.add_argument("--sampling-strategy", choices=["top", "random"])
    parser.add_argument("--random-negatives", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--faiss-batch-size", type=int)
    parser.add_argument("--use-faiss", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--cross-encoder", help="cross-encoder folder: second opinion for the risk")
    parser.add_argument("--cross-encoder-rescoring", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--cross-encoder-max-length", type=int)
    parser.add_argument("--model", help="embedding model: bundled (default), a folder or a hub id")
    parser.add_argument("--seed", type=int)


def cli_main(args: argparse.Namespace) -> dict[str, Any]:
    """Mine for a project and return the stats (printed as JSON by the dispatcher)."""
    overrides = {k: v for k, v in vars(args).items() if k in _FLAGS and v is not None}
    params = preset(args.preset, **overrides)
    conn = store.connect()
    try:
        project = store.project_id(conn, args.project)
        return mine(conn, project, params, extra_corpus=args.corpus)
    finally:
        conn.close()
