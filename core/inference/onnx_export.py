"""Export an embedding model or a cross-encoder to ONNX once, cached in the workspace by model and options.

sentence-transformers' own ONNX export needs `optimum`, which is not installable beside this transformers, so the
graphs are exported with torch.onnx (TorchScript exporter, dynamic batch and sequence axes), then fused with
onnxruntime's transformer optimizer and, as an option, dynamically quantised to int8 weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from core.errors import UserError

EXPORT_VERSION = 1  # bump when the exported graph changes, so old cache entries are not reused
OPSET = 17
KINDS = ("embed", "cross")
SUPPORTED_MODULES = {"Transformer", "Pooling", "Normalize"}

_lock = threading.Lock()
_built: dict[
    str, Path
] = {}  # export key -> a file built in this process (another workspace's copy is reused)


class OnnxUnsupported(UserError):
    """A model the ONNX path cannot reproduce exactly (extra modules, other pooling): callers fall back to torch."""


def _weights_fingerprint(model_dir: Path) -> list[tuple[str, int, int]]:
    """Name, size and mtime of the weight and config files: a retrained folder gets a new export."""
    out = []
    for p in sorted(model_dir.iterdir()):
        if p.is_file() and p.suffix in (".safetensors", ".bin", ".json"):
            st = p.stat()
            out.append((p.name, st.st_size, st.st_mtime_ns))
    return out


def export_key(model_dir: str | Path, kind: str, quantize: bool) -> str:
    """The cache key of one export: model folder (path and weights), kind, quantisation and exporter versions."""
    import onnxruntime
    import torch

    folder = Path(model_dir).resolve()
    blob = json.dumps(
        [
            str(folder),
            _weights_fingerprint(folder),
            kind,
            bool(quantize),
            EXPORT_VERSION,
            OPSET,
            torch.__version__,
            onnxruntime.__version__,
        ]
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def export_folder(cache: Path | None = None) -> Path:
    """Where exports live: the workspace cache folder (recomputable data)."""
    from core import store

    return (cache or store.cache_dir()) / "onnx"


def pooling_mode(model_dir: Path) -> str:
    """The sentence-transformers pooling of an embedding folder ('mean' or 'cls'); anything else is unsupported."""
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return "mean"  # a bare transformer folder: sentence-transformers adds mean pooling
    modules = json.loads(modules_file.read_text())
    kinds = {m["type"].rsplit(".", 1)[-1] for m in modules}
    if kinds - SUPPORTED_MODULES:
        raise OnnxUnsupported(
            f"{model_dir} has modules {sorted(kinds - SUPPORTED_MODULES)} the ONNX path lacks."
        )
    if any(m.get("path") for m in modules if m["type"].endswith("Transformer")):
        raise OnnxUnsupported(f"{model_dir} keeps its transformer in a sub-folder; not supported.")
    pooling = next((m for m in modules if m["type"].endswith("Pooling")), None)
    if pooling is None:
        raise OnnxUnsupported(f"{model_dir} has no pooling module.")
    config = json.loads((model_dir / pooling["path"] / "config.json").read_text())
    modes = [k for k, v in config.items() if k.startswith("pooling_mode_") and v]
    if modes == ["pooling_mode_mean_tokens"]:
        return "mean"
    if modes == ["pooling_mode_cls_token"]:
        return "cls"
    raise OnnxUnsupported(f"{model_dir} pools with {modes}; the ONNX path supports mean or CLS pooling.")


def _load_torch_module(model_dir: Path, kind: str) -> Any:
    """The torch module whose forward is exported: pooled normalized embedding, or the relevance logit."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    from core.inference.graphs import Embedding, Logit

    if kind == "embed":
        mode = pooling_mode(model_dir)
        return Embedding(AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval(), mode)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), num_labels=1, attn_implementation="eager"
    ).eval()
    return Logit(model)


