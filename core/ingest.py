"""Get a person's training data in: read, detect the shape, clean, validate, de-duplicate, split, store.

Every import is one transaction: a file with any error leaves the workspace exactly as it was, and the error
names the file, the row (as a spreadsheet shows it: the header is row 1; JSONL rows are line numbers) and the
column. Files stream in chunks, so a 150 MB upload imports in bounded memory with progress.

    preview = dry_run(conn, project, ImportSpec(Path("pairs.csv")))   # nothing written
    summary = run_import(conn, "My project", ImportSpec(Path("pairs.csv"), test_fraction=0.2, seed=7))
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import random
import re
import sqlite3
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core import store
from core.cleaning import Cleaner, CleaningOptions, compare_labels, is_relevant

ROOT = Path(__file__).resolve().parents[1]

Progress = Callable[[float, str], None]

MIN_EXAMPLES = 256  # below this, fine-tuning a cross-encoder is mostly noise
LONG_TEXT_CHARS = 20_000  # warn: the model reads ~512 tokens (a few thousand characters)
MAX_TEXT_CHARS = 1_000_000  # refuse: almost certainly a broken quote swallowing the file
MAX_LISTED = 200  # problems kept for display; the rest are counted
BATCH = 5_000
SHAPES = {
    "pairs": "(query, positive)",
    "labelled": "(query, passage, label)",
    "triplets": "(query, positive, negative)",
    "multi": "(query, positive, negative_1..n)",
}
FORMATS = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".json": "json", ".parquet": "parquet", ".pq": "parquet",
}
UPLOAD_TYPES = ["csv", "tsv", "jsonl", "json", "parquet"]


def upload_limit_mb() -> float:
    """The same limit the browser upload has (.streamlit/config.toml server.maxUploadSize), default 200 MB."""
    try:
        with open(ROOT / ".streamlit" / "config.toml", "rb") as fh:
            return float(tomllib.load(fh).get("server", {}).get("maxUploadSize", 200))
    except (OSError, tomllib.TOMLDecodeError, ValueError):
        return 200.0


UPLOAD_LIMIT_MB = upload_limit_mb()

csv.field_size_limit(2 * MAX_TEXT_CHARS)


# --- problems ---------------------------------------------------------------------------------------


@dataclass
class Problem:
    """One thing wrong with the input, located as the person would find it in their file."""

    file: str
    message: str
    row: int | None = None
    column: str | None = None
    kind: str = "error"  # error | conflict | dropped | warning
    detail: dict[str, Any] = field(default_factory=dict)

    def where(self) -> str:
        parts = [self.file]
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column '{self.column}'")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"{self.where()}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "row": self.row, "column": self.column, "kind": self.kind,
                "message": self.message, **self.detail}


class IngestError(ValueError):
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


# --- file types and readers -------------------------------------------------------------------------

_MAGIC = {
    b"PK\x03\x04": "a ZIP archive (an Excel .xlsx workbook?)",
    b"\x1f\x8b": "a gzip archive",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"SQLite format 3": "an SQLite database",
    b"\xd0\xcf\x11\xe0": "an old Excel/Office file",
    b"PAR1": "a Parquet file",
    b"\x7fELF": "a program",
}


def check_size(path: Path, name: str, max_mb: float | None = None) -> None:
    """Refuse files over the upload limit before reading a byte of them."""
    limit = UPLOAD_LIMIT_MB if max_mb is None else max_mb
    size = path.stat().st_size
    if size > limit * 1024 * 1024:
        raise IngestError(Problem(
            name, f"the file is {size / 1024 / 1024:,.1f} MB; the upload limit is {limit:g} MB "
                  "(split the file, or raise the limit with the CLI's --max-mb)."))


def detect_format(path: Path, name: str | None = None) -> str:
    """The reader for a path: by extension, checked against the file's first bytes."""
    name = name or path.name
    if path.is_dir():
        return "beir"
    if not path.exists():
        raise IngestError(Problem(name, f"no such file or folder: {path}"))
    ext = Path(name).suffix.lower()
    fmt = FORMATS.get(ext)
    if fmt is None:
        raise IngestError(Problem(
            name, f"unsupported file type {ext or '(none)'!r}: use CSV, TSV, JSONL, JSON or Parquet, "
                  "or a BEIR folder (corpus.jsonl, queries.jsonl, qrels/*.tsv)."))
    if path.stat().st_size == 0:
        raise IngestError(Problem(name, "the file is empty (0 bytes)."))
    with open(path, "rb") as fh:
        head = fh.read(8192)
    if fmt == "parquet":
        if not head.startswith(b"PAR1"):
            raise IngestError(Problem(name, "this is not a Parquet file (it does not start with 'PAR1')."))
        return fmt
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            raise IngestError(Problem(
                name, f"this is {what}, not a {fmt.upper()} text file; export the data as "
                      f"{'.parquet' if magic == b'PAR1' else 'CSV (UTF-8)'} and upload that."))
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise IngestError(Problem(name, "the file is UTF-16 encoded; save it as UTF-8 and upload it again."))
    nul = head.find(b"\x00")
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    if nul >= 0 or controls > len(head) // 10:
        where = f" (a NUL byte at byte {nul})" if nul >= 0 else ""
        raise IngestError(Problem(
            name, f"the file holds binary data{where}, not {fmt.upper()} text: is it really a "
                  f"{fmt.upper()} file that was renamed?"))
    if not head.lstrip(b"\xef\xbb\xbf \t\r\n"):
        if path.stat().st_size <= len(head):
            raise IngestError(Problem(name, "the file is empty (only whitespace)."))
    return fmt


_SURROGATE = re.compile("[\udc80-\udcff]")
_decode_errors = 0


def _mark_bad_bytes(exc: UnicodeDecodeError) -> tuple[str, int]:
    """surrogateescape that also counts, so cells are searched for bad bytes only when there were some."""
    global _decode_errors
    _decode_errors += 1
    return codecs.lookup_error("surrogateescape")(exc)


codecs.register_error("rerank-studio-mark", _mark_bad_bytes)


class _Reader:
    """A stream of (row, record) from one table file; `columns` is known after construction."""

    name: str
    fmt: str
    columns: list[str]

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        raise NotImplementedError

    def fraction(self) -> float:
        """Share of the file read so far (streaming readers keep `_raw` and `_size`), for the progress bar."""
        raw, size = getattr(self, "_raw", None), getattr(self, "_size", None)
        if raw is None or not size:
            return 0.0
        try:
            return min(raw.tell() / size, 1.0)
        except (OSError, ValueError):
            return 0.0

    def close(self) -> None:
        pass


def _check_header(name: str, columns: list[str]) -> list[str]:
    out = []
    for i, col in enumerate(columns, 1):
        if _SURROGATE.search(col):
            raise IngestError(Problem(
                name, "the header holds bytes that are not UTF-8; save the file as UTF-8 "
                      "(in Excel: 'CSV UTF-8').", row=1, column=_printable(col)))
        col = col.strip()
        out.append(col or f"column_{i}")
    seen = set()
    for col in out:
        if col in seen:
            raise IngestError(Problem(name, f"the column name {col!r} appears twice in the header.", row=1))
        seen.add(col)
    return out


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8", "replace")


