"""Where a bench finds BEIR SciFact: `--data DIR`, else $SCIFACT_DIR, else a sibling `../shared/data/scifact`; never a download."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

WHERE_TO_GET = (
    "BEIR SciFact (CC BY-NC 2.0) is a folder with corpus.jsonl, queries.jsonl and qrels/{train,test}.tsv. "
    "Download https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/scifact.zip (listed at "
    "https://github.com/beir-cellar/beir), unzip it, and pass --data path/to/scifact or set SCIFACT_DIR. "
    "The repository's sample_data/scifact is a small subset: it runs, but gives other figures."
)


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """The one `--data` flag every SciFact bench takes."""
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="BEIR SciFact folder (default: $SCIFACT_DIR, else ../shared/data/scifact)",
    )


def scifact_dir(data: Path | str | None = None) -> Path:
    """The folder to read, checked; exits non-zero saying where to get the data when it is missing. Sets SCIFACT_DIR
    so tests.conftest.load_scifact (used by some benches; it calls read_beir) reads the same folder."""
    raw = data or os.environ.get("SCIFACT_DIR")
    sibling = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
    if not raw and (sibling / "corpus.jsonl").is_file():  # the development machine's copy, when there is one
        raw = sibling
    if not raw:
        sys.exit(f"No SciFact folder given (--data or SCIFACT_DIR). {WHERE_TO_GET}")
    folder = Path(raw).expanduser()
    missing = [name for name in ("corpus.jsonl", "queries.jsonl", "qrels") if not (folder / name).exists()]
    if missing:
        sys.exit(f"SciFact data not found in {folder} (missing {', '.join(missing)}). {WHERE_TO_GET}")
    os.environ["SCIFACT_DIR"] = str(folder)
    return folder
