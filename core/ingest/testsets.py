"""Test-set files and extra corpora read exactly like an import: the same readers, the same cleaning, and the
same train/test overlap rule, so their texts match the project's stored (cleaned) texts."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import store
from core.ingest.cleaning import CleaningOptions
from core.ingest.labels import parse_label
from core.ingest.problems import IngestError, Problem, ProblemLog
from core.ingest.readers import LinesReader, TableReader, open_table
from core.ingest.texts import TextCheck

TEST_COLUMNS = {
    "query": ("query", "question", "anchor", "query_text"),
    "passage": ("passage", "document", "text", "doc", "positive", "passage_text", "corpus_text"),
    "label": ("label", "relevance", "grade", "score_label", "rel"),
    "score": ("score", "first_stage_score", "candidate_score", "bm25_score"),
    "rank": ("rank", "position"),
}


@dataclass
class TestRow:
    """One judged row of a test file, texts cleaned; `score`/`rank` order the file's candidates when given."""

    __test__ = False  # not a pytest class

    row: int
    query: str
    passage: str
    label: float
    score: float | None = None
    rank: float | None = None


@dataclass
class TestFile:
    """A read test file: its rows in file order (training queries left out and named in `overlap`)."""

    __test__ = False

    name: str
    rows: list[TestRow]
    columns: dict[str, str | None]
    overlap: list[str] = field(default_factory=list)
    cleaning: dict[str, int] = field(default_factory=dict)


def overlapping_queries(
    conn: sqlite3.Connection, project: int, queries: Iterable[str], split: str = "test"
) -> list[str]:
    """The queries (cleaned texts) already in the project's other split: the rule of the project split (a query
    cannot be in both the training and the test set), for any query list that joins `split`."""
    other = "train" if split == "test" else "test"
    wanted = {store.text_hash(q): q for q in queries}
    rows = conn.execute(
        "SELECT hash FROM queries WHERE project_id = ? AND split = ?", (project, other)
    ).fetchall()
    hits = {r[0] for r in rows if r[0] in wanted}
    return [q for h, q in wanted.items() if h in hits]


def _as_path(source: Path | str | bytes, filename: str, folder: str) -> Path:
    if isinstance(source, bytes):
        path = Path(folder) / Path(filename).name
        path.write_bytes(source)
        return path
    return Path(source)


def _columns(reader: TableReader, file: str) -> dict[str, str | None]:
    lower = {c.strip().lower(): c for c in reader.columns}
    found = {
        role: next((lower[a] for a in names if a in lower), None) for role, names in TEST_COLUMNS.items()
    }
    for role in ("query", "passage"):
        if found[role] is None:
            raise IngestError(
                Problem(
                    file,
                    f"no {role} column (expected one of {', '.join(TEST_COLUMNS[role])}); "
                    f"found {', '.join(reader.columns)}.",
                )
            )
    return found


def _number(
    value: Any, log: ProblemLog, file: str, row: int, column: str | None, label: bool
) -> float | None:
    if column is None or value is None or (isinstance(value, str) and not value.strip()):
        return 1.0 if label else None
    try:
        return parse_label(value) if label else float(value)
    except (TypeError, ValueError) as exc:
        log.row(file, row, column, str(exc) if label else f"{value!r} is not a number.")
        return None


def _test_row(
    row: int, rec: dict[str, Any], cols: dict[str, Any], texts: TextCheck, log: ProblemLog, file: str
) -> TestRow | None:
    if "__error__" in rec:
        log.row(file, row, None, rec["__error__"])
        return None
    before = log.unusable
    query = texts(rec.get(cols["query"]), file, row, cols["query"], "query")
    passage = texts(rec.get(cols["passage"]), file, row, cols["passage"], "passage")
    label = _number(rec.get(cols["label"]) if cols["label"] else None, log, file, row, cols["label"], True)
    score = _number(rec.get(cols["score"]) if cols["score"] else None, log, file, row, cols["score"], False)
    rank = _number(rec.get(cols["rank"]) if cols["rank"] else None, log, file, row, cols["rank"], False)
    if query is None or passage is None or label is None or log.unusable > before:
        return None
    return TestRow(row, query, passage, label, score, rank)


def read_test_set(
    source: Path | str | bytes,
    filename: str,
    conn: sqlite3.Connection | None = None,
    project: int | None = None,
    cleaning: CleaningOptions | None = None,
) -> TestFile:
    """A test file (CSV, TSV, JSONL, JSON, Parquet: query, passage[, label][, score | rank]) read and cleaned
    like an import; with a project, rows whose query is a training query are left out (named in `overlap`).
    Raises IngestError naming file, row and column for any bad row."""
    log = ProblemLog()
    texts = TextCheck(cleaning or CleaningOptions(), log)
    with tempfile.TemporaryDirectory(prefix="rerank-test-set-") as folder:
        reader = open_table(_as_path(source, filename, folder), filename)
        try:
            cols = _columns(reader, filename)
            rows = [r for row, rec in reader.rows() if (r := _test_row(row, rec, cols, texts, log, filename))]
        finally:
            reader.close()
    if log.problems:
        raise IngestError(log.problems, total=log.unusable)
    if not rows:
        raise IngestError(Problem(filename, "the file has no data rows."))
    overlap = (
        overlapping_queries(conn, project, {r.query for r in rows}) if conn is not None and project else []
    )
    if overlap:
        gone = set(overlap)
        rows = [r for r in rows if r.query not in gone]
    return TestFile(filename, rows, cols, sorted(overlap), texts.cleaner.report())


def read_corpus_file(path: Path | str, cleaning: CleaningOptions | None = None) -> list[str]:
    """Extra passages from .txt (one per line), .jsonl/.json/.parquet ({"text"[, "title"]}) or .csv/.tsv (a "text"
    column, or a single column), cleaned like an import; blanks dropped, duplicates removed (first kept)."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(Problem(path.name, f"the extra corpus file {str(path)!r} does not exist."))
    reader = LinesReader(path, path.name) if path.suffix.lower() == ".txt" else open_table(path, path.name)
    log = ProblemLog(skip_invalid=True)
    texts = TextCheck(cleaning or CleaningOptions(), log)
    out: dict[str, None] = {}
    try:
        column = (
            "text" if "text" in reader.columns else (reader.columns[0] if len(reader.columns) == 1 else None)
        )
        if column is None:
            raise IngestError(
                Problem(
                    path.name,
                    f"expected a 'text' column (or a single column), found columns {reader.columns}.",
                )
            )
        for row, rec in reader.rows():
            title, body = rec.get("title"), rec.get(column)
            if isinstance(title, str) and title.strip() and isinstance(body, str):
                body = f"{title.strip()}. {body.strip()}"
            if body is None or (isinstance(body, str) and not body.strip()):
                continue
            text = texts(body, path.name, row, column, "passage")
            if text is not None:
                out[text] = None
    finally:
        reader.close()
    if not out:
        raise IngestError(Problem(path.name, "the extra corpus holds no passages."))
    return list(out)
