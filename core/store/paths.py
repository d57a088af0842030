"""Where workspace files live, and the ONE rule that keeps every export inside the exports folder."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from core.errors import UserError

UPLOAD_NAME_CHARS = 80


class UnsafePathError(UserError):
    """An export name that would write outside the workspace's exports folder."""


def workspace_dir() -> Path:
    """The workspace lives in RERANK_STUDIO_HOME, else in the user's home, so several can coexist."""
    env = os.environ.get("RERANK_STUDIO_HOME")
    return Path(env).expanduser() if env else Path.home() / ".rerank-studio"


def runs_dir(workspace: Path | None = None) -> Path:
    """Trained models and checkpoints sit beside the database, one folder per run."""
    return (workspace or workspace_dir()) / "runs"


def cache_dir(workspace: Path | None = None) -> Path:
    """Embedding caches and other recomputable data."""
    return (workspace or workspace_dir()) / "cache"


def exports_dir(workspace: Path | None = None) -> Path:
    """Exports sit in the workspace beside the database, so a user finds (and backs up) them in one place."""
    return (workspace or workspace_dir()) / "exports"


def uploads_dir(workspace: Path | None = None) -> Path:
    """Files a person uploaded, kept so a background job (which takes JSON arguments) can read them."""
    return (workspace or workspace_dir()) / "uploads"


def safe_upload_name(name: str | None) -> str:
    """An uploaded file's name as one plain file name: last path part, letters, digits, '.', '-', '_' only."""
    base = re.split(r"[\\/]", str(name or ""))[-1]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip("._-")
    stem, dot, ext = safe.rpartition(".")
    if dot and len(ext) <= 10:  # keep the extension (the readers go by it) when shortening
        return (stem[: UPLOAD_NAME_CHARS - len(ext) - 1] + "." + ext) if stem else "upload." + ext
    return safe[:UPLOAD_NAME_CHARS] or "upload"


def save_upload(workspace: Path | None, name: str | None, data: bytes) -> Path:
    """Keep uploaded bytes at `<workspace>/uploads/<sha1>-<safe name>` (the same file once); returns the path."""
    folder = uploads_dir(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha1(data).hexdigest()}-{safe_upload_name(name)}"
    if not path.is_file():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


def _refuse(name: object, reason: str, base: Path) -> UnsafePathError:
    return UnsafePathError(
        f"Export name {name!r} is not allowed: {reason}. Give a plain relative name; nothing may be written "
        f"outside the exports folder {base}."
    )


def safe_export_path(workspace: Path | None, name: str) -> Path:
    """Where an export named `name` goes: a relative name strictly inside the exports folder, symlinks resolved.

    Refused (UnsafePathError): empty names, NUL bytes, absolute paths (even ones pointing inside the folder),
    any `..` part, the folder itself, and names that resolve (through a symlink) outside it."""
    base = exports_dir(workspace).resolve()
    text = "" if name is None else str(name).strip()
    if not text:
        raise _refuse(name, "the export needs a name", base)
    if "\x00" in text:
        raise _refuse(name, "it contains a NUL byte", base)
    path = Path(text)
    if path.is_absolute() or text.startswith("~"):
        raise _refuse(name, "absolute paths are refused", base)
    if ".." in path.parts:
        raise _refuse(name, "it may not contain '..'", base)
    target = (base / path).resolve()
    if target == base:
        raise _refuse(name, "it names the exports folder itself", base)
    if not target.is_relative_to(base):
        raise _refuse(name, "it resolves (through a link) to a place outside the exports folder", base)
    return target
