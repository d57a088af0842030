"""ONNX export of what is shipped: the cross-encoder and, for residual/blended runs, the embedding model too.

Exported with torch.onnx (TorchScript exporter; sentence-transformers' own exporter needs `optimum`, which cannot
be installed beside this transformers) and checked with onnxruntime: the FULL score (the spec's formula over the
ONNX outputs) is compared with the Reranker's on real pairs of the project; above 1e-3 the export is refused.
Layout: `cross-encoder/model.onnx` (+ tokenizer), `embedding-model/model.onnx` (+ tokenizer; mean-pooled,
L2-normalized sentence embedding), `onnx_spec.json` (the formula, runtime "onnx") and a README. The spec is NOT named
`rerank_spec.json`: that name marks a torch bundle, and `Reranker.load`, `core serve` and the bundle's standalone
loader would take this folder for one and fail on it; here they refuse it as "not a bundle" instead. `load(folder)`
scores with onnxruntime by the same formula, after the cleaning rules the run's training data went through (recorded
in the spec as in a bundle; `load(folder, clean=False)` scores texts as given). Nothing stays on disk unless it
passed.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from core.export.bundle import BundleError, check_pairs, max_abs_diff, staged
from core.export.calibrate import training_cleaning
from core.ingest.cleaning import clean_input, inference_options
from core.runs import records
from core.scoring.reranker import Reranker, run_folder_spec

TOLERANCE = 1e-3
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ONNX_SPEC_FILE = "onnx_spec.json"  # never SPEC_FILE: no torch loader may mistake this folder for a bundle
ONNX_FORMAT = "rerank-studio-onnx/1"


class OnnxRefused(BundleError):
    """An ONNX export that cannot reproduce the run's score, with the reason."""


def _embedding_parts(embedder: Any) -> None:
    """Refuse embedding pipelines the exported graph would not reproduce (only Transformer, mean Pooling, Normalize)."""
    kinds = [type(m).__name__ for m in embedder]
    pooling = embedder[1] if len(kinds) > 1 else None
    mode = getattr(pooling, "pooling_mode", None) or (
        "mean" if getattr(pooling, "pooling_mode_mean_tokens", False) else "?"
    )
    if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]) or mode != "mean":
        raise OnnxRefused(
            f"The embedding model's pipeline is {kinds} with {mode} pooling; the ONNX export reproduces "
            "only Transformer + mean Pooling (+ Normalize), so the residual score could not be "
            "rebuilt from it. Ship the bundle instead."
        )


def _export(hf: Any, tokenizer: Any, target: Path, max_length: int, pool: bool) -> None:
    import torch

    from core.inference import graphs

    target.mkdir(parents=True)
    enc = tokenizer(
        ["an example query"],
        ["an example passage to trace"],
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    names = [n for n in INPUTS if n in enc]
    out_name = "embedding" if pool else "logits"
    hf.eval()
    graph = (
        graphs.Embedding(hf, "mean") if pool else graphs.Logit(hf)
    )  # the studio's one definition of each graph
    graph.input_names = names
    with torch.no_grad():
        torch.onnx.export(
            graph,
            tuple(enc[n] for n in names),
            str(target / "model.onnx"),
            input_names=names,
            output_names=[out_name],
            opset_version=17,
            dynamo=False,
            dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names}, out_name: {0: "batch"}},
        )
    tokenizer.save_pretrained(str(target))
    (target / "onnx_inputs.json").write_text(
        json.dumps({"inputs": names, "output": out_name, "max_length": max_length})
    )


