"""Device choice for torch work: CUDA, Apple MPS or CPU, the mixed precision it supports, a batch that fits."""

from __future__ import annotations

import os

DEVICE_ENV = "RERANK_STUDIO_DEVICE"  # force "cpu", "cuda", "cuda:1" or "mps"
_BYTES = {None: 4, "fp16": 2, "bf16": 2}


def pick_device(prefer: str | None = None) -> str:
    """The best device present: an explicit choice (argument or RERANK_STUDIO_DEVICE), else cuda, mps, cpu."""
    import torch

    choice = (prefer or os.environ.get(DEVICE_ENV) or "").strip().lower()
    if choice and choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def mixed_precision(device: str | None = None) -> str | None:
    """'bf16' on a CUDA device that supports it, 'fp16' on other CUDA devices, None (fp32) elsewhere."""
    import torch

    device = device or pick_device()
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    index = torch.device(device).index or 0
    with torch.cuda.device(index):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def free_memory(device: str) -> int:
    """Bytes free on the device (CUDA: the driver's figure; elsewhere: available system memory)."""
    import psutil

    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    return int(psutil.virtual_memory().available)


def fit_batch_size(
    device: str,
    *,
    seq_len: int,
    hidden: int = 384,
    layers: int = 6,
    heads: int = 12,
    params: int = 23_000_000,
    training: bool = True,
    precision: str | None = None,
    cap: int = 256,
    default_cpu: int = 32,
    headroom: float = 0.7,
) -> int:
    """The largest power-of-two batch whose estimated memory fits the device's free memory (CPU: default_cpu).

    Estimate per sequence: activations kept for backward (about 34 x seq x hidden + 5 x heads x seq^2 values per
    layer, as in Korthikanti et al. 2022), a fifth of that when only scoring. Fixed: the weights, plus gradients
    and Adam's two moments in fp32 when training.
    """
    if not device.startswith("cuda"):
        return min(cap, default_cpu)
    act_bytes = _BYTES.get(precision, 4)
    per_seq = layers * (34 * seq_len * hidden + 5 * heads * seq_len * seq_len) * act_bytes
    fixed = params * (16 if training else act_bytes)
    if not training:
        per_seq //= 5
    budget = free_memory(device) * headroom - fixed
    if budget <= per_seq:
        return 1
    batch = 1
    while batch * 2 <= min(cap, budget // per_seq):
        batch *= 2
    return batch
