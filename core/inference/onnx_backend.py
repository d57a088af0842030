"""ONNX Runtime embedding and cross-encoder scoring on CPU: all cores, batches sorted by length to cut padding."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core.inference.onnx_export import ensure_export

BATCH_SIZE = 32
_lock = threading.Lock()


def cpu_threads() -> int:
    """The cores this process may use (cgroup/affinity aware), the intra-op thread count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@lru_cache(maxsize=8)
def session(path: str, threads: int | None = None) -> Any:
    """One ONNX Runtime session per exported file (loading is the slow part), all graph optimisations on."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or cpu_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


@lru_cache(maxsize=8)
def _tokenizer(model_dir: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def _batches(
    ids: list[list[int]],
    types: list[list[int]] | None,
    pad_id: int,
    batch_size: int,
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Padded int64 batches of similar lengths (longest first), with the original positions of their rows."""
    order = np.argsort([-len(x) for x in ids], kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = len(ids[idx[0]])
        input_ids = np.full((len(idx), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        token_types = np.zeros((len(idx), width), dtype=np.int64)
        for row, i in enumerate(idx):
            n = len(ids[i])
            input_ids[row, :n] = ids[i]
            mask[row, :n] = 1
            if types is not None:
                token_types[row, :n] = types[i]
        yield idx, {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": token_types}


class OnnxModel:
    """An exported model with its tokenizer: tokenizes once, runs length-sorted batches, restores the order."""

    def __init__(
        self,
        model_dir: str | Path,
        kind: str,
        *,
        quantize: bool = False,
        cache: Path | None = None,
        batch_size: int = BATCH_SIZE,
    ):
        self.model_dir = str(Path(model_dir).resolve())
        self.quantize = quantize
        self.batch_size = batch_size
        self.path = ensure_export(self.model_dir, kind, quantize=quantize, cache=cache)
        self.session = session(str(self.path))
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.output = self.session.get_outputs()[0].name
        self.tokenizer = _tokenizer(self.model_dir)

    def _run(self, enc: dict[str, list[list[int]]], width: int) -> np.ndarray:
        """Model outputs for tokenized rows, in their original order."""
        ids = enc["input_ids"]
        out = np.zeros((len(ids), width), dtype=np.float32)
        pad = self.tokenizer.pad_token_id or 0
        for idx, feeds in _batches(ids, enc.get("token_type_ids"), pad, self.batch_size):
            result = self.session.run([self.output], {n: feeds[n] for n in self.inputs})[0]
            out[idx] = result.reshape(len(idx), width)
        return out


class OnnxEmbedder(OnnxModel):
    """Normalized sentence embeddings exactly as the folder's sentence-transformers pipeline computes them."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        quantize: bool = False,
        cache: Path | None = None,
        batch_size: int = BATCH_SIZE,
    ):
        super().__init__(model_dir, "embed", quantize=quantize, cache=cache, batch_size=batch_size)
        self.max_length, self.lower = _embedding_settings(Path(self.model_dir), self.tokenizer)
        self.dim = int(self.session.get_outputs()[0].shape[1])

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = [t.lower() for t in texts] if self.lower else list(texts)
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length, padding=False)
        return self._run(enc, self.dim)


class OnnxCrossEncoder(OnnxModel):
    """One relevance logit per (query, passage) pair, tokenized as sentence-transformers' CrossEncoder does."""

    def __init__(
        self,
        model_dir: str | Path,
        max_length: int = 256,
        *,
        quantize: bool = False,
        cache: Path | None = None,
        batch_size: int = BATCH_SIZE,
    ):
        super().__init__(model_dir, "cross", quantize=quantize, cache=cache, batch_size=batch_size)
        self.max_length = max_length

    def __call__(self, pairs: Sequence[tuple[str, str]] | Sequence[Sequence[str]]) -> np.ndarray:
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        enc = self.tokenizer(
            [p[0] for p in pairs],
            [p[1] for p in pairs],
            truncation="longest_first",
            max_length=self.max_length,
            padding=False,
        )
        return self._run(enc, 1).reshape(-1)


def _embedding_settings(model_dir: Path, tokenizer: Any) -> tuple[int, bool]:
    """sentence-transformers' max_seq_length and lower-casing for an embedding folder."""
    config_file = model_dir / "sentence_bert_config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    limit = config.get("max_seq_length")
    if not limit:
        model_config = json.loads((model_dir / "config.json").read_text())
        limit = min(tokenizer.model_max_length, model_config.get("max_position_embeddings", 512))
    return int(limit), bool(config.get("do_lower_case", False))


@lru_cache(maxsize=4)
def _cached_embedder(model_dir: str, quantize: bool, cache: Path | None) -> OnnxEmbedder:
    return OnnxEmbedder(model_dir, quantize=quantize, cache=cache)


@lru_cache(maxsize=4)
def _cached_cross_encoder(
    model_dir: str, max_length: int, quantize: bool, cache: Path | None
) -> OnnxCrossEncoder:
    return OnnxCrossEncoder(model_dir, max_length, quantize=quantize, cache=cache)


def fast_embedder(
    model_spec: str | None = None, *, quantize: bool = False, cache: Path | None = None
) -> Callable[[Sequence[str]], np.ndarray]:
    """The ONNX embedder of a model choice (bundled, folder), one per process; raises OnnxUnsupported if it can't."""
    from core import models

    with _lock:
        return _cached_embedder(models.resolve(model_spec), quantize, cache)


def fast_cross_encoder(
    model_dir: str | Path, max_length: int = 256, *, quantize: bool = False, cache: Path | None = None
) -> Callable[[Sequence[tuple[str, str]]], np.ndarray]:
    """callable(pairs) -> np.ndarray of raw logits (no sigmoid), as CrossEncoder.predict(activation_fn=Identity)."""
    with _lock:
        return _cached_cross_encoder(str(Path(model_dir).resolve()), int(max_length), quantize, cache)
