"""Problems with an input, located as a person finds them in their file (file, row, column), and their log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.errors import UserError

MAX_LISTED = 200  # problems kept for display; the rest are counted


def printable(text: str) -> str:
    """Text with undecodable bytes shown as escapes, safe to put in a message."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8", "replace")


def short(text: str, n: int = 80) -> str:
    """A text cut to n characters for a message."""
    text = printable(text)
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class Problem:
    """One thing wrong with the input, located as the person would find it in their file."""

    file: str
    message: str
    row: int | None = None
    column: str | None = None
    kind: str = "error"  # error | conflict | dropped | leak | warning
    detail: dict[str, Any] = field(default_factory=dict)

    def where(self) -> str:
        """'file, row N, column 'c'' as far as it is known."""
        parts = [self.file]
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column '{self.column}'")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"{self.where()}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready row for summaries and tables."""
        return {
            "file": self.file,
            "row": self.row,
            "column": self.column,
            "kind": self.kind,
            "message": self.message,
            **self.detail,
        }


class IngestError(UserError):
    """Input that cannot be imported; carries every problem found, the first one's file/row/column on top."""

    def __init__(self, problems: Problem | list[Problem], total: int | None = None):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        self.total = total if total is not None else len(self.problems)
        first = self.problems[0]
        self.file, self.row, self.column = first.file, first.row, first.column
        super().__init__(self._text())

    def _text(self) -> str:
        if self.total == 1:
            return str(self.problems[0])
        shown = "\n".join(f"- {p}" for p in self.problems[:10])
        more = self.total - min(10, len(self.problems))
        tail = f"\n- ... and {more} more" if more > 0 else ""
        return f"{self.total} problems; nothing was imported:\n{shown}{tail}"


class ProblemLog:
    """Every problem of one pass: the first MAX_LISTED kept, all counted by kind; errors and conflicts block."""

    def __init__(self, skip_invalid: bool = False):
        self.skip_invalid = skip_invalid
        self.problems: list[Problem] = []
        self.counts = {"error": 0, "conflict": 0, "dropped": 0, "leak": 0}

    @property
    def blocked(self) -> bool:
        """Whether the import must stop (nothing is written once it is)."""
        return bool(self.counts["error"] or self.counts["conflict"])

    @property
    def unusable(self) -> int:
        """Rows refused so far (errors or dropped): a row compares this before and after its cells."""
        return self.counts["error"] + self.counts["dropped"]

    def add(self, p: Problem) -> None:
        """Record one problem."""
        self.counts[p.kind] = self.counts.get(p.kind, 0) + 1
        if len(self.problems) < MAX_LISTED:
            self.problems.append(p)

    def row(self, file: str, row: int, column: str | None, message: str, **detail: Any) -> None:
        """A bad row: stops the import, or is dropped and listed when the person chose to skip bad rows."""
        self.add(
            Problem(
                file,
                message,
                row=row,
                column=column,
                kind="dropped" if self.skip_invalid else "error",
                detail=detail,
            )
        )


@dataclass
class Report:
    """A dry run's result: counts, before/after samples, problems; `blocking` says whether import would fail."""

    summary: dict[str, Any]
    problems: list[Problem]
    samples: list[dict[str, Any]]
    warnings: list[str]
    total_problems: int = 0

    @property
    def blocking(self) -> bool:
        """An import of the same input would stop."""
        return any(p.kind in ("error", "conflict") for p in self.problems)

    @property
    def conflicts(self) -> list[Problem]:
        """The label conflicts a person must resolve."""
        return [p for p in self.problems if p.kind == "conflict"]
