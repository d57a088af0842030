"""`python -m core mine`: the miner's parameters as flags (kebab case) on top of a preset; prints the stats."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from core import store
from core.mining.miner import mine
from core.mining.params import PRESETS, MiningParams, preset

_FLAGS = {f.name: f for f in fields(MiningParams)}


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags are the miner's parameter names in kebab case; anything unset comes from the preset."""
    parser.add_argument("--project", required=True, help="project name")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="recommended")
    parser.add_argument("--corpus", help="extra corpus file (.txt/.jsonl/.csv/.tsv), added as passages")
    parser.add_argument("--num-negatives", type=int)
    parser.add_argument("--range-min", type=int)
    parser.add_argument("--range-max", type=int)
    for name in ("max_score", "min_score", "absolute_margin", "relative_margin"):
        parser.add_argument("--" + name.replace("_", "-"), type=float)
    parser.add_argument("--sampling-strategy", choices=["top", "random"])
    parser.add_argument("--random-negatives", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--faiss-batch-size", type=int)
    parser.add_argument("--use-faiss", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--cross-encoder", help="cross-encoder folder: second opinion for the risk")
    parser.add_argument("--cross-encoder-rescoring", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--cross-encoder-max-length", type=int)
    parser.add_argument("--model", help="embedding model: bundled (default), a folder or a hub id")
    parser.add_argument("--seed", type=int)


def cli_main(args: argparse.Namespace) -> dict[str, Any]:
    """Mine for a project and return the stats (printed as JSON by the dispatcher)."""
    overrides = {k: v for k, v in vars(args).items() if k in _FLAGS and v is not None}
    params = preset(args.preset, **overrides)
    conn = store.connect()
    try:
        project = store.project_id(conn, args.project)
        return mine(conn, project, params, extra_corpus=args.corpus)
    finally:
        conn.close()
