"""What a job kind is to the queue: an adapter its domain owns, and an optional tidy-up for when its process died.

The queue knows no domain: the kinds themselves are listed once, at the top (core.queue).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import Cancelled
from core.progress import Progress

ShouldCancel = Callable[[], bool]
Adapter = Callable[[sqlite3.Connection, int, dict[str, Any], Progress, ShouldCancel], dict[str, Any]]
"""adapter(conn, project, args, progress, should_cancel) -> a small JSON-able result stored on the job row."""
DeathHook = Callable[[sqlite3.Connection, str, int], str | None]
"""after_death(conn, kind, project): tidy what a dead job's process left half-done; the reason it could not, else None."""
MAX_RESULT_CHARS = 200_000


@dataclass(frozen=True)
class JobKind:
    """One kind of background job: how it runs, and how its half-done state is closed when its process died."""

    run: Adapter
    after_death: Callable[[sqlite3.Connection, int], Any] | None = None


def tolerant(progress: Progress, should_cancel: ShouldCancel) -> Callable[..., None]:
    """A callback accepting (fraction, message), (message, fraction) or (phase, done, total); raises on cancel."""

    def report(*a: Any) -> None:
        if should_cancel():
            raise Cancelled("Cancelled by request.")
        if len(a) == 3:
            phase, done, total = a
            progress(float(done) / total if total else 1.0, str(phase))
        elif len(a) == 2 and isinstance(a[0], str):
            progress(float(a[1]), a[0])
        elif len(a) == 2:
            progress(float(a[0]), str(a[1]))

    return report


def small(value: Any) -> Any:
    """The result as stored in the job row: JSON-able, and only top-level parts of modest size."""
    value = json.loads(json.dumps(value, default=str))
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if len(json.dumps(v)) <= MAX_RESULT_CHARS}
    return value if len(json.dumps(value)) <= MAX_RESULT_CHARS else None