class _CsvReader(_Reader):
    """CSV/TSV through the csv module: quoted newlines and delimiters, any line endings, exact row numbers."""

    def __init__(self, path: Path, name: str, fmt: str):
        self.name, self.fmt = name, fmt
        self._size = max(path.stat().st_size, 1)
        self._raw = open(path, "rb")
        delimiter = "\t" if fmt == "tsv" else self._sniff(self._raw.read(65536))
        self._raw.seek(0)
        self._text = io.TextIOWrapper(self._raw, encoding="utf-8-sig", errors="rerank-studio-mark", newline="")
        self._reader = csv.reader(self._text, delimiter=delimiter)
        self.delimiter = delimiter
        try:
            header = next(self._reader)
        except StopIteration:
            raise IngestError(Problem(name, "the file is empty.")) from None
        except csv.Error as exc:
            raise IngestError(Problem(name, f"the header cannot be read: {exc}", row=1)) from None
        if not any(h.strip() for h in header):
            raise IngestError(Problem(name, "the first row (the header) is blank; put column names there.",
                                      row=1))
        self.columns = _check_header(name, header)
        self._n = len(self.columns)

    @staticmethod
    def _sniff(head: bytes) -> str:
        first = head.split(b"\n", 1)[0].decode("utf-8", "replace")
        counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
        if counts[","]:
            return ","
        best = max(counts, key=counts.get)
        return best if counts[best] else ","

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        row = 1
        reader, cols, n = self._reader, self.columns, self._n
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                hint = (" An opening quote (\") without a closing one makes the rest of the file one field."
                        if "field larger" in str(exc) else "")
                raise IngestError(Problem(self.name, f"the file cannot be read here: {exc}.{hint}",
                                          row=row + 1)) from None
            row += 1
            if len(values) > n:
                extra = values[n:]
                if any(v.strip() for v in extra):
                    yield row, {"__error__": (
                        f"this row has {len(values)} values but the header has {n} columns: is there a "
                        f"'{self.delimiter}' inside a text that is not in double quotes?")}
                    continue
                values = values[:n]
            yield row, dict(zip(cols, values))

    def close(self) -> None:
        self._raw.close()


class _JsonlReader(_Reader):
    """One JSON object per line; the row is the line number."""

    def __init__(self, path: Path, name: str):
        self.name, self.fmt = name, "jsonl"
        self._size = max(path.stat().st_size, 1)
        self._raw = open(path, "rb")
        self._fh = io.TextIOWrapper(self._raw, encoding="utf-8-sig", errors="rerank-studio-mark", newline=None)
        self._peeked: list[tuple[int, dict[str, Any]]] = []
        self._line = 0
        self._iter = self._parse()
        columns: dict[str, None] = {}
        for item in self._iter:
            self._peeked.append(item)
            if "__error__" not in item[1]:
                columns.update(dict.fromkeys(item[1]))
            if len(self._peeked) >= 200:
                break
        if not self._peeked:
            raise IngestError(Problem(name, "the file has no JSON lines (it is empty)."))
        self.columns = _check_header(name, list(columns)) if columns else []

    def _parse(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for line in self._fh:
            self._line += 1
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield self._line, {"__error__": f"not valid JSON ({exc.msg} at character {exc.colno})."}
                continue
            if not isinstance(obj, dict):
                yield self._line, {"__error__": (
                    f"each line must be a JSON object with named fields; found {type(obj).__name__}.")}
                continue
            yield self._line, obj

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        yield from self._peeked
        self._peeked = []
        yield from self._iter

    def close(self) -> None:
        self._fh.close()


class _JsonReader(_Reader):
    """A JSON array of objects (or {"data": [...]}); the row is the element's position, from 1."""

    def __init__(self, path: Path, name: str):
        self.name, self.fmt = name, "json"
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise IngestError(Problem(name, f"bytes that are not UTF-8 on line {line} (byte {exc.start}); "
                                            "save the file as UTF-8.")) from None
        del raw
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IngestError(Problem(name, f"not valid JSON: {exc.msg} (line {exc.lineno}, "
                                            f"character {exc.colno}).")) from None
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) == 1:
                data = lists[0]
        if not isinstance(data, list):
            raise IngestError(Problem(name, "expected a JSON array of objects like "
                                            '[{"query": ..., "positive": ...}, ...].'))
        if not data:
            raise IngestError(Problem(name, "the JSON array is empty: there are no rows."))
        self._data = data
        self._done = 0
        columns: dict[str, None] = {}
        for item in data[:200]:
            if isinstance(item, dict):
                columns.update(dict.fromkeys(item))
        self.columns = _check_header(name, list(columns))

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for i, item in enumerate(self._data, 1):
            self._done = i
            if isinstance(item, dict):
                yield i, item
            else:
                yield i, {"__error__": f"expected an object with named fields; found {type(item).__name__}."}

    def fraction(self) -> float:
        return self._done / max(len(self._data), 1)


class _ParquetReader(_Reader):
    """Parquet in record batches (bounded memory); the row is the position from 1."""

    def __init__(self, path: Path, name: str):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.name, self.fmt = name, "parquet"
        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise IngestError(Problem(name, f"not a readable Parquet file: {exc}")) from None
        self._total = max(self._file.metadata.num_rows, 1)
        if self._file.metadata.num_rows == 0:
            raise IngestError(Problem(name, "the Parquet file has columns but no rows."))
        self.columns = _check_header(name, list(self._file.schema_arrow.names))
        self._done = 0

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        import pyarrow as pa

        row = 0
        try:
            for batch in self._file.iter_batches(batch_size=2048):
                for record in batch.to_pylist():
                    row += 1
                    self._done = row
                    yield row, record
        except pa.ArrowException as exc:
            raise IngestError(Problem(self.name, f"the Parquet file cannot be read: {exc}", row=row + 1)) from None

    def fraction(self) -> float:
        return self._done / self._total


def open_table(path: Path, name: str | None = None) -> _Reader:
    """A reader for a table file, after the type and binary checks."""
    name = name or path.name
    fmt = detect_format(path, name)
    if fmt in ("csv", "tsv"):
        return _CsvReader(path, name, fmt)
    if fmt == "jsonl":
        return _JsonlReader(path, name)
    if fmt == "json":
        return _JsonReader(path, name)
    if fmt == "parquet":
        return _ParquetReader(path, name)
    raise IngestError(Problem(name, "a BEIR folder is not a table file."))


# --- columns and shapes -------------------------------------------------------------------------------

