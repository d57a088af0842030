"""Which reader a file needs: its type by extension, checked against its first bytes and its size."""

from __future__ import annotations

import tomllib
from pathlib import Path

from core.ingest.problems import IngestError, Problem

ROOT = Path(__file__).resolve().parents[2]

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}
UPLOAD_TYPES = ["csv", "tsv", "jsonl", "json", "parquet"]

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


def upload_limit_mb() -> float:
    """The same limit the browser upload has (.streamlit/config.toml server.maxUploadSize), default 200 MB."""
    try:
        with open(ROOT / ".streamlit" / "config.toml", "rb") as fh:
            return float(tomllib.load(fh).get("server", {}).get("maxUploadSize", 200))
    except (OSError, tomllib.TOMLDecodeError, ValueError):
        return 200.0


UPLOAD_LIMIT_MB = upload_limit_mb()


def check_size(path: Path, name: str, max_mb: float | None = None) -> None:
    """Refuse files over the upload limit before reading a byte of them."""
    limit = UPLOAD_LIMIT_MB if max_mb is None else max_mb
    size = path.stat().st_size
    if size > limit * 1024 * 1024:
        raise IngestError(
            Problem(
                name,
                f"the file is {size / 1024 / 1024:,.1f} MB; the upload limit is {limit:g} MB "
                "(split the file, or raise the limit with the CLI's --max-mb).",
            )
        )


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
        raise IngestError(
            Problem(
                name,
                f"unsupported file type {ext or '(none)'!r}: use CSV, TSV, JSONL, JSON or Parquet, "
                "or a BEIR folder (corpus.jsonl, queries.jsonl, qrels/*.tsv).",
            )
        )
    if path.stat().st_size == 0:
        raise IngestError(Problem(name, "the file is empty (0 bytes)."))
    with open(path, "rb") as fh:
        head = fh.read(8192)
    if fmt == "parquet":
        if not head.startswith(b"PAR1"):
            raise IngestError(Problem(name, "this is not a Parquet file (it does not start with 'PAR1')."))
        return fmt
    _check_text_head(head, name, fmt)
    if not head.lstrip(b"\xef\xbb\xbf \t\r\n") and path.stat().st_size <= len(head):
        raise IngestError(Problem(name, "the file is empty (only whitespace)."))
    return fmt


def _check_text_head(head: bytes, name: str, fmt: str) -> None:
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            raise IngestError(
                Problem(
                    name,
                    f"this is {what}, not a {fmt.upper()} text file; export the data as "
                    f"{'.parquet' if magic == b'PAR1' else 'CSV (UTF-8)'} and upload that.",
                )
            )
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise IngestError(Problem(name, "the file is UTF-16 encoded; save it as UTF-8 and upload it again."))
    nul = head.find(b"\x00")
    controls = sum(1 for b in head if b < 9 or 13 < b < 32)
    if nul >= 0 or controls > len(head) // 10:
        where = f" (a NUL byte at byte {nul})" if nul >= 0 else ""
        raise IngestError(
            Problem(
                name,
                f"the file holds binary data{where}, not {fmt.upper()} text: is it really a "
                f"{fmt.upper()} file that was renamed?",
            )
        )
