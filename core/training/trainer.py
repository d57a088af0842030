"""One training run from start (or checkpoint) to saved model, reporting to the store; only rank 0 writes it."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
from transformers import EarlyStoppingCallback
from transformers.trainer_callback import PrinterCallback, TrainerCallback

from core import models, store
from core.runs.liveness import Heartbeat
from core.runs.records import add_event, get_run, latest_checkpoint, run_folder, update_run
from core.runs.run_row import Run
from core.training import budget, continued, device_args, prior, snapshot
from core.training.beta import source as beta_source
from core.training.callbacks import StoreProgress
from core.training.config import ConfigError, TrainConfig
from core.training.data import TrainingData, build_data
from core.training.defaults import is_trained
from core.training.distributed import barrier, is_main, world_size
from core.training.evaluator import DECISION, RerankingEvaluator
from core.training.losses import labelled_pairs_used, make_loss
from core.training.model_card import save_model
from core.training.results import final_metrics
from core.training.rows import max_pairs_per_row
from core.training.run_record import create_run
from core.training.sampler import LengthGroupedBatchSampler


def execute(conn: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    """Train one run to the end (or cancel / failure); returns its final metrics. Only rank 0 writes the store."""
    main = is_main()
    run = get_run(conn, run_id)
    workspace = store.workspace_of(conn)
    state: dict[str, Any] = {"t0": time.time()}

    def on_term(signum: int, frame: Any) -> None:  # SIGTERM = cancel: checkpoint and stop
        state["signal"] = True

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)
    beat = Heartbeat(workspace, "runs", run_id) if main else None
    try:
        if beat:
            beat.__enter__()
        if main:
            update_run(
                conn,
                run_id,
                status="running",
                pid=os.getpid(),
                error=None,
                heartbeat_at=store.now(),
                progress={"phase": "preparing data"},
            )
            add_event(conn, run_id, "message", {"text": f"Started (pid {os.getpid()})."})
        result = train(conn, run, run_folder(conn, run_id), workspace, state)
        if main:
            _record_end(conn, run_id, state, result)
        return result
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded on this run only
        reason = failure_reason(exc)
        if main:
            try:
                update_run(conn, run_id, status="failed", error=reason, pid=None)
                add_event(conn, run_id, "error", {"text": reason, "trace": traceback.format_exc()[-4000:]})
            except Exception:  # noqa: BLE001
                pass
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise RuntimeError(reason) from exc
    finally:
        if beat:
            beat.__exit__()


def _record_end(conn: sqlite3.Connection, run_id: str, state: dict[str, Any], result: dict[str, Any]) -> None:
    """Cancelled (with a checkpoint to resume from) or completed (with metrics and the model folder)."""
    progress = get_run(conn, run_id).progress
    if state.get("cancelled"):
        update_run(conn, run_id, status="cancelled", pid=None, progress={**progress, "phase": "cancelled"})
        add_event(
            conn, run_id, "message", {"text": "Cancelled; a checkpoint was saved, Resume continues from it."}
        )
    else:
        update_run(
            conn,
            run_id,
            status="completed",
            pid=None,
            metrics=result["metrics"],
            model_dir=result["model_dir"],
            progress={**progress, "phase": "completed", "eta_s": 0},
        )
        add_event(conn, run_id, "message", {"text": "Completed: model saved to " + result["model_dir"]})


def failure_reason(exc: BaseException) -> str:
    """The sentence a failed run shows: what went wrong and, for memory, what to change."""
    text = f"{type(exc).__name__}: {exc}"
    if (
        isinstance(exc, MemoryError)
        or "out of memory" in str(exc).lower()
        or "DefaultCPUAllocator" in str(exc)
    ):
        return (
            "Out of memory: " + str(exc)[:300] + " — lower the batch size or max length "
            "(or pick the BCE loss, which needs less memory than in-batch losses)."
        )
    if isinstance(exc, (ConfigError, models.ModelError)):
        return str(exc)
    return text[:1000]


def run_data(
    conn: sqlite3.Connection,
    run: Run,
    cfg: TrainConfig,
    folder: Path,
    workspace: Path,
    tuned: dict[str, Any] | None = None,
) -> TrainingData:
    """The run's data: its frozen snapshot when it has one (resume), else built from the project and frozen."""
    data = snapshot.load(folder, cfg)
    resumed = data is not None
    if data is None:
        data = build_data(conn, run.project_id, cfg, workspace, tuned["path"] if tuned else None)
        if not data.train_rows:
            raise ConfigError("No training rows could be built (no positives outside the validation slice).")
        if is_main():
            snapshot.save(folder, data, cfg)
    if is_main():
        update_run(
            conn,
            run.id,
            snapshot=data.snapshot,
            progress={"phase": "loading model", "evaluation": data.eval_source},
        )
        if resumed:
            add_event(
                conn,
                run.id,
                "message",
                {
                    "text": (
                        f"Using the run's data snapshot {data.snapshot['hash']} (frozen at its first start): judgements "
                        "made since then do not change this run's rows, validation split or beta."
                    )
                },
            )
        add_event(conn, run.id, "message", {"text": f"Data: {json.dumps(data.stats)}"})
        if data.eval_note:
            add_event(conn, run.id, "message", {"text": data.eval_note})
    return data


