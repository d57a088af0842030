"""CLI: `python -m core COMMAND ...` does what the pages do and prints one JSON line; torchrun-safe."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from core.errors import StudioError

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# command -> module; each module defines `cli_arguments(parser)` and `cli_main(args) -> dict`.
COMMANDS: dict[str, tuple[str, str]] = {
    "ingest": ("core.ingest.cli", "import training pairs (and a test set) into a project"),
    "sample": ("core.sample", "load the bundled SciFact sample project (idempotent)"),
    "mine": ("core.mining.cli", "mine hard negatives for a project"),
    "export": ("core.review.dataset_export", "export the curated dataset"),
    "train": ("core.training.cli", "train a cross-encoder reranker"),
    "evaluate": ("core.evaluation.cli", "evaluate a run on the test set"),
    "distill": ("core.training.distill", "train a plain cross-encoder on a run's full score (a new run)"),
    "export-model": ("core.export.cli", "ship a run as a self-contained bundle (or --onnx)"),
    "serve": ("core.export.serve", "serve a bundle or run folder over HTTP: POST /v1/rerank"),
    "suspects": ("core.suspects.cli", "find suspect labels and missing positives"),
    "job": ("core.queue", "run a queued background job (the studio starts these)"),
}


def main(argv: list[str] | None = None) -> int:
    """Parse, dispatch to the command's module, print its summary as JSON."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if argv and argv[0] == name:  # import only the module that runs: start-up stays fast
            modules[name] = importlib.import_module(module_name)
            modules[name].cli_arguments(p)
    args = parser.parse_args(argv)
    try:
        result = modules[args.command].cli_main(args)
    except (StudioError, OSError) as exc:  # the studio's own errors and file trouble; anything else is a bug
        print(json.dumps({"error": str(exc), "type": type(exc).__name__}), file=sys.stderr)
        return 2
    if result is not None:
        print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
