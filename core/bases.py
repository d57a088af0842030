"""Base models to train from: a short catalogue, what the local cache holds, downloads, and what a folder is.

Everything here works offline: the cache is scanned on disk, a folder is recognised from its files, and a
download says plainly why it cannot happen (HF_HUB_OFFLINE=1 or no network) instead of hanging.
"""

from __future__ import annotations

import contextvars
import json
import os
import socket
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from core import models
from core.errors import Cancelled, UserError
from core.progress import Progress, noop
from core.runs.kinds import tolerant
from core.scoring.files import FUSION_FILE, RUN_FILE, SPEC_FILE

BUNDLED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
HUB_HOST = ("huggingface.co", 443)


class DownloadError(UserError):
    """A model that cannot be downloaded, with the reason and what to do instead."""


@dataclass(frozen=True)
class CatalogueEntry:
    """One well-known model: what it is, how big, under which licence, and how long an input it takes."""

    id: str
    kind: str  # "reranker" (a trained cross-encoder) or "embedding" (gets a new one-logit head)
    params_m: float  # millions of parameters
    size_mb: int  # approximate download (safetensors weights)
    licence: str
    max_length: int  # tokens the model was trained for
    note: str = ""


CATALOGUE: tuple[CatalogueEntry, ...] = (
    CatalogueEntry(
        "cross-encoder/ms-marco-MiniLM-L6-v2",
        "reranker",
        22.7,
        91,
        "Apache-2.0",
        512,
        "MS MARCO cross-encoder; small and fast, a good first base",
    ),
    CatalogueEntry(
        "cross-encoder/ms-marco-MiniLM-L12-v2",
        "reranker",
        33.4,
        134,
        "Apache-2.0",
        512,
        "deeper sibling of the L6 model",
    ),
    CatalogueEntry(
        "mixedbread-ai/mxbai-rerank-xsmall-v1",
        "reranker",
        70.8,
        284,
        "Apache-2.0",
        512,
        "DeBERTa-v3 xsmall reranker",
    ),
    CatalogueEntry(
        "mixedbread-ai/mxbai-rerank-base-v1",
        "reranker",
        184.0,
        739,
        "Apache-2.0",
        512,
        "DeBERTa-v3 base reranker",
    ),
    CatalogueEntry(
        "BAAI/bge-reranker-base", "reranker", 278.0, 1112, "MIT", 512, "XLM-RoBERTa base, English and Chinese"
    ),
    CatalogueEntry(
        "BAAI/bge-reranker-v2-m3",
        "reranker",
        568.0,
        2271,
        "Apache-2.0",
        8192,
        "multilingual, long inputs; wants a GPU",
    ),
    CatalogueEntry(
        "BAAI/bge-small-en-v1.5", "embedding", 33.4, 134, "MIT", 512, "embedding model: gets a new head"
    ),
    CatalogueEntry(
        BUNDLED_HUB_ID,
        "embedding",
        22.7,
        91,
        "Apache-2.0",
        256,
        "bundled with the studio (always available offline): gets a new head",
    ),
)


@dataclass
class FolderInfo:
    """What a local folder is as a base: a studio run, an exported bundle, a cross-encoder or a bare encoder."""

    kind: str  # "studio run" | "bundle" | "cross-encoder" | "encoder" | "invalid"
    path: str  # the folder to load (a run folder's model/ subfolder when given runs/<id>)
    message: str
    max_length: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """True when training can start from it."""
        return self.kind != "invalid"


def entry(repo_id: str) -> CatalogueEntry | None:
    """The catalogue entry of a hub id (None when it is not one of the well-known models)."""
    return next((e for e in CATALOGUE if e.id == repo_id), None)