def load_model(conn: sqlite3.Connection, run_id: str, cfg: TrainConfig, beta: float | None) -> Any:
    """The base cross-encoder; a residual run scores logits, and a fresh head starts at zero (= the embedding model)."""
    model = models.load_cross_encoder(cfg.base_model, max_length=cfg.max_length)
    model.model_card_data.local_files_only = True
    if beta is None:
        return model
    model.activation_fn = torch.nn.Identity()  # scores are logits, to which beta x cosine is added
    head = getattr(model.model, "classifier", None)
    if not is_trained(cfg.base_model) and isinstance(head, torch.nn.Linear):
        torch.nn.init.zeros_(head.weight)  # a zero head: step 0 ranks exactly like the embedding model
        torch.nn.init.zeros_(head.bias)
    if is_main():
        add_event(
            conn,
            run_id,
            "message",
            {
                "text": (
                    f"Residual over the embedding model: score = logit + {beta:g} x cosine ({beta_source(cfg.residual_beta)}); "
                    "at step 0 the reranker ranks exactly like the embedding model."
                )
            },
        )
    return model


def plan_memory(
    conn: sqlite3.Connection,
    run_id: str,
    cfg: TrainConfig,
    data: TrainingData,
    workspace: Path,
    state: dict[str, Any],
) -> TrainConfig:
    """Estimate the run's peak memory and time before the model loads; on CPU a run that would not fit gets a smaller
    batch (recorded on the run) or is refused with the reason (ConfigError), never left to the kernel."""
    rows, longest = len(data.train_rows), int(max_pairs_per_row(data.train_rows))
    if torch.cuda.is_available():
        plan, fitted = budget.estimate(cfg, rows, workspace, longest), cfg
    else:
        precision = device_args.cpu_precision(cfg, device_args.pick_device()).name
        fitted, plan = budget.fit(cfg, rows, workspace, longest, precision=precision)
    state["estimate"] = plan.to_dict()
    if is_main():
        if fitted.batch_size != cfg.batch_size:
            update_run(conn, run_id, config=fitted.to_dict())
        add_event(
            conn,
            run_id,
            "message",
            {"text": "Estimate: " + plan.text() + "".join(" " + n for n in plan.notes)},
        )
    return fitted


def schedule(cfg: TrainConfig, rows: int) -> tuple[int, int]:
    """(total optimizer steps, evaluate/checkpoint every N steps) for this many rows on this many processes."""
    steps_per_epoch = math.ceil(rows / cfg.batch_size / world_size())
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    return total, max(1, min(cfg.eval_steps or steps_per_epoch, total))


