"""The validation pass: one streaming walk over an import's inputs, writing only when asked.

It ties together the problem log, the text check (cleaning), the pair set (ids, repeats, conflicts, leaks) and
the writer; `tables` and `beir` feed it rows, `report` turns it into a summary.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from core.ingest.pairs import Item, PairSet
from core.ingest.problems import ProblemLog
from core.ingest.spec import ImportSpec
from core.ingest.texts import TextCheck
from core.ingest.writer import Writer
from core.progress import Progress, noop


class ImportPass:
    """Clean, validate, de-duplicate and (when `write`) insert, keeping only hashes and ids in memory."""

    def __init__(
        self,
        conn: sqlite3.Connection | None,
        project: int | None,
        spec: ImportSpec,
        write: bool,
        progress: Progress | None,
    ):
        self.conn, self.project, self.spec, self.write = conn, project, spec, write
        self.progress = progress or noop
        self.log = ProblemLog(spec.skip_invalid)
        self.texts = TextCheck(spec.cleaning, self.log)
        self.writer = Writer(conn, project, write, self.log)
        self.pairs = PairSet(conn, project, self.log, self.writer)
        self.warnings: list[str] = []
        self.rows_read = self.blank_rows = self.blank_negatives = 0
        self.shape: str | None = None
        self.mappings: dict[str, dict[str, Any]] = {}
        self.formats: dict[str, str] = {}
        self.seconds = 0.0

    @property
    def blocked(self) -> bool:
        """An error or conflict was found: nothing will be written."""
        return self.log.blocked

    def text(self, value: Any, file: str, row: int, column: str, role: str) -> str | None:
        """A cleaned, checked text cell, or None after recording why it is unusable."""
        return self.texts(value, file, row, column, role)

    def add_pairs(
        self,
        file: str,
        row: int,
        query: str,
        query_col: str,
        items: list[Item],
        split: str,
        qid: str | None = None,
    ) -> None:
        """One source row's pairs."""
        self.pairs.add(file, row, query, query_col, items, split, qid)

    def flush(self) -> None:
        """Write what is buffered."""
        self.writer.flush()
