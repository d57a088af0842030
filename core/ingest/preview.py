"""A first look at a file before any choice: format, columns, a few rows and the guessed column roles."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.ingest.beir import beir_layout
from core.ingest.columns import ColumnMap, detect_columns
from core.ingest.formats import check_size
from core.ingest.problems import IngestError
from core.ingest.readers import head_rows, open_table


@dataclass
class FileInfo:
    """What the Data page shows before any choice: the format, the columns and the guessed mapping."""

    name: str
    format: str
    columns: list[str]
    sample: list[dict[str, Any]]
    mapping: ColumnMap | None
    detect_error: str | None = None
    beir: dict[str, Any] | None = None


def displayable(record: dict[str, Any]) -> dict[str, Any]:
    """A preview row a page can show: bytes that were not UTF-8 appear as U+FFFD instead of breaking the table."""
    return {
        k: v.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if isinstance(v, str) else v
        for k, v in record.items()
    }


def inspect(path: Path, name: str | None = None, max_mb: float | None = None) -> FileInfo:
    """Read only the head of a file (or a BEIR folder's layout) and guess the column roles."""
    path = Path(path)
    name = name or path.name
    if path.is_dir():
        layout = beir_layout(path, name)
        return FileInfo(
            name=name,
            format="beir",
            columns=[],
            sample=[],
            mapping=None,
            beir={k: (v.name if isinstance(v, Path) else v) for k, v in layout.items()},
        )
    check_size(path, name, max_mb)
    reader = open_table(path, name)
    try:
        sample = [record for _, record in head_rows(reader.rows())]
    finally:
        reader.close()
    sample = [r for r in sample if "__error__" not in r]
    mapping, err = None, None
    try:
        mapping = detect_columns(reader.columns, sample, name)
    except IngestError as exc:
        err = str(exc)
    return FileInfo(
        name=name,
        format=reader.fmt,
        columns=reader.columns,
        sample=[displayable(r) for r in sample[:5]],
        mapping=mapping,
        detect_error=err,
    )
