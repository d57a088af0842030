"""`python -m core ingest PATH ...`: the Data page's import, headless; prints one JSON summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core import store
from core.ingest.cleaning import CleaningOptions
from core.ingest.columns import ColumnMap
from core.ingest.formats import UPLOAD_LIMIT_MB
from core.ingest.problems import IngestError
from core.ingest.run import dry_run, run_import
from core.ingest.spec import ImportSpec


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    """`python -m core ingest PATH ...`: the Data page's import, headless."""
    parser.add_argument(
        "path", type=Path, help="training pairs (CSV, TSV, JSONL, JSON, Parquet) or a BEIR folder"
    )
    parser.add_argument("--test", type=Path, help="a test set file (same formats)")
    parser.add_argument("--project", help="project name (created if missing; default: the file's name)")
    clean = parser.add_mutually_exclusive_group()
    clean.add_argument(
        "--clean",
        default="html,urls,control,symbols,whitespace",
        help="comma-separated cleaning rules (default: all): html,urls,control,symbols,whitespace",
    )
    clean.add_argument("--no-clean", action="store_true", help="keep texts exactly as they are")
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.0,
        help="split this share of queries off as the test set (by query)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split")
    parser.add_argument(
        "--column-map",
        help="e.g. query=question,positive=answer,negatives=n1|n2 or query=q,passage=doc,label=score",
    )
    parser.add_argument("--test-column-map", help="column map of the test file (default: detected)")
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="drop rows with problems (listed in the summary) instead of stopping",
    )
    parser.add_argument("--max-mb", type=float, default=UPLOAD_LIMIT_MB, help="file size limit in MB")
    parser.add_argument("--dry-run", action="store_true", help="check and count without writing")
    parser.add_argument("--workspace", type=Path, help="workspace folder (default: RERANK_STUDIO_HOME)")


def _cli_progress(fraction: float, message: str) -> None:
    if sys.stderr.isatty():
        print(f"\r{fraction:6.1%} {message[:70]:<70}", end="", file=sys.stderr, flush=True)


def cli_main(args: argparse.Namespace) -> dict[str, Any]:
    """Run the import (or --dry-run) and return its summary."""
    cleaning = CleaningOptions.none() if args.no_clean else CleaningOptions.from_names(args.clean)
    spec = ImportSpec(
        train=args.path,
        columns=ColumnMap.parse(args.column_map) if args.column_map else None,
        test=args.test,
        test_columns=ColumnMap.parse(args.test_column_map) if args.test_column_map else None,
        cleaning=cleaning,
        test_fraction=args.test_fraction,
        seed=args.seed,
        skip_invalid=args.skip_invalid,
        max_mb=args.max_mb,
    )
    conn = store.connect(args.workspace)
    name = args.project or (args.path.name if args.path.is_dir() else args.path.stem)
    try:
        if args.dry_run:
            pid = conn.execute("SELECT id FROM projects WHERE name = ?", (name,)).fetchone()
            report = dry_run(conn, int(pid[0]) if pid else None, spec, _cli_progress)
            if report.blocking:
                raise IngestError(
                    [p for p in report.problems if p.kind in ("error", "conflict")],
                    total=report.total_problems,
                )
            return {"dry_run": True, "project": name, **report.summary}
        return run_import(conn, name, spec, _cli_progress)
    finally:
        if sys.stderr.isatty():
            print(file=sys.stderr)
        conn.close()