def training_arguments(
    cfg: TrainConfig,
    ckpt_dir: Path,
    evaluating: bool,
    eval_steps: int,
    hardware: dict[str, Any] | None = None,
) -> Any:
    """sentence-transformers' arguments for this run (CPU or GPU, gloo or NCCL under torchrun); `hardware`
    (device_args.hardware_arguments) sets the device, mixed precision and micro-batch."""
    fresh = not is_trained(cfg.base_model)
    lr_map = (
        {r"classifier\.": cfg.learning_rate * cfg.head_lr_multiplier}
        if (fresh and cfg.head_lr_multiplier != 1)
        else None
    )
    distributed = world_size() > 1
    cuda = torch.cuda.is_available()
    kwargs: dict[str, Any] = dict(
        output_dir=str(ckpt_dir),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=64,
        learning_rate=cfg.learning_rate,
        learning_rate_mapping=lr_map,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of the total steps in transformers 5
        seed=cfg.seed,
        eval_strategy="steps" if evaluating else "no",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=bool(evaluating and cfg.keep_best),
        metric_for_best_model=f"eval_val_{DECISION}" if evaluating else None,  # issue 22: beyond the noise
        greater_is_better=True,
        logging_steps=max(1, min(10, eval_steps)),
        logging_first_step=True,
        dataloader_pin_memory=False,
        report_to="none",
        disable_tqdm=True,
        use_cpu=not cuda,
        ddp_backend=("gloo" if not cuda else None) if distributed else None,
        ddp_find_unused_parameters=False if distributed else None,
        batch_sampler=LengthGroupedBatchSampler if cfg.grouped_batches else "batch_sampler",
        save_only_model=False,
    )
    return CrossEncoderTrainingArguments(**{**kwargs, **(hardware or {})})


def make_trainer(
    conn: sqlite3.Connection,
    run_id: str,
    cfg: TrainConfig,
    data: TrainingData,
    model: Any,
    folder: Path,
    state: dict[str, Any],
) -> tuple[Any, int]:
    """The CrossEncoderTrainer with the run's loss, evaluator and callbacks; returns it and the total steps."""
    evaluator = (
        RerankingEvaluator(data.eval_samples, data.residual_beta, "val") if data.eval_samples else None
    )
    total, eval_steps = schedule(cfg, len(data.train_rows))
    hardware = device_args.hardware_arguments(cfg, model, pairs_per_row(data.train_rows))
    device_args.fused_attention(model, hardware, keep_dropout=cfg.attention_dropout)
    state["precision"] = "bf16" if hardware.get("bf16") else "fp16" if hardware.get("fp16") else "fp32"
    args = training_arguments(
        cfg,
        folder / "checkpoints",
        evaluator is not None,
        eval_steps,
        device_args.trainer_arguments(hardware),
    )
    if is_main():
        add_event(conn, run_id, "message", {"text": device_args.describe(hardware)})
    callbacks: list[TrainerCallback] = [StoreProgress(conn, run_id, state)]
    if evaluator is not None and cfg.early_stopping_patience > 0:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    trainer = CrossEncoderTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(data.train_rows),
        loss=make_loss(model, cfg, data),
        evaluator=evaluator,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # the store is the log; stdout stays one JSON line
    return trainer, total


