"""Test sets: the project's test split or an uploaded file, as queries, graded judgements, corpus and candidates."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from core import ingest, store
from core.evaluation.common import EvaluationError, Ranking


@dataclass
class TestSet:
    """Queries with judged passages, the corpus the first stage searches, and candidates a file may give."""

    __test__ = False  # not a pytest class

    name: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, float]]
    corpus: dict[str, str]
    query_ids: dict[str, int | None] = field(default_factory=dict)  # key -> project query id (Review link)
    candidates: dict[str, Ranking] | None = None
    notes: list[str] = field(default_factory=list)
    candidates_are_oracle: bool = (
        False  # the file's candidates are every row, positives included, in file order
    )


def project_test_set(conn: sqlite3.Connection, project: int) -> TestSet:
    """The project's test split (queries split='test' and their pairs); corpus = all project passages."""
    rows = conn.execute(
        """SELECT p.query_id, p.passage_id, p.label, q.text FROM pairs p JOIN queries q ON q.id = p.query_id
           WHERE p.project_id = ? AND q.split = 'test' ORDER BY p.query_id, p.id""",
        (project,),
    ).fetchall()
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, float]] = {}
    for r in rows:
        key = str(r["query_id"])
        queries[key] = r["text"]
        qrels.setdefault(key, {})[str(r["passage_id"])] = float(r["label"])
    corpus = {str(p["id"]): p["text"] for p in store.fetch_passages(conn, project)}
    ts = TestSet("project test set", queries, qrels, corpus, {k: int(k) for k in queries})
    return _drop_unjudged(ts)


def _drop_unjudged(ts: TestSet) -> TestSet:
    empty = [q for q in ts.queries if not any(g > 0 for g in ts.qrels.get(q, {}).values())]
    for q in empty:
        ts.queries.pop(q)
        ts.qrels.pop(q, None)
    if empty:
        ts.notes.append(f"{len(empty)} test queries have no relevant passage and are left out.")
    if not ts.queries:
        raise EvaluationError(
            f"The {ts.name} has no query with a relevant passage (label > 0): nothing to evaluate."
        )
    return ts


def read_test_file(
    data: bytes, filename: str, conn: sqlite3.Connection | None = None, project: int | None = None
) -> TestSet:
    """An uploaded test set (CSV, TSV, JSONL, JSON, Parquet): query, passage, label [, score | rank] per row.

    Read by ingest's readers and cleaned like an import (so its passages match the project's stored ones), and
    checked by ingest's train/test overlap rule. Rows with label 0 are judged non-relevant. When the file lists
    several passages per query, they are the "candidates from the file" (ordered by score, else rank, else file
    order — then they are oracle candidates). The corpus is the project's passages plus the file's.
    """
    try:
        test_file = ingest.read_test_set(data, filename, conn, project)
    except ingest.IngestError as exc:
        raise EvaluationError(str(exc)) from exc
    passages = store.fetch_passages(conn, project) if conn is not None and project is not None else []
    known = {store.text_hash(p["text"]): str(p["id"]) for p in passages}
    corpus = {str(p["id"]): p["text"] for p in passages}
    queries: dict[str, str] = {}
    qkeys: dict[str, str] = {}
    qrels: dict[str, dict[str, float]] = {}
    listed: dict[str, list[tuple[str, float, int]]] = {}
    for i, row in enumerate(test_file.rows):
        order = row.score if row.score is not None else -row.rank if row.rank is not None else float(-i)
        qk = qkeys.setdefault(row.query, f"u{len(qkeys)}")
        queries[qk] = row.query
        h = store.text_hash(row.passage)
        pk = known.get(h) or f"f{h[:12]}"
        corpus.setdefault(pk, row.passage)
        qrels.setdefault(qk, {})[pk] = max(row.label, qrels.get(qk, {}).get(pk, row.label))
        listed.setdefault(qk, []).append((pk, order, i))
    candidates = {
        q: [(pk, s) for pk, s, _ in sorted(v, key=lambda t: (-t[1], t[2]))] for q, v in listed.items()
    }
    ts = TestSet(
        filename,
        queries,
        qrels,
        corpus,
        {k: None for k in queries},
        candidates,
        candidates_are_oracle=test_file.columns["score"] is None and test_file.columns["rank"] is None,
    )
    if not any(any(qrels[q][pk] <= 0 for pk, _ in c) for q, c in candidates.items()):
        ts.candidates = None
        ts.notes.append(
            "The file lists no non-relevant passage, so it gives no candidates: pick BM25 or the "
            "embedding model as the first stage."
        )
    if test_file.overlap:
        ts.notes.append(
            f"{len(test_file.overlap)} queries of {filename} are also training queries of this project "
            "and are left out: a query cannot be in both the training and the test set."
        )
    if not ts.queries:
        raise EvaluationError(
            f"Every query of {filename} is a training query of this project: nothing to evaluate."
        )
    return _drop_unjudged(ts)