def _run(folder: Path, texts_a: list[str], texts_b: list[str] | None) -> np.ndarray:
    import onnxruntime as ort
    from transformers import AutoTokenizer

    meta = json.loads((folder / "onnx_inputs.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(folder))
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    outs = []
    for s in range(0, len(texts_a), 32):
        args = (texts_a[s : s + 32],) + ((texts_b[s : s + 32],) if texts_b is not None else ())
        enc = tok(*args, padding=True, truncation=True, max_length=meta["max_length"], return_tensors="np")
        outs.append(session.run([meta["output"]], {n: enc[n].astype(np.int64) for n in meta["inputs"]})[0])
    return np.concatenate(outs)


def onnx_scores(folder: Path, reranker: Reranker, groups: list[tuple[str, list[str]]]) -> list[np.ndarray]:
    """The full score from the ONNX graphs (the Reranker's own formula over their outputs)."""
    spec = reranker.spec
    folder = Path(folder)
    qs = [q for q, ps in groups for _ in ps]
    ps_flat = [p for _, ps in groups for p in ps]
    ce = _run(folder / "cross-encoder", qs, ps_flat).reshape(-1).astype(float)
    if spec.get("activation") == "sigmoid":
        ce = 1 / (1 + np.exp(-ce))
    elif spec.get("activation") not in ("identity", None):
        raise OnnxRefused(
            f"The cross-encoder's activation {spec['activation']!r} is not reproduced by the export."
        )
    out, at = [], 0
    for q, ps in groups:
        cos = None
        if spec["kind"] != "cross-encoder":
            vec = _run(folder / "embedding-model", [q] + ps, None).astype(np.float32)
            cos = (vec[1:] @ vec[0]).astype(float)
        out.append(reranker.combine(ce[at : at + len(ps)], cos))
        at += len(ps)
    return out


def export_onnx(
    conn: sqlite3.Connection, run_id: str, dest: Path, *, project: int | None = None
) -> dict[str, Any]:
    """Export, check the full score against the Reranker's on real pairs, then move into place (else nothing)."""
    from core import models

    run = records.completed_run(conn, run_id, project)
    source = records.model_folder(conn, run)
    spec = run_folder_spec(source, max_length=run.config.get("max_length"))
    reranker = Reranker.load(source, max_length=spec["max_length"], device="cpu")
    dest = Path(dest)
    with staged(dest) as tmp:
        ce = reranker.cross_encoder
        _export(ce.model, ce.tokenizer, tmp / "cross-encoder", int(spec["max_length"]), pool=False)
        shipped = {k: v for k, v in spec.items() if k not in ("cross_encoder", "embedding_model")}
        shipped.update(runtime="onnx", cross_encoder="cross-encoder/model.onnx", run_id=run_id)
        shipped["cleaning"] = training_cleaning(conn, run.project_id)
        if spec["kind"] != "cross-encoder":
            emb = models.load_embedder(spec["embedding_model"]["path"], device="cpu")
            _embedding_parts(emb)
            _export(
                emb[0].auto_model,
                emb.tokenizer,
                tmp / "embedding-model",
                int(emb.max_seq_length or emb.tokenizer.model_max_length),
                pool=True,
            )
            shipped["embedding_model"] = {
                "path": "embedding-model/model.onnx",
                "id": spec["embedding_model"]["id"],
                "output": "mean-pooled, L2-normalized sentence embedding",
            }
        groups = check_pairs(conn, run.project_id)
        diff = max_abs_diff(reranker.score_groups(groups), onnx_scores(tmp, reranker, groups))
        info = {
            "path": str(dest),
            "kind": spec["kind"],
            "pairs_checked": sum(len(p) for _, p in groups),
            "max_abs_score_diff": diff,
            "compared": "full score (spec formula over ONNX outputs) vs Reranker",
            "exporter": "torch.onnx.export (TorchScript), verified with onnxruntime",
        }
        if diff > TOLERANCE:
            raise OnnxRefused(
                f"The ONNX full score differs from the run's by {diff:.3g} (> {TOLERANCE}) on "
                f"{info['pairs_checked']} real pairs; export refused, nothing written."
            )
        shipped["format"] = ONNX_FORMAT
        (tmp / ONNX_SPEC_FILE).write_text(json.dumps(shipped, indent=2))
        (tmp / "studio_onnx.json").write_text(json.dumps(info, indent=2))
        (tmp / "README.md").write_text(_readme(shipped, info))
    return info


def _readme(spec: dict[str, Any], info: dict[str, Any]) -> str:
    """What the folder is and how to get the evaluated score from it (and what it is not: a torch bundle)."""
    lines = [
        f"# ONNX export of Rerank Studio run {spec.get('run_id')}",
        "",
        f"Kind **{spec['kind']}**; score: `{spec.get('formula')}`"
        + (f" with beta = {spec['beta']:g}" if "beta" in spec else "")
        + (f" with alpha = {spec['alpha']:g}" if "alpha" in spec else "")
        + ".",
        "",
        "This is not a torch bundle: `Reranker.load`, `python -m core serve --model` and `rerank_studio_bundle.py` "
        "take the bundle export (Export bundle), not this folder. Here, for an ONNX runtime:",
        "",
        "- `cross-encoder/model.onnx` (+ tokenizer): the cross-encoder's logit for (query, passage)"
        + (f", then {spec['activation']}" if spec.get("activation") not in (None, "identity") else ""),
        "- `embedding-model/model.onnx` (+ tokenizer): a mean-pooled, L2-normalised sentence embedding; "
        "cosine = dot product of query and passage vectors"
        if spec["kind"] != "cross-encoder"
        else "- no embedding model: the score is the cross-encoder's alone",
        f"- `{ONNX_SPEC_FILE}`: the formula and its constants; `studio_onnx.json`: the export check",
        f"- cleaning: {', '.join(spec.get('cleaning') or []) or 'none'} — the rules the training text went "
        "through; apply them to queries and passages before scoring (the loader below does)",
        "",
        "In Rerank Studio: `from core.export.onnx import load; load(folder).score(query, passages)`.",
        "",
        f"Export check: {info['compared']}, at most {info['max_abs_score_diff']:.2g} apart on "
        f"{info['pairs_checked']} real pairs.",
        "",
    ]
    return "\n".join(lines)


class OnnxReranker:
    """An ONNX export scored with onnxruntime by the spec's formula (the Reranker's `combine`), on texts cleaned
    by the spec's rules (as training saw them) unless `clean` is off."""

    def __init__(self, folder: str | Path, clean: bool = True) -> None:
        self.folder = Path(folder).resolve()
        path = self.folder / ONNX_SPEC_FILE
        if not path.is_file():
            raise BundleError(f"{self.folder} is not an ONNX export: expected {ONNX_SPEC_FILE}.")
        self.spec = json.loads(path.read_text())
        self._formula = Reranker(self.spec, None)
        self.cleaning = inference_options(self.spec.get("cleaning"), clean)

    def score_groups(self, groups: list[tuple[str, list[str]]]) -> list[np.ndarray]:
        """The run's full score for each (query, passages), texts cleaned as the training data was."""
        cleaned = [
            (clean_input(q, self.cleaning), [clean_input(p, self.cleaning) for p in ps]) for q, ps in groups
        ]
        return onnx_scores(self.folder, self._formula, cleaned)

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        """The run's full score of each passage for this query."""
        return self.score_groups([(query, list(passages))])[0]


def load(folder: str | Path, clean: bool = True) -> OnnxReranker:
    """An ONNX export, ready to score (onnxruntime on CPU); clean=False scores texts exactly as given."""
    return OnnxReranker(folder, clean)
