"""The workspace store: schema, migrations, transactions, projects."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core import store
from tests.conftest import ROOT


def test_new_workspace_is_wal_at_current_schema(workspace):
    conn = store.connect(workspace)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    assert (workspace / store.DB_NAME).is_file()


def test_default_workspace_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RERANK_STUDIO_HOME", str(tmp_path / "x"))
    assert store.workspace_dir() == tmp_path / "x"
    monkeypatch.delenv("RERANK_STUDIO_HOME")
    assert store.workspace_dir().name == ".rerank-studio"


def test_newer_schema_is_refused(workspace):
    conn = store.connect(workspace)
    conn.execute(f"PRAGMA user_version = {store.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(store.StoreError, match="newer Rerank Studio"):
        store.connect(workspace)


def test_transaction_rolls_back_everything(db):
    pid = store.create_project(db, "p")
    with pytest.raises(RuntimeError):
        with store.transaction(db):
            db.execute(
                "INSERT INTO passages (project_id, text, hash) VALUES (?, 'a', ?)",
                (pid, store.text_hash("a")),
            )
            raise RuntimeError("boom")
    assert store.project_counts(db, pid)["passages"] == 0


def test_one_connection_shared_by_two_threads_takes_turns_to_write(db):
    """A page's connection can be reached from two script threads at once; neither write may fail or be lost."""
    import threading
    import time

    pid = store.create_project(db, "p")
    errors: list[BaseException] = []

    def write(tag: str) -> None:
        try:
            for i in range(20):
                with store.transaction(db):
                    db.execute(
                        "INSERT INTO passages (project_id, text, hash) VALUES (?, ?, ?)",
                        (pid, f"{tag}{i}", store.text_hash(f"{tag}{i}")),
                    )
                    time.sleep(0.002)  # hold the transaction open while the other thread tries to begin
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(tag,)) for tag in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.project_counts(db, pid)["passages"] == 40


def test_projects_are_unique_and_named(db):
    store.create_project(db, "SciFact")
    with pytest.raises(ValueError, match="already exists"):
        store.create_project(db, " SciFact ")
    with pytest.raises(ValueError, match="needs a name"):
        store.create_project(db, "   ")
    with pytest.raises(ValueError, match="Projects: SciFact"):
        store.project_id(db, "nope")
    assert store.get_or_create_project(db, "SciFact") == store.project_id(db, "SciFact")


def test_committed_rows_survive_a_killed_writer(workspace):
    code = (
        "import os; from core import store;"
        "c = store.connect(os.environ['W']); store.create_project(c, 'kept');"
        "os.kill(os.getpid(), 9)"
    )
    subprocess.run([sys.executable, "-c", code], env={**__import__("os").environ, "W": str(workspace)})
    conn = store.connect(workspace)
    assert [p["name"] for p in store.list_projects(conn)] == ["kept"]
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_core_does_not_import_streamlit():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, pkgutil, importlib, core;"
            "[importlib.import_module('core.' + m.name) for m in pkgutil.iter_modules(core.__path__)];"
            "print(len(sys.modules) > 100, 'streamlit' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "True False"  # every core module imported, Streamlit not


@pytest.mark.parametrize(
    "name", ["", "  ", "..", ".", "../escape", "a/../../escape", "/etc/passwd", "~/x", "a\x00b"]
)
def test_safe_export_path_refuses_unsafe_names(workspace, name):
    with pytest.raises(store.UnsafePathError, match="not allowed"):
        store.safe_export_path(workspace, name)


def test_safe_export_path_refuses_symlink_escapes(workspace, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    store.exports_dir(workspace).mkdir(parents=True)
    (store.exports_dir(workspace) / "link").symlink_to(outside)
    with pytest.raises(store.UnsafePathError, match="outside"):
        store.safe_export_path(workspace, "link/x")
    assert store.safe_export_path(workspace, "sub/x") == store.exports_dir(workspace).resolve() / "sub" / "x"


def test_one_export_path_rule_refuses_absolute_paths_for_every_caller(workspace):
    """The dataset export (export.safe_path) accepted an absolute path inside exports while the model export
    (evaluation.safe_export_path) refused it. Now there is one rule, it refuses both, and no module of core keeps
    a rule of its own (a function of that name must call store.safe_export_path)."""
    import ast

    inside = str(store.exports_dir(workspace).resolve() / "x")
    with pytest.raises(store.UnsafePathError, match="absolute paths are refused"):
        store.safe_export_path(workspace, inside)
    from core.review import dataset_export

    assert dataset_export.safe_export_path is store.safe_export_path
    own_rules = []
    for path in (ROOT / "core").rglob("*.py"):
        if path.parent.name == "store":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name in ("safe_path", "safe_export_path"):
                calls = {
                    getattr(c.func, "attr", getattr(c.func, "id", None))
                    for c in ast.walk(node)
                    if isinstance(c, ast.Call)
                }
                if "safe_export_path" not in calls:
                    own_rules.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not own_rules, own_rules
