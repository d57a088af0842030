"""The quality report's disk cache, without pickle: arrays in a .npz (loaded with allow_pickle=False) and every
other value in JSON, so a tampered or foreign file in the cache folder can never run code when it is read.

A cached value is a tree of dataclasses (only the classes the caller names are ever built), numpy arrays
(object arrays of strings are stored as unicode arrays) and JSON values; dicts keyed by int keep their keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core import store
from core.errors import UserError

FORMAT = 1  # bump when the encoding changes: older files are then recomputed


class CacheFormatError(UserError):
    """A cache file that does not hold what this module writes (foreign, tampered or from an older version)."""


def cache_folder(workspace: Path | None) -> Path:
    """The quality cache folder of a workspace (created on first use)."""
    folder = store.cache_dir(workspace) / "quality"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def digest(*parts: Any) -> str:
    """A short stable hash of arrays, sequences and scalars: the cache key of a stage's inputs."""
    h = hashlib.sha1()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, (list, tuple)):
            for item in part:
                h.update(str(item).encode("utf-8", "surrogatepass"))
                h.update(b"\x1f")
        else:
            h.update(str(part).encode("utf-8", "surrogatepass"))
        h.update(b"\x1e")
    return h.hexdigest()[:20]


def data_fingerprint(conn: sqlite3.Connection, project: int) -> str:
    """store.data_version plus what it cannot see: re-pointed pairs (snippets), labels, statuses."""
    extra = conn.execute(
        "SELECT COUNT(*), TOTAL(passage_id * 1000003 + query_id), TOTAL(label) FROM pairs WHERE project_id = ?",
        (project,),
    ).fetchone()
    neg = conn.execute(
        "SELECT TOTAL(version), TOTAL(CASE status WHEN 'relevant' THEN id ELSE 0 END) "
        "FROM negatives WHERE project_id = ?",
        (project,),
    ).fetchone()
    return f"{store.data_version(conn, project)}|{tuple(extra)}|{tuple(neg)}"


# --- encoding ---------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """numpy scalars inside JSON values become Python numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _encode(value: Any, arrays: dict[str, np.ndarray], name: str) -> dict[str, Any]:
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            arrays[name] = np.asarray(value.tolist(), dtype=str).reshape(value.shape)
            return {"array": name, "object": True}
        arrays[name] = value
        return {"array": name}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "dataclass": type(value).__name__,
            "fields": {
                f.name: _encode(getattr(value, f.name), arrays, f"{name}.{f.name}")
                for f in dataclasses.fields(value)
            },
        }
    if isinstance(value, dict) and value and all(isinstance(k, (int, np.integer)) for k in value):
        return {"int_keys": [[int(k), v] for k, v in value.items()]}
    return {"json": value}


def _decode(node: Mapping[str, Any], arrays: Mapping[str, np.ndarray], kinds: Mapping[str, type]) -> Any:
    if "array" in node:
        arr = arrays[node["array"]]
        return arr.astype(object) if node.get("object") else arr
    if "dataclass" in node:
        cls = kinds.get(node["dataclass"])
        if cls is None:
            raise CacheFormatError(f"cache names an unknown class {node['dataclass']!r}")
        return cls(**{k: _decode(v, arrays, kinds) for k, v in node["fields"].items()})
    if "int_keys" in node:
        return {int(k): v for k, v in node["int_keys"]}
    if "json" in node:
        return node["json"]
    raise CacheFormatError("cache entry of unknown shape")


def save(folder: Path, name: str, value: Any) -> None:
    """Write `value` as name.npz + name.json (JSON last and atomically: its presence marks a complete entry)."""
    arrays: dict[str, np.ndarray] = {}
    tree = {"format": FORMAT, "value": _encode(value, arrays, "v")}
    npz, meta = folder / f"{name}.npz", folder / f"{name}.json"
    tmp_npz = folder / f".{name}.npz.tmp"
    with open(tmp_npz, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy types **kwds as the allow_pickle flag
    tmp_npz.replace(npz)
    tmp_meta = folder / f".{name}.json.tmp"
    tmp_meta.write_text(json.dumps(tree, default=_plain, ensure_ascii=False), encoding="utf-8")
    tmp_meta.replace(meta)


def load(folder: Path, name: str, kinds: Mapping[str, type]) -> Any:
    """Read an entry written by `save`; never unpickles (a pickle inside the .npz raises instead)."""
    meta = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CacheFormatError(f"cache entry {name} has another format")
    with np.load(folder / f"{name}.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return _decode(meta["value"], arrays, kinds)


def _prune(folder: Path, stage: str, keep: int) -> None:
    old = sorted(folder.glob(f"{stage}-*.json"), key=lambda p: p.stat().st_mtime)
    for stale in old[:-keep]:
        stale.unlink(missing_ok=True)
        stale.with_suffix(".npz").unlink(missing_ok=True)


def cached(
    folder: Path, name: str, compute: Callable[[], Any], kinds: Mapping[str, type], keep: int = 6
) -> Any:
    """Load a stage result, or compute and store it (the oldest entries of the stage are pruned)."""
    if (folder / f"{name}.json").is_file() and (folder / f"{name}.npz").is_file():
        try:
            return load(folder, name, kinds)
        except Exception:  # noqa: BLE001 - a corrupt, foreign or old entry is recomputed
            (folder / f"{name}.json").unlink(missing_ok=True)
            (folder / f"{name}.npz").unlink(missing_ok=True)
    value = compute()
    save(folder, name, value)
    _prune(folder, name.split("-")[0], keep)
    return value
