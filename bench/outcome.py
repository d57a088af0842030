"""The whole path, headless, through the CLI: ingest -> mine -> train (defaults) -> evaluate, on SciFact or on a
second data shape built from it (graded 0-3 labels, 200 judged passages per query, long queries).

Prints one JSON line: NDCG@10 of BM25 and of the embedding model alone on the test queries, of the fine-tuned
reranker on the top 20 of each (realistic figures: first-stage candidates only), fused figures when the run
carries a score fusion, the margins over the first stages with paired-test p-values, wall times per step, the
training process's peak RSS, and the defaults the run chose (max length, beta, scoring mode) with their reasons.
Exits non-zero when the SciFact shape does not beat both first stages.

Usage (training takes ~30 min on 2 CPU cores, the whole bench ~42 min; run on an idle machine):
    flock /tmp/rerank-heavy.lock env HF_HUB_OFFLINE=1 .venv/bin/python bench/outcome.py [--workspace DIR]
        [--shape scifact|graded] [--quick]   # --quick: the bundled sample, 4 steps at length 64 (a smoke run)
        [--train-arg=--max-steps=20 ...]   # extra `python -m core train` flags
        [--data DIR]   # any BEIR folder (default SciFact); e.g. ../shared/data/nfcorpus
        [--split dev]  # evaluate on qrels/dev.tsv (or 20% of train held out): compare defaults here, never on test
        [--max-train-queries N] [--max-eval-queries N]   # a fixed subset for a short run
        [--distill] [--distill-arg=--epochs=1 ...]   # also distill the run (its defaults; 4 steps with --quick)
        [--workspace DIR --teacher-run ID]   # reuse a completed run of an earlier bench (no ingest, mine, train)
Target: on the better first stage's top k the reranker beats it with p < 0.05, and beats the other one on its top k;
exits non-zero on a miss (not with --quick). With --distill, also: the plain student's NDCG@10 beside the teacher's
on each first stage, distill_gap_bm25 (teacher minus student on BM25's top k; goal <= 0.01, a miss exits non-zero
except with --quick) and the teacher's expected calibration error on the evaluated split (bench/calibration.py).
Prints peak RSS, wall time and "trained on N of M labelled pairs".
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


PEAK = (
    "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
    "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(p.returncode)"
)  # peak RSS of the command's biggest process (the supervised trainer included)
DISTILL_GAP = 0.01  # issue 24: the plain student within 0.01 NDCG@10 of its teacher on BM25's top 20
QUICK_DISTILL = ["--max-steps", "4", "--eval-steps", "4"]  # --quick: a 4-step student (figures mean nothing)
QUICK_TRAIN = ["--max-steps", "4", "--max-length", "64", "--eval-steps", "4", "--candidates-k", "10"]


def cli(args: list[str], env: dict[str, str], measure: bool = False) -> tuple[dict, float]:
    """Run `python -m core ...`, return its JSON line and the wall time (and `peak_rss_gb` when measured); stop with
    its stderr on failure."""
    started = time.time()
    command = [sys.executable, "-m", "core", *args]
    if measure:
        command = [sys.executable, "-c", PEAK, *command]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = round(time.time() - started, 1)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"`python -m core {' '.join(args)}` failed with exit code {proc.returncode}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    out = json.loads(lines[-1])
    if measure:
        kb = [line.split()[-1] for line in proc.stderr.splitlines() if line.startswith("PEAK_KB")]
        out["peak_rss_gb"] = round(int(kb[-1]) / 2**20, 2) if kb else None
    return out, wall


def chosen_defaults(train: dict) -> dict:
    """The max length, beta and scoring mode the run used, each with its reason."""
    plan, metrics = train.get("plan") or {}, train.get("metrics") or {}
    fusion = metrics.get("fusion") or {}
    residual = fusion.get("trained_as") or (fusion if fusion.get("method") == "residual" else {})
    scoring = metrics.get("scoring") or {"mode": "cross-encoder", "reason": "not a residual run"}
    return {
        "max_length": (plan.get("config") or {}).get("max_length"),
        "max_length_reason": (plan.get("defaults") or {}).get("max_length", "set on the command line"),
        "epochs": (plan.get("config") or {}).get("epochs"),
        "epochs_reason": (plan.get("defaults") or {}).get("epochs"),
        "beta": residual.get("beta"),
        "beta_reason": (plan.get("defaults") or {}).get("beta") if residual else None,
        "scoring_mode": scoring.get("mode"),
        "scoring_reason": scoring.get("reason"),
        "estimate": plan.get("estimate_text"),
    }


def prepare(args: argparse.Namespace, workspace: Path) -> tuple[Path, dict]:
    """The folder to ingest (the chosen split in the place of test, subsets for a short run), or the graded
    long-query shape built from it; and what was arranged."""
    data = (
        ROOT / "sample_data" / "scifact" if args.quick else args.data
    )  # quick: the bundled 1,330-abstract sample
    sys.path.insert(0, str(ROOT))
    if args.shape == "graded":
        from bench.sample_shapes import build_graded

        folder = workspace / "graded-shape"
        build_graded(data, folder, queries=args.queries, per_query=200, test_queries=args.test_queries)
        return folder, {"split": "graded shape (built from train)"}
    from bench.beir_split import arrange

    folder = workspace / "data"
    return folder, arrange(
        data, folder, args.split, args.dev_share, args.max_train_queries, args.max_eval_queries
    )


def earlier_run(workspace: Path, run_id: str) -> dict:
    """A completed run of the workspace, shaped like `core train`'s JSON line (no plan: it was printed then)."""
    sys.path.insert(0, str(ROOT))
    from core.runs.records import get_run
    from core.store.db import connect

    run = get_run(connect(workspace), run_id)
    return {"run_id": run.id, "status": run.status, "metrics": run.metrics, "plan": {}, "peak_rss_gb": None}


