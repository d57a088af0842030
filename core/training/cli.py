"""`python -m core train`: every TrainConfig field is a typed flag whose --help is the field's docstring."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
import types
import typing
from typing import Any

from core import models, store
from core.runs.records import get_run
from core.scoring.formulas import RESIDUAL
from core.training import budget
from core.training.adapt import ProjectShape, adaptation, project_shape
from core.training.beta import source as beta_source
from core.training.config import LOSSES, VALIDATION, TrainConfig, field_help
from core.training.defaults import TIME_BUDGET_S, default_config, project_defaults
from core.training.distributed import broadcast, init_distributed, is_main, world_size
from core.training.run_record import create_run

CHOICES = {"loss": tuple(LOSSES), "validation": VALIDATION, "precision": ("auto", "bf16", "fp32")}


def parse_bool(text: str) -> bool:
    """true/false, yes/no, 1/0, on/off (a flag's value, as typed)."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def field_parser(annotation: Any) -> tuple[Any, str]:
    """(argparse type, metavar) for a field's annotation; `X | None` parses as X (leave the flag out for None)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if annotation is bool:
        return parse_bool, "BOOL"
    if annotation in (int, float, str):
        return annotation, annotation.__name__.upper()
    raise TypeError(f"TrainConfig field type {annotation!r} has no command-line parser")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (--residual-beta for residual_beta), typed and documented from the field."""
    hints = typing.get_type_hints(TrainConfig)
    docs = field_help()
    group = parser.add_argument_group("training settings (default: adaptive to the data, see --defaults)")
    for f in dataclasses.fields(TrainConfig):
        kind, metavar = field_parser(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        choices = CHOICES.get(f.name)
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=kind,
            default=None,
            metavar=None if choices else metavar,
            choices=choices,
            help=f"{docs.get(f.name, '')} (plain default: {default})".replace("%", "%%"),
        )


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    """`python -m core train --project NAME [options]` or `--run RUN_ID` (the background job)."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--project", help="project name: create a run and train it here")
    which.add_argument("--run", help="train an existing run (the studio's background job)")
    add_config_flags(parser)
    parser.add_argument(
        "--defaults",
        choices=("adaptive", "plain"),
        default="adaptive",
        help="adaptive: defaults from data size and base model (default); plain: TrainConfig()",
    )
    parser.add_argument(
        "--time-budget-min",
        type=float,
        default=TIME_BUDGET_S / 60,
        help="adaptive defaults: training time to plan epochs and max length for (minutes)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (settings, what was adapted to the data, the estimate) and stop: no run is created",
    )


def config_from_args(
    args: argparse.Namespace, counts: dict[str, Any], conn: Any = None, project: int | None = None
) -> TrainConfig:
    """The adaptive (or plain) defaults with every flag the person gave on top; with the project's connection the
    adaptive defaults come from its measurements (token lengths, time budget) and their reasons go to args.reasons."""
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name, None) is not None
    }
    base = overrides.get("base_model", models.BUNDLED)
    if args.defaults == "adaptive" and conn is not None and project is not None:
        cfg, reasons = project_defaults(
            conn,
            project,
            base,
            budget_s=60 * float(getattr(args, "time_budget_min", TIME_BUDGET_S / 60)),
            workspace=store.workspace_of(conn),
        )
        args.reasons = {k: "set on the command line" if k in overrides else why for k, why in reasons.items()}
    elif args.defaults == "adaptive":
        cfg = default_config(counts, base)
    else:
        cfg = TrainConfig()
    return TrainConfig.from_dict({**cfg.to_dict(), **overrides})


def launch_plan(conn: Any, cfg: TrainConfig, shape: ProjectShape, reasons: dict[str, str]) -> dict[str, Any]:
    """What the CLI says before training (on stderr) and in its JSON line: the defaults' reasons, what the data made
    the run adapt, and the estimate."""
    adapted = adaptation(cfg, shape)
    plan = budget.for_project(cfg, adapted, store.workspace_of(conn))
    keys = (
        "loss",
        "max_length",
        "epochs",
        "batch_size",
        "learning_rate",
        "hard_negatives",
        "random_negatives",
    )
    chosen = {k: getattr(cfg, k) for k in keys}
    if cfg.prior_steps:
        chosen["prior_steps"] = cfg.prior_steps
    if cfg.loss == RESIDUAL:
        reasons = {**reasons, "beta": beta_source(cfg.residual_beta)}
    out = {
        "config": chosen,
        "defaults": reasons,
        "adapted": adapted.to_dict(),
        "estimate": plan.to_dict(),
        "estimate_text": plan.text(),
    }
    print(json.dumps({"plan": out}), file=sys.stderr, flush=True)
    return out


def _summary(conn: Any, run_id: str, metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON line rank 0 prints (test_labels_used_for stays inside metrics, where the run recorded it)."""
    if not is_main():
        return None
    return {"run_id": run_id, "status": get_run(conn, run_id).status, "metrics": metrics}


def cli_main(args: argparse.Namespace) -> dict[str, Any] | None:
    """Rank 0 creates the run and prints the JSON line; other ranks train silently."""
    from core.training.trainer import execute  # torch and the trainer load only when a run trains

    logging.basicConfig(level=logging.WARNING)
    init_distributed()
    conn = store.connect()
    try:
        if args.run:
            with contextlib.redirect_stdout(sys.stderr):
                result = execute(conn, args.run)
            return _summary(conn, args.run, result["metrics"])
        project = store.project_id(conn, args.project)
        counts = store.project_counts(conn, project)
        cfg = config_from_args(args, counts, conn, project)
        shape = project_shape(conn, project)
        if getattr(args, "dry_run", False):
            cfg.validate()  # the plan of settings that could not run is not shown as if they could
        plan = launch_plan(conn, cfg, shape, getattr(args, "reasons", {})) if is_main() else {}
        if getattr(args, "dry_run", False):
            return {"plan": plan, "dry_run": True} if is_main() else None
        run_id = broadcast(create_run(conn, project, cfg, status="running") if is_main() else None)
        if world_size() == 1:  # supervised child: a killed run is recorded with its cause
            from core.runs import worker

            return {**worker.train_in_foreground(conn, project, run_id), "plan": plan}
        with contextlib.redirect_stdout(sys.stderr):
            result = execute(conn, run_id)
        return _summary(conn, run_id, result["metrics"])
    finally:
        conn.close()
