"""`python -m core suspects --project P`: run the suspect search headless and print counts and the top reasons."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.store.db import connect
from core.store.projects import project_id
from core.suspects.find import find_suspects
from core.suspects.records import LABELLED, SuspectFilter, counts, queue


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    """--project, optional --split, --embed-model, --per-query, --top."""
    parser.add_argument("--project", required=True, help="project name")
    parser.add_argument("--split", choices=["train", "test"], default="train", help="which labels to check")
    parser.add_argument(
        "--embed-model", default=None, help="held-out embedding model (default: the project's)"
    )
    parser.add_argument("--per-query", type=int, default=3, help="missing positives proposed per query")
    parser.add_argument("--top", type=int, default=5, help="how many of the most suspect to print")
    parser.add_argument(
        "--fold-models",
        action="store_true",
        help="add a third held-out model: the embedding model fine-tuned out of fold (slower)",
    )


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "suspect_id": row["id"],
        "kind": row["kind"],
        "score": round(row["score"], 3),
        "query": row["query"][:80],
        "passage": row["passage"][:80],
        "reasons": row["reasons"],
    }


def cli_main(args: argparse.Namespace) -> dict[str, Any]:
    """Search, save, and summarise (progress goes to stderr)."""
    conn = connect()
    try:
        pid = project_id(conn, args.project)

        def progress(fraction: float, message: str) -> None:
            print(f"{fraction:5.0%} {message}", file=sys.stderr, flush=True)

        result = find_suspects(
            conn,
            pid,
            split=args.split,
            embed_model=args.embed_model,
            per_query=args.per_query,
            fold_models=args.fold_models,
            progress=progress,
        )
        top = args.top
        return {
            "project": args.project,
            **result.summary(),
            "counts": counts(conn, pid),
            "most_suspect_labels": [
                _brief(r) for r in queue(conn, pid, SuspectFilter(kinds=LABELLED), limit=top)
            ],
            "likely_missing_positives": [
                _brief(r) for r in queue(conn, pid, SuspectFilter(kinds=("missing_positive",)), limit=top)
            ],
        }
    finally:
        conn.close()
