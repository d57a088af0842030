"""The only file readers: CSV/TSV, JSONL, JSON and Parquet as streams of (row, record), rows numbered as people
see them (the header is row 1; JSONL rows are line numbers), in bounded memory."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.ingest.formats import detect_format
from core.ingest.problems import IngestError, Problem, printable

MAX_TEXT_CHARS = 1_000_000  # refuse: almost certainly a broken quote swallowing the file

csv.field_size_limit(2 * MAX_TEXT_CHARS)

SURROGATE = re.compile("[\udc80-\udcff]")


class _BadBytes:
    """How many undecodable byte runs were read (in any file), so cells are searched only when there were some."""

    count = 0


BAD_BYTES = _BadBytes()


def _mark_bad_bytes(exc: UnicodeError) -> tuple[str | bytes, int]:
    """surrogateescape that also counts."""
    BAD_BYTES.count += 1
    return codecs.lookup_error("surrogateescape")(exc)


codecs.register_error("rerank-studio-mark", _mark_bad_bytes)


class TableReader:
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


def check_header(name: str, columns: list[str]) -> list[str]:
    """Column names stripped, blanks named, non-UTF-8 and repeated names refused."""
    out = []
    for i, col in enumerate(columns, 1):
        if SURROGATE.search(col):
            raise IngestError(
                Problem(
                    name,
                    "the header holds bytes that are not UTF-8; save the file as UTF-8 "
                    "(in Excel: 'CSV UTF-8').",
                    row=1,
                    column=printable(col),
                )
            )
        col = col.strip()
        out.append(col or f"column_{i}")
    seen = set()
    for col in out:
        if col in seen:
            raise IngestError(Problem(name, f"the column name {col!r} appears twice in the header.", row=1))
        seen.add(col)
    return out


class CsvReader(TableReader):
    """CSV/TSV through the csv module: quoted newlines and delimiters, any line endings, exact row numbers."""

    def __init__(self, path: Path, name: str, fmt: str):
        self.name, self.fmt = name, fmt
        self._size = max(path.stat().st_size, 1)
        self._raw = open(path, "rb")
        delimiter = "\t" if fmt == "tsv" else self._sniff(self._raw.read(65536))
        self._raw.seek(0)
        self._text = io.TextIOWrapper(
            self._raw, encoding="utf-8-sig", errors="rerank-studio-mark", newline=""
        )
        self._reader = csv.reader(self._text, delimiter=delimiter)
        self.delimiter = delimiter
        try:
            header = next(self._reader)
        except StopIteration:
            raise IngestError(Problem(name, "the file is empty.")) from None
        except csv.Error as exc:
            raise IngestError(Problem(name, f"the header cannot be read: {exc}", row=1)) from None
        if not any(h.strip() for h in header):
            raise IngestError(
                Problem(name, "the first row (the header) is blank; put column names there.", row=1)
            )
        self.columns = check_header(name, header)
        self._n = len(self.columns)

    @staticmethod
    def _sniff(head: bytes) -> str:
        first = head.split(b"\n", 1)[0].decode("utf-8", "replace")
        counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
        if counts[","]:
            return ","
        best = max(counts, key=lambda d: counts[d])
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
                hint = (
                    ' An opening quote (") without a closing one makes the rest of the file one field.'
                    if "field larger" in str(exc)
                    else ""
                )
                raise IngestError(
                    Problem(self.name, f"the file cannot be read here: {exc}.{hint}", row=row + 1)
                ) from None
            row += 1
            if len(values) > n:
                extra = values[n:]
                if any(v.strip() for v in extra):
                    yield (
                        row,
                        {
                            "__error__": (
                                f"this row has {len(values)} values but the header has {n} columns: is there a "
                                f"'{self.delimiter}' inside a text that is not in double quotes?"
                            )
                        },
                    )
                    continue
                values = values[:n]
            yield row, dict(zip(cols, values))

    def close(self) -> None:
        self._raw.close()


class JsonlReader(TableReader):
    """One JSON object per line; the row is the line number."""

    def __init__(self, path: Path, name: str):
        self.name, self.fmt = name, "jsonl"
        self._size = max(path.stat().st_size, 1)
        self._raw = open(path, "rb")
        self._fh = io.TextIOWrapper(
            self._raw, encoding="utf-8-sig", errors="rerank-studio-mark", newline=None
        )
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
        self.columns = check_header(name, list(columns)) if columns else []

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
                yield (
                    self._line,
                    {
                        "__error__": (
                            f"each line must be a JSON object with named fields; found {type(obj).__name__}."
                        )
                    },
                )
                continue
            yield self._line, obj

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        yield from self._peeked
        self._peeked = []
        yield from self._iter

    def close(self) -> None:
        self._fh.close()


class JsonReader(TableReader):
    """A JSON array of objects (or {"data": [...]}); the row is the element's position, from 1."""

    def __init__(self, path: Path, name: str):
        self.name, self.fmt = name, "json"
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise IngestError(
                Problem(
                    name,
                    f"bytes that are not UTF-8 on line {line} (byte {exc.start}); save the file as UTF-8.",
                )
            ) from None
        del raw
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IngestError(
                Problem(name, f"not valid JSON: {exc.msg} (line {exc.lineno}, character {exc.colno}).")
            ) from None
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) == 1:
                data = lists[0]
        if not isinstance(data, list):
            raise IngestError(
                Problem(name, 'expected a JSON array of objects like [{"query": ..., "positive": ...}, ...].')
            )
        if not data:
            raise IngestError(Problem(name, "the JSON array is empty: there are no rows."))
        self._data = data
        self._done = 0
        columns: dict[str, None] = {}
        for item in data[:200]:
            if isinstance(item, dict):
                columns.update(dict.fromkeys(item))
        self.columns = check_header(name, list(columns))

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for i, item in enumerate(self._data, 1):
            self._done = i
            if isinstance(item, dict):
                yield i, item
            else:
                yield i, {"__error__": f"expected an object with named fields; found {type(item).__name__}."}

    def fraction(self) -> float:
        return self._done / max(len(self._data), 1)


