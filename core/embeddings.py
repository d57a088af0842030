"""Embeddings cached on disk by (model, text), so re-tuning mining or re-drawing plots embeds only new texts."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from core import models
from core.errors import StudioError
from core.progress import Counter
from core.store import cache_dir, text_hash

_LOOKUP_CHUNK = 500


class EmbeddingCache:
    """One SQLite file per model; vectors are float32 blobs keyed by the text's hash."""

    def __init__(self, model_key: str, folder: Path | None = None):
        folder = (folder or cache_dir()) / "embeddings"
        folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha1(model_key.encode()).hexdigest()[:16]
        self.path = folder / f"{name}.sqlite"
        self.conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS vectors (hash TEXT PRIMARY KEY, data BLOB NOT NULL)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('model', ?)", (model_key,))
        self.conn.commit()

    def get(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among these hashes."""
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(hashes), _LOOKUP_CHUNK):
            chunk = list(hashes[start : start + _LOOKUP_CHUNK])
            marks = ",".join("?" * len(chunk))
            for h, blob in self.conn.execute(
                f"SELECT hash, data FROM vectors WHERE hash IN ({marks})", chunk
            ):
                found[h] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Store new vectors in one transaction."""
        rows = [(h, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for h, v in zip(hashes, vectors)]
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)

    def close(self) -> None:
        self.conn.close()


Encoder = Callable[[list[str]], np.ndarray]


class FastPathUnavailable(StudioError):
    """The ONNX path could not be built for this model; embed_texts falls back to torch."""


def _use_fast(model_spec: str | None, trust_remote_code: bool) -> bool:
    """The fast path is on (RERANK_STUDIO_FAST, measured default) and the model's pipeline can be exported."""
    from core.inference import policy
    from core.inference.onnx_export import OnnxUnsupported, check_supported

    if trust_remote_code or not policy.fast_enabled("embed"):
        return False
    try:
        check_supported(Path(models.resolve(model_spec)), "embed")
    except (OnnxUnsupported, OSError, ValueError):
        return False
    return True


def _cache_key(model_spec: str | None, fast: bool) -> str:
    """The cache key: int8 and bf16 vectors differ slightly from fp32 torch's, so they never share a cache."""
    from core.inference import policy
    from core.inference.precision import choose
    from core.inference.torch_precision import variant

    key = models.model_key(model_spec)
    if fast:
        return f"{key}|{policy.variant()}" if policy.quantize() else key
    torch_variant = variant(choose(device=_torch_device()))
    return f"{key}|{torch_variant}" if torch_variant else key


def _torch_device() -> str:
    """Where the torch embedder runs (the studio's device choice)."""
    from core.inference.device import pick_device

    return pick_device()


def _encoder(model_spec: str | None, fast: bool, batch_size: int, trust_remote_code: bool) -> Encoder:
    """Texts -> normalized vectors, by ONNX Runtime (fast) or sentence-transformers' torch encode."""
    if fast:
        from core.inference import policy
        from core.inference.onnx_backend import fast_embedder

        try:
            return fast_embedder(model_spec, quantize=policy.quantize())
        except Exception as exc:  # noqa: BLE001 - any export failure means "use torch"
            raise FastPathUnavailable(str(exc)) from exc
    from core.inference.torch_precision import scoring_embedder

    model = scoring_embedder(model_spec, trust_remote_code=trust_remote_code)
    return lambda chunk: model.encode(
        chunk,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )


def embed_texts(
    texts: Sequence[str],
    model_spec: str | None = None,
    *,
    workspace: Path | None = None,
    batch_size: int = 64,
    progress: Counter | None = None,
    trust_remote_code: bool = False,
    stats: dict[str, int] | None = None,
    fast: bool | None = None,
) -> np.ndarray:
    """Normalized float32 embeddings for texts, computing only those the cache lacks.

    `stats`, when given, receives {"cached": n, "computed": m} so callers can show cache hits. `fast` forces the
    ONNX Runtime path on or off (default: core.inference.policy decides).
    """
    use_fast = _use_fast(model_spec, trust_remote_code) if fast is None else fast
    try:
        return _embed(texts, model_spec, use_fast, workspace, batch_size, progress, trust_remote_code, stats)
    except FastPathUnavailable:
        return _embed(texts, model_spec, False, workspace, batch_size, progress, trust_remote_code, stats)


def _embed(
    texts: Sequence[str],
    model_spec: str | None,
    fast: bool,
    workspace: Path | None,
    batch_size: int,
    progress: Counter | None,
    trust_remote_code: bool,
    stats: dict[str, int] | None,
) -> np.ndarray:
    """embed_texts with the path chosen."""
    cache = EmbeddingCache(_cache_key(model_spec, fast), cache_dir(workspace) if workspace else None)
    try:
        hashes = [text_hash(t) for t in texts]
        known = cache.get(list(dict.fromkeys(hashes)))
        missing: dict[str, str] = {}
        for h, t in zip(hashes, texts):
            if h not in known and h not in missing:
                missing[h] = t
        if stats is not None:
            stats["cached"] = len(texts) - sum(1 for h in hashes if h in missing)
            stats["computed"] = len(missing)
        total = len(missing)
        if progress:
            progress(0, total)
        if missing:
            encode = _encoder(model_spec, fast, batch_size, trust_remote_code)
            todo_hashes, todo_texts = list(missing), list(missing.values())
            # Longest first groups similar lengths into a batch: less padding, same vectors.
            order = sorted(range(total), key=lambda i: -len(todo_texts[i]))
            step = max(batch_size * 8, 256)
            for start in range(0, total, step):
                idx = order[start : start + step]
                vectors = encode([todo_texts[i] for i in idx])
                cache.put([todo_hashes[i] for i in idx], vectors)
                for i, v in zip(idx, vectors):
                    known[todo_hashes[i]] = v
                if progress:
                    progress(min(start + step, total), total)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([known[h] for h in hashes]).astype(np.float32, copy=False)
    finally:
        cache.close()
