"""`python -m core distill --project P --run ID`: one plain cross-encoder that ranks like a run's full score.

A residual (or blended) run needs the cross-encoder, the embedding model and beta, which only the studio can score;
what the ecosystem loads (`CrossEncoder(DIR)`, text-embeddings-inference, Infinity, vLLM) is one
sequence-classification model. The student starts from the teacher's cross-encoder and learns the teacher's full
score over the training queries' first-stage candidate lists (plus their positives) with sentence-transformers'
ListNet loss — a listwise KL between the softmax of the teacher's scores and of the student's logits. Its best
checkpoint is kept on the teacher's own validation slice; it is a run like any other (evaluated, exported as a
`cross-encoder` bundle), and records by how much it falls short of the teacher on validation.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from core import models, store
from core.runs import records
from core.scoring.formulas import PRIMARY
from core.scoring.metrics import rank_metrics
from core.training import run_lists
from core.training.config import TrainConfig, field_docs
from core.training.run_record import create_run

DISTILL_LOSS = "listnet"


@dataclasses.dataclass(frozen=True)
class DistillSettings:
    """How the student trains; zeros take the teacher's value."""

    epochs: float = 2.0
    """Passes over the training queries' lists (ignored when max_steps > 0)."""
    max_steps: int = -1
    """Optimizer steps (-1: from epochs)."""
    batch_size: int = 8
    """Candidate lists per step."""
    learning_rate: float = 3e-5
    """Learning rate of the student (which starts from the teacher's cross-encoder)."""
    list_size: int = 0
    """First-stage candidates per training query (0: the teacher's candidates_k)."""
    max_length: int = 0
    """Tokens per (query, passage) pair (0: the teacher's max length)."""
    eval_steps: int = 0
    """Validate every N steps (0: once per epoch)."""


def student_config(teacher: TrainConfig, s: DistillSettings) -> TrainConfig:
    """The student's run config: the teacher's data settings, a listwise loss, no fusion, no beta."""
    return TrainConfig.from_dict(
        {
            **teacher.to_dict(),
            "loss": DISTILL_LOSS,
            "fusion": False,
            "residual_beta": None,
            "head_lr_multiplier": 1.0,
            "grouped_batches": False,
            "epochs": s.epochs,
            "max_steps": s.max_steps,
            "batch_size": s.batch_size,
            "learning_rate": s.learning_rate,
            "eval_steps": s.eval_steps,
            "candidates_k": s.list_size or teacher.candidates_k,
            "max_length": s.max_length or teacher.max_length,
        }
    )


def teacher_rows(teacher: Any, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One listwise row per query: its candidates plus any positive the first stage missed, with the teacher's
    full score of each as the target."""
    groups = []
    for s in samples:
        docs = list(s["documents"])
        docs += [p for p in s["positive"] if p not in set(docs)]
        groups.append((s["query"], docs))
    scores = teacher.score_groups(groups)
    return [
        {"query": q, "docs": docs, "labels": [float(x) for x in sc]}
        for (q, docs), sc in zip(groups, scores)
        if len(docs) > 1
    ]


def validation_gap(teacher: Any, student: Any, samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Teacher's and student's NDCG@10 on the validation lists, and by how much the student falls short."""
    if not samples:
        return {}
    groups = [(s["query"], list(s["documents"])) for s in samples]
    t = rank_metrics(samples, teacher.score_groups(groups))[PRIMARY]
    st = rank_metrics(samples, student.score_groups(groups))[PRIMARY]
    return {
        f"teacher_validation_{PRIMARY}": t,
        f"validation_{PRIMARY}": st,
        "gap_to_teacher": round(t - st, 6),
    }


def _fit(
    cfg: TrainConfig,
    teacher_folder: Path,
    rows: list[dict[str, Any]],
    val: list[dict[str, Any]],
    folder: Path,
) -> tuple[Any, dict[str, Any]]:
    """Train the student from the teacher's cross-encoder with ListNet on the teacher's scores."""
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainer
    from sentence_transformers.cross_encoder.losses import ListNetLoss
    from transformers.trainer_callback import PrinterCallback

    from core.training.evaluator import RerankingEvaluator
    from core.training.trainer import schedule, training_arguments

    torch.manual_seed(cfg.seed)
    model = models.load_cross_encoder(str(teacher_folder), max_length=cfg.max_length)
    model.activation_fn = torch.nn.Identity()  # the student's score is its logit, like the teacher's
    evaluator = RerankingEvaluator(val, None, "val") if val else None
    total, eval_steps = schedule(cfg, len(rows))
    args = training_arguments(cfg, folder / "checkpoints", evaluator is not None, eval_steps)
    trainer = CrossEncoderTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        loss=ListNetLoss(model, activation_fn=torch.nn.Identity()),
        evaluator=evaluator,
    )
    trainer.remove_callback(PrinterCallback)
    started = time.time()
    out = trainer.train()
    metrics = {
        "train_loss": float(out.training_loss),
        "steps": int(trainer.state.global_step),
        "train_seconds": round(time.time() - started, 1),
        "training_lists": len(rows),
    }
    if evaluator is not None and evaluator.best_ndcg is not None:
        metrics[f"best_validation_{PRIMARY}"] = evaluator.best_ndcg
    return model, metrics


