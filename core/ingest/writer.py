"""The only writes of an import: batched inserts with ids chosen up front, nothing once a problem blocks."""

from __future__ import annotations

import sqlite3

from core import store
from core.errors import StudioError
from core.ingest.problems import ProblemLog

BATCH = 5_000


class Writer:
    """Buffers new passages, queries and pairs and writes them in batches, only when writing and not blocked."""

    def __init__(self, conn: sqlite3.Connection | None, project: int | None, write: bool, log: ProblemLog):
        self.conn, self.project, self.write, self.log = conn, project, write, log
        self.import_id: int | None = None
        self.passages: list[tuple] = []
        self.queries: list[tuple] = []
        self.pairs: list[tuple] = []

    @property
    def db(self) -> sqlite3.Connection:
        """The connection written to (a writer made for a dry run has none and never writes)."""
        if self.conn is None:
            raise StudioError("A dry-run import writer has no connection to write to.")
        return self.conn

    @property
    def active(self) -> bool:
        """Rows are kept for writing (a dry run, or a blocked import, keeps none)."""
        return self.write and not self.log.blocked

    def start_import(self, filename: str, split: str) -> None:
        """The imports row every written pair points at."""
        if self.write:
            cur = self.db.execute(
                "INSERT INTO imports (project_id, created_at, filename, split, summary) VALUES (?, ?, ?, ?, '{}')",
                (self.project, store.now(), filename, split),
            )
            self.import_id = store.inserted_id(cur)

    def passage(self, pid: int, text: str, h: str, doc_id: str | None, source: str) -> None:
        """A new passage row."""
        if self.active:
            self.passages.append((pid, self.project, text, h, doc_id, source))
            if len(self.passages) >= BATCH:
                self.flush()

    def query(self, qid: int, text: str, h: str, ext_id: str | None, split: str) -> None:
        """A new query row."""
        if self.active:
            self.queries.append((qid, self.project, text, h, ext_id, split))

    def pair(self, query: int, passage: int, label: float, row: int) -> None:
        """A new pair row, remembering the source row it came from."""
        if self.active:
            self.pairs.append((self.project, query, passage, float(label), "upload", self.import_id, row))
            if len(self.pairs) >= BATCH:
                self.flush()

    def flush(self) -> None:
        """Write what is buffered (passages and queries before the pairs that use them)."""
        if not self.active:
            self.passages.clear()
            self.queries.clear()
            self.pairs.clear()
            return
        c = self.db
        if self.passages:
            c.executemany(
                "INSERT INTO passages (id, project_id, text, hash, doc_id, source) VALUES (?, ?, ?, ?, ?, ?)",
                self.passages,
            )
            self.passages.clear()
        if self.queries:
            c.executemany(
                "INSERT INTO queries (id, project_id, text, hash, qid, split) VALUES (?, ?, ?, ?, ?, ?)",
                self.queries,
            )
            self.queries.clear()
        if self.pairs:
            c.executemany(
                "INSERT INTO pairs (project_id, query_id, passage_id, label, origin, import_id, "
                "source_row) VALUES (?, ?, ?, ?, ?, ?, ?)",
                self.pairs,
            )
            self.pairs.clear()

    def move_to_test(self, query_ids: list[int]) -> None:
        """Queries split off as the test set."""
        if self.active and query_ids:
            self.flush()
            self.db.executemany("UPDATE queries SET split = 'test' WHERE id = ?", [(i,) for i in query_ids])

    def set_grades(self, grades: dict[tuple[int, int], float]) -> None:
        """Raise repeated pairs to their highest grade."""
        if self.active and grades:
            self.flush()
            self.db.executemany(
                "UPDATE pairs SET label = ? WHERE query_id = ? AND passage_id = ?",
                [(lab, q, p) for (q, p), lab in grades.items()],
            )

    def save_summary(self, summary_json: str) -> None:
        """The import's summary, stored with its row."""
        if self.write and self.import_id is not None:
            self.db.execute("UPDATE imports SET summary = ? WHERE id = ?", (summary_json, self.import_id))
