"""Where workspace files live, and the ONE rule that keeps every export inside the exports folder."""

from __future__ import annotations

import os
from pathlib import Path


class UnsafePathError(ValueError):
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
