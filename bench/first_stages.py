"""The first stages alone on a BEIR folder's development queries: BM25, the embedding model, and their hybrid
(reciprocal rank fusion), NDCG@10 over the whole corpus and recall@20 (what a reranker on the top 20 can reach),
with 95% bootstrap intervals and the hybrid's paired difference to the better single stage.

No training: this is how the hybrid candidate generator was measured before being offered (dev queries only).

Usage:
    HF_HUB_OFFLINE=1 .venv/bin/python bench/first_stages.py --data ../shared/data/nfcorpus --split dev
    HF_HUB_OFFLINE=1 .venv/bin/python bench/first_stages.py --data ../shared/data/scifact --split dev  # 20% of train
Target: the hybrid's NDCG@10 is not below the better single stage's (exit 1 on a miss).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.beir_split import arrange, read_qrels  # noqa: E402
from core.scoring.first_stage import FIRST_STAGES, search  # noqa: E402
from core.scoring.metrics import ndcg_at, recall_at  # noqa: E402
from core.training.noise import difference, interval  # noqa: E402


def load(folder: Path) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, float]]]:
    """Corpus (title. text, as ingest joins them), query texts, and the evaluation qrels (qrels/test.tsv)."""
    corpus = {}
    for line in (folder / "corpus.jsonl").open(encoding="utf-8"):
        rec = json.loads(line)
        title, body = rec.get("title") or "", rec.get("text") or ""
        corpus[str(rec["_id"])] = f"{title}. {body}".strip() if title.strip() else body
    queries = {}
    for line in (folder / "queries.jsonl").open(encoding="utf-8"):
        rec = json.loads(line)
        queries[str(rec["_id"])] = rec["text"]
    qrels = {}
    for q, lines in read_qrels(folder / "qrels" / "test.tsv").items():
        judged = {ln.split("\t")[1]: float(ln.split("\t")[2]) for ln in lines}
        if q in queries and any(g > 0 for g in judged.values()):
            qrels[q] = {d: g for d, g in judged.items() if g > 0}
    return corpus, queries, qrels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a BEIR folder")
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--max-eval-queries", type=int)
    args = parser.parse_args()
    started = time.time()
    folder = Path(tempfile.mkdtemp(prefix="first-stages-"))
    arranged = arrange(args.data, folder, args.split, max_eval_queries=args.max_eval_queries)
    corpus, queries, qrels = load(folder)
    qids = sorted(qrels)
    out: dict = {"data": str(args.data), "arranged": arranged, "queries": len(qids), "passages": len(corpus)}
    per_query = {}
    for kind in FIRST_STAGES:
        rankings = search(kind, corpus, [queries[q] for q in qids], 100)
        ranked = [[str(d) for d, _ in r] for r in rankings]
        ndcg = np.asarray([ndcg_at(r, qrels[q], 10) for r, q in zip(ranked, qids)])
        recall = np.asarray([recall_at(r, qrels[q], 20) for r, q in zip(ranked, qids)])
        per_query[kind] = ndcg
        out[f"ndcg10_{kind}"] = round(float(ndcg.mean()), 4)
        out[f"ndcg10_{kind}_ci"] = [round(x, 4) for x in interval(ndcg)]
        out[f"recall20_{kind}"] = round(float(recall.mean()), 4)
    better = max(("bm25", "embedding"), key=lambda k: out[f"ndcg10_{k}"])
    diff = difference(per_query["hybrid"], per_query[better])
    out["hybrid_minus_better_single"] = {
        "stage": better,
        "mean": round(diff.mean, 4),
        "se": round(diff.se, 4),
    }
    out["hybrid_beyond_noise"] = diff.beyond_noise
    out["wall_s"] = round(time.time() - started, 1)
    out["target"] = f"hybrid NDCG@10 >= {better} NDCG@10 on {args.split} queries"
    out["target_met"] = out["ndcg10_hybrid"] >= out[f"ndcg10_{better}"]
    print(json.dumps(out))
    if not out["target_met"]:
        raise SystemExit("target missed: " + out["target"])


if __name__ == "__main__":
    main()
