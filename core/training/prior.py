"""The residual's prior, fine-tuned: the embedding model learns from the judged pairs the cross-encoder has no time
for, before the cross-encoder trains over it (issue 22: every label counts on large projects).

A bi-encoder pair costs about what a cross-encoder pair does (34 vs 33 pairs/s, 2 idle CPU cores, bf16, length
128), but each pair also meets 31 in-batch negatives, and the prior's whole job is the cosine the residual adds. On
NFCorpus (99,577 judged pairs) the 30-minute budget plans the cross-encoder 0.1 of an epoch; ten minutes of the
embedding model see ~19,000 pairs, one per query in turn, and rerank the first stage's top 20 better on NFCorpus
*dev* (+0.008 and +0.011 NDCG@10 in two runs, bench/prior_tuning.py). The candidate lists keep coming from the
untouched first stage, so a run is still compared with the first stage the person has.
"""

from __future__ import annotations

import math
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import estimates, models, store
from core.runs.records import add_event, cancel_asked, update_run
from core.runs.run_row import Run
from core.training.config import TrainConfig
from core.training.distributed import barrier, is_main
from core.training.labels import Labels
from core.training.run_lists import run_split

PRIOR_DIR = "prior"  # the run folder's sub-folder holding the fine-tuned embedding model
PRIOR_SHARE = 1 / 3  # of the time budget, when the budget buys the cross-encoder less than one epoch
PRIOR_BATCH = 32  # pairs a step (in-batch negatives: 31 a pair)
PRIOR_LR = 5e-5  # NFCorpus dev: 5e-5 with linear decay over the planned steps
PRIOR_LENGTH = 128  # tokens of a passage while tuning (the first 128 hold the abstract's claim)
MAX_PRIOR_STEPS = 100_000

Report = Callable[[int, int], bool]  # (step, total) -> keep going


def wanted(cfg: TrainConfig, epochs_affordable: float) -> bool:
    """Tune the prior when a residual run's budget buys the cross-encoder less than one pass over its rows."""
    return cfg.loss == "residual" and cfg.prior_steps == 0 and epochs_affordable < 1.0


def pairs_per_s(workspace: Path | None, precision: str | None, max_length: int) -> float:
    """The prior's tuning rate here: measured by an earlier tuning run in this workspace, else the default."""
    rate, _ = estimates.rate(workspace, "prior_pairs_per_s", precision)
    return rate / estimates.length_factor(min(max_length, PRIOR_LENGTH), training=True)


def planned_steps(seconds: float, workspace: Path | None, precision: str | None, max_length: int) -> int:
    """Steps of PRIOR_BATCH pairs that fit `seconds`."""
    rate = pairs_per_s(workspace, precision, max_length)
    return int(max(1, min(MAX_PRIOR_STEPS, math.floor(seconds * rate / PRIOR_BATCH))))


def seconds_for(steps: int, workspace: Path | None, precision: str | None, max_length: int) -> float:
    """How long `steps` of tuning take (the run's estimate adds them)."""
    return steps * PRIOR_BATCH / pairs_per_s(workspace, precision, max_length)


def pairs(lab: Labels, qids: list[int], texts: dict[int, str], seed: int) -> list[tuple[str, str]]:
    """(query, positive) pairs, one per query in turn, each query's best grades first, so every query counts before
    a query with a thousand positives takes a second turn."""
    rng = random.Random(seed)
    queues: dict[int, list[int]] = {}
    for q in qids:
        pos = sorted(lab.positives(q))
        rng.shuffle(pos)
        pos.sort(key=lambda p: -lab.grades.get(q, {}).get(p, 1.0))
        queues[q] = [p for p in pos if p in texts]
    out: list[tuple[str, str]] = []
    order = list(queues)
    for turn in range(max((len(v) for v in queues.values()), default=0)):
        rng.shuffle(order)
        out += [(lab.qtext[q], texts[queues[q][turn]]) for q in order if turn < len(queues[q])]
    return out