def target(out: dict) -> tuple[str, bool]:
    """The bench's target and whether it was met: on the better first stage's top k the reranker beats that first
    stage with p < 0.05, and on the other one's top k it beats that one too."""
    better = max(("bm25", "embedding"), key=lambda s: out[f"ndcg10_{s}"])
    other = "embedding" if better == "bm25" else "bm25"
    met = (
        out[f"margin_finetuned_over_{better}"] > 0
        and (out[f"p_finetuned_vs_{better}"] or 1.0) < 0.05
        and out[f"margin_finetuned_over_{other}"] > 0
    )
    text = (
        f"reranked {better} top {out['top_k']} > {better} alone with p < 0.05 "
        f"(margin {out[f'margin_finetuned_over_{better}']:+.4f}, p = {out[f'p_finetuned_vs_{better}']}), and reranked "
        f"{other} top {out['top_k']} > {other} alone (margin {out[f'margin_finetuned_over_{other}']:+.4f})"
    )
    return text, met


def evaluate_run(
    args: argparse.Namespace, env: dict[str, str], run_id: str, stage: str
) -> tuple[dict, float]:
    """`core evaluate` of one run on the first stage's top k of the evaluated queries."""
    quick = ["--bootstrap", "100", "--no-oracle"] if args.quick else []
    command = ["evaluate", "--project", args.project, "--run", run_id, "--first-stage", stage]
    return cli([*command, "--top-k", str(args.top_k), *quick], env)


def teacher_figures(res: dict, stage: str, k: int) -> dict:
    """The trained run's figures on one first stage's top k: NDCG@10 and its margin, the parts of its score."""
    out = {
        f"ndcg10_{stage}": res["first_stage_ndcg10"],
        f"ndcg10_{stage}_ci": res["first_stage_ndcg10_ci"],
        f"ndcg10_finetuned_{stage}_top{k}": res["reranked_ndcg10"],
        f"ndcg10_finetuned_{stage}_top{k}_ci": res["reranked_ndcg10_ci"],
        f"mrr10_finetuned_{stage}_top{k}": res["reranked_mrr10"],
        f"map_finetuned_{stage}_top{k}": res["reranked_map"],
        f"margin_finetuned_over_{stage}": round(res["reranked_ndcg10"] - res["first_stage_ndcg10"], 6),
        f"p_finetuned_vs_{stage}": res["reranked_vs_first_stage_p"],
        f"oracle_ndcg10_finetuned_{stage}_top{k}": res.get("oracle_reranked_ndcg10"),
    }
    if "cross_encoder_part_ndcg10" in res:  # a residual run: its score is logit + beta x embedding cosine
        out[f"ndcg10_cross_encoder_part_{stage}_top{k}"] = res["cross_encoder_part_ndcg10"]
        out["residual_beta"] = res.get("residual_beta")
    if (
        "prior_only_ndcg10" in res
    ):  # the embedding cosine alone on these candidates: the cross-encoder adds the rest
        out[f"ndcg10_prior_only_{stage}_top{k}"] = res["prior_only_ndcg10"]
        out[f"p_finetuned_vs_prior_only_{stage}"] = res["reranked_vs_prior_only_p"]
    if "fused_ndcg10" in res:
        out[f"ndcg10_fused_{stage}_top{k}"] = res["fused_ndcg10"]
        out[f"ndcg10_fused_{stage}_top{k}_ci"] = res["fused_ndcg10_ci"]
        out[f"margin_fused_over_{stage}"] = round(res["fused_ndcg10"] - res["first_stage_ndcg10"], 6)
        out["fused_alpha"] = res["fused_alpha"]
    return out


