"""The workspace schema: append-only migrations, each moving the database one version up."""

from __future__ import annotations

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
    # 4: background jobs (mining, evaluation, quality, snippets, training): one queue, survives page and server
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        args TEXT NOT NULL DEFAULT '{}',
        run_id TEXT REFERENCES runs(id) ON DELETE CASCADE,
        status TEXT NOT NULL DEFAULT 'queued'
            CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled', 'interrupted')),
        fraction REAL NOT NULL DEFAULT 0,
        message TEXT NOT NULL DEFAULT '',
        eta_s REAL,
        pid INTEGER,
        heartbeat_at TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        result TEXT NOT NULL DEFAULT '{}',
        error TEXT
    );
    CREATE INDEX jobs_queue ON jobs (status, id);
    CREATE INDEX jobs_project ON jobs (project_id, id);
    CREATE INDEX jobs_run ON jobs (run_id) WHERE run_id IS NOT NULL;
    """,
    # 5: suspect labels (issue 25): every labelled pair's suspicion from held-out models, proposed missing
    # positives, and their judgements with history (a flip or drop saves the pairs row it changed, for exact undo)
    """
    CREATE TABLE suspects (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        query_id INTEGER NOT NULL REFERENCES queries(id) ON DELETE CASCADE,
        passage_id INTEGER NOT NULL REFERENCES passages(id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('wrong_positive', 'wrong_negative', 'missing_positive')),
        label REAL,
        score REAL NOT NULL DEFAULT 0,
        pattern TEXT,
        reasons TEXT NOT NULL DEFAULT '[]',
        evidence TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'open'
            CHECK (status IN ('open', 'kept', 'flipped', 'dropped', 'skipped')),
        saved_pair TEXT,
        version INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT,
        UNIQUE (project_id, query_id, passage_id)
    );
    CREATE INDEX suspects_queue ON suspects (project_id, kind, status, score DESC);
    CREATE INDEX suspects_pattern ON suspects (project_id, pattern) WHERE pattern IS NOT NULL;
    CREATE TABLE suspect_judgements (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        suspect_id INTEGER NOT NULL REFERENCES suspects(id) ON DELETE CASCADE,
        old_status TEXT NOT NULL,
        new_status TEXT NOT NULL,
        at TEXT NOT NULL,
        actor TEXT,
        undoes INTEGER REFERENCES suspect_judgements(id),
        undone INTEGER NOT NULL DEFAULT 0,
        batch INTEGER
    );
    CREATE INDEX suspect_judgements_project ON suspect_judgements (project_id, id);
    CREATE INDEX suspect_judgements_suspect ON suspect_judgements (suspect_id, id);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
