"""Bench: the Quality page's full computation at 10,000 and 100,000 pairs, with embeddings cached.

Prints one JSON line {"seconds_10k", "seconds_100k", "peak_rss_mb", "targets", "met", ...} and exits 1 when a
target is missed. Targets (TARGETS, on 2 CPU cores): the page's full computation of 10,000 pairs < 30 s, of 100,000
pairs < 300 s, peak RSS < 4 GB. `--quick` measures 10,000 pairs only (its targets: the 10k ones). Data: --data FOLDER
or $SCIFACT_DIR (default ../shared/data/scifact), a BEIR SciFact folder.

Data (SciFact, BEIR, CC BY-NC 2.0): every real query and abstract, plus composed ones so 100,000 pairs have
25,000 distinct queries (a real query + the first words of another) and 30,000 distinct passages (first half of one
abstract + second half of another). Each query has 1 positive and 3 labelled negatives (4 pairs); 20% of queries
are the test split; each training query also has 3 mined hard negatives (negatives table, a third reviewed).

Embedding cache pre-fill (so the bench measures the page, not the embedding model): the real queries and
abstracts are embedded once with the bundled model (kept under QUALITY_BENCH_HOME between runs); a composed text's
vector is the normalised weighted sum of its parts' real vectors plus small noise, written to the studio's
embedding cache under the composed text's hash. Token counts are NOT pre-filled: the timed run counts every
text with the real tokenizer (its token cache starts empty), computes neighbours, projections, clusters,
leakage, the checklist and the page's figures. Each size runs in a fresh child process (peak RSS is its own).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(ROOT / "bench"))
from scifact_data import scifact_dir  # noqa: E402 - the benches' one --data rule

_DATA = None
if "--data" in sys.argv:  # --data PATH wins over $SCIFACT_DIR; child processes inherit it through the env
    _i = sys.argv.index("--data")
    _DATA = sys.argv[_i + 1]
    del sys.argv[_i : _i + 2]
# exits saying where to get BEIR SciFact when missing; sets SCIFACT_DIR for the child processes
SCIFACT = scifact_dir(_DATA or os.environ.get("SCIFACT_DIR") or ROOT.parent / "shared" / "data" / "scifact")
HOME = Path(os.environ.get("QUALITY_BENCH_HOME", "/tmp/rerank-bench-quality"))
TARGETS = {"seconds_10k": 30.0, "seconds_100k": 300.0, "peak_rss_mb": 4096.0}  # upper bounds


def scifact() -> tuple[list[str], list[str]]:
    queries, corpus = [], []
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as fh:
        queries = [json.loads(line)["text"] for line in fh]
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            corpus.append((d["title"] + ". " + d["text"]).strip() if d.get("title") else d["text"])
    return queries, corpus


def base_vectors(queries: list[str], corpus: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Real embeddings of every SciFact query and abstract, computed once and kept."""
    path = HOME / "base_vectors.npz"
    if path.is_file():
        data = np.load(path)
        return data["queries"], data["corpus"]
    from core.embeddings import embed_texts

    HOME.mkdir(parents=True, exist_ok=True)
    qv = embed_texts(queries, None, workspace=HOME / "base")
    cv = embed_texts(corpus, None, workspace=HOME / "base")
    np.savez(path, queries=qv, corpus=cv)
    return qv, cv