def train(
    conn: sqlite3.Connection, run: Run, folder: Path, workspace: Path, state: dict[str, Any]
) -> dict[str, Any]:
    """Data, model, trainer, training (from the last checkpoint if any), final figures and the saved model."""
    run_id = run.id
    cfg = TrainConfig.from_dict(run.config).validate()
    torch.manual_seed(cfg.seed)
    folder.mkdir(parents=True, exist_ok=True)
    tuned = prior.tune_for_run(conn, run, cfg, folder, state)
    if state.get("cancelled"):
        return {"metrics": {}, "model_dir": None, "cancelled": True}
    data = run_data(conn, run, cfg, folder, workspace, tuned)
    cfg = plan_memory(conn, run_id, cfg, data, workspace, state)
    model = load_model(conn, run_id, cfg, data.residual_beta)
    trainer, total = make_trainer(conn, run_id, cfg, data, model, folder, state)
    resume = latest_checkpoint(folder / "checkpoints")
    if is_main():
        if resume:
            add_event(conn, run_id, "message", {"text": f"Resuming from {Path(resume).name}."})
        update_run(
            conn,
            run_id,
            progress={"phase": "training", "step": 0, "total": total, "evaluation": data.eval_source},
        )
    base_score = continued.base_validation(
        conn, run_id, cfg, trainer, bool(resume)
    )  # a trained base, at step 0
    t_train = time.time()
    out = trainer.train(resume_from_checkpoint=resume)
    seconds = time.time() - t_train
    if state.get("cancelled"):
        return {"metrics": {}, "model_dir": None, "cancelled": True}
    metrics = _training_metrics(trainer, out, cfg, data, seconds, tuned)
    if tuned and not tuned.get("resumed"):
        metrics["prior"] = {k: v for k, v in tuned.items() if k not in ("path", "used")}
    metrics["estimate"] = state.get("estimate")
    metrics["precision"] = state.get("precision", "fp32")
    model = continued.keep_base_if_better(conn, run_id, cfg, model, base_score, metrics, data.residual_beta)
    model_dir = folder / "model"
    if is_main():
        update_run(conn, run_id, progress={**get_run(conn, run_id).progress, "phase": "final evaluation"})
        model.eval()
        save_model(model, model_dir, cfg, data, final_metrics(model, cfg, data, metrics))
    barrier()
    return {"metrics": metrics, "model_dir": str(model_dir)}


def _training_metrics(
    trainer: Any,
    out: Any,
    cfg: TrainConfig,
    data: TrainingData,
    seconds: float,
    tuned: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Loss, steps, speed, the evaluation source and the best checkpoint."""
    steps = int(trainer.state.global_step)
    metrics: dict[str, Any] = {
        "train_loss": float(out.training_loss),
        "steps": steps,
        "train_seconds": round(seconds, 1),
        "eval_seconds": round(sum(float(e.get("eval_runtime", 0)) for e in trainer.state.log_history), 1),
        "pairs_per_s": round(steps * cfg.batch_size * pairs_per_row(data.train_rows) / max(seconds, 1e-6), 2),
        "evaluation": data.eval_source,
        "evaluation_note": data.eval_note,
        "candidates": data.stats["candidates"],
        **labelled_pairs_used(
            trainer.loss, data, (tuned or {}).get("used")
        ),  # "trained on N of M labelled pairs"
    }
    if trainer.state.best_metric is not None:
        metrics["best_step"] = _best_step(trainer)
        metrics["best_validation_ndcg@10"] = getattr(trainer.evaluator, "best_ndcg", None)
        metrics["checkpoint_decisions"] = getattr(trainer.evaluator, "decisions", [])
    return metrics


def pairs_per_row(rows: list[dict[str, Any]]) -> float:
    """(query, passage) pairs the model scores per training row: 1 for pairs, the list length for listwise rows."""
    if rows and "docs" in rows[0]:
        return sum(len(r["docs"]) for r in rows) / len(rows)
    if rows and "positive" in rows[0]:
        return float(len(rows[0]) - 1)
    return 1.0


def _best_step(trainer: Any) -> int | None:
    ck = trainer.state.best_model_checkpoint
    if ck and ck.rsplit("-", 1)[-1].isdigit():
        return int(ck.rsplit("-", 1)[-1])
    return None


def train_project(conn: sqlite3.Connection, project: int, cfg: TrainConfig) -> tuple[str, dict[str, Any]]:
    """Create a run and train it in this process (CLI / tests)."""
    run_id = create_run(conn, project, cfg, status="running")
    return run_id, execute(conn, run_id)["metrics"]
