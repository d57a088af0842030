"""Mining speed and risk triage on SciFact (919 training pairs, full 5,183-abstract corpus), one run, one JSON line.

cold_vs_plain: studio mining with an empty embedding cache / a plain `mine_hard_negatives` call with the same
parameters (target <= 1.05). warm_vs_cold: a re-run with changed parameters / the cold run (target <= 0.05).
triage_top10_share: with one relevant abstract kept per query and the others hidden in the pool, the share of
hidden relevant abstracts mined as negatives that land in the top 10% of risk (target >= 0.8).
Run under `flock /tmp/rerank-heavy.lock` on an otherwise idle machine.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from conftest import load_scifact  # noqa: E402  (real SciFact texts, CC BY-NC 2.0, BEIR)
from test_mining import hidden_share, seed_hidden  # noqa: E402

from core import mining, models, store  # noqa: E402


def main(home: Path) -> dict:
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    sf = load_scifact()
    conn = store.connect(home)
    pid = store.create_project(conn, "scifact-train")
    rows = [(sf["queries"][q], sf["corpus"][d], s) for q, docs in sf["qrels"]["train"].items() for d, s in docs.items()]
    docs = sorted(sf["corpus"], key=int)
    with store.transaction(conn):
        store.insert_pairs(conn, pid, rows)
        store.upsert_passages(conn, pid, [sf["corpus"][d] for d in docs], source="corpus", doc_ids=docs)
    params = mining.preset("recommended")
    model = models.load_embedder(params.model)  # loaded once for both: we time mining, not start-up
    model.encode(["warm-up"], show_progress_bar=False)

    # Plain library call, same parameters, same pool (the library de-duplicates corpus + positives itself).
    dataset = Dataset.from_dict({"query": [r[0] for r in rows], "positive": [r[1] for r in rows]})
    pool = [p["text"] for p in store.fetch_passages(conn, pid)]
    t = time.perf_counter()
    mine_hard_negatives(dataset, model, corpus=pool, range_min=params.range_min, range_max=None,
                        relative_margin=params.relative_margin, num_negatives=params.num_negatives,
                        sampling_strategy=params.sampling_strategy, output_format="labeled-pair",
                        output_scores=True, batch_size=params.batch_size, use_faiss=params.use_faiss,
                        verbose=False)
    plain = time.perf_counter() - t

    t = time.perf_counter()
    cold_stats = mining.mine(conn, pid, params)
    cold = time.perf_counter() - t

    t = time.perf_counter()
    warm_stats = mining.mine(conn, pid, mining.preset("recommended", num_negatives=8, range_min=3,
                                                      random_negatives=2))
    warm = time.perf_counter() - t

    # Risk triage on the full data: hidden relevant abstracts sit in the pool as plain passages.
    tid, hidden = seed_hidden(conn, "scifact-hidden", queries=None, extra=None)
    shares = {}
    for n in (10, 5):
        mining.mine(conn, tid, mining.preset("recommended", num_negatives=n))
        shares[n] = hidden_share(conn, tid, hidden)
    conn.close()
    return {
        "bench": "mining",
        "pairs": len(rows), "queries": cold_stats["queries"], "pool": cold_stats["pool"],
        "cold_vs_plain": round(cold / plain, 3),
        "warm_vs_cold": round(warm / cold, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "triage_top10_share": shares[10]["share"],
        "triage_hidden_mined": shares[10]["hidden_mined"], "triage_negatives": shares[10]["negatives"],
        "triage_top10_share_5neg": shares[5]["share"], "triage_hidden_mined_5neg": shares[5]["hidden_mined"],
        "plain_s": round(plain, 2), "cold_s": round(cold, 2), "warm_s": round(warm, 2),
        "cold_cache": cold_stats["cache"], "warm_cache": warm_stats["cache"],
        "params": {"preset": "recommended", "num_negatives": params.num_negatives,
                   "relative_margin": params.relative_margin, "use_faiss": params.use_faiss},
    }


if __name__ == "__main__":
    home = Path(tempfile.mkdtemp(prefix="bench-mining-"))
    try:
        print(json.dumps(main(home)))
    finally:
        shutil.rmtree(home, ignore_errors=True)
