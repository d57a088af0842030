"""The ONE place a run's score is computed: a run folder or an exported bundle, scored exactly as evaluated.

Three kinds of run, each described by a scoring spec (`rerank_spec.json` in a bundle; derived from
`studio_fusion.json` + `studio_run.json` in a run's model folder):

- ``cross-encoder``: the cross-encoder's ``predict`` (its saved activation: sigmoid for BCE runs).
- ``residual``: ``logit + beta x cosine(embed(query), embed(passage))`` with the embedding model the run was
  trained over (the cross-encoder's activation is the identity).
- ``blended``: ``alpha x z(ce) + (1 - alpha) x z(cosine)``, z-scored over the passages given in ONE call. The
  first-stage score of the blend is the embedding model's cosine, which the Reranker computes itself (the blend
  was fitted on that cosine), so the score depends only on the query and the list of passages passed together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UserError
from core.runs.run_row import Run
from core.scoring.files import FUSION_FILE
from core.scoring.formulas import RESIDUAL, fused_scores, residual_score

SPEC_FILE = "rerank_spec.json"  # a bundle's machine-readable scoring spec
SPEC_FORMAT = "rerank-studio-spec/1"
RUN_FILE = "studio_run.json"  # a run folder's config, snapshot and metrics
KINDS = ("cross-encoder", "residual", "blended")
FORMULAS = {
    "cross-encoder": "score = activation(cross_encoder_logit(query, passage))",
    "residual": "score = cross_encoder_logit(query, passage) + beta * cosine(embed(query), embed(passage))",
    "blended": "score = alpha * z(cross_encoder(query, passage)) + (1 - alpha) * z(cosine(embed(query), "
    "embed(passage))), z = (x - mean) / std over the passages scored together",
}

Progress = Callable[[float, str], None]
Embed = Callable[[list[str], str], np.ndarray]  # (texts, embedding model path) -> normalized vectors


class RerankerError(UserError):
    """A folder that is neither a run's model folder nor a bundle, or a spec that cannot be honoured."""


def sha256_of(path: Path) -> str:
    """The sha256 of a weights file, so a bundle names exactly the embedding model it needs."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _activation(folder: Path) -> str:
    """The activation a CrossEncoder applies when loading this folder (what predict returns)."""
    found = None
    for name, key in (("config_sentence_transformers.json", "activation_fn"), ("config.json", None)):
        path = folder / name
        cfg = json.loads(path.read_text()) if path.is_file() else {}
        found = (
            found or cfg.get("activation_fn")
            if key
            else found
            or (
                (cfg.get("sentence_transformers") or {}).get("activation_fn")
                or cfg.get("sbert_ce_default_activation_function")
            )
        )
    return str(found or "torch.nn.modules.activation.Sigmoid").rsplit(".", 1)[-1].lower()


def run_folder_spec(folder: str | Path, max_length: int | None = None) -> dict[str, Any]:
    """The scoring spec of a run's model folder, from its fusion file and run record."""
    from core import models

    folder = Path(folder).resolve()
    if not (folder / "config.json").is_file():
        raise RerankerError(
            f"{folder} is not a model folder or bundle: expected config.json (a run's model folder) "
            f"or {SPEC_FILE} (a bundle)."
        )
    run_info = json.loads((folder / RUN_FILE).read_text()) if (folder / RUN_FILE).is_file() else {}
    cfg = run_info.get("config") or {}
    max_length = int(max_length or cfg.get("max_length") or 0)
    if not max_length:
        raise RerankerError(f"{folder} records no max_length ({RUN_FILE} missing); pass max_length.")
    fusion = (run_info.get("metrics") or {}).get("fusion")
    if (folder / FUSION_FILE).is_file():
        fusion = json.loads((folder / FUSION_FILE).read_text())
    spec: dict[str, Any] = {
        "format": SPEC_FORMAT,
        "kind": "cross-encoder",
        "cross_encoder": str(folder),
        "max_length": max_length,
        "activation": _activation(folder),
    }
    if fusion and (fusion.get("method") == RESIDUAL or "alpha" in fusion):
        stage = str(fusion.get("first_stage") or f"embedding:{models.BUNDLED}")
        if not stage.startswith("embedding"):
            raise RerankerError(
                f"The run blends with {stage!r}; only an embedding first stage can be shipped."
            )
        emb_id = stage.split(":", 1)[1] if ":" in stage else models.BUNDLED
        spec["embedding_model"] = {"id": emb_id, "path": models.resolve(emb_id)}
        if fusion.get("method") == RESIDUAL:
            spec.update(kind="residual", beta=float(fusion["beta"]))
        else:
            spec.update(kind="blended", alpha=float(fusion["alpha"]))
    spec["formula"] = FORMULAS[spec["kind"]]
    return spec


