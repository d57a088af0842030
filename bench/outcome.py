"""The whole path, headless, on SciFact through the CLI: ingest -> mine -> train (defaults) -> evaluate.

Prints one JSON line: NDCG@10 of BM25 and of the embedding model alone on the 300 test queries, of the fine-tuned
reranker on the top 20 of each (realistic figures: first-stage candidates only), fused figures when the run
carries a score fusion, the margins over the first stages with paired-test p-values, and wall times per step.

Usage (training takes ~30 min on 2 CPU cores, the whole bench ~42 min; run on an idle machine):
    flock /tmp/rerank-heavy.lock env HF_HUB_OFFLINE=1 .venv/bin/python bench/outcome.py [--workspace DIR]
        [--train-arg=--max-steps=20 ...]   # extra `python -m core train` flags, e.g. for a smoke run
Data: BEIR SciFact (CC BY-NC 2.0), /work/shared/data/scifact or $SCIFACT_DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = Path(os.environ.get("SCIFACT_DIR", ROOT.parent / "shared" / "data" / "scifact"))


def cli(args: list[str], env: dict[str, str]) -> tuple[dict, float]:
    """Run `python -m core ...`, return its JSON line and the wall time; stop with its stderr on failure."""
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = round(time.time() - started, 1)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"`python -m core {' '.join(args)}` failed with exit code {proc.returncode}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="workspace folder (default: a fresh temporary one)")
    parser.add_argument("--project", default="scifact-outcome")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--train-arg", action="append", default=[], help="extra flag for `core train`")
    args = parser.parse_args()
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="rerank-outcome-"))
    env = {**os.environ, "RERANK_STUDIO_HOME": str(workspace), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    walls: dict[str, float] = {}
    total = time.time()

    ingest, walls["ingest_s"] = cli(["ingest", str(SCIFACT), "--project", args.project], env)
    mine, walls["mine_s"] = cli(["mine", "--project", args.project], env)
    train, walls["train_s"] = cli(["train", "--project", args.project, *args.train_arg], env)
    run_id = train["run_id"]
    if train.get("status") != "completed":
        raise SystemExit(f"training ended {train.get('status')}: {json.dumps(train)[:2000]}")
    out: dict = {"run_id": run_id, "workspace": str(workspace), "top_k": args.top_k}
    for stage in ("bm25", "embedding"):
        res, walls[f"evaluate_{stage}_s"] = cli(["evaluate", "--project", args.project, "--run", run_id,
                                                 "--first-stage", stage, "--top-k", str(args.top_k)], env)
        k = args.top_k
        out["queries"] = res["queries"]
        out[f"ndcg10_{stage}"] = res["first_stage_ndcg10"]
        out[f"ndcg10_{stage}_ci"] = res["first_stage_ndcg10_ci"]
        out[f"ndcg10_finetuned_{stage}_top{k}"] = res["reranked_ndcg10"]
        out[f"ndcg10_finetuned_{stage}_top{k}_ci"] = res["reranked_ndcg10_ci"]
        out[f"mrr10_finetuned_{stage}_top{k}"] = res["reranked_mrr10"]
        out[f"map_finetuned_{stage}_top{k}"] = res["reranked_map"]
        out[f"margin_finetuned_over_{stage}"] = round(res["reranked_ndcg10"] - res["first_stage_ndcg10"], 6)
        out[f"p_finetuned_vs_{stage}"] = res["reranked_vs_first_stage_p"]
        out[f"oracle_ndcg10_finetuned_{stage}_top{k}"] = res.get("oracle_reranked_ndcg10")
        if "cross_encoder_part_ndcg10" in res:  # a residual run: its score is logit + beta x embedding cosine
            out[f"ndcg10_cross_encoder_part_{stage}_top{k}"] = res["cross_encoder_part_ndcg10"]
            out["residual_beta"] = res.get("residual_beta")
        if "prior_only_ndcg10" in res:  # the embedding cosine alone on these candidates: the cross-encoder adds the rest
            out[f"ndcg10_prior_only_{stage}_top{k}"] = res["prior_only_ndcg10"]
            out[f"p_finetuned_vs_prior_only_{stage}"] = res["reranked_vs_prior_only_p"]
        if "fused_ndcg10" in res:
            out[f"ndcg10_fused_{stage}_top{k}"] = res["fused_ndcg10"]
            out[f"ndcg10_fused_{stage}_top{k}_ci"] = res["fused_ndcg10_ci"]
            out[f"margin_fused_over_{stage}"] = round(res["fused_ndcg10"] - res["first_stage_ndcg10"], 6)
            out["fused_alpha"] = res["fused_alpha"]
    out["beats_both_first_stages"] = all(out[f"margin_finetuned_over_{s}"] > 0 for s in ("bm25", "embedding"))
    out["train_config"] = {k: v for k, v in (train.get("metrics") or {}).items()
                           if k in ("best_step", "steps", "beats_first_stage", "train_seconds", "pairs_per_s")}
    out["train_validation"] = (train.get("metrics") or {}).get("validation")
    out["ingest"] = {k: ingest.get(k) for k in ("train_pairs", "test_pairs", "passages") if k in ingest}
    out["mined"] = {k: mine.get(k) for k in ("negatives", "queries") if k in mine}
    out.update(walls)
    out["total_s"] = round(time.time() - total, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
