"""The hardware part of a run's training arguments: the device, mixed precision, and a batch that fits memory.

On a GPU the person's batch size is kept as the effective batch: when it does not fit, each step is split into
gradient-accumulation micro-batches that do. On a CPU the batch is kept as given, and the step runs under bf16
autocast where the CPU has bf16 units (AMX, avx512_bf16; core.inference.precision), fp32 elsewhere or when the
run's precision setting says fp32.

A bf16 CPU run with `attention_dropout` off (not the default: its effect on quality is not measured yet) turns
attention dropout off (`fused_attention`): PyTorch's fused CPU attention kernel has no
dropout, so with it on `scaled_dot_product_attention` takes the unfused math path (bmm, softmax, dropout, bmm), which
under bf16 autocast upcasts and copies (copy_ was the top op of a bf16 step, 23%). `bench/training_step.py` (MiniLM-L6,
32 pairs at length 128, fused AdamW, order alternated, 2-core AMX Xeon shared, load 5-9): per step, autocast alone
1.06x / 1.26x fp32 (two runs); autocast without attention dropout 1.58x / 1.46x in the same runs and 1.27x in a
third, where fp32 without attention dropout was 1.33x: much of the gain is the fused kernel, not bf16 arithmetic. bf16 matmuls are 4.3x here but matmuls
are only ~40% of an fp32 step (dropout RNG 10%, AdamW over 23M parameters, element-wise ops and autocast's casts are
the rest). Hidden-state dropout stays. fp32 runs keep today's path, dropout included.
"""

from __future__ import annotations

import math
from typing import Any

from core.inference.device import fit_batch_size, mixed_precision, pick_device
from core.inference.precision import Precision, choose
from core.training.config import TrainConfig


def model_shape(model: Any) -> dict[str, int]:
    """hidden size, layers, heads and parameter count of a CrossEncoder (defaults of MiniLM-L6 when unknown)."""
    config = getattr(getattr(model, "model", None), "config", None)
    params = sum(p.numel() for p in model.parameters()) if hasattr(model, "parameters") else 23_000_000
    return {
        "hidden": int(getattr(config, "hidden_size", 384)),
        "layers": int(getattr(config, "num_hidden_layers", 6)),
        "heads": int(getattr(config, "num_attention_heads", 12)),
        "params": int(params),
    }


def hardware_arguments(
    cfg: TrainConfig, model: Any, pairs_per_row: float = 1.0, device: str | None = None
) -> dict[str, Any]:
    """Training-argument overrides for the device: use_cpu, bf16/fp16, micro-batch and gradient accumulation."""
    device = device or pick_device()
    if not device.startswith("cuda"):
        cpu = cpu_precision(cfg, device)
        return {"use_cpu": device == "cpu", "bf16": cpu.bf16, "fp16": False, "precision_reason": cpu.reason}
    precision = mixed_precision(device)
    sequences = fit_batch_size(
        device,
        seq_len=int(cfg.max_length),
        precision=precision,
        training=True,
        cap=4096,
        **model_shape(model),
    )
    rows = max(1, int(sequences // max(1.0, pairs_per_row)))
    micro = min(int(cfg.batch_size), rows)
    return {
        "use_cpu": False,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "per_device_train_batch_size": micro,
        "gradient_accumulation_steps": max(1, math.ceil(int(cfg.batch_size) / micro)),
    }


def cpu_precision(cfg: TrainConfig, device: str = "cpu") -> Precision:
    """The run's CPU precision: its `precision` setting (auto, bf16, fp32) against what this CPU has."""
    if device != "cpu":  # mps: autocast on Apple GPUs is not what was measured; keep fp32
        return Precision("fp32", f"fp32 on {device}")
    return choose(getattr(cfg, "precision", None) or "auto", device=device)


def fused_attention(model: Any, hardware: dict[str, Any], keep_dropout: bool = False) -> int:
    """On a bf16 CPU run that asked for it (`attention_dropout` off), attention dropout off so the fused attention
    kernel runs; returns the modules changed.

    Only for models on sdpa attention (eager attention gains nothing from it); any other run is left unchanged."""
    import torch

    inner = getattr(model, "model", model)
    sdpa = getattr(getattr(inner, "config", None), "_attn_implementation", None) == "sdpa"
    if keep_dropout or not (hardware.get("bf16") and hardware.get("use_cpu") and sdpa):
        return 0
    changed = 0
    for module in inner.modules():
        if "Attention" not in type(module).__name__:
            continue
        for child in module.children():
            if isinstance(child, torch.nn.Dropout) and child.p > 0:
                child.p, changed = 0.0, changed + 1
    if changed:
        hardware["attention_dropout_off"] = changed
    return changed


def trainer_arguments(hardware: dict[str, Any]) -> dict[str, Any]:
    """The hardware dict without its words: only what CrossEncoderTrainingArguments takes."""
    return {k: v for k, v in hardware.items() if k not in ("precision_reason", "attention_dropout_off")}


def describe(hardware: dict[str, Any], device: str | None = None) -> str:
    """One sentence for the run's log: where it trains and how."""
    device = device or pick_device()
    precision = "bf16" if hardware.get("bf16") else "fp16" if hardware.get("fp16") else "fp32"
    text = f"Training on {device} in {precision}"
    reason = str(hardware.get("precision_reason") or "")
    for prefix in (f"{precision}: ", f"{precision} "):
        reason = reason.removeprefix(prefix)
    if reason:
        text += f" ({reason})"
    if hardware.get("attention_dropout_off"):
        text += ", attention dropout off so the fused bf16 attention kernel runs"
    if hardware.get("gradient_accumulation_steps", 1) > 1:
        text += (
            f", micro-batches of {hardware['per_device_train_batch_size']} rows x "
            f"{hardware['gradient_accumulation_steps']} accumulation steps (the batch did not fit in memory)"
        )
    return text + "."