def _norm(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def build(n_pairs: int) -> Path:
    """A workspace holding one project of n_pairs pairs, its embeddings pre-filled in the cache."""
    from core import models, store
    from core.embeddings import EmbeddingCache

    ws = HOME / f"ws-{n_pairs}"
    if (ws / "ready").is_file():
        return ws
    shutil.rmtree(ws, ignore_errors=True)
    queries, corpus = scifact()
    qv, cv = base_vectors(queries, corpus)
    # the studio keeps one row per distinct text: drop SciFact's few repeated texts
    qi = list({t: i for i, t in reversed(list(enumerate(queries)))}.values())
    ci = list({t: i for i, t in reversed(list(enumerate(corpus)))}.values())
    queries, qv = [queries[i] for i in sorted(qi)], qv[sorted(qi)]
    corpus, cv = [corpus[i] for i in sorted(ci)], cv[sorted(ci)]
    rng = np.random.default_rng(0)
    n_q, n_p = n_pairs // 4, max(len(corpus), int(n_pairs * 0.3))

    q_texts, q_vecs = list(queries[:n_q]), list(qv[:n_q])
    seen = set(q_texts)
    while len(q_texts) < n_q:
        a, b = rng.integers(len(queries), size=2)
        text = f"{queries[a]} {' '.join(queries[b].split()[:4])}"
        if text in seen:
            continue
        seen.add(text)
        q_texts.append(text)
        q_vecs.append(_norm(0.85 * qv[a] + 0.35 * qv[b] + rng.normal(scale=0.03, size=qv.shape[1])))
    p_texts, p_vecs = list(corpus), list(cv)
    seen = set(p_texts)
    while len(p_texts) < n_p:
        a, b = rng.integers(len(corpus), size=2)
        ta, tb = corpus[a].split(". "), corpus[b].split(". ")
        text = ". ".join(ta[: max(1, len(ta) // 2)] + tb[len(tb) // 2 :])
        if text in seen:
            continue
        seen.add(text)
        p_texts.append(text)
        p_vecs.append(_norm(cv[a] + cv[b] + rng.normal(scale=0.03, size=cv.shape[1])))

    cache = EmbeddingCache(models.model_key(None), store.cache_dir(ws))
    texts = q_texts + p_texts
    cache.put([store.text_hash(t) for t in texts], np.stack(q_vecs + p_vecs))
    cache.close()

    conn = store.connect(ws)
    pid = store.create_project(conn, "bench")
    split = np.where(rng.random(n_q) < 0.8, "train", "test")
    with store.transaction(conn):
        conn.executemany(
            "INSERT INTO queries (id, project_id, text, hash, split) VALUES (?, ?, ?, ?, ?)",
            [(i + 1, pid, t, store.text_hash(t), str(s)) for i, (t, s) in enumerate(zip(q_texts, split))],
        )
        conn.executemany(
            "INSERT INTO passages (id, project_id, text, hash, source) VALUES (?, ?, ?, ?, 'pairs')",
            [(i + 1, pid, t, store.text_hash(t)) for i, t in enumerate(p_texts)],
        )
        pairs, negs = [], []
        for q in range(n_q):
            chosen = rng.choice(n_p, size=7, replace=False) + 1
            pairs += [(pid, q + 1, int(p), 1.0 if k == 0 else 0.0) for k, p in enumerate(chosen[:4])]
            if split[q] == "train":
                negs += [
                    (pid, q + 1, int(p), int(chosen[0]), k, "negative" if (q + k) % 3 == 0 else "unjudged")
                    for k, p in enumerate(chosen[4:])
                ]
        conn.executemany(
            "INSERT INTO pairs (project_id, query_id, passage_id, label) VALUES (?, ?, ?, ?)", pairs
        )
        conn.executemany(
            "INSERT INTO negatives (project_id, query_id, passage_id, positive_id, kind, rank, status) "
            "VALUES (?, ?, ?, ?, 'hard', ?, ?)",
            negs,
        )
    conn.close()
    (ws / "ready").write_text("ok")
    return ws


def page_computation(ws: Path) -> dict:
    """What the Quality page computes on first open: the report (cold caches) and every view it draws."""
    from core import quality, store
    from ui import charts

    shutil.rmtree(store.cache_dir(ws) / "quality", ignore_errors=True)  # token counts and report: cold
    t0 = time.perf_counter()
    import faiss  # noqa: F401 - a running studio has these loaded already; timed apart
    from transformers import AutoTokenizer  # noqa: F401

    imports = time.perf_counter() - t0
    conn = store.connect(ws)
    pid = store.project_id(conn, "bench")
    start = time.perf_counter()
    report = quality.analyse(conn, pid, max_length=512)
    t_report = time.perf_counter() - start
    threshold = quality.DEFAULT_THRESHOLD
    checks = quality.checklist(report, threshold)
    q, p, t = report.queries, report.passages, report.tokens
    q_groups = quality.query_clusters(report, threshold)
    quality.diversity_summary(q, q_groups, q.group == "train")
    quality.cluster_table(q, q_groups)
    quality.leakage(report, threshold)
    p_groups = quality.passage_clusters(report, threshold)
    quality.diversity_summary(p, p_groups)
    quality.cluster_table(p, p_groups)
    figs = [
        charts.embedding_map_figure(
            q.map_xy, q.group[q.map_index].tolist(), [q.texts[i] for i in q.map_index], title="q"
        ),
        charts.embedding_map_figure(
            p.map_xy, p.group[p.map_index].tolist(), [p.texts[i] for i in p.map_index], title="p"
        ),
        charts.binned_histogram_figure({"train": t.total}, title="t", xaxis="tokens", limit=512),
        charts.binned_histogram_figure({"q": t.query_tokens}, title="q", xaxis="tokens", limit=512),
        charts.binned_histogram_figure({"p": t.passage_tokens}, title="p", xaxis="tokens", limit=512),
    ]
    for f in figs:
        f.to_json()
    quality.truncated_table(report, quality.truncated(report))
    total = time.perf_counter() - start
    quality.forget_memo()
    start = time.perf_counter()
    quality.analyse(conn, pid, max_length=512)  # the next open: report from the disk cache
    warm = time.perf_counter() - start
    folder = store.cache_dir(ws) / "quality"

    def again(patterns: tuple[str, ...]) -> float:
        for pattern in patterns:
            for f in folder.glob(pattern):
                f.unlink()
        quality.forget_memo()
        t1 = time.perf_counter()
        quality.analyse(conn, pid, max_length=512)
        return time.perf_counter() - t1

    after_judgement = again(("report-*",))  # a judgement: neighbours and token counts stay cached
    tokens_cached = again(("report-*", "queries-*", "passages-*"))  # only token counts cached
    return {
        "seconds": round(total, 2),
        "seconds_report": round(t_report, 2),
        "seconds_cached_reopen": round(warm, 2),
        "seconds_imports_untimed": round(imports, 2),
        "seconds_after_a_judgement": round(after_judgement, 2),
        "seconds_token_counts_cached": round(tokens_cached, 2),
        "pairs": int((t.kind == "pair").sum()),
        "mined": int((t.kind == "mined").sum()),
        "queries": len(q.texts),
        "passages": len(p.texts),
        "unique_texts_tokenized": len(report.query_text) + len(report.passage_text),
        "truncated": int((t.overflow > 0).sum()),
        "checks": {c.rule[:24]: c.state for c in checks},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--build":
        build(int(sys.argv[2]))
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        print(json.dumps(page_computation(HOME / f"ws-{int(sys.argv[2])}")))
        return
    quick = "--quick" in sys.argv
    out: dict = {}
    for n, name in ((10_000, "10k"),) + (() if quick else ((100_000, "100k"),)):
        subprocess.run([sys.executable, __file__, "--build", str(n)], check=True)
        res = subprocess.run(
            [sys.executable, __file__, "--measure", str(n)], check=True, capture_output=True, text=True
        )
        out[name] = json.loads(res.stdout.strip().splitlines()[-1])
    figures = {f"seconds_{k}": v["seconds"] for k, v in out.items()}
    figures["peak_rss_mb"] = max(v["peak_rss_mb"] for v in out.values())
    met = {k: figures[k] < bound for k, bound in TARGETS.items() if k in figures}
    print(
        json.dumps(
            {
                **figures,
                "targets": {k: f"< {v:g}" for k, v in TARGETS.items() if k in figures},
                "met": met,
                "quick": quick,
                "detail": out,
            }
        )
    )
    if not all(met.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
