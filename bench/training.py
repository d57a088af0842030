"""Training overhead and length-grouped batches on SciFact; prints one JSON line.

- studio_vs_plain: the studio's training phase (store callback, heartbeat, checkpoints) / a plain
  sentence-transformers script (CrossEncoder + CrossEncoderTrainer) on the same rows, model and arguments.
- pairs_per_s: (query, passage) pairs scored per second of training in the studio run.
- padding: how much padding random batches carry and the most any grouping could save on these rows.
- grouped_vs_plain: training time with length-grouped batches / random batches (less padding), with the NDCG@10
  of both models reranking the embedding model's top-k on the SciFact test queries.

Run on an idle machine: `flock /tmp/rerank-heavy.lock env HF_HUB_OFFLINE=1 .venv/bin/python bench/training.py`.
SciFact (CC BY-NC 2.0, Wadden et al. 2020, via BEIR) is read from /work/shared/data/scifact or SCIFACT_DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def project(conn, n_train: int):
    """SciFact: the first n_train training queries, every test query, the whole corpus (idempotent)."""
    from core import store
    from tests.conftest import load_scifact

    for p in store.list_projects(conn):
        if p["name"] == f"bench-{n_train}":
            return p["id"]
    sf = load_scifact()
    pid = store.create_project(conn, f"bench-{n_train}")
    seen: set[str] = set()
    with store.transaction(conn):
        for split, qids in (("train", sorted(sf["qrels"]["train"], key=int)[:n_train]),
                            ("test", sorted(sf["qrels"]["test"], key=int))):
            rows = [(sf["queries"][q], sf["corpus"][d], s) for q in qids for d, s in sf["qrels"][split][q].items()
                    if split == "train" or sf["queries"][q] not in seen]
            seen |= {r[0] for r in rows}
            store.insert_pairs(conn, pid, rows, split=split)
        ids = sorted(sf["corpus"], key=int)
        store.upsert_passages(conn, pid, [sf["corpus"][d] for d in ids], source="corpus", doc_ids=ids)
    return pid


def plain_run(rows, cfg, beta) -> float:
    """What a user would write by hand with sentence-transformers: same rows, model, loss and arguments."""
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    from core import models, training

    torch.manual_seed(cfg.seed)
    model = CrossEncoder(models.bundled_path(), num_labels=1, max_length=cfg.max_length)
    if cfg.loss == "residual":
        torch.nn.init.zeros_(model.model.classifier.weight)
        torch.nn.init.zeros_(model.model.classifier.bias)
        loss = training.make_residual_loss(model, beta)
    else:
        pos = sum(1 for r in rows if r["label"] > 0)
        loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor((len(rows) - pos) / pos))
    args = CrossEncoderTrainingArguments(
        output_dir="/tmp/rerank-bench-plain", max_steps=cfg.max_steps, per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_ratio, seed=cfg.seed, save_strategy="no",
        eval_strategy="no", logging_steps=10, report_to="none", disable_tqdm=True, dataloader_pin_memory=False,
        use_cpu=True,
    )
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), loss=loss)
    t = time.time()
    trainer.train()
    return time.time() - t


def padding_bound(rows, cfg) -> dict[str, float]:
    """How much padding random batches carry, and the most any length grouping could remove (rows sorted by length):
    when most pairs fill max_length, grouping has little to save."""
    import random

    from core import models

    tok = models.load_tokenizer(models.BUNDLED)
    pairs = [[(r["query"], d) for d in r["docs"]] if "docs" in r else [(r["query"], r["passage"])] for r in rows]
    flat = [p for ps in pairs for p in ps]
    ids = tok([q for q, _ in flat], [d for _, d in flat], truncation=True, max_length=cfg.max_length)["input_ids"]
    lengths, at = [], 0
    for ps in pairs:  # token lengths of each row's pairs
        lengths.append([len(x) for x in ids[at:at + len(ps)]])
        at += len(ps)

    def tokens(order: list[int]) -> int:
        total = 0
        for s in range(0, len(order), cfg.batch_size):
            batch = [n for i in order[s:s + cfg.batch_size] for n in lengths[i]]
            total += max(batch) * len(batch)
        return total

    shuffled = list(range(len(rows)))
    random.Random(cfg.seed).shuffle(shuffled)
    best = sorted(range(len(rows)), key=lambda i: max(lengths[i]))
    real = sum(n for ls in lengths for n in ls)
    return {"pairs_at_max_length": round(sum(n >= cfg.max_length for ls in lengths for n in ls) / len(flat), 3),
            "padding_share_random": round(1 - real / tokens(shuffled), 3),
            "best_possible_grouped_vs_plain_tokens": round(tokens(best) / tokens(shuffled), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", default="/tmp/rerank-bench-training", help="workspace (keeps the embedding cache)")
    ap.add_argument("--train-queries", type=int, default=200)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--loss", choices=("residual", "bce"), default="residual",
                    help="residual: the studio's default for a new head (rows are lists of 8 passages); bce: pairs")
    ap.add_argument("--batch-size", type=int, default=None, help="rows per step (default: 4 lists or 16 pairs)")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--candidates", type=int, default=10)
    a = ap.parse_args()
    os.environ["RERANK_STUDIO_HOME"] = a.home
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    from core import store, training

    conn = store.connect(Path(a.home))
    pid = project(conn, a.train_queries)
    residual = a.loss == "residual"
    cfg = training.TrainConfig(loss=a.loss, max_steps=a.steps, batch_size=a.batch_size or (4 if residual else 16),
                               max_length=a.max_length, learning_rate=7e-5, head_lr_multiplier=1.0, validation="none",
                               fusion=False, hard_negatives=5 if residual else 3, random_negatives=2 if residual else 1,
                               candidates_k=a.candidates, eval_steps=a.steps)
    data = training.build_data(conn, pid, cfg, Path(a.home))  # also warms the embedding cache

    import contextlib

    with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its logs; stdout stays one JSON line
        t_plain = plain_run(data.train_rows, cfg, data.residual_beta)
        _, studio = training.train_project(conn, pid, cfg)
        grouped_cfg = training.TrainConfig.from_dict({**cfg.to_dict(), "grouped_batches": True})
        _, grouped = training.train_project(conn, pid, grouped_cfg)
    print(json.dumps({
        "studio_vs_plain": round(studio["train_seconds"] / t_plain, 3),
        "pairs_per_s": studio["pairs_per_s"],
        "grouped_vs_plain": round(grouped["train_seconds"] / studio["train_seconds"], 3),
        "ndcg10_plain": round(studio["test"]["ndcg@10"], 4),
        "ndcg10_grouped": round(grouped["test"]["ndcg@10"], 4),
        "ndcg10_first_stage": round(studio["test"]["first_stage_ndcg@10"], 4),
        "plain_script_s": round(t_plain, 1), "studio_train_s": studio["train_seconds"],
        "grouped_train_s": grouped["train_seconds"],
        "padding": padding_bound(data.train_rows, cfg),
        "setup": {"loss": a.loss, "train_queries": a.train_queries, "rows": len(data.train_rows), "steps": a.steps,
                  "batch_size": cfg.batch_size, "max_length": a.max_length,
                  "test": f"{len(data.test_samples)} SciFact test queries, embedding top {a.candidates} reranked"},
    }))


if __name__ == "__main__":
    main()