class ParquetReader(TableReader):
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
        self.columns = check_header(name, list(self._file.schema_arrow.names))
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
            raise IngestError(
                Problem(self.name, f"the Parquet file cannot be read: {exc}", row=row + 1)
            ) from None

    def fraction(self) -> float:
        return self._done / self._total


class LinesReader(TableReader):
    """A plain text file, one passage per line (an extra corpus); the row is the line number."""

    def __init__(self, path: Path, name: str):
        self.name, self.fmt, self.columns = name, "txt", ["text"]
        self._size = max(path.stat().st_size, 1)
        self._raw = open(path, "rb")
        self._fh = io.TextIOWrapper(
            self._raw, encoding="utf-8-sig", errors="rerank-studio-mark", newline=None
        )

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for line, text in enumerate(self._fh, 1):
            yield line, {"text": text.rstrip("\n")}

    def close(self) -> None:
        self._fh.close()


def open_table(path: Path, name: str | None = None) -> TableReader:
    """A reader for a table file, after the type and binary checks."""
    name = name or path.name
    fmt = detect_format(path, name)
    if fmt in ("csv", "tsv"):
        return CsvReader(path, name, fmt)
    if fmt == "jsonl":
        return JsonlReader(path, name)
    if fmt == "json":
        return JsonReader(path, name)
    if fmt == "parquet":
        return ParquetReader(path, name)
    raise IngestError(Problem(name, "a BEIR folder is not a table file."))


def head_rows(rows: Iterator[tuple[int, dict[str, Any]]], n: int = 50) -> list[tuple[int, dict[str, Any]]]:
    """The first n (row, record) items of a stream (the stream goes on after them)."""
    out = []
    for item in rows:
        out.append(item)
        if len(out) >= n:
            break
    return out


def chain(first: list, rest: Iterator) -> Iterator:
    """Items already read, then the rest of the stream."""
    yield from first
    yield from rest


def as_list(value: Any) -> list[Any]:
    """A cell as a list of values: JSON arrays and Parquet lists hold several passages, other cells one."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if hasattr(value, "tolist") and not isinstance(value, str):
        return list(value.tolist())
    return [value]
