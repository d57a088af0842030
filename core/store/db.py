"""SQLite workspace: one WAL database per workspace folder, so a killed process loses nothing it acknowledged."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from core.errors import StudioError
from core.store.paths import workspace_dir
from core.store.schema import DB_NAME, MIGRATIONS, SCHEMA_VERSION


class StoreError(StudioError):
    """A workspace problem a person can act on (unwritable folder, full disk, newer schema)."""


class StoreConnection(sqlite3.Connection):
    """A connection whose write transactions take turns: a page's connection lives in the session and Streamlit
    runs a session's script runs on new threads, while SQLite refuses a second BEGIN on one connection."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.write_lock = threading.RLock()


def now() -> str:
    """Timestamps as ISO-8601 UTC so rows sort and read the same everywhere."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def text_hash(text: str) -> str:
    """Stable identity of a text, used for de-duplication and the embedding cache."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"The workspace database was written by a newer Rerank Studio (schema {version}, "
            f"this one knows {SCHEMA_VERSION}). Upgrade the studio or use another RERANK_STUDIO_HOME."
        )
    for step in range(version, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # executescript would commit the open transaction; run statements one by one instead.
            for statement in _split_sql(MIGRATIONS[step]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _split_sql(script: str) -> list[str]:
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return [s for s in statements if s]


def connect(workspace: Path | str | None = None) -> sqlite3.Connection:
    """Open (and create or migrate) the workspace database; transactions are explicit via `transaction`."""
    folder = Path(workspace) if workspace else workspace_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            folder / DB_NAME,
            timeout=30,
            isolation_level=None,
            check_same_thread=False,
            factory=StoreConnection,
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 30000")
        _migrate(conn)
    except (OSError, sqlite3.OperationalError) as exc:
        raise StoreError(f"Cannot open the workspace at {folder}: {exc}") from exc
    return conn


def workspace_of(conn: sqlite3.Connection) -> Path:
    """The folder a connection's database lives in (runs and caches sit beside it)."""
    path = conn.execute("PRAGMA database_list").fetchone()["file"]
    return Path(path).parent


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: all of it lands or none of it does (one at a time on a shared connection)."""
    lock = getattr(conn, "write_lock", None) or threading.RLock()
    with lock:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # read-only file or folder, locked past the timeout
            raise StoreError(f"Could not save to the workspace: {exc}") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:  # SQLite may already have rolled back by itself (disk full)
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise StoreError(f"Could not save to the workspace: {exc}") from exc
            raise


def inserted_id(cursor: sqlite3.Cursor) -> int:
    """The id an INSERT just gave its row (sqlite3 types lastrowid as optional; after an INSERT it is set)."""
    if cursor.lastrowid is None:
        raise StoreError("The insert returned no row id.")
    return int(cursor.lastrowid)
