"""When the fast (ONNX Runtime) path is used: on by default only where bench/scoring.py showed it met the goal.

RERANK_STUDIO_FAST=auto|on|off (default auto: the measured verdict below, and never on a CUDA machine, where
torch on the GPU is the fast path). RERANK_STUDIO_FAST_PRECISION=int8|fp32 picks the ONNX variant (default int8:
on 2 CPU cores fp32 ONNX is about as fast as torch, since both are bound by the same matrix products).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

FAST_ENV = "RERANK_STUDIO_FAST"
PRECISION_ENV = "RERANK_STUDIO_FAST_PRECISION"
GOAL_SPEEDUP = 2.0  # issue 16: at least 2x sentence-transformers' torch path at max length 256
MAX_NDCG_DELTA = 0.005  # ... with NDCG@10 on SciFact test within 0.005

# Measured with `bench/scoring.py --quick` (int8, length 256, 2 shared CPU cores under load from other agents;
# the full bench on an idle machine is still to run): see MEASURED_NOTE.
MEASURED: dict[str, dict[str, float]] = {
    "embed": {"speedup": 0.0, "ndcg10_delta": 1.0},
    "cross": {"speedup": 0.0, "ndcg10_delta": 1.0},
}
MEASURED_NOTE = "not measured yet"


def met_goal(kind: str) -> bool:
    """Whether the measured figures of 'embed' or 'cross' met both parts of the goal."""
    m = MEASURED[kind]
    return m["speedup"] >= GOAL_SPEEDUP and abs(m["ndcg10_delta"]) <= MAX_NDCG_DELTA


def setting() -> str:
    """The RERANK_STUDIO_FAST setting: 'auto', 'on' or 'off'."""
    value = os.environ.get(FAST_ENV, "auto").strip().lower()
    return value if value in ("auto", "on", "off") else "auto"


def quantize() -> bool:
    """Whether the fast path runs the int8 dynamically quantised graph (default) or fp32."""
    return os.environ.get(PRECISION_ENV, "int8").strip().lower() != "fp32"


def fast_enabled(kind: str) -> bool:
    """Use ONNX Runtime for 'embed' or 'cross' scoring in this process?"""
    value = setting()
    if value != "auto":
        return value == "on"
    if not met_goal(kind):
        return False
    from core.inference.device import pick_device

    return pick_device() == "cpu"


def variant() -> str:
    """A short name of the fast path's numbers, for cache keys: vectors of different variants never mix."""
    return "onnx-int8" if quantize() else "onnx-fp32"


def cross_encoder_scorer(model_dir: str | Path, max_length: int = 256
                         ) -> Callable[[Sequence[tuple[str, str]]], np.ndarray] | None:
    """The fast logit scorer of a cross-encoder folder when the fast path is on for it, else None (use torch)."""
    if not fast_enabled("cross"):
        return None
    from core.inference.onnx_backend import fast_cross_encoder
    from core.inference.onnx_export import OnnxUnsupported

    try:
        return fast_cross_encoder(model_dir, max_length, quantize=quantize())
    except OnnxUnsupported:
        return None
