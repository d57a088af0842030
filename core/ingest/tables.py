"""Table files (CSV, TSV, JSONL, JSON, Parquet) into the validation pass: one row at a time, mapped by columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.ingest.columns import ColumnMap, detect_columns
from core.ingest.formats import check_size
from core.ingest.labels import parse_label
from core.ingest.pairs import Item
from core.ingest.problems import IngestError, Problem
from core.ingest.readers import as_list, chain, head_rows, open_table
from core.ingest.validation import ImportPass


def import_table(
    p: ImportPass, path: Path, name: str, columns: ColumnMap | None, split: str, done: float, share: float
) -> None:
    """Stream one table file into pairs of the given split."""
    check_size(path, name, p.spec.max_mb)
    reader = open_table(path, name)
    try:
        if columns is None:
            rows = reader.rows()
            head = head_rows(rows)
            columns = detect_columns(reader.columns, [r for _, r in head], name)
            source = chain(head, rows)
        else:
            source = reader.rows()
        columns.validate(reader.columns, name)
        p.mappings[name] = columns.to_dict()
        p.formats[name] = reader.fmt
        p.shape = p.shape or columns.shape
        n = 0
        for row, record in source:
            n += 1
            _record(p, name, row, record, columns, split)
            if n % 1000 == 0:
                p.progress(done + share * reader.fraction(), f"Reading {name}: {n:,} rows")
        if n == 0:
            raise IngestError(Problem(name, "the file has a header but no data rows."))
        p.flush()
    finally:
        reader.close()


def _record(p: ImportPass, file: str, row: int, record: dict[str, Any], m: ColumnMap, split: str) -> None:
    p.rows_read += 1
    if "__error__" in record:
        p.log.row(file, row, None, record["__error__"])
        return
    values = [record.get(c) for c in m.used()]
    if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
        p.blank_rows += 1
        return
    before = p.log.unusable
    query = p.texts(record.get(m.query), file, row, m.query, "query")
    items = _labelled_items(p, file, row, record, m) if m.label else _listed_items(p, file, row, record, m)
    if query is None or p.log.unusable > before:
        return  # the row is unusable: recorded above
    p.pairs.add(file, row, query, m.query, items, split)


def _labelled_items(p: ImportPass, file: str, row: int, record: dict[str, Any], m: ColumnMap) -> list[Item]:
    assert m.label and m.passage  # the labelled shape names both columns
    try:
        label: float | None = parse_label(record.get(m.label))
    except ValueError as exc:
        p.log.row(file, row, m.label, str(exc))
        label = None
    passage = p.texts(record.get(m.passage), file, row, m.passage, "passage")
    return [(passage, label, m.passage, None)] if passage is not None and label is not None else []


def _listed_items(p: ImportPass, file: str, row: int, record: dict[str, Any], m: ColumnMap) -> list[Item]:
    items: list[Item] = []
    assert m.positive  # the pairs, triplets and multi shapes name a positive column
    for text in as_list(record.get(m.positive)) or [""]:
        passage = p.texts(text, file, row, m.positive, "positive passage")
        if passage is not None:
            items.append((passage, 1.0, m.positive, None))
    for col in m.negatives:
        for text in as_list(record.get(col)):
            if not isinstance(text, str) or text.strip():
                neg = p.texts(text, file, row, col, "negative passage")
                if neg is not None:
                    items.append((neg, 0.0, col, None))
            else:
                p.blank_negatives += 1
    return items