_SYNONYMS = {
    "query": ["query", "queries", "question", "q", "anchor", "claim", "query_text", "search_query",
              "search_term", "prompt", "sentence1", "text_a", "question_text"],
    "label": ["label", "labels", "score", "relevance", "rel", "grade", "y", "is_relevant", "judgement",
              "judgment", "relevant", "target"],
    "positive": ["positive", "positives", "pos", "positive_passage", "positive_passages", "relevant_passage",
                 "positive_document", "answer", "passage", "passages", "document", "doc", "text", "context",
                 "content", "body", "sentence2", "text_b", "corpus", "response", "relevant"],
    "passage": ["passage", "passages", "document", "doc", "text", "context", "content", "body", "candidate",
                "sentence2", "text_b", "corpus", "response", "answer", "positive"],
    "negative": ["negative", "negatives", "neg", "negs", "hard_negative", "hard_negatives",
                 "negative_passage", "negative_passages", "negative_document"],
}
_WEAK_LABELS = {"relevant", "target"}
_NUMBERED_NEGATIVE = re.compile(r"^(?:hard_)?neg(?:ative)?s?_?(\d+)$")


def _norm(name: str) -> str:
    return re.sub(r"[\s\-.]+", "_", name.strip().lower())


@dataclass
class ColumnMap:
    """Which file column plays which part; the shape follows from which parts are set."""

    query: str
    positive: str | None = None  # a relevant passage per row (pairs, triplets)
    passage: str | None = None  # a passage whose relevance is in `label`
    label: str | None = None
    negatives: list[str] = field(default_factory=list)

    @property
    def shape(self) -> str:
        if self.label:
            return "labelled"
        if not self.negatives:
            return "pairs"
        return "triplets" if len(self.negatives) == 1 else "multi"

    @property
    def shape_text(self) -> str:
        return SHAPES[self.shape]

    def used(self) -> list[str]:
        cols = [self.query, self.positive, self.passage, self.label, *self.negatives]
        return [c for c in cols if c]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def parse(cls, spec: str) -> "ColumnMap":
        """The CLI's --column-map: 'query=question,positive=answer,negatives=n1|n2' or 'label=score,...'."""
        parts: dict[str, Any] = {"negatives": []}
        for item in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, value = item.partition("=")
            key = key.strip().lower()
            if not sep or not value.strip():
                raise ValueError(f"--column-map: expected ROLE=COLUMN, got {item!r}.")
            if key in ("negative", "negatives"):
                parts["negatives"] += [v.strip() for v in value.split("|") if v.strip()]
            elif key in ("query", "positive", "passage", "label"):
                parts[key] = value.strip()
            else:
                raise ValueError(f"--column-map: unknown role {key!r}; roles are query, positive, passage, "
                                 "label, negatives.")
        if "query" not in parts:
            raise ValueError("--column-map needs query=COLUMN.")
        return cls(**parts)

    def validate(self, columns: list[str], file: str) -> None:
        """Every mapped column must exist and the parts must make a shape."""
        missing = [c for c in self.used() if c not in columns]
        if missing:
            raise IngestError(Problem(
                file, f"column {missing[0]!r} is not in the file; its columns are: {', '.join(columns)}.",
                column=missing[0]))
        if len(set(self.used())) != len(self.used()):
            raise IngestError(Problem(file, "one column is mapped to two parts; each part needs its own column."))
        if self.label and not self.passage:
            raise IngestError(Problem(file, "a label column needs a passage column to label."))
        if not self.label and not self.positive:
            raise IngestError(Problem(
                file, "choose a positive (relevant passage) column, or a passage column and a label column."))
        if self.label and (self.positive or self.negatives):
            raise IngestError(Problem(
                file, "with a label column, map one passage column only (no positive/negative columns)."))


def detect_columns(columns: list[str], sample: list[dict[str, Any]] | None = None,
                   file: str = "file") -> ColumnMap:
    """Guess the column roles from the header (and a few rows); raises with what was found and expected."""
    normed = {_norm(c): c for c in columns}
    sample = sample or []

    def find(role: str, exclude: set[str]) -> str | None:
        for syn in _SYNONYMS[role]:
            if syn in normed and normed[syn] not in exclude:
                return normed[syn]
        return None

    def numeric(col: str) -> bool:
        values = [r.get(col) for r in sample if "__error__" not in r and r.get(col) not in (None, "")]
        if not values:
            return True
        ok = 0
        for v in values[:50]:
            try:
                _parse_label(v)
                ok += 1
            except ValueError:
                pass
        return ok >= max(1, len(values[:50]) * 0.8)

    query = find("query", set())
    if query is None:
        raise IngestError(Problem(
            file, f"no query column found among: {', '.join(columns) or '(none)'}. Name one 'query' (or "
                  "question / anchor), or map the columns by hand."))
    used = {query}
    numbered = sorted(
        ((int(m.group(1)), c) for c in columns if (m := _NUMBERED_NEGATIVE.match(_norm(c)))),
        key=lambda t: t[0])
    negatives = [c for _, c in numbered]
    if not negatives:
        neg = find("negative", used)
        negatives = [neg] if neg else []
    used |= set(negatives)
    label = find("label", used)
    if label is not None and _norm(label) in _WEAK_LABELS and not numeric(label):
        label = None  # e.g. a "relevant" column that holds passages, not numbers
    if label is not None and not negatives:
        passage = find("passage", used | {label})
        if passage is None:
            raise IngestError(Problem(
                file, f"found a label column {label!r} but no passage column among: {', '.join(columns)}."))
        return ColumnMap(query=query, passage=passage, label=label)
    positive = find("positive", used)
    if positive is None:
        raise IngestError(Problem(
            file, f"no passage column found among: {', '.join(columns)}. Name the relevant text 'positive' "
                  "(or passage / document / text), or map the columns by hand."))
    return ColumnMap(query=query, positive=positive, negatives=negatives)