def offline_by_setting() -> bool:
    """True when the person (or the test suite) turned the hub off: HF_HUB_OFFLINE=1 (or true/yes)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def online(timeout: float = 1.5) -> bool:
    """True when the hub may be used: not turned off, and huggingface.co answers a TCP connect quickly."""
    if offline_by_setting():
        return False
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def offline_message(repo_id: str) -> str:
    """The sentence a person sees when a hub model is not cached and cannot be downloaded."""
    why = (
        "the hub is turned off on this machine (HF_HUB_OFFLINE=1)"
        if offline_by_setting()
        else "huggingface.co cannot be reached (no network)"
    )
    return (
        f"{repo_id} is not in the local Hugging Face cache and {why}. Pick the bundled model, a cached model, "
        "or a local folder — or download it on a machine with network and copy the folder here."
    )


def cached_models(cache_dir: str | Path | None = None) -> dict[str, int]:
    """Hub model ids in the local Hugging Face cache with a usable snapshot -> bytes on disk (offline scan)."""
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir(cache_dir)
    except Exception:  # noqa: BLE001 - no cache folder (CacheNotFound) or an unreadable one: nothing cached
        return {}
    out = {}
    for repo in info.repos:
        if repo.repo_type == "model" and any(
            (Path(r.snapshot_path) / "config.json").is_file() for r in repo.revisions
        ):
            out[repo.repo_id] = int(repo.size_on_disk)
    return out


def catalogue_rows(cache_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """The catalogue as table rows, with whether each model is available here without the network."""
    cached = cached_models(cache_dir)
    rows = []
    for e in CATALOGUE:
        here = "bundled" if e.id == BUNDLED_HUB_ID else ("cached" if e.id in cached else "not downloaded")
        rows.append(
            {
                "model": e.id,
                "kind": e.kind,
                "parameters (M)": e.params_m,
                "size (MB)": e.size_mb,
                "licence": e.licence,
                "max length": e.max_length,
                "available": here,
                "note": e.note,
            }
        )
    return rows


def is_available(repo_id: str, cache_dir: str | Path | None = None) -> bool:
    """True when the model loads without the network (bundled, or a snapshot in the cache)."""
    return repo_id in (BUNDLED_HUB_ID, models.BUNDLED) or repo_id in cached_models(cache_dir)


# --- downloading ----------------------------------------------------------------------------------------

_REPORT: contextvars.ContextVar[Progress] = contextvars.ContextVar("bases_download_report", default=noop)


class _Sink:
    """A file that swallows what tqdm prints: the progress goes to the Progress callback instead."""

    def write(self, text: str) -> int:
        """Discard the bar's text."""
        return len(text)

    def flush(self) -> None:
        """Nothing to flush."""


class ProgressTqdm(tqdm):
    """tqdm for huggingface_hub's snapshot_download that reports bytes (or files) done to core.progress."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("name", None)
        kwargs["file"], kwargs["disable"] = _Sink(), False
        self._report = _REPORT.get()
        super().__init__(*args, **kwargs)

    def update(self, n: float | None = 1) -> bool | None:
        """Advance the bar and report the fraction done (byte bars; the file-count bar when no bytes are known)."""
        shown = super().update(n)
        total = float(self.total or 0)
        if total > 0 and not str(self.desc or "").startswith("Downloading bytes"):
            done = min(1.0, float(self.n) / total)
            if self.unit == "B":
                self._report(done, f"downloading: {self.n / 1e6:,.1f} of {total / 1e6:,.1f} MB")
            else:
                self._report(done, f"downloading: file {int(self.n)} of {int(total)}")
        return shown


def download(repo_id: str, progress: Progress | None = None, cache_dir: str | Path | None = None) -> str:
    """Download a hub model's snapshot into the Hugging Face cache with progress; returns the local folder.

    Raises DownloadError with a clear reason when the hub is off, unreachable, or the id does not exist."""
    repo_id = repo_id.strip()
    if not repo_id or repo_id.count("/") != 1:
        raise DownloadError(
            f"{repo_id!r} is not a hub id: expected owner/name, e.g. cross-encoder/ms-marco-MiniLM-L6-v2."
        )
    if offline_by_setting() or not online():
        raise DownloadError(offline_message(repo_id))
    from huggingface_hub import snapshot_download

    report = progress or noop
    token = _REPORT.set(report)
    report(0.0, f"downloading {repo_id}")
    try:
        path = snapshot_download(
            repo_id,
            cache_dir=cache_dir,
            tqdm_class=ProgressTqdm,
            max_workers=2,
            allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.md", "tokenizer*", "*.py"],
        )
    except Cancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - any hub failure is said as a download problem
        raise DownloadError(f"Could not download {repo_id}: {type(exc).__name__}: {str(exc)[:300]}") from exc
    finally:
        _REPORT.reset(token)
    report(1.0, f"{repo_id} downloaded")
    return str(path)


def download_job(
    conn: sqlite3.Connection,
    project: int,
    args: dict[str, Any],
    progress: Progress,
    should_cancel: Callable[[], bool],
) -> dict[str, Any]:
    """Background job adapter (kind "download", listed in core.queue): download args["repo_id"] into the cache."""

    path = download(str(args["repo_id"]), tolerant(progress, should_cancel))
    return {"repo_id": args["repo_id"], "path": path}


# --- recognising a folder ---------------------------------------------------------------------------------


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _score_note(fusion: dict[str, Any] | None, kind: str | None = None) -> str:
    """What carries over from a run whose score is more than its cross-encoder's (residual or blended)."""
    kind = kind or (
        "residual"
        if (fusion or {}).get("method") == "residual"
        else "blended"
        if fusion and "alpha" in fusion
        else "cross-encoder"
    )
    if kind == "residual":
        return (
            " It was a residual run (score = logit + beta x embedding cosine): only the cross-encoder (the correction logit) "
            "carries over as the base; the new run is scored as it is trained."
        )
    if kind == "blended":
        return " Its recorded blend with the first stage does not carry over: the new run chooses its own."
    return ""


