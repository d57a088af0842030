"""The one progress signature every long step reports through, so a page, the CLI and a job row read it alike."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], None]
"""progress(fraction, message): fraction of the whole step done, 0..1, and what is happening now."""


Counter = Callable[[int, int], None]
"""counter(done, total): items done of a known total, as embedding and scoring loops report; `counted` adapts it."""


def noop(fraction: float, message: str) -> None:
    """A Progress that reports nowhere (the default when nobody is watching)."""


def scaled(progress: Progress | None, start: float, end: float) -> Progress:
    """A Progress for one phase that maps its own 0..1 onto [start, end] of the caller's bar."""
    outer = progress or noop

    def inner(fraction: float, message: str) -> None:
        f = min(1.0, max(0.0, float(fraction)))
        outer(start + (end - start) * f, message)

    return inner


def counted(progress: Progress | None, message: str) -> Counter:
    """Adapt a (done, total) counter, as embedding loops report, to a Progress with a fixed message."""
    outer = progress or noop

    def inner(done: int, total: int) -> None:
        outer(done / total if total else 1.0, message)

    return inner
