"""Fast (ONNX Runtime) vs sentence-transformers' torch scoring on SciFact, one run, same texts, one JSON line.

embed_texts_per_s_*: corpus abstracts embedded (SentenceTransformer.encode, batch 32, normalized, max length
256) vs the ONNX embedder. score_pairs_per_s_*: (test query, abstract) pairs from the embedding first stage's top
k scored by CrossEncoder.predict (logits, batch 32, max length 256) vs the ONNX cross-encoder. ndcg10_delta:
NDCG@10 on SciFact test, fast minus torch, the larger in size of the embedding first stage's and the reranked
top k's. Goal (issue 16): at least 2x on both at length 256 and |ndcg10_delta| <= 0.005; exit 1 when missed.
Timings interleave the two paths over `--rounds` rounds and keep each path's best round (fairer on a shared
machine). Without `--cross-encoder` the cross-encoder is the bundled encoder with a fresh one-logit head (seed
0): its NDCG compares the two paths' numbers, not a reranker's quality. Run the full bench on an idle machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

from core import models  # noqa: E402
from core.inference import policy  # noqa: E402
from core.inference.onnx_backend import OnnxCrossEncoder, OnnxEmbedder  # noqa: E402
from core.scoring.metrics import ndcg_at  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "scifact"
SAMPLE_DATA = ROOT / "sample_data" / "scifact"
MAX_LENGTH = 256
BATCH = 32


def load(folder: Path) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """BEIR SciFact: corpus {id: title. text}, queries {id: text}, test qrels {qid: {did: grade}}."""
    corpus, queries, qrels = {}, {}, {}
    for line in open(folder / "corpus.jsonl", encoding="utf-8"):
        d = json.loads(line)
        corpus[d["_id"]] = (d["title"] + ". " + d["text"]).strip() if d.get("title") else d["text"]
    for line in open(folder / "queries.jsonl", encoding="utf-8"):
        d = json.loads(line)
        queries[d["_id"]] = d["text"]
    with open(folder / "qrels" / "test.tsv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return corpus, queries, qrels


def subset(corpus: dict, qrels: dict, n_queries: int | None, n_docs: int | None) -> tuple[dict, dict]:
    """The first n test queries and a corpus holding their judged abstracts plus others up to n_docs."""
    qids = sorted(qrels)[:n_queries] if n_queries else sorted(qrels)
    if not n_docs:
        return corpus, {q: qrels[q] for q in qids}
    keep = [d for q in qids for d in qrels[q] if d in corpus]
    keep += [d for d in corpus if d not in set(keep)][: max(0, n_docs - len(keep))]
    return {d: corpus[d] for d in dict.fromkeys(keep)}, {q: qrels[q] for q in qids}


def timed(paths: dict, rounds: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Best-of-rounds seconds of each path (interleaved) and each path's last output."""
    best, out = {name: float("inf") for name in paths}, {}
    for _ in range(rounds):
        for name, fn in paths.items():
            t = time.perf_counter()
            out[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best, out


def fresh_cross_encoder(folder: Path) -> Path:
    """The bundled encoder with a one-logit head (seed 0), saved so torch and ONNX load the same weights."""
    import torch

    torch.manual_seed(0)
    ce = models.load_cross_encoder(None, max_length=MAX_LENGTH, device="cpu")
    ce.save_pretrained(str(folder))
    return folder


def ndcg(rankings: dict[str, list[str]], qrels: dict) -> float:
    """Mean NDCG@10 over queries."""
    return float(
        np.mean([ndcg_at(rankings[q], {d: float(g) for d, g in qrels[q].items()}, 10) for q in qrels])
    )


def measure(args: argparse.Namespace, work: Path) -> dict:
    """Everything in one run on the same texts."""
    import torch

    corpus, queries, qrels = load(args.data)
    n_q, n_d = (args.queries or 20, args.docs or 200) if args.quick else (args.queries, args.docs)
    corpus, qrels = subset(corpus, qrels, n_q, n_d)
    keys, qids = list(corpus), list(qrels)
    docs, qtexts = [corpus[k] for k in keys], [queries[q] for q in qids]
    quantize = args.precision == "int8"

    st = models.load_embedder(None, device="cpu")
    st.max_seq_length = MAX_LENGTH
    fast = OnnxEmbedder(models.resolve(None), quantize=quantize, cache=work)
    st.encode(docs[:BATCH], batch_size=BATCH)  # warm-up, not timed
    fast(docs[:BATCH])
    secs, vec = timed(
        {
            "torch": lambda: st.encode(
                docs,
                batch_size=BATCH,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ),
            "fast": lambda: fast(docs),
        },
        args.rounds,
    )
    print(f"embedding timed: {secs}", file=sys.stderr)
    q_torch = st.encode(qtexts, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True)
    q_fast = fast(qtexts)
    rank_t = {
        q: [keys[j] for j in np.argsort(-(vec["torch"] @ q_torch[i]), kind="stable")[:100]]
        for i, q in enumerate(qids)
    }
    rank_f = {
        q: [keys[j] for j in np.argsort(-(vec["fast"] @ q_fast[i]), kind="stable")[:100]]
        for i, q in enumerate(qids)
    }

    k = args.rerank_k or (10 if args.quick else 20)
    pairs = [(queries[q], corpus[d]) for q in qids for d in rank_t[q][:k]]
    ce_dir = args.cross_encoder or fresh_cross_encoder(work / "fresh-cross-encoder")
    ce = models.load_cross_encoder(str(ce_dir), max_length=MAX_LENGTH, device="cpu")
    fast_ce = OnnxCrossEncoder(ce_dir, MAX_LENGTH, quantize=quantize, cache=work)
    ident = torch.nn.Identity()
    ce.predict(pairs[:BATCH], batch_size=BATCH, activation_fn=ident)
    fast_ce(pairs[:BATCH])
    ce_secs, logits = timed(
        {
            "torch": lambda: np.asarray(
                ce.predict(
                    pairs,
                    batch_size=BATCH,
                    activation_fn=ident,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            ),
            "fast": lambda: fast_ce(pairs),
        },
        args.rounds,
    )
    print(f"scoring timed: {ce_secs}", file=sys.stderr)
    rerank = {}
    for name in ("torch", "fast"):
        s = logits[name].reshape(len(qids), k)
        rerank[name] = {
            q: [rank_t[q][j] for j in np.argsort(-s[i], kind="stable")] for i, q in enumerate(qids)
        }

    embed = {"torch": ndcg(rank_t, qrels), "fast": ndcg(rank_f, qrels)}
    rr = {name: ndcg(rerank[name], qrels) for name in rerank}
    d_embed, d_rerank = embed["fast"] - embed["torch"], rr["fast"] - rr["torch"]
    cos = np.sum(vec["torch"] * vec["fast"], axis=1)
    spearman = _spearman(logits["torch"], logits["fast"])
    return {
        "embed_texts_per_s_torch": round(len(docs) / secs["torch"], 2),
        "embed_texts_per_s_fast": round(len(docs) / secs["fast"], 2),
        "score_pairs_per_s_torch": round(len(pairs) / ce_secs["torch"], 2),
        "score_pairs_per_s_fast": round(len(pairs) / ce_secs["fast"], 2),
        "ndcg10_delta": round(max(d_embed, d_rerank, key=abs), 4),
        "embed_speedup": round(secs["torch"] / secs["fast"], 2),
        "score_speedup": round(ce_secs["torch"] / ce_secs["fast"], 2),
        "ndcg10_embed_torch": round(embed["torch"], 4),
        "ndcg10_embed_fast": round(embed["fast"], 4),
        "ndcg10_delta_embed": round(d_embed, 4),
        "ndcg10_rerank_torch": round(rr["torch"], 4),
        "ndcg10_rerank_fast": round(rr["fast"], 4),
        "ndcg10_delta_rerank": round(d_rerank, 4),
        "min_cosine_fast_vs_torch": round(float(cos.min()), 5),
        "max_abs_logit_diff": round(float(np.max(np.abs(logits["torch"] - logits["fast"]))), 5),
        "logit_spearman": round(spearman, 5),
        "precision": args.precision,
        "max_length": MAX_LENGTH,
        "texts": len(docs),
        "pairs": len(pairs),
        "queries": len(qids),
        "rerank_k": k,
        "rounds": args.rounds,
        "quick": bool(args.quick),
        "cross_encoder": str(args.cross_encoder or "bundled encoder + fresh head (seed 0)"),
        "cpu_threads": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two score vectors."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def verdict(result: dict) -> bool:
    """Both speed goals met and NDCG@10 kept within the tolerance."""
    return (
        result["embed_speedup"] >= policy.GOAL_SPEEDUP
        and result["score_speedup"] >= policy.GOAL_SPEEDUP
        and abs(result["ndcg10_delta"]) <= policy.MAX_NDCG_DELTA
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="BEIR SciFact folder (default: SCIFACT_DIR, ../shared/data/scifact, else sample_data/scifact)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="20 queries, 200 abstracts, top 10 (a few minutes)"
    )
    parser.add_argument("--queries", type=int, default=None, help="test queries (default all)")
    parser.add_argument("--docs", type=int, default=None, help="corpus abstracts (default all)")
    parser.add_argument(
        "--rerank-k", type=int, default=None, help="first-stage candidates reranked per query"
    )
    parser.add_argument(
        "--precision", choices=("int8", "fp32"), default="int8" if policy.quantize() else "fp32"
    )
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds (default 2 quick, 1 full)")
    parser.add_argument("--cross-encoder", type=Path, default=None, help="a trained cross-encoder folder")
    args = parser.parse_args()
    env = os.environ.get("SCIFACT_DIR")
    args.data = args.data or (Path(env) if env else DEFAULT_DATA if DEFAULT_DATA.is_dir() else SAMPLE_DATA)
    args.rounds = args.rounds or (2 if args.quick else 1)
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        result = measure(args, Path(tmp))
    result["goal_met"] = verdict(result)
    print(json.dumps(result))
    return 0 if result["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
