"""SQLite workspace: one WAL database per workspace folder, so a killed process loses nothing it acknowledged."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

DB_NAME = "studio.db"

# Append-only: each entry moves the schema one version up. Never edit a step that has shipped.
MIGRATIONS: list[str] = [
    # 1: the whole first schema
    """
    CREATE TABLE projects (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        settings TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE imports (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        filename TEXT NOT NULL,
        split TEXT NOT NULL,
        summary TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE passages (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        text TEXT NOT NULL,
        hash TEXT NOT NULL,
        doc_id TEXT,
        source TEXT NOT NULL DEFAULT 'pairs',
        UNIQUE (project_id, hash)
    );
    CREATE TABLE queries (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        text TEXT NOT NULL,
        hash TEXT NOT NULL,
        qid TEXT,
        split TEXT NOT NULL CHECK (split IN ('train', 'test')),
        UNIQUE (project_id, hash)
    );
    CREATE TABLE pairs (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        query_id INTEGER NOT NULL REFERENCES queries(id) ON DELETE CASCADE,
        passage_id INTEGER NOT NULL REFERENCES passages(id) ON DELETE CASCADE,
        label REAL NOT NULL,
        origin TEXT NOT NULL DEFAULT 'upload',
        import_id INTEGER REFERENCES imports(id) ON DELETE SET NULL,
        source_row INTEGER,
        UNIQUE (query_id, passage_id)
    );
    CREATE INDEX pairs_project ON pairs (project_id, query_id);
    CREATE TABLE mining_runs (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'running',
        params TEXT NOT NULL DEFAULT '{}',
        stats TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE negatives (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        query_id INTEGER NOT NULL REFERENCES queries(id) ON DELETE CASCADE,
        passage_id INTEGER NOT NULL REFERENCES passages(id) ON DELETE CASCADE,
        positive_id INTEGER REFERENCES passages(id) ON DELETE SET NULL,
        mining_run_id INTEGER REFERENCES mining_runs(id) ON DELETE SET NULL,
        kind TEXT NOT NULL DEFAULT 'hard' CHECK (kind IN ('hard', 'random')),
        rank INTEGER,
        score REAL,
        positive_score REAL,
        ce_score REAL,
        risk REAL NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'unjudged'
            CHECK (status IN ('unjudged', 'negative', 'relevant', 'skipped')),
        version INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT,
        UNIQUE (project_id, query_id, passage_id)
    );
    CREATE INDEX negatives_queue ON negatives (project_id, status, risk DESC);
    CREATE INDEX negatives_query ON negatives (project_id, query_id);
    CREATE TABLE judgements (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        negative_id INTEGER NOT NULL REFERENCES negatives(id) ON DELETE CASCADE,
        old_status TEXT NOT NULL,
        new_status TEXT NOT NULL,
        at TEXT NOT NULL,
        actor TEXT,
        undoes INTEGER REFERENCES judgements(id),
        undone INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX judgements_project ON judgements (project_id, id);
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'queued'
            CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
        config TEXT NOT NULL DEFAULT '{}',
        snapshot TEXT NOT NULL DEFAULT '{}',
        metrics TEXT NOT NULL DEFAULT '{}',
        progress TEXT NOT NULL DEFAULT '{}',
        model_dir TEXT,
        pid INTEGER,
        heartbeat_at TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        error TEXT
    );
    CREATE TABLE run_events (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        step INTEGER,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX run_events_run ON run_events (run_id, id);
    CREATE TABLE evaluations (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        run_id TEXT REFERENCES runs(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        params TEXT NOT NULL DEFAULT '{}',
        results TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # 2: review desk: a bulk action undoes as one batch; fast per-candidate history and risk-ordered queues
    """
    ALTER TABLE judgements ADD COLUMN batch INTEGER;
    CREATE INDEX judgements_negative ON judgements (negative_id, id);
    CREATE INDEX judgements_batch ON judgements (batch) WHERE batch IS NOT NULL;
    CREATE INDEX negatives_risk ON negatives (project_id, risk DESC);
    """,
    # 3: quality page: a truncated pair re-pointed to a snippet of its passage remembers the original (reversible)
    """
    CREATE TABLE snippets (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        pair_id INTEGER NOT NULL UNIQUE REFERENCES pairs(id) ON DELETE CASCADE,
        original_passage_id INTEGER NOT NULL REFERENCES passages(id) ON DELETE CASCADE,
        snippet_passage_id INTEGER NOT NULL REFERENCES passages(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL
    );
    CREATE INDEX snippets_project ON snippets (project_id);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(RuntimeError):
    """A workspace problem a person can act on (unwritable folder, full disk, newer schema)."""


def now() -> str:
    """Timestamps as ISO-8601 UTC so rows sort and read the same everywhere."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def text_hash(text: str) -> str:
    """Stable identity of a text, used for de-duplication and the embedding cache."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def workspace_dir() -> Path:
    """The workspace lives in RERANK_STUDIO_HOME, else in the user's home, so several can coexist."""
    env = os.environ.get("RERANK_STUDIO_HOME")
    return Path(env).expanduser() if env else Path.home() / ".rerank-studio"


def runs_dir(workspace: Path | None = None) -> Path:
    """Trained models and checkpoints sit beside the database, one folder per run."""
    return (workspace or workspace_dir()) / "runs"


def cache_dir(workspace: Path | None = None) -> Path:
    """Embedding caches and other recomputable data."""
    return (workspace or workspace_dir()) / "cache"


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
            folder / DB_NAME, timeout=30, isolation_level=None, check_same_thread=False
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
    """One write transaction: all of it lands or none of it does."""
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


# --- projects -------------------------------------------------------------------------------


def create_project(conn: sqlite3.Connection, name: str) -> int:
    """Projects are named by people; names are unique and not blank."""
    name = name.strip()
    if not name:
        raise ValueError("A project needs a name.")
    with transaction(conn):
        existing = conn.execute("SELECT id FROM projects WHERE name = ?", (name,)).fetchone()
        if existing:
            raise ValueError(f"A project named {name!r} already exists.")
        cur = conn.execute(
            "INSERT INTO projects (name, created_at) VALUES (?, ?)", (name, now())
        )
        return int(cur.lastrowid)


def get_or_create_project(conn: sqlite3.Connection, name: str) -> int:
    """The CLI's --project creates on first use."""
    row = conn.execute("SELECT id FROM projects WHERE name = ?", (name.strip(),)).fetchone()
    return int(row["id"]) if row else create_project(conn, name)


def project_id(conn: sqlite3.Connection, name: str) -> int:
    """Resolve a project name, with a message that lists what exists when it is wrong."""
    row = conn.execute("SELECT id FROM projects WHERE name = ?", (name,)).fetchone()
    if row is None:
        names = [p["name"] for p in list_projects(conn)]
        raise ValueError(f"No project named {name!r}. Projects: {', '.join(names) or 'none yet'}.")
    return int(row["id"])


def list_projects(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """All projects, oldest first, with their headline counts."""
    rows = conn.execute(
        """SELECT p.id, p.name, p.created_at,
                  (SELECT COUNT(*) FROM pairs WHERE project_id = p.id) AS pairs
           FROM projects p ORDER BY p.id"""
    ).fetchall()
    return [dict(r) for r in rows]


def delete_project(conn: sqlite3.Connection, project: int) -> None:
    """Remove a project and everything under it in one transaction."""
    with transaction(conn):
        conn.execute("DELETE FROM projects WHERE id = ?", (project,))


def project_settings(conn: sqlite3.Connection, project: int) -> dict[str, Any]:
    """Per-project choices (models, last parameters) that pages remember."""
    row = conn.execute("SELECT settings FROM projects WHERE id = ?", (project,)).fetchone()
    return json.loads(row["settings"]) if row else {}


def update_project_settings(conn: sqlite3.Connection, project: int, **values: Any) -> None:
    """Merge values into the project's settings."""
    with transaction(conn):
        settings = project_settings(conn, project)
        settings.update(values)
        conn.execute(
            "UPDATE projects SET settings = ? WHERE id = ?", (json.dumps(settings), project)
        )


# --- counts the pages show everywhere ---------------------------------------------------------


def project_counts(conn: sqlite3.Connection, project: int) -> dict[str, int]:
    """Headline figures: pairs, unique queries and passages per split, negatives and judgements."""
    one = lambda sql: int(conn.execute(sql, (project,)).fetchone()[0])  # noqa: E731
    return {
        "train_pairs": one(
            "SELECT COUNT(*) FROM pairs p JOIN queries q ON q.id = p.query_id "
            "WHERE p.project_id = ? AND q.split = 'train'"
        ),
        "train_positives": one(
            "SELECT COUNT(*) FROM pairs p JOIN queries q ON q.id = p.query_id "
            "WHERE p.project_id = ? AND q.split = 'train' AND p.label > 0"
        ),
        "test_pairs": one(
            "SELECT COUNT(*) FROM pairs p JOIN queries q ON q.id = p.query_id "
            "WHERE p.project_id = ? AND q.split = 'test'"
        ),
        "train_queries": one(
            "SELECT COUNT(*) FROM queries WHERE project_id = ? AND split = 'train'"
        ),
        "test_queries": one("SELECT COUNT(*) FROM queries WHERE project_id = ? AND split = 'test'"),
        "passages": one("SELECT COUNT(*) FROM passages WHERE project_id = ?"),
        "negatives": one("SELECT COUNT(*) FROM negatives WHERE project_id = ?"),
        "judged": one(
            "SELECT COUNT(*) FROM negatives WHERE project_id = ? AND status != 'unjudged'"
        ),
    }


def fetch_pairs(
    conn: sqlite3.Connection, project: int, split: str = "train"
) -> list[dict[str, Any]]:
    """Labelled pairs of one split with their texts, as plain dicts."""
    rows = conn.execute(
        """SELECT p.id, p.query_id, p.passage_id, p.label, p.origin,
                  q.text AS query, s.text AS passage, q.qid, s.doc_id
           FROM pairs p JOIN queries q ON q.id = p.query_id JOIN passages s ON s.id = p.passage_id
           WHERE p.project_id = ? AND q.split = ? ORDER BY p.id""",
        (project, split),
    ).fetchall()
    return [dict(r) for r in rows]


def fetch_passages(conn: sqlite3.Connection, project: int) -> list[dict[str, Any]]:
    """Every passage of the project (pairs and extra corpus), the pool negatives come from."""
    rows = conn.execute(
        "SELECT id, text, doc_id, source FROM passages WHERE project_id = ? ORDER BY id",
        (project,),
    ).fetchall()
    return [dict(r) for r in rows]


def data_version(conn: sqlite3.Connection, project: int) -> str:
    """A cheap fingerprint that changes whenever pairs, passages or negatives change (cache key)."""
    parts = []
    for table in ("pairs", "passages", "queries", "negatives"):
        row = conn.execute(
            f"SELECT COUNT(*), COALESCE(MAX(id), 0) FROM {table} WHERE project_id = ?", (project,)
        ).fetchone()
        parts.append(f"{row[0]}:{row[1]}")
    row = conn.execute(
        "SELECT COALESCE(MAX(id), 0) FROM judgements WHERE project_id = ?", (project,)
    ).fetchone()
    parts.append(str(row[0]))
    return "|".join(parts)


# --- bulk writes shared by ingest, the sample project and tests -------------------------------


def upsert_passages(
    conn: sqlite3.Connection,
    project: int,
    texts: list[str],
    *,
    source: str = "pairs",
    doc_ids: list[str | None] | None = None,
) -> list[int]:
    """Ids for these passage texts, inserting the new ones (call inside `transaction`)."""
    ids = []
    for i, text in enumerate(texts):
        h = text_hash(text)
        row = conn.execute(
            "SELECT id FROM passages WHERE project_id = ? AND hash = ?", (project, h)
        ).fetchone()
        if row is None:
            doc_id = doc_ids[i] if doc_ids else None
            cur = conn.execute(
                "INSERT INTO passages (project_id, text, hash, doc_id, source) VALUES (?, ?, ?, ?, ?)",
                (project, text, h, doc_id, source),
            )
            ids.append(int(cur.lastrowid))
        else:
            ids.append(int(row["id"]))
    return ids


def upsert_query(
    conn: sqlite3.Connection, project: int, text: str, split: str, qid: str | None = None
) -> int:
    """Id of a query text in a split; a query already in the other split is an error (leakage)."""
    h = text_hash(text)
    row = conn.execute(
        "SELECT id, split FROM queries WHERE project_id = ? AND hash = ?", (project, h)
    ).fetchone()
    if row is not None:
        if row["split"] != split:
            raise ValueError(
                f"Query {text[:80]!r} is already in the {row['split']} set; a query cannot be on both sides."
            )
        return int(row["id"])
    cur = conn.execute(
        "INSERT INTO queries (project_id, text, hash, qid, split) VALUES (?, ?, ?, ?, ?)",
        (project, text, h, qid, split),
    )
    return int(cur.lastrowid)


def insert_pairs(
    conn: sqlite3.Connection,
    project: int,
    rows: list[tuple[str, str, float]],
    *,
    split: str = "train",
    origin: str = "upload",
    import_id: int | None = None,
) -> int:
    """Add (query, passage, label) rows, skipping exact duplicates; returns how many were new (inside `transaction`)."""
    added = 0
    passage_ids = upsert_passages(conn, project, [r[1] for r in rows])
    for (query, _, label), passage in zip(rows, passage_ids):
        qid = upsert_query(conn, project, query, split)
        cur = conn.execute(
            "INSERT OR IGNORE INTO pairs (project_id, query_id, passage_id, label, origin, import_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (project, qid, passage, float(label), origin, import_id),
        )
        added += cur.rowcount
    return added
