"""Calibration of relevance_score on a project's test set: the expected calibration error of a trained run.

    .venv/bin/python bench/calibration.py --project scifact --run RUN_ID [--home WORKSPACE]

Fits the run's calibration on its validation queries (as its bundle does), scores the test queries' first-stage
candidate lists and prints {"test_ece", "raw_sigmoid_ece", "test_pairs", "fitted_on", "bins", "target"}; exits 1
when test_ece is above 0.05 (issue 24's goal on SciFact). Needs a completed run in the workspace (e.g. the one
bench/outcome.py trains).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
TARGET = 0.05


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--home", default=None, help="workspace folder (default: RERANK_STUDIO_HOME)")
    args = parser.parse_args()
    from core import store
    from core.export.calibrate import calibration_report

    conn = store.connect(Path(args.home) if args.home else None)
    try:
        rep = calibration_report(conn, args.run, store.project_id(conn, args.project))
    finally:
        conn.close()
    out = {
        "test_ece": None if rep.test_ece is None else round(rep.test_ece, 4),
        "raw_sigmoid_ece": None if rep.raw_sigmoid_ece is None else round(rep.raw_sigmoid_ece, 4),
        "test_pairs": rep.test_pairs,
        "fitted_on": rep.calibration.fitted_on if rep.calibration else None,
        "note": rep.note,
        "bins": [{k: round(v, 3) for k, v in b.items()} for b in rep.bins],
        "target": TARGET,
    }
    print(json.dumps(out))
    return 0 if rep.test_ece is not None and rep.test_ece <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
