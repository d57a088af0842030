"""Before a run starts: its peak memory and step time, estimated from the model's size and measured throughput,
and the run adapted (smaller batch) or refused with the reason when it would not fit in the memory available.

Memory model (CPU, float32): a base (runtime + weights, gradients and two Adam moments) plus the activations autograd
keeps for one step, which grow with the pairs scored per step x max length. Calibrated on this machine: BCE at batch 16
x length 256 peaks at ~3 GB; one step of 4 lists x ~200 passages at length 128 went past 23.5 GB.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import estimates, models
from core.training import prior
from core.training.adapt import Adaptation
from core.training.config import ConfigError, TrainConfig

RUNTIME_BYTES = 900 * 2**20  # python, torch, tokenizers, datasets and the run's data before the model
HIDDEN_COPIES = (
    34  # hidden-size float tensors autograd keeps per token per layer (q, k, v, FFN at 4x, norms, dropouts)
)
ATTENTION_COPIES = 3  # attention maps per head kept per token per layer (scores, softmax, dropout mask)
HEADROOM = 0.8  # use at most this share of the available memory
IN_BATCH_LOSSES = ("mnrl",)  # cached: activations of a mini-batch of 16 rows at a time


@dataclass
class ModelSize:
    """What the memory estimate needs to know about a base model, read from its config (no weights loaded)."""

    parameters: int
    hidden: int
    layers: int
    heads: int
    max_positions: int


@dataclass
class Budget:
    """A run's expected peak memory and time, and how its batch was adapted to fit (for the form and the CLI)."""

    peak_bytes: int
    available_bytes: int
    pairs_per_step: int
    step_seconds: float
    steps: int
    total_seconds: float
    measured_rate: bool
    notes: list[str] = field(default_factory=list)
    precision: str = "fp32"

    @property
    def fits(self) -> bool:
        """True when the estimated peak stays under the usable share of the memory available now."""
        return self.peak_bytes <= HEADROOM * self.available_bytes

    def text(self) -> str:
        """'peak ~2.1 GB of 20.3 GB available; ~2.4 s a step, 546 steps: about 22 min (default rate)'."""
        return (
            f"peak memory ~{gb(self.peak_bytes)} of {gb(self.available_bytes)} available; "
            f"~{self.step_seconds:.1f} s a step ({self.pairs_per_step} pairs), {self.steps} steps: "
            f"{estimates.duration(self.total_seconds)} ({'measured rate' if self.measured_rate else 'default rate'}"
            f"{', bf16' if self.precision == 'bf16' else ''})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The estimate as the run records it (`metrics.estimate`) and the CLI prints it."""
        return {
            "peak_gb": round(self.peak_bytes / 2**30, 2),
            "available_gb": round(self.available_bytes / 2**30, 2),
            "pairs_per_step": self.pairs_per_step,
            "step_s": round(self.step_seconds, 2),
            "steps": self.steps,
            "eta_s": round(self.total_seconds),
            "measured_rate": self.measured_rate,
            "precision": self.precision,
            "notes": self.notes,
        }


def gb(n: float) -> str:
    """Bytes as GB with one decimal."""
    return f"{n / 2**30:.1f} GB"


def available_memory() -> int:
    """Bytes the kernel can give this process now (psutil's 'available')."""
    import psutil

    return int(psutil.virtual_memory().available)


def model_size(spec: str) -> ModelSize:
    """Layers, hidden size, heads and parameters of a base model from its config.json (defaults: MiniLM-L6)."""
    try:
        folder = Path(models.resolve(spec))
        cfg = json.loads((folder / "config.json").read_text())
    except (models.ModelError, OSError, ValueError):
        folder, cfg = None, {}
    hidden = int(cfg.get("hidden_size") or cfg.get("d_model") or 384)
    layers = int(cfg.get("num_hidden_layers") or cfg.get("n_layers") or 6)
    weights = folder / "model.safetensors" if folder else None
    params = (
        weights.stat().st_size // 4
        if weights and weights.is_file()
        else layers * 12 * hidden * hidden + int(cfg.get("vocab_size") or 30522) * hidden
    )
    return ModelSize(
        parameters=int(params),
        hidden=hidden,
        layers=layers,
        heads=int(cfg.get("num_attention_heads") or 12),
        max_positions=int(cfg.get("max_position_embeddings") or 512),
    )


def pairs_per_row(loss: str, cfg: TrainConfig, list_length: int | None = None) -> int:
    """Pairs one row makes the model score: 1 (bce), 1 + negatives (listwise, mnrl)."""
    if loss == "bce":
        return 1
    return int(list_length or 1 + cfg.hard_negatives + cfg.random_negatives)


def peak_memory(size: ModelSize, pairs_per_step: int, max_length: int, loss: str = "bce") -> int:
    """Estimated peak resident bytes of one training process (float32 on CPU)."""
    live_pairs = min(pairs_per_step, 16 * 5) if loss in IN_BATCH_LOSSES else pairs_per_step
    per_token = size.layers * 4 * (HIDDEN_COPIES * size.hidden + ATTENTION_COPIES * size.heads * max_length)
    return int(RUNTIME_BYTES + 16 * size.parameters + live_pairs * max_length * per_token)


def estimate(
    cfg: TrainConfig,
    rows: int,
    workspace: Path | None,
    list_length: int | None = None,
    available: int | None = None,
    precision: str | None = None,
) -> Budget:
    """Peak memory and time of `cfg` over `rows` training rows, at the measured (or default) training rate in the
    run's precision (bf16 steps are faster on a CPU with bf16 units; default: what this process would use)."""
    size = model_size(cfg.base_model)
    per_row = pairs_per_row(cfg.loss, cfg, list_length)
    per_step = cfg.batch_size * per_row
    precision = estimates.precision_now(precision)
    rate, measured = estimates.rate(workspace, "train_pairs_per_s", precision)
    rate_here = rate / estimates.length_factor(cfg.max_length, training=True)
    steps = (
        cfg.max_steps
        if cfg.max_steps > 0
        else max(1, math.ceil(math.ceil(rows / cfg.batch_size) * cfg.epochs))
    )
    step_s = per_step / rate_here
    tuning = (
        prior.seconds_for(cfg.prior_steps, workspace, precision, cfg.max_length)
        if cfg.prior_steps > 0
        else 0.0
    )
    return Budget(
        peak_memory(size, per_step, cfg.max_length, cfg.loss),
        available if available is not None else available_memory(),
        per_step,
        step_s,
        steps,
        estimates.STARTUP_S + steps * step_s + tuning,
        measured,
        notes=[f"Includes ~{estimates.duration(tuning)} fine-tuning the embedding model first."]
        if tuning
        else [],
        precision=precision,
    )


def fit(
    cfg: TrainConfig,
    rows: int,
    workspace: Path | None,
    list_length: int | None = None,
    available: int | None = None,
    precision: str | None = None,
) -> tuple[TrainConfig, Budget]:
    """`cfg` as it can run here: the batch halved until the estimated peak fits the memory available (steps scaled so
    the run sees as many rows), or ConfigError saying why not even one row a step fits."""
    budget = estimate(cfg, rows, workspace, list_length, available, precision)
    if budget.fits:
        return cfg, budget
    asked, asked_steps = cfg.batch_size, cfg.max_steps
    cfg = TrainConfig.from_dict(cfg.to_dict())
    while not budget.fits and cfg.batch_size > 1:
        cfg.batch_size = max(1, cfg.batch_size // 2)
        if asked_steps > 0:  # as many rows seen as asked for
            cfg.max_steps = math.ceil(asked_steps * asked / cfg.batch_size)
        budget = estimate(cfg, rows, workspace, list_length, available, precision)
    if not budget.fits:
        raise ConfigError(
            f"This run would not fit in memory: one row a step ({budget.pairs_per_step} pairs at max length "
            f"{cfg.max_length}) needs ~{gb(budget.peak_bytes)}, and only {gb(budget.available_bytes)} is available "
            f"(the run uses at most {HEADROOM:.0%}). Lower max length or the negatives per positive, or free memory."
        )
    budget.notes.append(
        f"Batch size lowered from {asked} to {cfg.batch_size} so the estimated peak "
        f"({gb(budget.peak_bytes)}) fits the {gb(budget.available_bytes)} available."
    )
    return cfg, budget


def for_project(cfg: TrainConfig, plan: Adaptation, workspace: Path | None) -> Budget:
    """The estimate before any row is built (the Train form, the CLI): the rows per epoch the run will build, from
    the plan the caller already shows (computed once)."""
    from core.inference.device import pick_device
    from core.training.device_args import cpu_precision

    rows, per_row = plan.epoch_rows
    precision = cpu_precision(cfg, pick_device()).name
    return estimate(cfg, rows, workspace, per_row if cfg.loss != "bce" else 1, precision=precision)