def _export_torch(model_dir: Path, kind: str, dest: Path) -> None:
    """torch.onnx export (TorchScript exporter) with dynamic batch and sequence axes."""
    import torch
    from transformers import AutoTokenizer

    module = _load_torch_module(model_dir, kind)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    if kind == "embed":
        enc = tok(
            ["an example sentence", "a second, longer example sentence"], padding=True, return_tensors="pt"
        )
    else:
        enc = tok(
            ["a query", "another query"],
            ["a passage", "a second, longer passage"],
            padding=True,
            return_tensors="pt",
        )
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in enc]
    module.input_names = names
    output = "embedding" if kind == "embed" else "logits"
    axes = {**{n: {0: "batch", 1: "sequence"} for n in names}, output: {0: "batch"}}
    with torch.inference_mode():
        torch.onnx.export(
            module,
            tuple(enc[n] for n in names),
            str(dest),
            input_names=names,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )


def _optimize(src: Path, dest: Path, model_dir: Path) -> None:
    """Fuse attention, layer norm and GELU with onnxruntime's transformer optimizer (same numbers, fewer ops)."""
    from onnxruntime.transformers.optimizer import optimize_model

    config = json.loads((model_dir / "config.json").read_text())
    model = optimize_model(
        str(src),
        model_type="bert",
        num_heads=int(config.get("num_attention_heads", 0)),
        hidden_size=int(config.get("hidden_size", 0)),
        opt_level=1,
        use_gpu=False,
    )
    model.save_model_to_file(str(dest))


def _quantize(src: Path, dest: Path) -> None:
    """Dynamic int8 quantisation of the weights (activations quantised at run time)."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # the fused contrib ops (Attention, SkipLayerNorm) escape shape inference: their outputs are float
    quantize_dynamic(
        str(src),
        str(dest),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
    )


def _build(model_dir: Path, kind: str, quantize: bool, dest: Path) -> None:
    """Export, fuse and optionally quantise into dest's folder (in a temporary folder, then moved in place)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        raw, fused = Path(tmp) / "raw.onnx", Path(tmp) / "fused.onnx"
        _export_torch(model_dir, kind, raw)
        _optimize(raw, fused, model_dir)
        final = Path(tmp) / "final.onnx"
        if quantize:
            _quantize(fused, final)
        else:
            fused.replace(final)
        os.replace(final, dest)


def ensure_export(
    model_dir: str | Path, kind: str, *, quantize: bool = False, cache: Path | None = None
) -> Path:
    """The ONNX file for a model folder and options, exported only when the cache lacks it."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    folder = Path(model_dir).resolve()
    check_supported(folder, kind)
    key = export_key(folder, kind, quantize)
    dest = export_folder(cache) / f"{kind}-{key}" / ("model.int8.onnx" if quantize else "model.onnx")
    with _lock:
        if not dest.is_file():
            twin = _built.get(key)
            if twin is not None and twin.is_file():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(twin, dest.with_suffix(".tmp"))
                os.replace(dest.with_suffix(".tmp"), dest)
            else:
                _build(folder, kind, quantize, dest)
            (dest.parent / "source.json").write_text(
                json.dumps(
                    {"model_dir": str(folder), "kind": kind, "quantize": quantize, "version": EXPORT_VERSION}
                )
            )
        _built[key] = dest
    return dest


def check_supported(model_dir: Path, kind: str) -> None:
    """Fail fast (and cheaply) on a model the exported graph cannot reproduce; raises OnnxUnsupported."""
    if kind == "embed":
        pooling_mode(model_dir)
        return
    config = json.loads((model_dir / "config.json").read_text())
    if not any("SequenceClassification" in a for a in config.get("architectures") or []):
        raise OnnxUnsupported(f"{model_dir} has no trained sequence-classification head to export.")
    if int(config.get("num_labels", len(config.get("id2label") or {0: 0}))) != 1:
        raise OnnxUnsupported(f"{model_dir} has more than one output label; a reranker needs one logit.")
