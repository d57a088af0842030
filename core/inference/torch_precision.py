"""Torch models for scoring and embedding in the chosen CPU precision: bf16 weights where the CPU has bf16 units.

bf16 weights, not autocast: on the AMX Xeon (2 cores, MiniLM-L6, length 256, same process, order alternated)
bf16 weights scored pairs 2.2x faster than fp32 and autocast only 1.5x (autocast casts the fp32 weights again
on every matmul). sentence-transformers upcasts bf16 scores and embeddings to fp32 before returning them, and
sorts each call's inputs by length (a longest-first batch pads little); BERT already runs PyTorch's fused
`scaled_dot_product_attention` (transformers' default `attn_implementation="sdpa"`), so neither is redone here.
`bench/scoring.py --quick` on a trained SciFact reranker (3 rounds, order alternated, load ~9 on 2 cores): embedding
2.1x, scoring 2.8x, NDCG@10 unchanged (min cosine to fp32 0.99992, scores within 0.0005).
"""

from __future__ import annotations

import copy
import threading
from functools import lru_cache
from typing import Any

from core.inference.precision import Precision, choose

_lock = threading.Lock()
# Pairs a bf16 scoring batch holds: batch x max length ~ 16k tokens (128 at length 128). AMX gains with the batch:
# at length 128 on the loaded 2-core Xeon, bf16 scored 20.6 pairs/s at batch 32, 23.5 at 64, 30.0 at 128 (fp32: 9.1
# at 32, already near its peak).
BF16_BATCH_TOKENS = 16384


def variant(precision: Precision) -> str:
    """A short name of the torch path's numbers for cache keys ('' for fp32: today's keys stay valid)."""
    return "torch-bf16" if precision.bf16 else ""


def model_device(model: Any) -> str:
    """The device a sentence-transformers model sits on, as a string ('cpu' when it cannot say)."""
    return str(getattr(model, "device", "cpu"))


def scoring_batch(model: Any, max_length: int, default: int = 32) -> int:
    """Pairs per scoring batch: `default` for an fp32 model, about BF16_BATCH_TOKENS tokens for a bf16 one."""
    import torch

    params = getattr(model, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    if first is None or first.dtype != torch.bfloat16:
        return default
    return max(default, BF16_BATCH_TOKENS // max(1, int(max_length)))


def in_precision(model: Any, precision: Precision | None = None, *, copy_first: bool = False) -> Any:
    """The model with bf16 weights when the precision says bf16 (a copy when `copy_first`), else unchanged.

    Only for a model on the CPU: a GPU model keeps its own dtype."""
    import torch

    precision = precision or choose(device=model_device(model))
    if not precision.bf16 or not model_device(model).startswith("cpu"):
        return model
    target = copy.deepcopy(model) if copy_first else model
    target.to(torch.bfloat16)
    _fp32_head(target)
    _fp32_pooling(target)
    return target


def _fp32_pooling(model: Any) -> None:
    """A sentence embedder's token vectors upcast before pooling: the mean over a text's tokens and the
    normalisation run in fp32, so the vector keeps more than bf16's ~3 significant digits."""
    from sentence_transformers import SentenceTransformer

    if not isinstance(model, SentenceTransformer) or len(model) < 2:
        return

    def upcast(_module: Any, _inputs: Any, features: dict) -> dict:
        tokens = features.get("token_embeddings")
        if tokens is not None and tokens.is_floating_point():
            features["token_embeddings"] = tokens.float()
        return features

    model[0].register_forward_hook(upcast)


def _fp32_head(model: Any) -> None:
    """A cross-encoder's output layer back in fp32 weights and compute: a bf16 logit has ~2 significant digits
    (steps of 0.03 near 5), which turns near-ties into ties; in fp32 the scores stay continuous."""
    import torch

    if not hasattr(model, "set_keep_in_fp32_modules"):
        return
    linears = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if linears:
        model.get_submodule(linears[-1]).float()
        model.set_keep_in_fp32_modules([linears[-1]])


def scoring_embedder(spec: str | None, *, trust_remote_code: bool = False) -> Any:
    """The embedding model for encoding in this process's precision (one bf16 copy per model, cached)."""
    from core import models

    precision = choose(device=model_device(models.load_embedder(spec, trust_remote_code=trust_remote_code)))
    if not precision.bf16:
        return models.load_embedder(spec, trust_remote_code=trust_remote_code)
    with _lock:
        return _bf16_embedder(models.resolve(spec), trust_remote_code)


@lru_cache(maxsize=2)
def _bf16_embedder(path: str, trust_remote_code: bool) -> Any:
    """A bf16 copy of the process's embedder (the fp32 one stays as it is for callers that need it)."""
    from core import models

    fp32 = models.load_embedder(path, trust_remote_code=trust_remote_code)
    return in_precision(fp32, Precision("bf16", "cached bf16 copy"), copy_first=True)