def read_spec(folder: str | Path) -> dict[str, Any]:
    """A bundle's spec with its paths made absolute (paths in the file are relative to the bundle)."""
    folder = Path(folder).resolve()
    spec = json.loads((folder / SPEC_FILE).read_text())
    if spec.get("kind") not in KINDS:
        raise RerankerError(
            f"{folder / SPEC_FILE}: kind {spec.get('kind')!r} is not one of {', '.join(KINDS)}."
        )
    spec["cross_encoder"] = str((folder / spec.get("cross_encoder", ".")).resolve())
    emb = spec.get("embedding_model")
    if spec["kind"] != "cross-encoder":
        if not emb or not emb.get("path"):
            raise RerankerError(f"{folder / SPEC_FILE}: a {spec['kind']} spec needs embedding_model.path.")
        spec["embedding_model"] = {**emb, "path": str((folder / emb["path"]).resolve())}
    spec.setdefault("formula", FORMULAS[spec["kind"]])
    return spec


def load_spec(folder: str | Path, max_length: int | None = None) -> dict[str, Any]:
    """The spec of a bundle (rerank_spec.json) or of a run's model folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RerankerError(f"Model folder {str(folder)!r} does not exist.")
    if (folder / SPEC_FILE).is_file():
        spec = read_spec(folder)
        if max_length:
            spec["max_length"] = int(max_length)
        return spec
    return run_folder_spec(folder, max_length)


class Reranker:
    """Scores (query, passages) exactly as the run was evaluated; load with `Reranker.load(folder)`."""

    def __init__(self, spec: dict[str, Any], cross_encoder: Any, embed: Embed | None = None) -> None:
        from core.inference.torch_precision import scoring_batch

        self.spec, self.cross_encoder = spec, cross_encoder
        self._embed = embed or _direct_embed
        self.batch_size = scoring_batch(cross_encoder, int(spec.get("max_length") or 256))

    @classmethod
    def load(
        cls,
        folder: str | Path,
        *,
        trust_remote_code: bool = False,
        max_length: int | None = None,
        device: str | None = None,
        workspace: Path | None = None,
    ) -> Reranker:
        """Load a run's model folder or an exported bundle (safetensors only; remote code off by default).

        `workspace` lets the studio reuse its embedding cache; the vectors are the same as a direct encode."""
        from core import models

        spec = load_spec(folder, max_length)
        ce = models.load_cross_encoder(
            spec["cross_encoder"],
            max_length=int(spec["max_length"]),
            trust_remote_code=trust_remote_code,
            device=device,
        )
        got = type(ce.activation_fn).__name__.lower()
        if got != spec.get("activation", got):
            raise RerankerError(
                f"The cross-encoder applies {got}, the spec says {spec['activation']}: refusing a "
                "score that would differ from the evaluated one."
            )
        from core.inference.torch_precision import in_precision

        embed = _cached_embed(workspace) if workspace is not None else None
        return cls(spec, in_precision(ce), embed)

    @property
    def kind(self) -> str:
        """cross-encoder, residual or blended."""
        return str(self.spec["kind"])

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """The run's full score of each passage for this query (float64, in the passages' order)."""
        return self.score_groups([(query, list(passages))])[0]

    def score_groups(
        self, groups: list[tuple[str, list[str]]], progress: Progress | None = None
    ) -> list[np.ndarray]:
        """`score` for many queries at once: one batched cross-encoder pass and one embedding pass."""
        return [p["score"] for p in self.score_parts(groups, progress)]

    def score_parts(
        self, groups: list[tuple[str, list[str]]], progress: Progress | None = None
    ) -> list[dict[str, np.ndarray]]:
        """Per group: `score` (the run's), `cross_encoder` (its part) and `cosine` (the prior, when the run has one)."""
        ce = self.cross_encoder_scores(groups, progress)
        cos = self.cosines(groups) if self.kind != "cross-encoder" else [None] * len(groups)
        out = []
        for c, s in zip(ce, cos):
            part = {"score": self.combine(c, s), "cross_encoder": c}
            if s is not None:
                part["cosine"] = s
            out.append(part)
        return out

    def combine(self, cross_encoder: np.ndarray, cosine: np.ndarray | None) -> np.ndarray:
        """The spec's formula over one list's parts (a blend z-scores over exactly this list)."""
        ce = np.asarray(cross_encoder, dtype=float)
        if self.kind == "cross-encoder" or len(ce) == 0:
            return ce
        if self.kind == "residual":
            return residual_score(ce, cosine, float(self.spec["beta"]))
        return fused_scores(ce, np.asarray(cosine, dtype=float), float(self.spec["alpha"]))

    def cross_encoder_scores(
        self, groups: list[tuple[str, list[str]]], progress: Progress | None = None, chunk: int = 256
    ) -> list[np.ndarray]:
        """The cross-encoder's predict (its saved activation) for every pair, in batches, reporting progress.

        Pairs are scored longest first across all chunks (a batch of similar lengths pads little), then put back
        in order: the same scores, less padding than sorting inside each chunk."""
        pairs = [[q, p] for q, ps in groups for p in ps]
        order = length_order(pairs)
        flat = np.zeros(len(pairs), dtype=float)
        for start in range(0, len(pairs), chunk):
            if progress:
                progress(start / max(len(pairs), 1), f"scoring pairs {start}/{len(pairs)}")
            idx = order[start : start + chunk]
            flat[idx] = np.asarray(
                self.cross_encoder.predict(
                    [pairs[i] for i in idx],
                    batch_size=self.batch_size,
                    show_progress_bar=False,
                    convert_to_numpy=True,
                ),
                dtype=float,
            ).reshape(-1)
        if progress:
            progress(1.0, f"scored {len(pairs)} pairs")
        return _split(flat, groups)

    def cosines(self, groups: list[tuple[str, list[str]]]) -> list[np.ndarray]:
        """Cosine of query and passage embeddings of the spec's embedding model (normalized vectors, dot product)."""
        texts = [q for q, _ in groups] + [p for _, ps in groups for p in ps]
        if not texts:
            return []
        vec = np.asarray(self._embed(texts, self.spec["embedding_model"]["path"]), dtype=np.float32)
        qv, at, out = vec[: len(groups)], len(groups), []
        for i, (_, ps) in enumerate(groups):
            out.append((vec[at : at + len(ps)] @ qv[i]).astype(float))
            at += len(ps)
        return out

    def rank(self, query: str, passages: Sequence[str], top_n: int | None = None) -> list[dict[str, Any]]:
        """Passages ordered by the run's score: [{index, score}], ties kept in the given order."""
        scores = self.score(query, passages)
        order = np.argsort(-scores, kind="stable")[: top_n or len(passages)]
        return [{"index": int(i), "score": float(scores[i])} for i in order]


def length_order(pairs: Sequence[Sequence[str]]) -> np.ndarray:
    """Indices of pairs, longest (in characters, the proxy sentence-transformers sorts by) first; ties stable."""
    return np.argsort([-sum(len(t) for t in p) for p in pairs], kind="stable")


def _split(flat: np.ndarray, groups: list[tuple[str, list[str]]]) -> list[np.ndarray]:
    out, at = [], 0
    for _, ps in groups:
        out.append(flat[at : at + len(ps)])
        at += len(ps)
    return out


def _direct_embed(texts: list[str], path: str) -> np.ndarray:
    """Normalized embeddings straight from the model (a bundle used outside the studio)."""
    from core.inference.torch_precision import scoring_embedder

    model = scoring_embedder(path)
    return model.encode(
        texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )


def _cached_embed(workspace: Path) -> Embed:
    """Normalized embeddings through the workspace's embedding cache (same vectors, computed once)."""
    from core import models
    from core.embeddings import embed_texts

    def embed(texts: list[str], path: str) -> np.ndarray:
        spec = models.BUNDLED if Path(path).resolve() == Path(models.bundled_path()).resolve() else path
        return embed_texts(texts, spec, workspace=workspace)

    return embed


def as_run(folder: str | Path) -> Run:
    """A bundle (or run folder) described as a run record, so evaluation scores it exactly like the run it came from.

    The id is `model:<folder name>`; the fusion names the bundle's own embedding model by path."""
    folder = Path(folder).resolve()
    spec = load_spec(folder)
    first_stage = f"embedding:{spec['embedding_model']['path']}" if spec["kind"] != "cross-encoder" else None
    metrics: dict[str, Any] = {}
    if spec["kind"] == "residual":
        metrics["fusion"] = {
            "method": RESIDUAL,
            "beta": float(spec["beta"]),
            "first_stage": first_stage,
            "formula": spec["formula"],
        }
    elif spec["kind"] == "blended":
        metrics["fusion"] = {
            "alpha": float(spec["alpha"]),
            "first_stage": first_stage,
            "method": spec["formula"],
            "chosen_on": "validation",
        }
    config = {
        "max_length": int(spec["max_length"]),
        "base_model": spec.get("base_model") or spec["cross_encoder"],
    }
    return Run(
        f"model:{folder.name}",
        "completed",
        config=config,
        metrics=metrics,
        model_dir=spec["cross_encoder"],
        bundle=str(folder),
    )
