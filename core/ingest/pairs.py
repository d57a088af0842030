"""Identity and de-duplication of an import's pairs: text hashes to ids, repeats, grades, conflicts, leaks.

Only hashes and ids stay in memory, so a large file imports in bounded memory.
"""

from __future__ import annotations

import random
import sqlite3
from typing import Any

from core import store
from core.ingest.labels import compare_labels, is_relevant
from core.ingest.problems import Problem, ProblemLog, short
from core.ingest.writer import Writer

Item = tuple[str, float, str, "str | None"]  # (cleaned passage, label, column, doc id)


class PairSet:
    """The project's known texts and pairs plus this import's: gives ids, counts repeats, finds conflicts."""

    def __init__(self, conn: sqlite3.Connection | None, project: int | None, log: ProblemLog, writer: Writer):
        self.log, self.writer = log, writer
        self.passage_ids: dict[str, int] = {}
        self.query_ids: dict[str, tuple[int, str]] = {}  # hash -> (id, split)
        self.old_pairs: dict[tuple[int, int], float] = {}
        self.seen_pairs: dict[tuple[int, int], tuple[float, str, int]] = {}
        self.query_where: dict[int, tuple[str, int]] = {}
        self.new_queries: dict[int, str] = {}  # id -> hash (for the split)
        self.query_stats: dict[int, list[Any]] = {}  # id -> [split, pairs, positives]
        self.touched_passages: set[int] = set()
        self.grade_updates: dict[tuple[int, int], float] = {}
        self.duplicates = self.already = self.graded = self.corpus_new = self.corpus_seen = 0
        self.next_passage = self.next_query = 1
        self.existing_train_pairs = self.existing_train_positives = self.existing_test_queries = 0
        if conn is not None:
            self._load_existing(conn, project)

    def _load_existing(self, c: sqlite3.Connection, project: int | None) -> None:
        self.next_passage = c.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM passages").fetchone()[0]
        self.next_query = c.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM queries").fetchone()[0]
        if project is None:
            return
        p = (project,)
        self.passage_ids = dict(c.execute("SELECT hash, id FROM passages WHERE project_id = ?", p).fetchall())
        self.query_ids = {
            h: (i, s) for h, i, s in c.execute("SELECT hash, id, split FROM queries WHERE project_id = ?", p)
        }
        self.old_pairs = {
            (q, s): lab
            for q, s, lab in c.execute(
                "SELECT query_id, passage_id, label FROM pairs WHERE project_id = ?", p
            )
        }
        row = c.execute(
            "SELECT COUNT(*), COALESCE(SUM(p.label > 0), 0) FROM pairs p JOIN queries q ON q.id = p.query_id "
            "WHERE p.project_id = ? AND q.split = 'train'",
            p,
        ).fetchone()
        self.existing_train_pairs, self.existing_train_positives = int(row[0]), int(row[1])
        self.existing_test_queries = int(
            c.execute("SELECT COUNT(*) FROM queries WHERE project_id = ? AND split = 'test'", p).fetchone()[0]
        )

    # -- ids -------------------------------------------------------------------------------------------

    def passage_id(self, text: str, source: str, doc_id: str | None) -> int:
        """The id of a cleaned passage text, new ones numbered and buffered for writing."""
        h = store.text_hash(text)
        pid = self.passage_ids.get(h)
        if pid is None:
            pid = self.next_passage
            self.next_passage += 1
            self.passage_ids[h] = pid
            if source == "corpus":
                self.corpus_new += 1
            self.writer.passage(pid, text, h, doc_id, source)
        return pid

    def query_id(
        self, text: str, split: str, qid: str | None, file: str, row: int, column: str
    ) -> int | None:
        """The id of a cleaned query in a split; None (listed as a leak) when it is on the other side."""
        h = store.text_hash(text)
        hit = self.query_ids.get(h)
        if hit is None:
            i = self.next_query
            self.next_query += 1
            self.query_ids[h] = (i, split)
            self.new_queries[i] = h
            self.query_where[i] = (file, row)
            self.query_stats[i] = [split, 0, 0]
            self.writer.query(i, text, h, qid, split)
            return i
        i, old_split = hit
        if old_split != split:
            where = self.query_where.get(i)
            origin = f"{where[0]} row {where[1]}" if where else f"the project's {old_split} set"
            self.log.add(
                Problem(
                    file,
                    f"left out: this query is also in the {old_split} data ({origin}), and a query cannot be "
                    f"in both the training and the test set: {short(text)!r}",
                    row=row,
                    column=column,
                    kind="leak",
                    detail={"other": origin, "query": short(text, 200)},
                )
            )
            return None
        self.query_stats.setdefault(i, [split, 0, 0])
        return i

    # -- pairs -----------------------------------------------------------------------------------------

    def add(
        self,
        file: str,
        row: int,
        query: str,
        query_col: str,
        items: list[Item],
        split: str,
        qid: str | None = None,
    ) -> None:
        """One source row: a cleaned query and its (passage, label, column, doc id) items."""
        q = self.query_id(query, split, qid, file, row, query_col)
        if q is None:
            return
        for text, label, column, doc_id in items:
            p = self.passage_id(text, "pairs", doc_id)
            key = (q, p)
            if (key in self.old_pairs or key in self.seen_pairs) and self._repeat(
                file, row, column, query, text, label, key
            ):
                continue
            self.seen_pairs[key] = (label, file, row)
            self.touched_passages.add(p)
            stats = self.query_stats[q]
            stats[1] += 1
            stats[2] += is_relevant(label)
            self.writer.pair(q, p, label, row)

    def _repeat(
        self, file: str, row: int, column: str, query: str, text: str, label: float, key: tuple[int, int]
    ) -> bool:
        """Whether the pair was seen before (in the project or this import), counting or flagging how."""
        old = self.old_pairs.get(key)
        if old is not None:
            if compare_labels(old, label) == "conflict":
                self._conflict(file, row, column, query, text, label, old, "an earlier import of the project")
            else:
                self.already += 1
            return True
        seen = self.seen_pairs.get(key)
        if seen is None:
            return False
        verdict = compare_labels(seen[0], label)
        if verdict == "duplicate":
            self.duplicates += 1
        elif verdict == "grade":
            self.graded += 1
            if label > seen[0]:
                self.seen_pairs[key] = (label, seen[1], seen[2])
                self.grade_updates[key] = label
        else:
            self._conflict(file, row, column, query, text, label, seen[0], f"{seen[1]} row {seen[2]}")
        return True

    def _conflict(
        self,
        file: str,
        row: int,
        column: str,
        query: str,
        passage: str,
        label: float,
        other_label: float,
        other: str,
    ) -> None:
        rel = "relevant" if is_relevant(label) else "not relevant"
        other_rel = "relevant" if is_relevant(other_label) else "not relevant"
        self.log.add(
            Problem(
                file,
                f"conflict: this passage is marked {rel} (label {label:g}) here but {other_rel} "
                f"(label {other_label:g}) in {other}, for the same query {short(query, 60)!r}.",
                row=row,
                column=column,
                kind="conflict",
                detail={
                    "other": other,
                    "label": label,
                    "other_label": other_label,
                    "query": short(query, 200),
                    "passage": short(passage, 200),
                },
            )
        )

    def add_corpus(self, text: str, doc_id: str | None) -> None:
        """An unjudged passage for the mining pool."""
        self.corpus_seen += 1
        self.passage_id(text, "corpus", doc_id)

    # -- the end ---------------------------------------------------------------------------------------

    def split_off(self, fraction: float, seed: int) -> list[int]:
        """Move a seeded share of this import's new training queries to the test set (whole queries)."""
        candidates = sorted((h, i) for i, h in self.new_queries.items() if self.query_stats[i][0] == "train")
        n = len(candidates)
        if not fraction or n == 0:
            return []
        k = max(1, round(fraction * n)) if n >= 2 else 0
        k = min(k, n - 1)
        chosen = sorted(i for _, i in random.Random(seed).sample(candidates, k))
        for i in chosen:
            self.query_stats[i][0] = "test"
        self.writer.move_to_test(chosen)
        return chosen

    def per_split(self) -> dict[str, list[int]]:
        """Per split: [queries, pairs, positives, queries without a positive] of this import."""
        per = {"train": [0, 0, 0, 0], "test": [0, 0, 0, 0]}
        for split, n_pairs, n_pos in self.query_stats.values():
            if n_pairs == 0:
                continue
            s = per[split]
            s[0] += 1
            s[1] += n_pairs
            s[2] += n_pos
            s[3] += n_pos == 0
        return per