def _save(model: Any, model_dir: Path, config: dict[str, Any], metrics: dict[str, Any]) -> None:
    """A plain CrossEncoder folder (no fusion file) with the studio's run record beside it."""
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(model_dir))
    (model_dir / "studio_run.json").write_text(
        json.dumps({"config": config, "metrics": metrics}, indent=2, default=float)
    )


def distill(
    conn: sqlite3.Connection, project: int, teacher_id: str, settings: DistillSettings | None = None
) -> tuple[str, dict[str, Any]]:
    """Train, save and record the student run in this process; returns its id and metrics."""
    from core.scoring.reranker import Reranker

    teacher_run = records.completed_run(conn, teacher_id, project)
    teacher_folder = records.model_folder(conn, teacher_run)
    tcfg = TrainConfig.from_dict(teacher_run.config)
    cfg = student_config(tcfg, settings or DistillSettings())
    run_id = create_run(conn, project, cfg, status="running")
    config = {**cfg.to_dict(), "distilled_from": teacher_id}
    records.update_run(conn, run_id, config=config, progress={"phase": "teacher scoring"})
    workspace = store.workspace_of(conn)
    try:
        split = run_lists.run_split(conn, project, tcfg)
        train_lists = run_lists.lists(conn, project, cfg, split.fit_qids, split.train, workspace=workspace)
        val = (
            run_lists.lists(conn, project, tcfg, split.validation_qids, split.train, workspace=workspace)
            if split.validation_source == "split"
            else []
        )
        teacher = Reranker.load(teacher_folder, workspace=workspace)
        rows = teacher_rows(teacher, train_lists)
        records.update_run(conn, run_id, progress={"phase": "training"})
        folder = records.run_folder(conn, run_id)
        model, metrics = _fit(cfg, teacher_folder, rows, val, folder)
        model.eval()
        student = Reranker({"kind": "cross-encoder", "max_length": cfg.max_length}, model)
        metrics.update(distilled_from=teacher_id, loss=f"{DISTILL_LOSS} on the teacher's full score")
        metrics.update(validation_gap(teacher, student, val))
        model_dir = folder / "model"
        _save(model, model_dir, config, metrics)
    except BaseException as exc:
        records.update_run(conn, run_id, status="failed", error=f"{type(exc).__name__}: {exc}", pid=None)
        raise
    records.update_run(
        conn,
        run_id,
        status="completed",
        metrics=metrics,
        model_dir=str(model_dir),
        progress={"phase": "completed"},
    )
    records.add_event(
        conn, run_id, "message", {"text": f"Distilled from {teacher_id}: {json.dumps(metrics)}"}
    )
    return run_id, metrics


def distill_job(
    conn: sqlite3.Connection, project: int, args: dict[str, Any], progress: Any, should_cancel: Any
) -> dict[str, Any]:
    """The `distill` job kind (pages queue it with {"run": TEACHER_ID, ...DistillSettings fields})."""
    names = {f.name for f in dataclasses.fields(DistillSettings)}
    settings = DistillSettings(**{k: v for k, v in args.items() if k in names})
    progress(0.0, f"distilling run {args['run']}")
    run_id, metrics = distill(conn, project, str(args["run"]), settings)
    progress(1.0, f"distilled into run {run_id}")
    return {"run": run_id, "teacher": args["run"], **metrics}


def cli_arguments(parser: Any) -> None:
    """Options of distill (from DistillSettings)."""
    parser.add_argument("--project", required=True, help="project name")
    parser.add_argument("--run", required=True, help="id of the completed teacher run")
    docs = field_docs(DistillSettings)
    for f in dataclasses.fields(DistillSettings):
        parser.add_argument(
            "--" + f.name.replace("_", "-"), type=type(f.default), default=f.default, help=docs.get(f.name)
        )


def cli_main(args: Any) -> dict[str, Any]:
    """Distill and print the student's id and figures."""
    settings = DistillSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(DistillSettings)})
    conn = store.connect()
    try:
        run_id, metrics = distill(conn, store.project_id(conn, args.project), args.run, settings)
    finally:
        conn.close()
    return {"run": run_id, "teacher": args.run, **metrics}
