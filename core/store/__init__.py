"""The workspace store (SQLite + folders); `from core import store; store.connect()` keeps working."""

from core.store.db import StoreError, connect, now, text_hash, transaction, workspace_of
from core.store.paths import (
    UnsafePathError,
    cache_dir,
    exports_dir,
    runs_dir,
    safe_export_path,
    safe_upload_name,
    save_upload,
    uploads_dir,
    workspace_dir,
)
from core.store.projects import (
    create_project,
    delete_project,
    get_or_create_project,
    list_projects,
    project_counts,
    project_id,
    project_in_transaction,
    project_settings,
    update_project_settings,
)
from core.store.rows import (
    data_version,
    fetch_passages,
    fetch_pairs,
    insert_pairs,
    upsert_passages,
    upsert_query,
)
from core.store.schema import DB_NAME, MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "DB_NAME", "MIGRATIONS", "SCHEMA_VERSION", "StoreError", "UnsafePathError", "cache_dir", "connect",
    "create_project", "data_version", "delete_project", "exports_dir", "fetch_pairs", "fetch_passages",
    "get_or_create_project", "insert_pairs", "list_projects", "now", "project_counts", "project_id",
    "project_in_transaction", "project_settings", "runs_dir", "safe_export_path", "safe_upload_name", "save_upload",
    "text_hash", "transaction", "update_project_settings", "upsert_passages", "upsert_query", "uploads_dir",
    "workspace_dir", "workspace_of",
]
