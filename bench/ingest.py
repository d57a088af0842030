"""Ingest speed and memory: 100,000 labelled pairs from a CSV built out of the SciFact corpus (~160 MB).

Prints one JSON line with its targets and exits 1 when one is missed. `pairs`/`seconds`/`peak_rss_mb` are the
100k-pair CSV import. Targets: seconds < 15 per 100,000 pairs (scaled to --pairs) and peak RSS < 1.5 GB; `unique`
is a worst case for memory, a ~150 MB file in which every passage is different (nothing repeats, so no memo
helps), with the same memory target. Each import runs in a fresh child process so its peak RSS is its own.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/ingest.py --data path/to/scifact [--pairs 100000] [--keep DIR]

The SciFact folder comes from --data or $SCIFACT_DIR (see bench/scifact_data.py for where to get it).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scifact_data import add_data_argument, scifact_dir  # noqa: E402  (bench/ is the script's folder)

ROOT = Path(__file__).resolve().parents[1]
SECONDS_PER_100K = 15.0  # target: import time per 100,000 pairs
PEAK_RSS_MB = 1536.0  # target: peak RSS of one import (the 100k pairs, and the all-unique file)

CHILD = """
import json, sys, time, resource
from pathlib import Path
from core import ingest, store
conn = store.connect(sys.argv[2])
t = time.perf_counter()
s = ingest.run_import(conn, "bench", ingest.ImportSpec(Path(sys.argv[1])))
print(json.dumps({"seconds": time.perf_counter() - t, "pairs": s["pairs"], "queries": s["unique_queries"],
                  "passages": s["unique_passages"], "duplicates": s["duplicates_removed"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def corpus() -> list[str]:
    docs = []
    with open(scifact_dir() / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            docs.append(f"{d['title']}. {d['text']}".strip())
    return docs


def write_labelled(path: Path, n_pairs: int, seed: int = 0) -> None:
    """(query, passage, label): a sentence of an abstract as the query, the abstract as the positive, 3 random
    abstracts as negatives — the shape and sizes of real reranker data."""
    rng = random.Random(seed)
    docs = corpus()
    queries = []
    for i, doc in enumerate(docs):
        for sent in re.split(r"(?<=[.!?])\s+", doc):
            if 40 <= len(sent) <= 300:
                queries.append((sent, i))
    rng.shuffle(queries)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query", "passage", "label"])
        n = 0
        for k, (sent, i) in enumerate(queries):
            if n >= n_pairs:
                break
            w.writerow([sent, docs[i], 1])
            n += 1
            for j in rng.sample(range(len(docs)), 3):
                if n >= n_pairs:
                    break
                if j != i:
                    w.writerow([sent, docs[j], 0])
                    n += 1
        if n < n_pairs:
            raise SystemExit(f"only {n} pairs could be generated")


def write_unique(path: Path, target_mb: float, seed: int = 1) -> int:
    """(query, positive) where every passage is distinct: an abstract with a numbered suffix."""
    rng = random.Random(seed)
    docs = corpus()
    n, size = 0, 0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query", "positive"])
        while size < target_mb * 1024 * 1024:
            i = rng.randrange(len(docs))
            doc = docs[i]
            w.writerow([f"{doc[:80]} #{n}", f"{doc} (variant {n})"])
            n += 1
            size = fh.tell()
    return n


def run_child(csv_path: Path, workspace: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(csv_path), str(workspace)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--unique-mb", type=float, default=150.0, help="0 skips the all-unique file")
    ap.add_argument("--keep", type=Path, help="keep the generated files here")
    add_data_argument(ap)
    args = ap.parse_args()
    scifact_dir(args.data)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    folder = args.keep or tmp
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "pairs_100k.csv"
    t = time.perf_counter()
    write_labelled(data, args.pairs)
    gen = time.perf_counter() - t
    first = run_child(data, tmp / "ws1")
    result = {
        "pairs": first["pairs"],
        "seconds": round(first["seconds"], 2),
        "peak_rss_mb": round(first["peak_rss_mb"], 1),
        "file_mb": round(data.stat().st_size / 2**20, 1),
        "queries": first["queries"],
        "passages": first["passages"],
        "generate_seconds": round(gen, 1),
    }
    if args.unique_mb:
        uniq = folder / "unique.csv"
        rows = write_unique(uniq, args.unique_mb)
        second = run_child(uniq, tmp / "ws2")
        result["unique"] = {
            "file_mb": round(uniq.stat().st_size / 2**20, 1),
            "rows": rows,
            "pairs": second["pairs"],
            "seconds": round(second["seconds"], 2),
            "peak_rss_mb": round(second["peak_rss_mb"], 1),
        }
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)  # other work on the machine slows the figures
    shutil.rmtree(tmp, ignore_errors=True)  # workspaces (and the files unless --keep)
    result.update(judge(result, args.pairs))
    print(json.dumps(result))
    if not all(result["met"].values()):
        sys.exit(1)


def judge(result: dict, pairs: int) -> dict:
    """The targets (seconds scaled to the pairs asked for) and whether each was met."""
    seconds = round(SECONDS_PER_100K * pairs / 100_000, 2)
    met = {"seconds": result["seconds"] < seconds, "peak_rss_mb": result["peak_rss_mb"] < PEAK_RSS_MB}
    if "unique" in result:
        met["unique_peak_rss_mb"] = result["unique"]["peak_rss_mb"] < PEAK_RSS_MB
    targets = {"seconds": f"< {seconds}", "peak_rss_mb": f"< {PEAK_RSS_MB:g}"}
    if "unique" in result:
        targets["unique_peak_rss_mb"] = f"< {PEAK_RSS_MB:g}"
    return {"targets": targets, "met": met}


if __name__ == "__main__":
    main()
