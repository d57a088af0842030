"""The import entry points: a dry run (counts, problems, samples; nothing written) and the real import in one
transaction, plus the project's import history."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from core import store
from core.ingest.beir import import_beir
from core.ingest.problems import IngestError, Report
from core.ingest.report import final_warnings, nothing_usable, summary
from core.ingest.spec import ImportSpec
from core.ingest.tables import import_table
from core.ingest.validation import ImportPass
from core.progress import Progress


def _execute(
    conn: sqlite3.Connection | None,
    project: int | None,
    spec: ImportSpec,
    write: bool,
    progress: Progress | None,
) -> ImportPass:
    started = time.perf_counter()
    p = ImportPass(conn, project, spec, write, progress)
    p.writer.start_import(
        spec.name + (f" + {spec.test_label}" if spec.test else ""),
        "train+test" if spec.test or spec.test_fraction else "train",
    )
    if spec.train.is_dir():
        import_beir(p, spec.train, spec.name)
    else:
        share = 0.8 if spec.test else 1.0
        import_table(p, spec.train, spec.name, spec.columns, "train", 0.0, share)
        if spec.test is not None:
            import_table(
                p, spec.test, spec.test_label or spec.test.name, spec.test_columns, "test", share, 1 - share
            )
    if spec.test_fraction:
        p.pairs.split_off(spec.test_fraction, spec.seed)
    p.writer.set_grades(p.pairs.grade_updates)
    p.seconds = time.perf_counter() - started
    return p


def _result(p: ImportPass, spec: ImportSpec) -> tuple[dict[str, Any], list[str]]:
    s = summary(p)
    s["split"] = (
        {"method": "beir"}
        if spec.train.is_dir()
        else {"method": "upload", "file": spec.test_label}
        if spec.test
        else {"method": "by query", "fraction": spec.test_fraction, "seed": spec.seed}
        if spec.test_fraction
        else {"method": "none"}
    )
    s["cleaning_options"] = spec.cleaning.names()
    warnings = final_warnings(p, s)
    s["warnings"] = warnings
    s["seconds"] = round(p.seconds, 3)
    return s, warnings


def dry_run(
    conn: sqlite3.Connection | None, project: int | None, spec: ImportSpec, progress: Progress | None = None
) -> Report:
    """Everything an import does except writing: the counts, problems and samples the Data page shows."""
    try:
        p = _execute(conn, project, spec, write=False, progress=progress)
    except IngestError as exc:
        return Report(summary={}, problems=exc.problems, samples=[], warnings=[], total_problems=exc.total)
    s, warnings = _result(p, spec)
    problems = list(p.log.problems)
    if not p.blocked:
        blocker = nothing_usable(p, s, spec.name)
        if blocker:
            problems.append(blocker)
    return Report(
        summary=s,
        problems=problems + p.texts.long_texts[:5],
        samples=p.texts.shown_samples(),
        warnings=warnings,
        total_problems=sum(p.log.counts.values()),
    )


def run_import(
    conn: sqlite3.Connection, project: int | str, spec: ImportSpec, progress: Progress | None = None
) -> dict[str, Any]:
    """Import in one transaction (a new project name is created inside it); any problem leaves the store as it was."""
    with store.transaction(conn):
        pid, name = store.project_in_transaction(conn, project)
        p = _execute(conn, pid, spec, write=True, progress=progress)
        counts = p.log.counts
        if p.blocked:
            raise IngestError(p.log.problems, total=counts["error"] + counts["conflict"] + counts["dropped"])
        s, _ = _result(p, spec)
        blocker = nothing_usable(p, s, spec.name)
        if blocker:
            raise IngestError(blocker)
        s.update(
            {
                "project": name,
                "project_id": pid,
                "import_id": p.writer.import_id,
                "dropped": [x.to_dict() for x in p.log.problems if x.kind in ("dropped", "leak")][:50],
            }
        )
        p.writer.save_summary(json.dumps(s, default=str))
    if progress:
        progress(1.0, "Imported")
    s["project_totals"] = store.project_counts(conn, pid)
    return s


def list_imports(conn: sqlite3.Connection, project: int) -> list[dict[str, Any]]:
    """The project's import history, newest first, with each summary's headline counts."""
    rows = conn.execute(
        "SELECT id, created_at, filename, split, summary FROM imports WHERE project_id = ? ORDER BY id DESC",
        (project,),
    ).fetchall()
    out = []
    for r in rows:
        s = json.loads(r["summary"] or "{}")
        out.append(
            {
                "id": r["id"],
                "when": r["created_at"][:19].replace("T", " "),
                "file": r["filename"],
                "pairs": s.get("pairs"),
                "test pairs": s.get("test_pairs"),
                "duplicates removed": s.get("duplicates_removed"),
                "shape": s.get("shape_text"),
            }
        )
    return out


def first_pairs(conn: sqlite3.Connection, project: int, limit: int = 20) -> list[dict[str, Any]]:
    """A glimpse of the stored training pairs, without loading them all."""
    rows = conn.execute(
        "SELECT q.text AS query, s.text AS passage, p.label FROM pairs p JOIN queries q ON q.id = p.query_id "
        "JOIN passages s ON s.id = p.passage_id WHERE p.project_id = ? AND q.split = 'train' "
        "ORDER BY p.id LIMIT ?",
        (project, limit),
    ).fetchall()
    return [dict(r) for r in rows]