def _parse_label(value: Any) -> float:
    """Labels are numbers >= 0 (0/1 or graded); true/false are accepted as 1/0."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        low = text.lower()
        if low in ("true", "yes"):
            return 1.0
        if low in ("false", "no"):
            return 0.0
        if not text:
            raise ValueError("the label is empty; use 0 (not relevant) or 1 (relevant), or a graded number.")
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"the label {_short(text, 40)!r} is not a number; use 0/1 or a graded "
                             "relevance (0, 1, 2, ...).") from None
    if math.isnan(number) or math.isinf(number):
        raise ValueError("the label is not a finite number.")
    if number < 0:
        raise ValueError(f"the label {number:g} is negative; labels are 0 (not relevant) or above.")
    return number


def _short(text: str, n: int = 80) -> str:
    text = _printable(text)
    return text if len(text) <= n else text[: n - 1] + "…"


# --- what to import -------------------------------------------------------------------------------


@dataclass
class ImportSpec:
    """One import: a training file or BEIR folder, an optional test file or split, and the cleaning."""

    train: Path
    train_name: str | None = None  # the name the person knows (an upload's original file name)
    columns: ColumnMap | None = None  # None: detect
    test: Path | None = None
    test_name: str | None = None
    test_columns: ColumnMap | None = None
    cleaning: CleaningOptions = field(default_factory=CleaningOptions)
    test_fraction: float = 0.0  # split this share of the new queries off as the test set
    seed: int = 0
    skip_invalid: bool = False  # drop rows with problems (listed) instead of stopping
    max_mb: float | None = None  # None: the upload limit

    def __post_init__(self) -> None:
        self.train = Path(self.train)
        self.test = Path(self.test) if self.test else None
        if not 0 <= self.test_fraction < 1:
            raise ValueError("the test fraction must be at least 0 and below 1.")
        if self.test is not None and self.test_fraction:
            raise ValueError("choose one way to get a test set: a test file or a split fraction, not both.")

    @property
    def name(self) -> str:
        return self.train_name or self.train.name


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
    return {k: v.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if isinstance(v, str) else v
            for k, v in record.items()}


def inspect(path: Path, name: str | None = None, max_mb: float | None = None) -> FileInfo:
    """Read only the head of a file (or a BEIR folder's layout) and guess the column roles."""
    path = Path(path)
    name = name or path.name
    if path.is_dir():
        layout = _beir_layout(path, name)
        return FileInfo(name=name, format="beir", columns=[], sample=[], mapping=None,
                        beir={k: (v.name if isinstance(v, Path) else v) for k, v in layout.items()})
    check_size(path, name, max_mb)
    reader = open_table(path, name)
    try:
        sample = []
        for _, record in reader.rows():
            sample.append(record)
            if len(sample) >= 50:
                break
    finally:
        reader.close()
    sample = [r for r in sample if "__error__" not in r]
    mapping, err = None, None
    try:
        mapping = detect_columns(reader.columns, sample, name)
    except IngestError as exc:
        err = str(exc)
    return FileInfo(name=name, format=reader.fmt, columns=reader.columns, sample=[displayable(r) for r in sample[:5]],
                    mapping=mapping, detect_error=err)


# --- the pass: one streaming walk over the inputs, writing only when asked ----------------------------


class _Pass:
    """Clean, validate, de-duplicate and (when `write`) insert, keeping only hashes and ids in memory."""

    def __init__(self, conn: sqlite3.Connection | None, project: int | None, spec: ImportSpec,
                 write: bool, progress: Progress | None):
        self.conn, self.project, self.spec, self.write = conn, project, spec, write
        self.progress = progress or (lambda f, m: None)
        self.cleaner = Cleaner(spec.cleaning)
        self.problems: list[Problem] = []
        self.counts = {"error": 0, "conflict": 0, "dropped": 0, "leak": 0}
        self.warnings: list[str] = []
        self.long_texts: list[Problem] = []
        self.n_long = 0
        self.samples: list[dict[str, Any]] = []
        self.changed_samples: list[dict[str, Any]] = []
        self.rows_read = self.blank_rows = self.blank_negatives = 0
        self.duplicates = self.already = self.graded = self.corpus_new = self.corpus_seen = 0
        self.import_id: int | None = None
        self.shape: str | None = None
        self.mappings: dict[str, dict[str, Any]] = {}
        self.formats: dict[str, str] = {}
        # identity maps: text hash -> id; queries also carry their split
        self.passage_ids: dict[str, int] = {}
        self.query_ids: dict[str, tuple[int, str]] = {}
        self.old_pairs: dict[tuple[int, int], float] = {}
        self.seen_pairs: dict[tuple[int, int], tuple[float, str, int]] = {}
        self.query_where: dict[int, tuple[str, int]] = {}
        self.new_queries: dict[int, str] = {}  # id -> hash (for the split)
        self.query_stats: dict[int, list[Any]] = {}  # id -> [split, pairs, positives]
        self.touched_passages: set[int] = set()
        self.grade_updates: dict[tuple[int, int], float] = {}
        self._pending_passages: list[tuple] = []
        self._pending_queries: list[tuple] = []
        self._pending_pairs: list[tuple] = []
        self._next_passage = self._next_query = 1
        self.existing_train_pairs = self.existing_train_positives = self.existing_test_queries = 0
        if conn is not None:
            self._load_existing()

    # -- existing state ------------------------------------------------------------------------------

    def _load_existing(self) -> None:
        c = self.conn
        self._next_passage = c.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM passages").fetchone()[0]
        self._next_query = c.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM queries").fetchone()[0]
        if self.project is None:
            return
        p = (self.project,)
        self.passage_ids = dict(c.execute("SELECT hash, id FROM passages WHERE project_id = ?", p).fetchall())
        self.query_ids = {
            h: (i, s) for h, i, s in c.execute("SELECT hash, id, split FROM queries WHERE project_id = ?", p)
        }
        self.old_pairs = {
            (q, s): lab for q, s, lab in
            c.execute("SELECT query_id, passage_id, label FROM pairs WHERE project_id = ?", p)
        }
        row = c.execute(
            "SELECT COUNT(*), COALESCE(SUM(p.label > 0), 0) FROM pairs p JOIN queries q ON q.id = p.query_id "
            "WHERE p.project_id = ? AND q.split = 'train'", p).fetchone()
        self.existing_train_pairs, self.existing_train_positives = int(row[0]), int(row[1])
        self.existing_test_queries = int(c.execute(
            "SELECT COUNT(*) FROM queries WHERE project_id = ? AND split = 'test'", p).fetchone()[0])

    # -- problems --------------------------------------------------------------------------------------

    @property
    def blocked(self) -> bool:
        return bool(self.counts["error"] or self.counts["conflict"])

    def problem(self, p: Problem) -> None:
        self.counts[p.kind] = self.counts.get(p.kind, 0) + 1
        if len(self.problems) < MAX_LISTED:
            self.problems.append(p)

    def row_problem(self, file: str, row: int, column: str | None, message: str) -> None:
        """A bad row: stops the import, or is dropped and listed when the person chose to skip bad rows."""
        kind = "dropped" if self.spec.skip_invalid else "error"
        self.problem(Problem(file, message, row=row, column=column, kind=kind))

    # -- texts -----------------------------------------------------------------------------------------

    def text(self, value: Any, file: str, row: int, column: str, role: str) -> str | None:
        """A cleaned, checked text cell, or None after recording why it is unusable."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            value = ""
        elif isinstance(value, (list, tuple, dict)):
            self.row_problem(file, row, column, f"expected a text, found a {type(value).__name__}.")
            return None
        elif not isinstance(value, str):
            value = str(value)
        if _decode_errors and _SURROGATE.search(value):
            bad = _SURROGATE.search(value)
            before = value[max(0, bad.start() - 20): bad.start()]
            self.row_problem(file, row, column, (
                f"bytes that are not UTF-8 (0x{ord(bad.group()) - 0xDC00:02x} after {_short(before, 30)!r}); "
                "save the file as UTF-8 (in Excel: 'CSV UTF-8')."))
            return None
        if len(value) > MAX_TEXT_CHARS:
            self.row_problem(file, row, column, (
                f"a text of {len(value):,} characters (the limit is {MAX_TEXT_CHARS:,}); is a quote left open?"))
            return None
        cleaned, rules = self.cleaner(value)
        if len(self.samples) < 5 or (rules and len(self.changed_samples) < 8):
            entry = {"file": file, "row": row, "column": column, "before": value[:2000],
                     "after": cleaned[:2000], "changed": ", ".join(rules)}
            if len(self.samples) < 5:
                self.samples.append(entry)
            elif rules:
                self.changed_samples.append(entry)
        if not cleaned.strip():
            what = "blank" if not value.strip() else f"blank after cleaning (it was {_short(value, 60)!r})"
            self.row_problem(file, row, column, f"the {role} is {what}.")
            return None
        if len(cleaned) > LONG_TEXT_CHARS:
            self.n_long += 1
            if len(self.long_texts) < 20:
                self.long_texts.append(Problem(
                    file, f"a {role} of {len(cleaned):,} characters; the model reads only about the first "
                          "512 tokens (a few thousand characters).", row=row, column=column, kind="warning"))
        return cleaned

    # -- ids -------------------------------------------------------------------------------------------

    def passage_id(self, text: str, source: str, doc_id: str | None) -> int:
        h = store.text_hash(text)
        pid = self.passage_ids.get(h)
        if pid is None:
            pid = self._next_passage
            self._next_passage += 1
            self.passage_ids[h] = pid
            if source == "corpus":
                self.corpus_new += 1
            if self.write and not self.blocked:
                self._pending_passages.append((pid, self.project, text, h, doc_id, source))
        return pid

    def query_id(self, text: str, split: str, qid: str | None, file: str, row: int,
                 column: str) -> int | None:
        h = store.text_hash(text)
        hit = self.query_ids.get(h)
        if hit is None:
            i = self._next_query
            self._next_query += 1
            self.query_ids[h] = (i, split)
            self.new_queries[i] = h
            self.query_where[i] = (file, row)
            self.query_stats[i] = [split, 0, 0]
            if self.write and not self.blocked:
                self._pending_queries.append((i, self.project, text, h, qid, split))
            return i
        i, old_split = hit
        if old_split != split:
            where = self.query_where.get(i)
            origin = f"{where[0]} row {where[1]}" if where else f"the project's {old_split} set"
            self.problem(Problem(
                file, f"left out: this query is also in the {old_split} data ({origin}), and a query cannot be "
                      f"in both the training and the test set: {_short(text)!r}", row=row, column=column,
                kind="leak", detail={"other": origin, "query": _short(text, 200)}))
            return None
        self.query_stats.setdefault(i, [split, 0, 0])
        return i

    # -- rows ------------------------------------------------------------------------------------------

    def add_pairs(self, file: str, row: int, query: str, query_col: str,
                  passages: list[tuple[str, float, str, str | None]], split: str,
                  qid: str | None = None) -> None:
        """One source row: a cleaned query and its (passage, label, column, doc id) items."""
        q = self.query_id(query, split, qid, file, row, query_col)
        if q is None:
            return
        for text, label, column, doc_id in passages:
            p = self.passage_id(text, "pairs", doc_id)
            key = (q, p)
            old = self.old_pairs.get(key)
            if old is not None:
                verdict = compare_labels(old, label)
                if verdict == "conflict":
                    self._conflict(file, row, column, query, text, label, old, "an earlier import of the project")
                else:
                    self.already += 1
                continue
            seen = self.seen_pairs.get(key)
            if seen is not None:
                verdict = compare_labels(seen[0], label)
                if verdict == "duplicate":
                    self.duplicates += 1
                elif verdict == "grade":
                    self.graded += 1
                    if label > seen[0]:
                        self.seen_pairs[key] = (label, seen[1], seen[2])
                        self.grade_updates[key] = label
                else:
                    self._conflict(file, row, column, query, text, label, seen[0],
                                   f"{seen[1]} row {seen[2]}")
                continue
            self.seen_pairs[key] = (label, file, row)
            self.touched_passages.add(p)
            stats = self.query_stats[q]
            stats[1] += 1
            stats[2] += is_relevant(label)
            if self.write and not self.blocked:
                self._pending_pairs.append((self.project, q, p, float(label), "upload", self.import_id, row))
        if len(self._pending_pairs) >= BATCH:
            self.flush()

    def _conflict(self, file: str, row: int, column: str, query: str, passage: str, label: float,
                  other_label: float, other: str) -> None:
        rel = "relevant" if is_relevant(label) else "not relevant"
        other_rel = "relevant" if is_relevant(other_label) else "not relevant"
        self.problem(Problem(
            file, f"conflict: this passage is marked {rel} (label {label:g}) here but {other_rel} "
                  f"(label {other_label:g}) in {other}, for the same query {_short(query, 60)!r}.",
            row=row, column=column, kind="conflict",
            detail={"other": other, "label": label, "other_label": other_label,
                    "query": _short(query, 200), "passage": _short(passage, 200)}))

    def add_corpus(self, text: str, doc_id: str | None) -> None:
        self.corpus_seen += 1
        self.passage_id(text, "corpus", doc_id)
        if len(self._pending_passages) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.write or self.blocked:
            self._pending_passages.clear()
            self._pending_queries.clear()
            self._pending_pairs.clear()
            return
        c = self.conn
        if self._pending_passages:
            c.executemany("INSERT INTO passages (id, project_id, text, hash, doc_id, source) "
                          "VALUES (?, ?, ?, ?, ?, ?)", self._pending_passages)
            self._pending_passages.clear()
        if self._pending_queries:
            c.executemany("INSERT INTO queries (id, project_id, text, hash, qid, split) VALUES (?, ?, ?, ?, ?, ?)",
                          self._pending_queries)
            self._pending_queries.clear()
        if self._pending_pairs:
            c.executemany("INSERT INTO pairs (project_id, query_id, passage_id, label, origin, import_id, "
                          "source_row) VALUES (?, ?, ?, ?, ?, ?, ?)", self._pending_pairs)
            self._pending_pairs.clear()

    # -- table files -----------------------------------------------------------------------------------

    def table(self, path: Path, name: str, columns: ColumnMap | None, split: str,
              done: float, share: float) -> None:
        """Stream one table file into pairs of the given split."""
        check_size(path, name, self.spec.max_mb)
        reader = open_table(path, name)
        try:
            if columns is None:
                head = []
                rows = reader.rows()
                for item in rows:
                    head.append(item)
                    if len(head) >= 50:
                        break
                columns = detect_columns(reader.columns, [r for _, r in head], name)
                source = _chain(head, rows)
            else:
                source = reader.rows()
            columns.validate(reader.columns, name)
            self.mappings[name] = columns.to_dict()
            self.formats[name] = reader.fmt
            self.shape = self.shape or columns.shape
            n = 0
            for row, record in source:
                n += 1
                self._record(name, row, record, columns, split)
                if n % 1000 == 0:
                    self.progress(done + share * reader.fraction(), f"Reading {name}: {n:,} rows")
            if n == 0:
                raise IngestError(Problem(name, "the file has a header but no data rows."))
            self.flush()
        finally:
            reader.close()

    def _record(self, file: str, row: int, record: dict[str, Any], m: ColumnMap, split: str) -> None:
        self.rows_read += 1
        if "__error__" in record:
            self.row_problem(file, row, None, record["__error__"])
            return
        values = [record.get(c) for c in m.used()]
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
            self.blank_rows += 1
            return
        before = self.counts["error"] + self.counts["dropped"]
        query = self.text(record.get(m.query), file, row, m.query, "query")
        items: list[tuple[str, float, str, str | None]] = []
        if m.label:
            try:
                label = _parse_label(record.get(m.label))
            except ValueError as exc:
                self.row_problem(file, row, m.label, str(exc))
                label = None
            passage = self.text(record.get(m.passage), file, row, m.passage, "passage")
            if passage is not None and label is not None:
                items.append((passage, label, m.passage, None))
        else:
            for text in _as_list(record.get(m.positive)) or [""]:
                passage = self.text(text, file, row, m.positive, "positive passage")
                if passage is not None:
                    items.append((passage, 1.0, m.positive, None))
            for col in m.negatives:
                for text in _as_list(record.get(col)):
                    if not isinstance(text, str) or text.strip():
                        neg = self.text(text, file, row, col, "negative passage")
                        if neg is not None:
                            items.append((neg, 0.0, col, None))
                    else:
                        self.blank_negatives += 1
        if query is None or self.counts["error"] + self.counts["dropped"] > before:
            return  # the row is unusable: recorded above
        self.add_pairs(file, row, query, m.query, items, split)

    # -- BEIR folders ----------------------------------------------------------------------------------

    def beir(self, folder: Path, name: str) -> None:
        """corpus.jsonl + queries.jsonl + qrels/{train,test}.tsv; unjudged documents join as the mining pool."""
        layout = _beir_layout(folder, name)
        self.shape = "labelled"
        self.formats[name] = "beir"
        queries = self._beir_queries(layout["queries"], f"{name}/queries.jsonl")
        qrels: dict[str, list[tuple[str, str, float, int]]] = {}
        for split in ("train", "test"):
            if layout.get(split):
                qrels[split] = self._beir_qrels(layout[split], f"{name}/qrels/{split}.tsv", queries)
        if layout.get("dev") and not layout.get("test"):
            self.warnings.append("qrels/dev.tsv was not imported: only train.tsv and test.tsv are read.")
        needed = {d for rows in qrels.values() for _, d, _, _ in rows}
        docs = self._beir_corpus(layout["corpus"], f"{name}/corpus.jsonl", needed)
        for split, rows in qrels.items():
            file = f"{name}/qrels/{split}.tsv"
            missing = [(q, d, row) for q, d, _, row in rows if d not in docs]
            for q, d, row in missing[:MAX_LISTED]:
                self.problem(Problem(file, f"corpus id {d!r} is not in corpus.jsonl (or its text is blank).",
                                     row=row, column="corpus-id"))
            for n, (q, d, label, row) in enumerate(rows, 1):
                if d not in docs or q not in queries:
                    continue
                self.rows_read += 1
                self.add_pairs(file, row, queries[q], "query-id", [(docs[d], label, "corpus-id", d)], split,
                               qid=q)
                if n % 2000 == 0:
                    self.progress(0.6 + 0.4 * n / len(rows), f"Pairing {split} qrels: {n:,}")
        self.flush()
        self.mappings[name] = {"corpus": "corpus.jsonl", "queries": "queries.jsonl",
                               **{s: f"qrels/{s}.tsv" for s in qrels}}

    def _beir_queries(self, path: Path, file: str) -> dict[str, str]:
        out: dict[str, str] = {}
        reader = _JsonlReader(path, file)
        for row, rec in reader.rows():
            if "__error__" in rec:
                self.problem(Problem(file, rec["__error__"], row=row))
                continue
            qid = rec.get("_id")
            if qid is None:
                self.problem(Problem(file, "a query without an '_id'.", row=row, column="_id"))
                continue
            text = self.text(rec.get("text"), file, row, "text", "query")
            if text is not None:
                out[str(qid)] = text
        reader.close()
        return out

    def _beir_qrels(self, path: Path, file: str, queries: dict[str, str]) -> list[tuple[str, str, float, int]]:
        rows: list[tuple[str, str, float, int]] = []
        with open(path, encoding="utf-8-sig", errors="rerank-studio-mark", newline="") as fh:
            reader = csv.reader(fh, delimiter="\t")
            header = next(reader, None)
            if header is None:
                raise IngestError(Problem(file, "the qrels file is empty."))
            start = 1
            if len(header) >= 3 and _norm(header[0]) in ("query_id", "qid", "query"):
                names = [h.strip() for h in header[:3]]
            else:  # no header: the first line is data
                names = ["query-id", "corpus-id", "score"]
                start = 0
                reader = _chain([header], reader)
            row = start
            for values in reader:
                row += 1
                if not values or not "".join(values).strip():
                    continue
                if len(values) < 3:
                    self.problem(Problem(file, f"expected 3 tab-separated values (query-id, corpus-id, score), "
                                               f"found {len(values)}.", row=row))
                    continue
                q, d = values[0].strip(), values[1].strip()
                try:
                    label = _parse_label(values[2])
                except ValueError as exc:
                    self.problem(Problem(file, str(exc), row=row, column=names[2]))
                    continue
                if q not in queries:
                    self.problem(Problem(file, f"query id {q!r} is not in queries.jsonl.", row=row,
                                         column=names[0]))
                    continue
                rows.append((q, d, label, row))
        return rows

    def _beir_corpus(self, path: Path, file: str, needed: set[str]) -> dict[str, str]:
        docs: dict[str, str] = {}
        reader = _JsonlReader(path, file)
        n = 0
        for row, rec in reader.rows():
            n += 1
            if "__error__" in rec:
                self.problem(Problem(file, rec["__error__"], row=row))
                continue
            did = rec.get("_id")
            if did is None:
                self.problem(Problem(file, "a document without an '_id'.", row=row, column="_id"))
                continue
            did = str(did)
            title = rec.get("title") or ""
            body = rec.get("text") or ""
            raw = f"{title}. {body}".strip() if isinstance(title, str) and title.strip() else body
            if did in needed:
                text = self.text(raw, file, row, "text", "document")
                if text is not None:
                    docs[did] = text
            else:
                if not (isinstance(raw, str) and raw.strip()):
                    continue  # an empty unjudged document is simply not part of the pool
                text = self.text(raw, file, row, "text", "document")
                if text is not None:
                    self.add_corpus(text, did)
            if n % 2000 == 0:
                self.progress(0.6 * reader.fraction(), f"Reading corpus.jsonl: {n:,} documents")
        reader.close()
        self.flush()
        return docs

    # -- the end: split, checks, summary ---------------------------------------------------------------

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
        if self.write and not self.blocked:
            self.conn.executemany("UPDATE queries SET split = 'test' WHERE id = ?", [(i,) for i in chosen])
        return chosen

    def apply_grades(self) -> None:
        if self.write and not self.blocked and self.grade_updates:
            self.conn.executemany(
                "UPDATE pairs SET label = ? WHERE query_id = ? AND passage_id = ?",
                [(lab, q, p) for (q, p), lab in self.grade_updates.items()])

    def summary(self) -> dict[str, Any]:
        per = {"train": [0, 0, 0, 0], "test": [0, 0, 0, 0]}  # queries, pairs, positives, queries w/o positive
        for split, n_pairs, n_pos in self.query_stats.values():
            if n_pairs == 0:
                continue
            s = per[split]
            s[0] += 1
            s[1] += n_pairs
            s[2] += n_pos
            s[3] += n_pos == 0
        return {
            "shape": self.shape,
            "shape_text": SHAPES.get(self.shape or "", None),
            "formats": self.formats,
            "columns": self.mappings,
            "rows": self.rows_read,
            "pairs": per["train"][1],
            "positives": per["train"][2],
            "negatives": per["train"][1] - per["train"][2],
            "unique_queries": per["train"][0],
            "unique_passages": len(self.touched_passages),
            "test_pairs": per["test"][1],
            "test_queries": per["test"][0],
            "test_queries_without_positive": per["test"][3],
            "corpus_passages": self.corpus_new,
            "duplicates_removed": self.duplicates,
            "already_in_project": self.already,
            "graded_duplicates": self.graded,
            "blank_rows": self.blank_rows,
            "blank_negatives": self.blank_negatives,
            "dropped_rows": self.counts["dropped"],
            "split_overlap_dropped": self.counts["leak"],
            "conflicts": self.counts["conflict"],
            "errors": self.counts["error"],
            "long_texts": self.n_long,
            "cleaning": self.cleaner.report(),
        }

    def final_warnings(self, s: dict[str, Any]) -> list[str]:
        out = list(self.warnings)
        total_train = self.existing_train_pairs + s["pairs"]
        if 0 < total_train < MIN_EXAMPLES:
            out.append(f"Only {total_train} labelled training examples: fine-tuning a reranker usually needs at "
                       f"least {MIN_EXAMPLES}; expect noisy results, and add more data if you can.")
        if s["test_queries"] == 0 and self.existing_test_queries == 0:
            out.append("No test set: split one off by query or upload one, or the model cannot be evaluated.")
        if s["test_queries_without_positive"]:
            out.append(f"{s['test_queries_without_positive']} test queries have no relevant passage and "
                       "count for nothing in evaluation.")
        if self.n_long:
            first = self.long_texts[0]
            out.append(f"{self.n_long} texts are longer than {LONG_TEXT_CHARS:,} characters (first: {first.where()}); "
                       "the model reads only the first ~512 tokens — see Quality for what is truncated.")
        if s["graded_duplicates"]:
            out.append(f"{s['graded_duplicates']} repeated pairs had different relevance grades; the highest was kept.")
        if s["dropped_rows"]:
            out.append(f"{s['dropped_rows']} rows with problems were skipped (listed with their row numbers).")
        if s["split_overlap_dropped"]:
            out.append(f"{s['split_overlap_dropped']} rows were left out because their query is on the other side "
                       "of the train/test split (a query cannot be in both; listed with their row numbers).")
        if s["blank_rows"]:
            out.append(f"{s['blank_rows']} blank rows were ignored.")
        return out

    def nothing_usable(self, s: dict[str, Any], name: str) -> Problem | None:
        if self.existing_train_positives + s["positives"] > 0:
            return None
        if s["pairs"] == 0:
            why = "no usable training pairs"
        else:
            why = "no relevant (positive) training pair: every label is 0"
        return Problem(name, f"nothing usable: {why}. Fix the problems listed, or check the column mapping.")


def _chain(first: list, rest: Iterator) -> Iterator:
    yield from first
    yield from rest


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if hasattr(value, "tolist") and not isinstance(value, str):
        return list(value.tolist())
    return [value]


def _beir_layout(folder: Path, name: str) -> dict[str, Any]:
    layout: dict[str, Any] = {"corpus": folder / "corpus.jsonl", "queries": folder / "queries.jsonl"}
    for key, path in list(layout.items()):
        if not path.is_file():
            raise IngestError(Problem(name, f"a BEIR folder needs {path.name}; it is missing from {folder}."))
    qrels = folder / "qrels"
    for split in ("train", "test", "dev"):
        p = qrels / f"{split}.tsv"
        layout[split] = p if p.is_file() else None
    if layout["train"] is None:
        raise IngestError(Problem(name, f"a BEIR folder needs qrels/train.tsv (the training pairs); "
                                        f"{qrels} has none."))
    return layout


# --- the public entry points ------------------------------------------------------------------------


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
        return any(p.kind in ("error", "conflict") for p in self.problems)

    @property
    def conflicts(self) -> list[Problem]:
        return [p for p in self.problems if p.kind == "conflict"]


def _execute(conn: sqlite3.Connection | None, project: int | None, spec: ImportSpec, write: bool,
             progress: Progress | None) -> _Pass:
    started = time.perf_counter()
    p = _Pass(conn, project, spec, write, progress)
    if write:
        cur = conn.execute(
            "INSERT INTO imports (project_id, created_at, filename, split, summary) VALUES (?, ?, ?, ?, '{}')",
            (project, store.now(), spec.name + (f" + {spec.test_name or spec.test.name}" if spec.test else ""),
             "train+test" if spec.test or spec.test_fraction else "train"))
        p.import_id = int(cur.lastrowid)
    if spec.train.is_dir():
        p.beir(spec.train, spec.name)
    else:
        share = 0.8 if spec.test else 1.0
        p.table(spec.train, spec.name, spec.columns, "train", 0.0, share)
        if spec.test is not None:
            p.table(spec.test, spec.test_name or spec.test.name, spec.test_columns, "test", share, 1 - share)
    if spec.test_fraction:
        p.split_off(spec.test_fraction, spec.seed)
    p.apply_grades()
    p.seconds = time.perf_counter() - started
    return p


def _result(p: _Pass, spec: ImportSpec) -> tuple[dict[str, Any], list[str]]:
    s = p.summary()
    s["split"] = ({"method": "beir"} if spec.train.is_dir()
                  else {"method": "upload", "file": spec.test_name or spec.test.name} if spec.test
                  else {"method": "by query", "fraction": spec.test_fraction, "seed": spec.seed}
                  if spec.test_fraction else {"method": "none"})
    s["cleaning_options"] = spec.cleaning.names()
    warnings = p.final_warnings(s)
    s["warnings"] = warnings
    s["seconds"] = round(getattr(p, "seconds", 0.0), 3)
    return s, warnings


def dry_run(conn: sqlite3.Connection | None, project: int | None, spec: ImportSpec,
            progress: Progress | None = None) -> Report:
    """Everything an import does except writing: the counts, problems and samples the Data page shows."""
    try:
        p = _execute(conn, project, spec, write=False, progress=progress)
    except IngestError as exc:
        return Report(summary={}, problems=exc.problems, samples=[], warnings=[], total_problems=exc.total)
    s, warnings = _result(p, spec)
    problems = list(p.problems)
    if not p.blocked:
        blocker = p.nothing_usable(s, spec.name)
        if blocker:
            problems.append(blocker)
    samples = p.changed_samples + [x for x in p.samples if x["changed"]] + [x for x in p.samples if not x["changed"]]
    return Report(summary=s, problems=problems + p.long_texts[:5], samples=samples[:10], warnings=warnings,
                  total_problems=sum(p.counts.values()))


def _project_in_transaction(conn: sqlite3.Connection, project: int | str) -> tuple[int, str]:
    if isinstance(project, int):
        row = conn.execute("SELECT id, name FROM projects WHERE id = ?", (project,)).fetchone()
        if row is None:
            raise ValueError(f"No project with id {project}.")
        return int(row[0]), row[1]
    name = project.strip()
    if not name:
        raise ValueError("A project needs a name.")
    row = conn.execute("SELECT id FROM projects WHERE name = ?", (name,)).fetchone()
    if row:
        return int(row[0]), name
    cur = conn.execute("INSERT INTO projects (name, created_at) VALUES (?, ?)", (name, store.now()))
    return int(cur.lastrowid), name


def run_import(conn: sqlite3.Connection, project: int | str, spec: ImportSpec,
               progress: Progress | None = None) -> dict[str, Any]:
    """Import in one transaction (a new project name is created inside it); any problem leaves the store as it was."""
    with store.transaction(conn):
        pid, name = _project_in_transaction(conn, project)
        p = _execute(conn, pid, spec, write=True, progress=progress)
        if p.blocked:
            raise IngestError(p.problems, total=p.counts["error"] + p.counts["conflict"] + p.counts["dropped"])
        s, _ = _result(p, spec)
        blocker = p.nothing_usable(s, spec.name)
        if blocker:
            raise IngestError(blocker)
        s.update({"project": name, "project_id": pid, "import_id": p.import_id,
                  "dropped": [x.to_dict() for x in p.problems if x.kind in ("dropped", "leak")][:50]})
        conn.execute("UPDATE imports SET summary = ? WHERE id = ?", (json.dumps(s, default=str), p.import_id))
    if progress:
        progress(1.0, "Imported")
    s["project_totals"] = store.project_counts(conn, pid)
    return s


def list_imports(conn: sqlite3.Connection, project: int) -> list[dict[str, Any]]:
    """The project's import history, newest first, with each summary's headline counts."""
    rows = conn.execute("SELECT id, created_at, filename, split, summary FROM imports WHERE project_id = ? "
                        "ORDER BY id DESC", (project,)).fetchall()
    out = []
    for r in rows:
        s = json.loads(r["summary"] or "{}")
        out.append({"id": r["id"], "when": r["created_at"][:19].replace("T", " "), "file": r["filename"],
                    "pairs": s.get("pairs"), "test pairs": s.get("test_pairs"),
                    "duplicates removed": s.get("duplicates_removed"), "shape": s.get("shape_text")})
    return out


def first_pairs(conn: sqlite3.Connection, project: int, limit: int = 20) -> list[dict[str, Any]]:
    """A glimpse of the stored training pairs, without loading them all."""
    rows = conn.execute(
        "SELECT q.text AS query, s.text AS passage, p.label FROM pairs p JOIN queries q ON q.id = p.query_id "
        "JOIN passages s ON s.id = p.passage_id WHERE p.project_id = ? AND q.split = 'train' "
        "ORDER BY p.id LIMIT ?", (project, limit)).fetchall()
    return [dict(r) for r in rows]


# --- CLI ------------------------------------------------------------------------------------------------


def cli_arguments(parser) -> None:
    """`python -m core ingest PATH ...`: the Data page's import, headless."""
    parser.add_argument("path", type=Path, help="training pairs (CSV, TSV, JSONL, JSON, Parquet) or a BEIR folder")
    parser.add_argument("--test", type=Path, help="a test set file (same formats)")
    parser.add_argument("--project", help="project name (created if missing; default: the file's name)")
    clean = parser.add_mutually_exclusive_group()
    clean.add_argument("--clean", default="html,urls,control,symbols,whitespace",
                       help="comma-separated cleaning rules (default: all): html,urls,control,symbols,whitespace")
    clean.add_argument("--no-clean", action="store_true", help="keep texts exactly as they are")
    parser.add_argument("--test-fraction", type=float, default=0.0,
                        help="split this share of queries off as the test set (by query)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split")
    parser.add_argument("--column-map", help="e.g. query=question,positive=answer,negatives=n1|n2 "
                                             "or query=q,passage=doc,label=score")
    parser.add_argument("--test-column-map", help="column map of the test file (default: detected)")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="drop rows with problems (listed in the summary) instead of stopping")
    parser.add_argument("--max-mb", type=float, default=UPLOAD_LIMIT_MB, help="file size limit in MB")
    parser.add_argument("--dry-run", action="store_true", help="check and count without writing")
    parser.add_argument("--workspace", type=Path, help="workspace folder (default: RERANK_STUDIO_HOME)")