def model_max_length(folder: Path) -> int | None:
    """The input length a model folder was made for: its tokenizer's limit, else its position embeddings."""
    tok = _json(folder / "tokenizer_config.json").get("model_max_length")
    if isinstance(tok, (int, float)) and 0 < tok < 100_000:
        return int(tok)
    pos = _json(folder / "config.json").get("max_position_embeddings")
    return int(pos) if isinstance(pos, int) and pos > 0 else None


def _studio_run(folder: Path) -> FolderInfo:
    record = _json(folder / RUN_FILE)
    cfg, metrics = record.get("config") or {}, record.get("metrics") or {}
    fusion = _json(folder / FUSION_FILE) or metrics.get("fusion")
    val = (metrics.get("validation") or {}).get("ndcg@10")
    text = (
        f"A studio run's model (loss {cfg.get('loss', '?')}, max length {cfg.get('max_length', '?')}"
        + (f", validation NDCG@10 {val:.3f}" if isinstance(val, (int, float)) else "")
        + "): training continues "
        "from its trained cross-encoder." + _score_note(fusion)
    )
    return FolderInfo(
        "studio run",
        str(folder),
        text,
        cfg.get("max_length") or model_max_length(folder),
        {"config": cfg, "fusion": fusion},
    )


def _bundle(folder: Path) -> FolderInfo:
    spec = _json(folder / SPEC_FILE)
    text = (
        f"An exported studio bundle ({spec.get('kind', '?')} score, run {spec.get('run_id', '?')}): training "
        "continues from its cross-encoder." + _score_note(None, spec.get("kind"))
    )
    return FolderInfo(
        "bundle", str(folder), text, spec.get("max_length") or model_max_length(folder), {"spec": spec}
    )


def describe_folder(path: str | Path) -> FolderInfo:
    """Recognise a local folder as a base: a studio run (runs/<id> or its model/), a bundle, a cross-encoder, an
    encoder, or not a model (with what was found)."""
    folder = Path(str(path)).expanduser()
    if not folder.is_dir():
        return FolderInfo("invalid", str(folder), f"{str(path)!r} is not a folder on this machine.")
    if not (folder / "config.json").is_file() and (folder / "model" / "config.json").is_file():
        folder = folder / "model"  # a run folder (runs/<id>): its model lives in model/
    folder = folder.resolve()
    if (folder / SPEC_FILE).is_file():
        return _bundle(folder)
    if (folder / RUN_FILE).is_file() and (folder / "config.json").is_file():
        return _studio_run(folder)
    if not (folder / "config.json").is_file():
        found = sorted(p.name for p in folder.iterdir())[:8]
        return FolderInfo(
            "invalid",
            str(folder),
            f"{folder} is not a model folder: expected config.json and "
            f"model.safetensors, found {found or 'nothing'}.",
        )
    archs = _json(folder / "config.json").get("architectures") or []
    if any("SequenceClassification" in a for a in archs):
        return FolderInfo(
            "cross-encoder",
            str(folder),
            "A trained cross-encoder: it is fine-tuned gently, keeping its head.",
            model_max_length(folder),
        )
    return FolderInfo(
        "encoder", str(folder), "A bare encoder: it gets a new one-logit head.", model_max_length(folder)
    )


def base_max_length(spec: str | None) -> int | None:
    """The base's own max length (a run's setting, a bundle's spec, the catalogue, or the tokenizer's limit)."""
    spec = (spec or models.BUNDLED).strip()
    known = entry(BUNDLED_HUB_ID if spec in (models.BUNDLED, "bundled") else spec)
    if known:
        return known.max_length
    try:
        path = Path(models.resolve(spec))
    except models.ModelError:
        return None
    return describe_folder(path).max_length if path.is_dir() else None


def as_dict(info: FolderInfo) -> dict[str, Any]:
    """A FolderInfo as plain JSON-able data (for a job result or a page)."""
    return asdict(info)
