"""Model export as evaluation had it (model folder copy, ONNX): kept here unchanged for core/export/ to take over."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core import models, store
from core.evaluation.common import EvaluationError
from core.evaluation.systems import evaluable_runs


def get_run(conn: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    """A completed run with a model folder under runs/ (the runs records' one lookup), else EvaluationError."""
    return evaluable_runs(conn, None, [run_id])[0]


def safe_export_path(workspace: Path, name: str) -> Path:
    """The store's one safe export path rule, refusing with an EvaluationError."""
    try:
        return store.safe_export_path(workspace, name)
    except store.UnsafePathError as exc:
        raise EvaluationError(str(exc)) from exc


def export_model_folder(conn: sqlite3.Connection, run_id: str, name: str | None = None) -> Path:
    """Copy a run's model folder (weights, tokenizer, model card, fusion file) into the workspace exports folder."""
    run = get_run(conn, run_id)
    dest = safe_export_path(store.workspace_of(conn), name or f"model-{run_id}")
    if dest.exists():
        raise EvaluationError(f"{dest} already exists; choose another name.")
    source = run_model_dir(conn, run)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("checkpoint-*", "optimizer.pt"))
    return dest


def run_model_dir(conn: sqlite3.Connection, run: dict[str, Any]) -> Path:
    """A run's model folder, only if it really lies under the workspace's runs/ (a tampered row copies nothing)."""
    raw = str(run.get("model_dir") or "")
    runs = store.runs_dir(store.workspace_of(conn)).resolve()
    folder = Path(raw).resolve()
    if ".." in Path(raw).parts or not folder.is_relative_to(runs):
        raise EvaluationError(f"The model folder {raw!r} of run {run.get('id')} is outside the workspace's runs "
                              f"folder ({runs}); it is not exported.")
    if not folder.is_dir():
        raise EvaluationError(f"The model folder {raw!r} of run {run.get('id')} no longer exists.")
    return folder


def export_onnx(conn: sqlite3.Connection, run_id: str, name: str | None = None,
                check_pairs: Sequence[tuple[str, str]] | None = None) -> dict[str, Any]:
    """ONNX export of the run's transformer (torch.onnx, TorchScript exporter) verified with onnxruntime.

    sentence-transformers' own exporters need `optimum`, which cannot be installed beside this transformers;
    the exported graph takes input_ids/attention_mask/token_type_ids and returns the relevance logit.
    """
    import onnxruntime as ort
    import torch

    run = get_run(conn, run_id)
    dest = safe_export_path(store.workspace_of(conn), name or f"onnx-{run_id}")
    if dest.exists():
        raise EvaluationError(f"{dest} already exists; choose another name.")
    max_length = int(run["config"].get("max_length", 256))
    ce = models.load_cross_encoder(str(run_model_dir(conn, run)), max_length=max_length, device="cpu")
    ce.eval()
    hf, tok = ce.model, ce.tokenizer
    hf.eval()
    pairs = list(check_pairs or [("what does a reranker do", "A reranker orders candidate passages by relevance."),
                                 ("onnx export", "An unrelated passage about cooking pasta at home.")])
    enc = tok([a for a, _ in pairs], [b for _, b in pairs], padding=True, truncation=True, max_length=max_length,
              return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in enc]

    class Logit(torch.nn.Module):
        def __init__(self, m: Any):
            super().__init__()
            self.m = m

        def forward(self, *args: Any) -> Any:
            return self.m(**dict(zip(names, args))).logits

    dest.mkdir(parents=True)
    onnx_path = dest / "model.onnx"
    torch.onnx.export(Logit(hf), tuple(enc[n] for n in names), str(onnx_path), input_names=names,
                      output_names=["logits"], dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names},
                                                             "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    tok.save_pretrained(str(dest))
    hf.config.save_pretrained(str(dest))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(["logits"], {n: enc[n].numpy() for n in names})[0].reshape(-1)
    # the reference is the CrossEncoder itself (its own tokenization and forward), logits and activated scores
    torch_logits = np.asarray(ce.predict([list(p) for p in pairs], activation_fn=torch.nn.Identity(),
                                         convert_to_numpy=True)).reshape(-1)
    ce_scores = np.asarray(ce.predict([list(p) for p in pairs], convert_to_numpy=True)).reshape(-1)
    onnx_scores = 1 / (1 + np.exp(-onnx_logits))  # the CrossEncoder's sigmoid activation
    info = {"path": str(onnx_path), "pairs_checked": len(pairs),
            "max_abs_logit_diff": float(np.max(np.abs(onnx_logits - torch_logits))),
            "max_abs_score_diff_vs_cross_encoder": float(np.max(np.abs(onnx_scores - ce_scores))),
            "exporter": "torch.onnx.export (TorchScript), verified with onnxruntime",
            "note": "sentence-transformers' ONNX export needs optimum, which is not installable here"}
    (dest / "studio_onnx.json").write_text(json.dumps({**info, "max_length": max_length, "inputs": names,
                                                       "activation": "sigmoid(logits)"}, indent=2))
    if info["max_abs_logit_diff"] > 1e-3:
        raise EvaluationError(f"ONNX scores differ from the model's by {info['max_abs_logit_diff']:.2g}; export refused.")
    return info