def _cli_progress(fraction: float, message: str) -> None:
    if sys.stderr.isatty():
        print(f"\r{fraction:6.1%} {message[:70]:<70}", end="", file=sys.stderr, flush=True)


def cli_main(args) -> dict[str, Any]:
    cleaning = CleaningOptions.none() if args.no_clean else CleaningOptions.from_names(args.clean)
    spec = ImportSpec(
        train=args.path, columns=ColumnMap.parse(args.column_map) if args.column_map else None,
        test=args.test, test_columns=ColumnMap.parse(args.test_column_map) if args.test_column_map else None,
        cleaning=cleaning, test_fraction=args.test_fraction, seed=args.seed,
        skip_invalid=args.skip_invalid, max_mb=args.max_mb)
    conn = store.connect(args.workspace)
    name = args.project or (args.path.name if args.path.is_dir() else args.path.stem)
    try:
        if args.dry_run:
            pid = conn.execute("SELECT id FROM projects WHERE name = ?", (name,)).fetchone()
            report = dry_run(conn, int(pid[0]) if pid else None, spec, _cli_progress)
            if report.blocking:
                raise IngestError([p for p in report.problems if p.kind in ("error", "conflict")],
                                  total=report.total_problems)
            return {"dry_run": True, "project": name, **report.summary}
        return run_import(conn, name, spec, _cli_progress)
    finally:
        if sys.stderr.isatty():
            print(file=sys.stderr)
        conn.close()
