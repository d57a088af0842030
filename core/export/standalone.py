"""Load a Rerank Studio bundle outside the studio (needs only sentence-transformers and numpy).

Shipped inside every bundle as `rerank_studio_bundle.py`; its scores are checked against the studio's
`core.scoring.reranker.Reranker` by the studio's tests. Usage:

    import sys; sys.path.insert(0, "path/to/bundle")
    from rerank_studio_bundle import load
    reranker = load("path/to/bundle")
    scores = reranker.score("a query", ["passage one", "passage two"])   # the score the run was evaluated with
    probs = reranker.relevance("a query", ["passage one", "passage two"])  # P(relevant) in [0, 1]

Texts go through the cleaning rules the training data went through (`load(folder, clean=False)` scores them as
given); `relevance` applies the calibration fitted on the run's validation queries.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

SPEC_FILE = "rerank_spec.json"
CLEANING_FILE = "rerank_studio_cleaning.py"


def _cleaner(folder: Path, rules: list[str]):
    """The studio's cleaning (shipped beside this loader) with the run's rules, or None when there are none."""
    if not rules:
        return None
    found = importlib.util.spec_from_file_location("rerank_studio_cleaning", folder / CLEANING_FILE)
    assert (
        found is not None and found.loader is not None
    )  # the bundle ships the cleaning module beside this file
    module = importlib.util.module_from_spec(found)
    sys.modules[found.name] = module  # dataclasses look their module up while the file runs
    found.loader.exec_module(module)
    options = module.inference_options(rules)
    return lambda text: module.clean_input(text, options)


def calibrate(calibration: dict | None, scores: np.ndarray) -> np.ndarray:
    """P(relevant) from the score (isotonic: interpolated breakpoints; Platt: a logistic); sigmoid if none."""
    s = np.asarray(scores, dtype=float)
    if not calibration:
        return 1.0 / (1.0 + np.exp(-s))
    if calibration["method"] == "isotonic":
        return np.interp(
            s, np.asarray(calibration["x"], dtype=float), np.asarray(calibration["y"], dtype=float)
        )
    return 1.0 / (1.0 + np.exp(-(float(calibration["a"]) * s + float(calibration["b"]))))


def _z(x: np.ndarray) -> np.ndarray:
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 1e-9 else x - x.mean()


class BundleReranker:
    """The bundle's cross-encoder (and embedding model) combined by the formula in rerank_spec.json."""

    def __init__(self, folder: str | Path, device: str | None = None, clean: bool = True) -> None:
        from sentence_transformers import CrossEncoder, SentenceTransformer

        self.folder = Path(folder).resolve()
        self.spec = json.loads((self.folder / SPEC_FILE).read_text())
        self.clean = _cleaner(self.folder, self.spec.get("cleaning") or []) if clean else None
        kwargs: dict[str, Any] = {
            "trust_remote_code": False,
            "model_kwargs": {"use_safetensors": True},
            "device": device,
        }
        self.cross_encoder = CrossEncoder(
            str(self.folder / self.spec.get("cross_encoder", ".")),
            num_labels=1,
            max_length=int(self.spec["max_length"]),
            **kwargs,
        )
        self.embedder = None
        if self.spec["kind"] != "cross-encoder":
            self.embedder = SentenceTransformer(
                str(self.folder / self.spec["embedding_model"]["path"]), **kwargs
            )

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        """The run's evaluated score of each passage (a blend z-scores over exactly these passages)."""
        if not passages:
            return np.zeros(0)
        if self.clean is not None:
            query, passages = self.clean(query), [self.clean(p) for p in passages]
        ce = np.asarray(
            self.cross_encoder.predict(
                [[query, p] for p in passages], batch_size=32, show_progress_bar=False, convert_to_numpy=True
            ),
            dtype=float,
        )
        ce = ce.reshape(-1)
        kind = self.spec["kind"]
        if kind == "cross-encoder":
            return ce
        assert self.embedder is not None  # every kind but a plain cross-encoder loads its embedding model
        vec = self.embedder.encode(
            [query] + list(passages),
            batch_size=64,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        cos = (vec[1:] @ vec[0]).astype(float)
        if kind == "residual":
            return ce + float(self.spec["beta"]) * cos
        alpha = float(self.spec["alpha"])
        return alpha * _z(ce) + (1 - alpha) * _z(cos)

    def relevance(self, query: str, passages: list[str]) -> np.ndarray:
        """P(relevant) of each passage in [0, 1], from the calibration fitted on the run's validation queries."""
        return calibrate(self.spec.get("calibration"), self.score(query, passages))

    def rank(self, query: str, passages: list[str], top_n: int | None = None) -> list[dict]:
        """[{corpus_id, score, relevance_score}] best first, like CrossEncoder.rank."""
        scores = self.score(query, passages)
        probs = calibrate(self.spec.get("calibration"), scores)
        order = np.argsort(-scores, kind="stable")[: top_n or len(passages)]
        return [
            {"corpus_id": int(i), "score": float(scores[i]), "relevance_score": float(probs[i])}
            for i in order
        ]


def load(folder: str | Path, device: str | None = None, clean: bool = True) -> BundleReranker:
    """Load the bundle in `folder` (clean=False scores texts exactly as given)."""
    return BundleReranker(folder, device, clean)