def tune(
    cfg: TrainConfig, examples: list[tuple[str, str]], folder: Path, report: Report | None = None
) -> dict[str, Any] | None:
    """Fine-tune the first-stage embedding model with in-batch negatives (sentence-transformers' MNRL, no duplicate
    texts in a batch) for cfg.prior_steps steps; saves it to folder/PRIOR_DIR and returns what was done (None when
    `report` stopped it: a half-tuned prior is never kept)."""
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from sentence_transformers.training_args import BatchSamplers
    from transformers.trainer_callback import PrinterCallback

    from core.training.callbacks import StepReport
    from core.training.device_args import cpu_precision, pick_device

    model = models.trainable_embedder(cfg.first_stage_model)
    model.max_seq_length = min(cfg.max_length, PRIOR_LENGTH)
    steps = int(cfg.prior_steps)
    used = examples[: steps * PRIOR_BATCH]
    t0 = time.time()
    cuda = torch.cuda.is_available()

    bf16 = cuda or cpu_precision(cfg, pick_device()).name == "bf16"
    args = SentenceTransformerTrainingArguments(
        output_dir=str(folder / "prior-checkpoints"),
        per_device_train_batch_size=PRIOR_BATCH,
        learning_rate=PRIOR_LR,
        max_steps=steps,
        warmup_steps=0.05,
        bf16=bf16,
        use_cpu=not cuda,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=cfg.seed,
        dataloader_drop_last=len(used) > PRIOR_BATCH,
        logging_steps=max(1, steps // 10),
    )
    data = Dataset.from_dict({"anchor": [q for q, _ in used], "positive": [p for _, p in used]})
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=data,
        loss=MultipleNegativesRankingLoss(model),
        callbacks=[StepReport(report)] if report is not None else [],
    )
    trainer.remove_callback(PrinterCallback)
    out = trainer.train()
    if int(trainer.state.global_step) < steps:  # cancelled: nothing saved, so a resumed run tunes afresh
        return None
    target = folder / PRIOR_DIR
    model.save(str(target), safe_serialization=True)
    return {
        "path": str(target),
        "steps": int(trainer.state.global_step),
        "pairs": min(len(used), int(trainer.state.global_step) * PRIOR_BATCH),
        "used": set(used[: int(trainer.state.global_step) * PRIOR_BATCH]),
        "seconds": round(time.time() - t0, 1),
        "loss": float(out.training_loss),
        "precision": "bf16" if bf16 else "fp32",
    }


def describe(tuned: dict[str, Any]) -> str:
    """What the prior's fine-tuning did, for the run's log."""
    return (
        f"Embedding model fine-tuned: {tuned['steps']} steps on {tuned['pairs']:,} judged pairs "
        f"(in-batch negatives, {tuned['precision']}) in {tuned['seconds'] / 60:.1f} min; the residual adds its cosine, "
        "the candidate lists still come from the untouched first stage."
    )


def existing(folder: Path) -> dict[str, Any] | None:
    """The prior a run already tuned (a resumed run, or another process of a distributed run), if any."""
    target = folder / PRIOR_DIR
    return {"path": str(target), "resumed": True} if (target / "model.safetensors").is_file() else None


def ensure(
    conn: sqlite3.Connection,
    project: int,
    cfg: TrainConfig,
    folder: Path,
    report: Report | None = None,
) -> dict[str, Any] | None:
    """The run's tuned prior (its caller, tune_for_run, has checked the run asks for one): the one already in its
    folder (a resumed run), else tuned now on the fitted queries' positives (never the validation slice's)."""
    if found := existing(folder):
        return found
    split = run_split(conn, project, cfg)
    texts = {p["id"]: p["text"] for p in store.fetch_passages(conn, project)}
    return tune(cfg, pairs(split.train, split.fit_qids, texts, cfg.seed), folder, report)


def tune_for_run(
    conn: sqlite3.Connection, run: Run, cfg: TrainConfig, folder: Path, state: dict[str, Any]
) -> dict[str, Any] | None:
    """The run's phase before the cross-encoder: progress, cancel and log while rank 0 tunes; the others wait for it."""
    if cfg.loss != "residual" or cfg.prior_steps <= 0:
        return None
    t0 = time.time()

    def report(step: int, total: int) -> bool:
        if is_main():
            rate = step / max(time.time() - t0, 1e-6)
            update_run(
                conn,
                run.id,
                heartbeat_at=store.now(),
                progress={
                    "phase": "tuning the embedding model",
                    "step": step,
                    "total": total,
                    "elapsed_s": round(time.time() - state["t0"], 1),
                    "eta_s": round((total - step) / rate, 1) if rate > 0 else None,
                },
            )
        if state.get("signal") or cancel_asked(conn, run.id):
            state["cancelled"] = True
        return not state.get("cancelled")

    if is_main():
        add_event(
            conn,
            run.id,
            "message",
            {
                "text": f"Fine-tuning the embedding model for {cfg.prior_steps} steps before the cross-encoder."
            },
        )
        tuned = ensure(conn, run.project_id, cfg, folder, report)
    barrier()
    if not is_main():  # never tunes a second copy: rank 0's, or none when rank 0 was cancelled
        tuned = existing(folder)
    if tuned and is_main() and not tuned.get("resumed"):
        add_event(conn, run.id, "message", {"text": describe(tuned)})
    return tuned
