"""Dataset quality: query and document diversity, token lengths against the context, and the field's health rules.

Everything here is a plain function over the store's rows; the Quality page only draws what these return.
Expensive parts are cached on disk (cache_dir()/quality): the whole report by the project's data fingerprint,
and each stage (query side, passage side) by a hash of its own inputs, so a review judgement that changes the
data version re-uses the embedding neighbours and only re-counts what depends on it. Paraphrase clusters and
leakage are derived from a cached k-nearest-neighbour graph, so moving the threshold costs milliseconds.

Snippets (the fix for truncated pairs) are stored as a new passage row (source='snippet') holding the window
text, the pair re-pointed to it, and a `snippets` row remembering the original passage — all in one
transaction; reverting re-points the pair and removes the snippet row (and the passage when nothing else uses it).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import models, store

Progress = Callable[[str, float], None]  # (what is happening, fraction done 0..1)

MAP_SAMPLE = 5000
KNN_K = 32
MIN_THRESHOLD = 0.70  # the slider's floor: neighbours below this are not kept
DEFAULT_THRESHOLD = 0.90
DEFAULT_MAX_LENGTH = 512
EXACT_SEARCH_LIMIT = 1.5e8  # n_queries * n_base above which faiss IVF (approximate) replaces exact search
REPORT_VERSION = 3
_MEMO: dict[str, Any] = {}

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=\S)")


def _noop(_: str, __: float) -> None:
    return None


# --- data classes -----------------------------------------------------------------------------


@dataclass
class TextSide:
    """Embeddings, neighbours, map and text statistics of one side (queries or passages)."""

    ids: np.ndarray  # store ids
    texts: list[str]
    group: np.ndarray  # str labels used for colouring and filtering
    neighbours: np.ndarray  # (n, K) indices into this side, -1 where none
    similarity: np.ndarray  # (n, K) cosine similarities, descending
    map_index: np.ndarray  # which rows are drawn on the map
    map_xy: np.ndarray  # (len(map_index), 2)
    chars: np.ndarray
    words: np.ndarray
    vocabulary: int
    cross_neighbour: np.ndarray | None = None  # queries: nearest train query of each row
    cross_similarity: np.ndarray | None = None


@dataclass
class TokenTable:
    """One row per (query, passage) example the model will see, with token counts."""

    pair_id: np.ndarray  # pairs.id, or negatives.id for mined rows
    kind: np.ndarray  # 'pair' | 'mined'
    split: np.ndarray  # 'train' | 'test'
    label: np.ndarray
    query_id: np.ndarray
    passage_id: np.ndarray
    query_tokens: np.ndarray
    passage_tokens: np.ndarray
    total: np.ndarray  # query + passage + special tokens of the pair encoding
    overflow: np.ndarray  # tokens cut at max_length (0 when it fits)


@dataclass
class QualityReport:
    """Everything the Quality page shows, computed once per data version and model choice."""

    key: str
    project: int
    max_length: int
    tokenizer: str
    embedder: str
    special_tokens: int
    queries: TextSide
    passages: TextSide
    tokens: TokenTable
    query_text: dict[int, str]
    passage_text: dict[int, str]
    counts: dict[str, Any] = field(default_factory=dict)


# --- cache ------------------------------------------------------------------------------------


def _cache_folder(workspace: Path | None) -> Path:
    folder = store.cache_dir(workspace) / "quality"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _cached(folder: Path, name: str, compute: Callable[[], Any], keep: int = 6) -> Any:
    """Load a pickled stage result, or compute and store it (oldest files of the stage are pruned)."""
    path = folder / f"{name}.pkl"
    if path.is_file():
        try:
            with open(path, "rb") as fh:
                return pickle.load(fh)
        except Exception:  # noqa: BLE001 - a corrupt cache file is recomputed
            path.unlink(missing_ok=True)
    value = compute()
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    stage = name.split("-")[0]
    old = sorted(folder.glob(f"{stage}-*.pkl"), key=lambda p: p.stat().st_mtime)
    for stale in old[:-keep]:
        stale.unlink(missing_ok=True)
    return value


def _digest(*parts: Any) -> str:
    h = hashlib.sha1()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, (list, tuple)):
            for item in part:
                h.update(str(item).encode("utf-8", "surrogatepass"))
                h.update(b"\x1f")
        else:
            h.update(str(part).encode("utf-8", "surrogatepass"))
        h.update(b"\x1e")
    return h.hexdigest()[:20]


def data_fingerprint(conn: sqlite3.Connection, project: int) -> str:
    """store.data_version plus what it cannot see: re-pointed pairs (snippets), labels, statuses."""
    extra = conn.execute(
        "SELECT COUNT(*), TOTAL(passage_id * 1000003 + query_id), TOTAL(label) FROM pairs WHERE project_id = ?",
        (project,),
    ).fetchone()
    neg = conn.execute(
        "SELECT TOTAL(version), TOTAL(CASE status WHEN 'relevant' THEN id ELSE 0 END) "
        "FROM negatives WHERE project_id = ?",
        (project,),
    ).fetchone()
    return f"{store.data_version(conn, project)}|{tuple(extra)}|{tuple(neg)}"


# --- tokens -----------------------------------------------------------------------------------


def _backend(tokenizer: Any) -> Any | None:
    """A private copy of the fast tokenizer with truncation and padding off (the shared one is untouched)."""
    if not getattr(tokenizer, "is_fast", False):
        return None
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend


def token_counts(
    texts: Sequence[str], tokenizer: Any, *, progress: Progress = _noop, chunk: int = 1024
) -> np.ndarray:
    """Tokens of each text without special tokens (the pair encoding adds those once)."""
    from concurrent.futures import ThreadPoolExecutor

    out = np.zeros(len(texts), dtype=np.int32)
    backend = _backend(tokenizer)
    starts = list(range(0, len(texts), chunk))

    def count(start: int) -> int:
        batch = list(texts[start : start + chunk])
        if backend is not None:  # the Rust tokenizer releases the GIL: two threads use two cores
            encodings = backend.encode_batch_fast(batch, add_special_tokens=False)
            out[start : start + len(batch)] = [len(e) for e in encodings]
        else:
            ids = tokenizer(batch, add_special_tokens=False, truncation=False)["input_ids"]
            out[start : start + len(batch)] = [len(i) for i in ids]
        return len(batch)

    done = 0
    with ThreadPoolExecutor(max_workers=2 if backend is not None else 1) as pool:
        for n in pool.map(count, starts):
            done += n
            progress("Counting tokens", done / max(1, len(texts)))
    return out


class _TokenCache:
    """Token counts per (tokenizer, text hash) on disk, so a changed project re-counts only new texts."""

    def __init__(self, folder: Path, tokenizer_key: str):
        name = hashlib.sha1(tokenizer_key.encode()).hexdigest()[:16]
        self.conn = sqlite3.connect(folder / f"tokens-{name}.sqlite", timeout=30)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS counts (hash TEXT PRIMARY KEY, n INTEGER NOT NULL)")

    def counts(self, texts: Sequence[str], tokenizer: Any, progress: Progress) -> np.ndarray:
        hashes = [store.text_hash(t) for t in texts]
        known: dict[str, int] = {}
        for start in range(0, len(hashes), 900):
            chunk = hashes[start : start + 900]
            marks = ",".join("?" * len(chunk))
            known.update(self.conn.execute(f"SELECT hash, n FROM counts WHERE hash IN ({marks})", chunk))
        missing = [i for i, h in enumerate(hashes) if h not in known]
        if missing:
            fresh = token_counts([texts[i] for i in missing], tokenizer, progress=progress)
            rows = [(hashes[i], int(n)) for i, n in zip(missing, fresh)]
            with self.conn:
                self.conn.executemany("INSERT OR REPLACE INTO counts VALUES (?, ?)", rows)
            known.update(rows)
        self.conn.close()
        return np.fromiter((known[h] for h in hashes), dtype=np.int32, count=len(hashes))


def special_tokens(tokenizer: Any) -> int:
    """Special tokens the pair encoding adds ([CLS] q [SEP] p [SEP] is 3 for BERT-style models)."""
    return int(tokenizer.num_special_tokens_to_add(pair=True))


# --- neighbours, clusters, projection -----------------------------------------------------------


def nearest(
    queries: np.ndarray, base: np.ndarray, k: int, *, exclude_self: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k cosine neighbours with faiss: exact when small enough, IVF (approximate) when large."""
    import faiss

    n, m = len(queries), len(base)
    if n == 0 or m == 0:
        return np.full((n, k), -1, dtype=np.int64), np.zeros((n, k), dtype=np.float32)
    kk = min(m, k + (1 if exclude_self else 0))
    d = base.shape[1]
    base = np.ascontiguousarray(base, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if n * m <= EXACT_SEARCH_LIMIT or m < 10_000:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = int(2 * np.sqrt(m))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10
        rng = np.random.default_rng(0)
        train = base[rng.choice(m, size=min(m, nlist * 30), replace=False)]
        index.train(train)
        index.nprobe = 16  # ~5% of the lists: near-duplicates (cosine >= 0.7) share a list almost always
    index.add(base)
    sim, idx = index.search(queries, kk)
    if exclude_self:
        own = np.arange(n)[:, None]
        keep = idx != own
        order = np.argsort(~keep, axis=1, kind="stable")  # kept hits first, self hit last
        idx = np.take_along_axis(idx, order, axis=1)[:, : kk - 1]
        sim = np.take_along_axis(sim, order, axis=1)[:, : kk - 1]
    width = idx.shape[1]
    if width < k:  # pad to k so callers see one shape
        idx = np.pad(idx, ((0, 0), (0, k - width)), constant_values=-1)
        sim = np.pad(sim, ((0, 0), (0, k - width)), constant_values=-1.0)
    return idx.astype(np.int64), sim.astype(np.float32)


def clusters(
    neighbours: np.ndarray, similarity: np.ndarray, threshold: float, members: np.ndarray | None = None
) -> list[list[int]]:
    """Near-paraphrase groups: the fast community detection of sentence-transformers (util.community_detection,
    min size 2), run on the k-NN graph instead of the full similarity matrix so it scales and re-runs instantly.
    The first index of each group is its centre; every member is within `threshold` of it."""
    n = len(neighbours)
    allowed = np.ones(n, dtype=bool) if members is None else members.astype(bool)
    close = (similarity >= threshold) & (neighbours >= 0)
    close &= allowed[np.clip(neighbours, 0, None)]
    close[~allowed] = False
    degree = close.sum(1)
    centres = np.flatnonzero(degree > 0)
    centres = centres[np.argsort(-degree[centres], kind="stable")]
    used = np.zeros(n, dtype=bool)
    groups: list[list[int]] = []
    for c in centres:
        if used[c]:
            continue
        mates = neighbours[c][close[c]]
        mates = mates[~used[mates]]
        if len(mates) == 0:
            continue
        group = [int(c)] + [int(x) for x in mates if x != c]
        used[group] = True
        groups.append(group)
    return sorted(groups, key=len, reverse=True)


def effective_count(n: int, groups: list[list[int]]) -> int:
    """Distinct items once each paraphrase group counts as one."""
    return n - sum(len(g) - 1 for g in groups)


def project_2d(vectors: np.ndarray) -> np.ndarray:
    """PCA to two dimensions (eigenvectors of the d x d scatter): deterministic, fast, honest about layout."""
    if len(vectors) < 3:
        return np.zeros((len(vectors), 2), dtype=np.float32)
    centred = (vectors - vectors.mean(axis=0, keepdims=True)).astype(np.float64)
    _, vecs = np.linalg.eigh(centred.T @ centred)  # d x d: cheap even for 100k rows
    components = vecs[:, ::-1][:, :2].T.copy()
    components *= np.sign(components[:, [int(np.argmax(np.abs(c))) for c in components]].diagonal())[:, None]
    return (centred @ components.T).astype(np.float32)


def map_sample(group: np.ndarray, size: int = MAP_SAMPLE, seed: int = 0) -> np.ndarray:
    """Rows drawn on the map: all when few, else a stratified sample where small groups keep a fair share."""
    n = len(group)
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    labels, counts = np.unique(group, return_counts=True)
    quota = {lab: max(min(c, size // (2 * len(labels))), int(size * c / n)) for lab, c in zip(labels, counts)}
    picked = []
    for lab in labels:
        rows = np.flatnonzero(group == lab)
        picked.append(rng.choice(rows, size=min(len(rows), quota[lab]), replace=False))
    out = np.concatenate(picked)
    if len(out) > size:
        out = rng.choice(out, size=size, replace=False)
    return np.sort(out)


_PUNCTUATION = str.maketrans({c: " " for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"})


def text_stats(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Characters, words per text and the vocabulary size (distinct lower-cased words, punctuation removed)."""
    chars = np.fromiter((len(t) for t in texts), dtype=np.int32, count=len(texts))
    vocab: set[str] = set()
    words = np.zeros(len(texts), dtype=np.int32)
    for i, t in enumerate(texts):
        tokens = t.lower().translate(_PUNCTUATION).split()
        words[i] = len(tokens)
        vocab.update(tokens)
    return chars, words, len(vocab)


def _side(
    ids: np.ndarray,
    texts: list[str],
    group: np.ndarray,
    vectors: np.ndarray,
    *,
    base_mask: np.ndarray,
    cross_from: np.ndarray | None,
    progress: Progress,
    label: str,
) -> TextSide:
    """Neighbours within the base rows (train), optional nearest-base lookup for other rows, and the map."""
    n = len(texts)
    progress(f"Finding near-duplicate {label}", 0.0)
    base_rows = np.flatnonzero(base_mask)
    neighbours = np.full((n, KNN_K), -1, dtype=np.int64)
    similarity = np.full((n, KNN_K), -1.0, dtype=np.float32)
    if len(base_rows) > 1:
        idx, sim = nearest(vectors[base_rows], vectors[base_rows], KNN_K, exclude_self=True)
        mapped = np.where(idx >= 0, base_rows[np.clip(idx, 0, None)], -1)
        sim = np.where(sim >= MIN_THRESHOLD, sim, -1.0)
        mapped = np.where(sim >= MIN_THRESHOLD, mapped, -1)
        neighbours[base_rows], similarity[base_rows] = mapped, sim
    cross_n = cross_s = None
    if cross_from is not None and len(cross_from) and len(base_rows):
        idx, sim = nearest(vectors[cross_from], vectors[base_rows], 1)
        cross_n = np.full(n, -1, dtype=np.int64)
        cross_s = np.full(n, -1.0, dtype=np.float32)
        cross_n[cross_from] = np.where(idx[:, 0] >= 0, base_rows[np.clip(idx[:, 0], 0, None)], -1)
        cross_s[cross_from] = sim[:, 0]
    progress(f"Drawing the {label} map", 0.7)
    sample = map_sample(group)
    xy = project_2d(vectors[sample]) if n else np.zeros((0, 2), dtype=np.float32)
    progress(f"Counting {label} words", 0.85)
    chars, words, vocab = text_stats(texts)
    progress(f"{label.capitalize()} done", 1.0)
    return TextSide(ids, texts, group, neighbours, similarity, sample, xy, chars, words, vocab, cross_n, cross_s)


# --- reading the store --------------------------------------------------------------------------


def _read(conn: sqlite3.Connection, project: int) -> dict[str, Any]:
    q = conn.execute(
        "SELECT id, text, split FROM queries WHERE project_id = ? ORDER BY id", (project,)
    ).fetchall()
    pairs = conn.execute(
        """SELECT p.id, p.query_id, p.passage_id, p.label, q.split FROM pairs p
           JOIN queries q ON q.id = p.query_id WHERE p.project_id = ? ORDER BY p.id""",
        (project,),
    ).fetchall()
    negs = conn.execute(
        """SELECT n.id, n.query_id, n.passage_id, n.kind, n.status, q.split FROM negatives n
           JOIN queries q ON q.id = n.query_id WHERE n.project_id = ? ORDER BY n.id""",
        (project,),
    ).fetchall()
    used = {r["passage_id"] for r in pairs} | {r["passage_id"] for r in negs}
    passages = {}
    if used:
        for row in conn.execute(
            "SELECT id, text FROM passages WHERE project_id = ? ORDER BY id", (project,)
        ):
            if row[0] in used:
                passages[row[0]] = row[1]
    return {"queries": q, "pairs": pairs, "negatives": negs, "passages": passages}


def settings_models(conn: sqlite3.Connection, project: int) -> tuple[str, str, int]:
    """The embedding model (the last mining run's), the model to train and its max length (the last training
    run's, or the project's settings), so the page measures what the user actually chose."""
    s = store.project_settings(conn, project)
    mined = conn.execute(
        "SELECT params FROM mining_runs WHERE project_id = ? ORDER BY id DESC LIMIT 1", (project,)
    ).fetchone()
    trained = conn.execute(
        "SELECT config FROM runs WHERE project_id = ? ORDER BY created_at DESC LIMIT 1", (project,)
    ).fetchone()
    mine_params = json.loads(mined[0]) if mined else {}
    run_config = json.loads(trained[0]) if trained else {}
    embedder = s.get("embedding_model") or mine_params.get("model") or models.BUNDLED
    base = s.get("base_model") or run_config.get("base_model") or models.BUNDLED
    max_length = int(s.get("max_length") or run_config.get("max_length") or DEFAULT_MAX_LENGTH)
    return embedder, base, max_length


# --- the report ---------------------------------------------------------------------------------


def analyse(
    conn: sqlite3.Connection,
    project: int,
    *,
    embed_model: str | None = None,
    train_model: str | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    progress: Progress = _noop,
    workspace: Path | None = None,
) -> QualityReport:
    """The full quality report for a project, from cache when the data and the model choice are unchanged."""
    from core.embeddings import embed_texts

    if max_length < 8:
        raise ValueError(f"max_length must be at least 8 tokens, got {max_length}.")
    workspace = workspace or store.workspace_of(conn)
    folder = _cache_folder(workspace)
    embed_key = models.model_key(embed_model)
    tok_key = models.model_key(train_model)
    key = _digest(REPORT_VERSION, project, data_fingerprint(conn, project), embed_key, tok_key, max_length)

    def compute() -> QualityReport:
        progress("Reading the project", 0.0)
        data = _read(conn, project)
        tokenizer = models.load_tokenizer(train_model)
        specials = special_tokens(tokenizer)

        # queries ------------------------------------------------------------------------------
        q_ids = np.array([r["id"] for r in data["queries"]], dtype=np.int64)
        q_texts = [r["text"] for r in data["queries"]]
        q_split = np.array([r["split"] for r in data["queries"]], dtype=object)
        q_key = _digest("q", embed_key, q_ids, q_texts, list(q_split))

        def query_side() -> TextSide:
            vecs = embed_texts(
                q_texts, embed_model, workspace=workspace,
                progress=lambda d, t: progress("Embedding queries", d / max(t, 1) * 0.5),
            )
            return _side(
                q_ids, q_texts, q_split, vecs, base_mask=q_split == "train",
                cross_from=np.flatnonzero(q_split == "test"),
                progress=lambda m, f: progress(m, 0.5 + 0.5 * f), label="queries",
            )

        queries = _cached(folder, f"queries-{q_key}", query_side)

        # passages used for training, by role ---------------------------------------------------
        role: dict[int, str] = {}
        order = {"positive": 0, "labelled negative": 1, "mined hard negative": 2, "mined random negative": 3}
        for r in data["pairs"]:
            if r["split"] != "train":
                continue
            g = "positive" if r["label"] > 0 else "labelled negative"
            if order[g] < order.get(role.get(r["passage_id"], ""), 9):
                role[r["passage_id"]] = g
        for r in data["negatives"]:
            if r["split"] != "train":
                continue
            g = f"mined {r['kind']} negative"
            if order[g] < order.get(role.get(r["passage_id"], ""), 9):
                role[r["passage_id"]] = g
        p_ids = np.array(sorted(role), dtype=np.int64)
        p_texts = [data["passages"][i] for i in p_ids]
        p_group = np.array([role[i] for i in p_ids], dtype=object)
        p_key = _digest("p", embed_key, p_ids, [store.text_hash(t) for t in p_texts], list(p_group))

        def passage_side() -> TextSide:
            vecs = embed_texts(
                p_texts, embed_model, workspace=workspace,
                progress=lambda d, t: progress("Embedding passages", d / max(t, 1) * 0.5),
            )
            return _side(
                p_ids, p_texts, p_group, vecs, base_mask=np.ones(len(p_ids), dtype=bool), cross_from=None,
                progress=lambda m, f: progress(m, 0.5 + 0.5 * f), label="passages",
            )

        passages = _cached(folder, f"passages-{p_key}", passage_side)

        # tokens ------------------------------------------------------------------------------
        progress("Counting tokens", 0.0)
        all_p = sorted(data["passages"])
        cache = _TokenCache(folder, tok_key)
        counts = cache.counts(q_texts + [data["passages"][i] for i in all_p], tokenizer, progress)
        q_tok = dict(zip(q_ids.tolist(), counts[: len(q_ids)].tolist()))
        p_tok = dict(zip(all_p, counts[len(q_ids) :].tolist()))
        rows = [
            (r["id"], "pair", r["split"], float(r["label"]), r["query_id"], r["passage_id"]) for r in data["pairs"]
        ] + [
            (r["id"], "mined", r["split"], 0.0, r["query_id"], r["passage_id"])
            for r in data["negatives"]
            if r["status"] != "relevant"
        ]
        tq = np.array([q_tok[r[4]] for r in rows], dtype=np.int32)
        tp = np.array([p_tok[r[5]] for r in rows], dtype=np.int32)
        total = tq + tp + specials
        table = TokenTable(
            pair_id=np.array([r[0] for r in rows], dtype=np.int64),
            kind=np.array([r[1] for r in rows], dtype=object),
            split=np.array([r[2] for r in rows], dtype=object),
            label=np.array([r[3] for r in rows], dtype=np.float32),
            query_id=np.array([r[4] for r in rows], dtype=np.int64),
            passage_id=np.array([r[5] for r in rows], dtype=np.int64),
            query_tokens=tq,
            passage_tokens=tp,
            total=total.astype(np.int32),
            overflow=np.maximum(total - max_length, 0).astype(np.int32),
        )
        negs = data["negatives"]
        train_negs = [r for r in negs if r["split"] == "train"]
        counts_ = store.project_counts(conn, project)
        counts_.update(
            hard_negatives=sum(1 for r in train_negs if r["kind"] == "hard"),
            random_negatives=sum(1 for r in train_negs if r["kind"] == "random"),
            reviewed_hard=sum(1 for r in train_negs if r["kind"] == "hard" and r["status"] != "unjudged"),
            false_negatives=sum(1 for r in train_negs if r["status"] == "relevant"),
            snippets=int(
                conn.execute("SELECT COUNT(*) FROM snippets WHERE project_id = ?", (project,)).fetchone()[0]
            ),
        )
        progress("Done", 1.0)
        return QualityReport(
            key=key, project=project, max_length=max_length, tokenizer=tok_key, embedder=embed_key,
            special_tokens=specials, queries=queries, passages=passages, tokens=table,
            query_text=dict(zip(q_ids.tolist(), q_texts)), passage_text=data["passages"], counts=counts_,
        )

    if key in _MEMO:
        return _MEMO[key]
    report = _cached(folder, f"report-{key}", compute, keep=3)
    _MEMO.clear()  # one report per process: a page rerun (slider move) must not re-read the pickle
    _MEMO[key] = report
    return report


# --- views over a report (cheap; recomputed on every slider move) -------------------------------


def query_clusters(report: QualityReport, threshold: float) -> list[list[int]]:
    """Paraphrase groups among training queries at this cosine threshold (row indices of report.queries)."""
    q = report.queries
    return clusters(q.neighbours, q.similarity, threshold, members=q.group == "train")


def passage_clusters(report: QualityReport, threshold: float) -> list[list[int]]:
    """Near-duplicate groups among training passages at this threshold."""
    p = report.passages
    return clusters(p.neighbours, p.similarity, threshold)


def diversity_summary(side: TextSide, groups: list[list[int]], members: np.ndarray | None = None) -> dict[str, Any]:
    """Raw vs effective count, paraphrase share, length and vocabulary figures."""
    rows = np.arange(len(side.texts)) if members is None else np.flatnonzero(members)
    n = len(rows)
    eff = effective_count(n, groups)
    chars, words = side.chars[rows], side.words[rows]
    return {
        "count": n,
        "effective": eff,
        "groups": len(groups),
        "paraphrase_share": (n - eff) / n if n else 0.0,
        "words_median": float(np.median(words)) if n else 0.0,
        "words_p95": float(np.percentile(words, 95)) if n else 0.0,
        "chars_median": float(np.median(chars)) if n else 0.0,
        "vocabulary": side.vocabulary,
    }


def cluster_table(side: TextSide, groups: list[list[int]], limit: int = 200) -> list[dict[str, Any]]:
    """One row per group: its size, centre text and the other members' texts."""
    out = []
    for g in groups[:limit]:
        centre = g[0]
        sims = dict(zip(side.neighbours[centre].tolist(), side.similarity[centre].tolist()))
        out.append(
            {
                "size": len(g),
                "centre": side.texts[centre],
                "members": " | ".join(side.texts[i] for i in g[1:6]) + (" | …" if len(g) > 6 else ""),
                "min_similarity": round(min(sims.get(i, 1.0) for i in g[1:]), 3),
            }
        )
    return out


def leakage(report: QualityReport, threshold: float) -> list[dict[str, Any]]:
    """Test queries within `threshold` of a training query: the test set would reward memorising them."""
    q = report.queries
    if q.cross_neighbour is None:
        return []
    rows = np.flatnonzero((q.group == "test") & (q.cross_similarity >= threshold) & (q.cross_neighbour >= 0))
    rows = rows[np.argsort(-q.cross_similarity[rows], kind="stable")]
    return [
        {
            "similarity": round(float(q.cross_similarity[r]), 3),
            "test_query": q.texts[r],
            "train_query": q.texts[int(q.cross_neighbour[r])],
            "test_query_id": int(q.ids[r]),
            "train_query_id": int(q.ids[int(q.cross_neighbour[r])]),
        }
        for r in rows
    ]


def truncated(report: QualityReport, *, split: str | None = "train", kind: str | None = None) -> np.ndarray:
    """Row indices of report.tokens that exceed the context, longest overflow first."""
    t = report.tokens
    mask = t.overflow > 0
    if split:
        mask &= t.split == split
    if kind:
        mask &= t.kind == kind
    rows = np.flatnonzero(mask)
    return rows[np.argsort(-t.overflow[rows], kind="stable")]


def truncated_table(report: QualityReport, rows: np.ndarray, limit: int = 500) -> list[dict[str, Any]]:
    """The truncated examples as plain rows for a table."""
    t = report.tokens
    out = []
    for r in rows[:limit]:
        out.append(
            {
                "id": int(t.pair_id[r]),
                "kind": "mined negative" if t.kind[r] == "mined" else ("positive" if t.label[r] > 0 else "negative"),
                "query": report.query_text[int(t.query_id[r])],
                "passage": report.passage_text[int(t.passage_id[r])][:300],
                "tokens": int(t.total[r]),
                "cut": int(t.overflow[r]),
                "cut_share": round(float(t.overflow[r]) / float(t.total[r]), 3),
            }
        )
    return out


# --- snippets: the fix for truncation ------------------------------------------------------------


@dataclass
class Snippet:
    """The window of a long passage most similar to its query, sized to fit the context."""

    pair_id: int
    query: str
    text: str
    tokens: int  # tokens of the (query, snippet) pair encoding incl. special tokens
    similarity: float
    window: tuple[int, int]  # first and last sentence (inclusive) of the passage


def split_sentences(text: str) -> list[str]:
    """Sentence-ish pieces: split after . ! ? ; followed by whitespace."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def _pieces(sentences: list[str], lengths: np.ndarray, budget: int) -> tuple[list[str], np.ndarray]:
    """Split a sentence longer than the budget into word chunks so every piece fits on its own."""
    out, out_len = [], []
    for s, n in zip(sentences, lengths):
        if n <= budget:
            out.append(s)
            out_len.append(int(n))
            continue
        words = s.split()
        per = max(1, int(len(words) * budget * 0.8 / max(int(n), 1)))
        for i in range(0, len(words), per):
            out.append(" ".join(words[i : i + per]))
            out_len.append(-1)  # counted below
    lens = np.array(out_len, dtype=np.int64)
    return out, lens


def windows(sentences: list[str], lengths: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Every run of consecutive sentences starting at each sentence, grown while it fits the token budget."""
    out = []
    n = len(sentences)
    for i in range(n):
        used, j = 0, i
        while j < n and used + lengths[j] <= budget:
            used += lengths[j]
            j += 1
        if j > i:
            out.append((i, j - 1))
    return sorted(set(out))


def propose_snippets(
    report: QualityReport,
    rows: Sequence[int],
    *,
    embed_model: str | None = None,
    train_model: str | None = None,
    workspace: Path | None = None,
    progress: Progress = _noop,
) -> list[Snippet]:
    """For each truncated pair (row of report.tokens), the window of its passage most similar to the query."""
    from core.embeddings import embed_texts

    tokenizer = models.load_tokenizer(train_model)
    t = report.tokens
    plans = []  # (row, query, sentences, windows)
    sentence_texts: list[str] = []
    for k, r in enumerate(rows):
        query = report.query_text[int(t.query_id[r])]
        passage = report.passage_text[int(t.passage_id[r])]
        budget = max(16, report.max_length - int(t.query_tokens[r]) - report.special_tokens)
        sentences = split_sentences(passage)
        lengths = token_counts(sentences, tokenizer) + 1  # +1: joining sentences can add a token at a seam
        sentences, lengths = _pieces(sentences, lengths, budget - 2)
        if (lengths < 0).any():
            lengths = token_counts(sentences, tokenizer) + 1
        wins = windows(sentences, lengths, budget)
        plans.append((int(r), query, sentences, wins))
        sentence_texts.extend(" ".join(sentences[a : b + 1]) for a, b in wins)
        progress("Splitting passages into windows", 0.2 * (k + 1) / max(1, len(rows)))
    queries = [p[1] for p in plans]
    q_vec = embed_texts(queries, embed_model, workspace=workspace) if queries else np.zeros((0, 0))
    w_vec = embed_texts(
        sentence_texts, embed_model, workspace=workspace,
        progress=lambda d, n: progress("Embedding windows", 0.2 + 0.8 * d / max(n, 1)),
    ) if sentence_texts else np.zeros((0, 0))
    out, cursor = [], 0
    for k, (r, query, sentences, wins) in enumerate(plans):
        if not wins:
            continue
        sims = w_vec[cursor : cursor + len(wins)] @ q_vec[k]
        cursor += len(wins)
        best = int(np.argmax(sims))
        a, b = wins[best]
        budget = max(16, report.max_length - int(t.query_tokens[r]) - report.special_tokens)
        lengths = token_counts(sentences, tokenizer) + 1
        while a > 0 and lengths[a - 1 : b + 1].sum() <= budget:  # fill the budget with the text before it
            a -= 1
        text = " ".join(sentences[a : b + 1])
        n_tok = len(tokenizer(query, text, truncation=False)["input_ids"])
        while n_tok > report.max_length and b > a:  # the seam estimate was off: drop the last sentence
            b -= 1
            text = " ".join(sentences[a : b + 1])
            n_tok = len(tokenizer(query, text, truncation=False)["input_ids"])
        out.append(Snippet(int(t.pair_id[r]), query, text, n_tok, float(sims[best]), (a, b)))
    progress("Snippets ready", 1.0)
    return out


def accept_snippets(conn: sqlite3.Connection, project: int, snippets: Sequence[Snippet]) -> int:
    """Replace each pair's passage by its snippet (a new passage row; the original is remembered), atomically."""
    done = 0
    with store.transaction(conn):
        for s in snippets:
            row = conn.execute(
                "SELECT passage_id, query_id FROM pairs WHERE id = ? AND project_id = ?", (s.pair_id, project)
            ).fetchone()
            if row is None:
                raise ValueError(f"Pair {s.pair_id} is not in this project (was it deleted?).")
            if conn.execute("SELECT 1 FROM snippets WHERE pair_id = ?", (s.pair_id,)).fetchone():
                continue  # already shortened; revert first to choose another window
            original = conn.execute("SELECT doc_id FROM passages WHERE id = ?", (row["passage_id"],)).fetchone()
            [snippet_id] = store.upsert_passages(
                conn, project, [s.text], source="snippet", doc_ids=[original["doc_id"]]
            )
            clash = conn.execute(
                "SELECT 1 FROM pairs WHERE query_id = ? AND passage_id = ? AND id != ?",
                (row["query_id"], snippet_id, s.pair_id),
            ).fetchone()
            if clash:
                continue
            conn.execute("UPDATE pairs SET passage_id = ? WHERE id = ?", (snippet_id, s.pair_id))
            conn.execute(
                "INSERT INTO snippets (project_id, pair_id, original_passage_id, snippet_passage_id, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (project, s.pair_id, row["passage_id"], snippet_id, store.now()),
            )
            done += 1
    return done


def revert_snippets(conn: sqlite3.Connection, project: int, pair_ids: Sequence[int] | None = None) -> int:
    """Put the original passages back (all snippets of the project when pair_ids is None), atomically."""
    with store.transaction(conn):
        sql = "SELECT id, pair_id, original_passage_id, snippet_passage_id FROM snippets WHERE project_id = ?"
        rows = conn.execute(sql, (project,)).fetchall()
        if pair_ids is not None:
            wanted = {int(p) for p in pair_ids}
            rows = [r for r in rows if r["pair_id"] in wanted]
        for r in rows:
            conn.execute("UPDATE pairs SET passage_id = ? WHERE id = ?", (r["original_passage_id"], r["pair_id"]))
            conn.execute("DELETE FROM snippets WHERE id = ?", (r["id"],))
            in_use = conn.execute(
                "SELECT (SELECT COUNT(*) FROM pairs WHERE passage_id = :p) + "
                "(SELECT COUNT(*) FROM negatives WHERE passage_id = :p OR positive_id = :p) + "
                "(SELECT COUNT(*) FROM snippets WHERE snippet_passage_id = :p)",
                {"p": r["snippet_passage_id"]},
            ).fetchone()[0]
            if not in_use:
                conn.execute("DELETE FROM passages WHERE id = ? AND source = 'snippet'", (r["snippet_passage_id"],))
    return len(rows)


def snippet_origins(conn: sqlite3.Connection, project: int) -> dict[int, int]:
    """snippet passage id -> original passage id (mining should treat both as the pair's positive)."""
    rows = conn.execute(
        "SELECT snippet_passage_id, original_passage_id FROM snippets WHERE project_id = ?", (project,)
    ).fetchall()
    return {int(a): int(b) for a, b in rows}


# --- health checklist ------------------------------------------------------------------------------


@dataclass
class Check:
    """One rule of thumb, its state and the figure behind it."""

    rule: str
    state: str  # 'pass' | 'warn' | 'fail'
    figure: str
    advice: str


def _state(value: float, pass_at: float, warn_at: float, higher_is_better: bool = True) -> str:
    if higher_is_better:
        return "pass" if value >= pass_at else "warn" if value >= warn_at else "fail"
    return "pass" if value <= pass_at else "warn" if value <= warn_at else "fail"


def checklist(report: QualityReport, threshold: float = DEFAULT_THRESHOLD) -> list[Check]:
    """The field's rules for reranker data, each with pass / warn / fail and its figure."""
    c = report.counts
    t = report.tokens
    out: list[Check] = []

    positives = int(c.get("train_positives", 0))
    out.append(Check(
        "At least 256 labelled training examples", _state(positives, 256, 100),
        f"{positives:,} positive pairs", "Add more (query, relevant passage) pairs on the Data page.",
    ))

    train_q = report.queries.group == "train"
    groups = query_clusters(report, threshold)
    summary = diversity_summary(report.queries, groups, train_q)
    out.append(Check(
        "Distinct queries", _state(summary["effective"], 100, 30),
        f"{summary['effective']:,} distinct of {summary['count']:,} training queries",
        "Collect queries that real users ask; paraphrases of one question count once.",
    ))
    out.append(Check(
        "Few paraphrased queries", _state(summary["paraphrase_share"], 0.10, 0.25, higher_is_better=False),
        f"{summary['paraphrase_share']:.1%} of training queries repeat another (cosine ≥ {threshold:.2f})",
        "Drop or replace near-paraphrases: they add little and overweight one intent.",
    ))

    train_rows = t.split == "train"
    per_query: dict[int, int] = {}
    positive_q: set[int] = set()
    for qid, lab in zip(t.query_id[train_rows].tolist(), t.label[train_rows].tolist()):
        per_query[qid] = per_query.get(qid, 0) + 1
        if lab > 0:
            positive_q.add(qid)
    docs = np.array(list(per_query.values()) or [0])
    median_docs = float(np.median(docs))
    out.append(Check(
        "Documents per query (a positive and several negatives)",
        "fail" if median_docs < 2 else ("pass" if median_docs >= 4 and len(positive_q) == len(per_query) else "warn"),
        f"median {median_docs:g} passages per query; {len(per_query) - len(positive_q):,} queries without a positive",
        "Mine negatives so each query has one positive and 3+ negatives to compare against.",
    ))

    hard, reviewed = int(c.get("hard_negatives", 0)), int(c.get("reviewed_hard", 0))
    share = reviewed / hard if hard else 0.0
    out.append(Check(
        "Hard negatives present and reviewed",
        "fail" if hard == 0 else ("pass" if share >= 0.20 else "warn"),
        f"{hard:,} hard negatives, {reviewed:,} reviewed ({share:.0%}), {c.get('false_negatives', 0):,} found relevant",
        "Mine hard negatives, then review the riskiest on the Review page to catch false negatives.",
    ))

    n_train = int(train_rows.sum())
    cut = int(((t.overflow > 0) & train_rows).sum())
    cut_share = cut / n_train if n_train else 0.0
    out.append(Check(
        f"Query + passage fit in {report.max_length} tokens",
        _state(cut_share, 0.05, 0.20, higher_is_better=False),
        f"{cut:,} of {n_train:,} training examples truncated ({cut_share:.1%})",
        "Accept the proposed snippets for long passages below, or raise the max length.",
    ))

    n_test = int((report.queries.group == "test").sum())
    leaks = leakage(report, threshold)
    out.append(Check(
        "Separate test set, disjoint from training",
        "fail" if n_test == 0 else ("pass" if not leaks else ("warn" if len(leaks) / n_test <= 0.05 else "fail")),
        f"{n_test:,} test queries; {len(leaks):,} near-duplicates of training queries (cosine ≥ {threshold:.2f})"
        if n_test else "no test queries",
        "Import or split off a test set on the Data page; remove test queries that repeat training ones.",
    ))

    labels = t.label[train_rows]
    pos, neg = int((labels > 0).sum()), int((labels <= 0).sum())
    pshare = pos / (pos + neg) if pos + neg else 0.0
    balance = "fail" if neg == 0 or pos == 0 else (
        "pass" if 0.10 <= pshare <= 0.50 else ("warn" if 0.03 <= pshare <= 0.90 else "fail")
    )
    out.append(Check(
        "Label balance (positives : negatives)", balance,
        f"{pos:,} positives : {neg:,} negatives ({pshare:.0%} positive)",
        "Aim for 1 positive to 1-9 negatives; mine or add negatives when there are none.",
    ))
    return out