def teacher_ece(args: argparse.Namespace, env: dict[str, str], workspace: Path, run_id: str) -> dict:
    """bench/calibration.py on the teacher: its calibration fitted on validation, the ECE on the evaluated split."""
    command = [
        sys.executable,
        str(ROOT / "bench" / "calibration.py"),
        "--project",
        args.project,
        "--run",
        run_id,
    ]
    proc = subprocess.run(
        [*command, "--home", str(workspace)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode not in (0, 1) or not lines:  # 1: measured, above its target
        sys.stderr.write(proc.stderr[-4000:])
        return {"teacher_ece": None, "teacher_ece_note": f"bench/calibration.py failed ({proc.returncode})"}
    rep = json.loads(lines[-1])
    return {
        "teacher_ece": rep["test_ece"],
        "teacher_raw_sigmoid_ece": rep["raw_sigmoid_ece"],
        "teacher_ece_pairs": rep["test_pairs"],
        "teacher_ece_note": f"{rep['note']}; measured on the evaluated split's first-stage candidate lists",
        "teacher_ece_target": rep["target"],
    }


def distill_and_compare(
    args: argparse.Namespace, env: dict[str, str], teacher: str, out: dict, walls: dict[str, float]
) -> dict:
    """`core distill` of the teacher with its defaults, the plain student evaluated on the same queries and first
    stages, and its NDCG@10 beside the teacher's (distill_gap_STAGE = teacher - student)."""
    student, walls["distill_s"] = cli(
        ["distill", "--project", args.project, "--run", teacher, *args.distill_arg], env, measure=True
    )
    k, got = args.top_k, {"student_run_id": student["run"], "student_peak_rss_gb": student.get("peak_rss_gb")}
    got["student_validation_gap"] = student.get("gap_to_teacher")
    for stage in ("bm25", "embedding"):
        res, walls[f"evaluate_student_{stage}_s"] = evaluate_run(args, env, student["run"], stage)
        got[f"ndcg10_student_{stage}_top{k}"] = res["reranked_ndcg10"]
        got[f"ndcg10_student_{stage}_top{k}_ci"] = res["reranked_ndcg10_ci"]
        got[f"distill_gap_{stage}"] = round(
            out[f"ndcg10_finetuned_{stage}_top{k}"] - res["reranked_ndcg10"], 6
        )
    got["distill_target"] = f"distill_gap_bm25 <= {DISTILL_GAP} (teacher minus plain student, BM25 top {k})"
    got["distill_target_met"] = got["distill_gap_bm25"] <= DISTILL_GAP
    return got


def distill_line(out: dict, k: int) -> str:
    """One line: teacher and plain student side by side on each first stage's top k, the gap and the ECE."""
    parts = [
        f"{stage} top {k}: teacher {out[f'ndcg10_finetuned_{stage}_top{k}']:.4f} vs student "
        f"{out[f'ndcg10_student_{stage}_top{k}']:.4f} (gap {out[f'distill_gap_{stage}']:+.4f})"
        for stage in ("bm25", "embedding")
    ]
    ece = out.get("teacher_ece")
    met = "met" if out["distill_target_met"] else "MISSED"
    return (
        f"distilled {out['student_run_id']} (NDCG@10): {'; '.join(parts)}; {out['distill_target']}: {met}; "
        f"teacher ECE {'n/a' if ece is None else f'{ece:.4f}'} (goal <= {out.get('teacher_ece_target')})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="workspace folder (default: a fresh temporary one)")
    parser.add_argument("--project", default="scifact-outcome")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--train-arg", action="append", default=[], help="extra flag for `core train`")
    parser.add_argument(
        "--shape",
        choices=("scifact", "graded"),
        default="scifact",
        help="scifact: BEIR SciFact as it is; graded: 0-3 grades, 200 judged passages a query, long queries",
    )
    parser.add_argument("--queries", type=int, default=200, help="graded shape: training queries")
    parser.add_argument("--test-queries", type=int, default=100, help="graded shape: test queries")
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 tiny steps (figures mean nothing)")
    parser.add_argument("--data", type=Path, default=SCIFACT, help="any BEIR folder (default: SciFact)")
    parser.add_argument(
        "--split",
        choices=("test", "dev"),
        default="test",
        help="queries evaluated: test (the final report, once per change) or dev (qrels/dev.tsv, else a fixed "
        "share of the training queries held out): compare defaults on dev, never on test",
    )
    parser.add_argument(
        "--dev-share", type=float, default=0.2, help="share of train held out when no dev.tsv"
    )
    parser.add_argument("--max-train-queries", type=int, help="short run: this many training queries (fixed)")
    parser.add_argument(
        "--max-eval-queries", type=int, help="short run: this many evaluation queries (fixed)"
    )
    parser.add_argument(
        "--distill",
        action="store_true",
        help="also `core distill` the run (its defaults), evaluate the plain student beside it, and print the "
        f"teacher's ECE; exits non-zero when distill_gap_bm25 > {DISTILL_GAP} (not with --quick)",
    )
    parser.add_argument("--distill-arg", action="append", default=[], help="extra flag for `core distill`")
    parser.add_argument(
        "--teacher-run",
        help="with --workspace: skip ingest, mining and training and use this completed run of the workspace's "
        "project (e.g. distill an earlier bench's run); its figures are re-evaluated",
    )
    args = parser.parse_args()
    if args.teacher_run and not args.workspace:
        parser.error("--teacher-run needs the --workspace the run lives in")
    if args.quick:
        args.train_arg = QUICK_TRAIN + args.train_arg
        args.distill_arg = QUICK_DISTILL + args.distill_arg
        args.queries, args.test_queries = min(args.queries, 50), min(args.test_queries, 10)
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="rerank-outcome-"))
    env = {
        **os.environ,
        "RERANK_STUDIO_HOME": str(workspace),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    walls: dict[str, float] = {}
    total = time.time()

    workspace.mkdir(parents=True, exist_ok=True)
    if args.teacher_run:
        ingest, mine, train, arranged = (
            {},
            {},
            earlier_run(workspace, args.teacher_run),
            {"split": "as ingested"},
        )
    else:
        source, arranged = prepare(args, workspace)
        ingest, walls["ingest_s"] = cli(["ingest", str(source), "--project", args.project], env)
        mine, walls["mine_s"] = cli(["mine", "--project", args.project], env)
        train, walls["train_s"] = cli(
            ["train", "--project", args.project, *args.train_arg], env, measure=True
        )
    run_id = train["run_id"]
    if train.get("status") != "completed":
        raise SystemExit(f"training ended {train.get('status')}: {json.dumps(train)[:2000]}")
    out: dict = {
        "data": str(args.data),
        "arranged": arranged,
        "shape": args.shape if args.shape == "graded" else "the BEIR folder as it is",
        "quick": args.quick,
        "run_id": run_id,
        "workspace": str(workspace),
        "top_k": args.top_k,
        "peak_rss_gb": train.get("peak_rss_gb"),
        "defaults": chosen_defaults(train),
    }
    for stage in ("bm25", "embedding"):
        res, walls[f"evaluate_{stage}_s"] = evaluate_run(args, env, run_id, stage)
        out["queries"] = res["queries"]
        out.update(teacher_figures(res, stage, args.top_k))
    if args.distill:
        out.update(distill_and_compare(args, env, run_id, out, walls))
        out.update(teacher_ece(args, env, workspace, run_id))
    out["beats_both_first_stages"] = all(out[f"margin_finetuned_over_{s}"] > 0 for s in ("bm25", "embedding"))
    metrics = train.get("metrics") or {}
    out["labelled_pairs_used"] = metrics.get("labelled_pairs_used")
    out["labelled_pairs"] = metrics.get("labelled_pairs")
    out["labelled_pairs_text"] = metrics.get("labelled_pairs_text")
    out["adapted"] = metrics.get("adapted")
    out["target"], out["target_met"] = target(out)
    out["train_config"] = {
        k: v
        for k, v in (train.get("metrics") or {}).items()
        if k in ("best_step", "steps", "beats_first_stage", "train_seconds", "pairs_per_s")
    }
    out["train_validation"] = (train.get("metrics") or {}).get("validation")
    out["ingest"] = {k: ingest.get(k) for k in ("train_pairs", "test_pairs", "passages") if k in ingest}
    out["mined"] = {k: mine.get(k) for k in ("negatives", "queries") if k in mine}
    out.update(walls)
    out["total_s"] = round(time.time() - total, 1)
    print(json.dumps(out))
    print(
        f"peak RSS {out['peak_rss_gb']} GB, wall {out['total_s'] / 60:.1f} min, {out['labelled_pairs_text']}; "
        f"target ({arranged.get('split')} queries): {out['target']}: {'met' if out['target_met'] else 'MISSED'}",
        file=sys.stderr,
    )
    if args.distill:
        print(distill_line(out, args.top_k), file=sys.stderr)
    if not args.quick and not out["target_met"]:
        raise SystemExit("target missed: " + out["target"])
    if args.distill and not args.quick and not out["distill_target_met"]:
        raise SystemExit("distillation target missed: " + out["distill_target"])


if __name__ == "__main__":
    main()
