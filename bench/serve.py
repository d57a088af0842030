"""Serving overhead: POST /v1/rerank with 20 passages of ~200 tokens vs calling the Reranker in-process.

Prints {"p50_ms", "p95_ms", "docs": 20, "direct_p50_ms", "overhead_vs_direct"}; exits 1 when the overhead
(HTTP p50 / direct p50) is above 1.15. `--model DIR` serves a bundle or run folder; by default a throwaway model
folder (the bundled encoder with a saved head, max length 256) is built in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
TARGET = 1.15
SCIFACT = Path(os.environ.get("SCIFACT_DIR", ROOT.parent / "shared" / "data" / "scifact"))


def passages(n: int = 20) -> tuple[str, list[str]]:
    """n SciFact abstracts of 140-170 words (about 200 word-piece tokens each) and a query."""
    out = []
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            text = json.loads(line)["text"]
            if 140 <= len(text.split()) <= 170:
                out.append(text)
            if len(out) == n:
                break
    return "Do statins reduce the risk of cardiovascular events?", out


def model_folder(tmp: Path, max_length: int = 256) -> Path:
    """A throwaway cross-encoder folder (random but saved head): serving cost does not depend on the weights."""
    from core import models

    folder = tmp / "model"
    models.load_cross_encoder(models.BUNDLED, max_length=max_length).save_pretrained(str(folder))
    (folder / "studio_run.json").write_text(json.dumps({"config": {"max_length": max_length}}))
    return folder


def timed(fn, n: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--requests", type=int, default=15)
    args = parser.parse_args()
    from core.scoring.reranker import Reranker
    from tests.conftest import free_port

    query, docs = passages()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.model) if args.model else model_folder(Path(tmp))
        reranker = Reranker.load(folder)
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "core", "serve", "--model", str(folder), "--port", str(port)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            proc.stdout.readline()  # the "serving" line: the model is loaded
            body = json.dumps({"query": query, "documents": docs, "top_n": 20}).encode()

            def http() -> None:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/v1/rerank",
                    data=body,
                    method="POST",
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(req, timeout=120) as r:
                    r.read()

            # interleave so both see the same machine load
            direct, served = [], []
            for _ in range(args.requests):
                direct += timed(lambda: reranker.score(query, docs), 1)
                served += timed(http, 1)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    tokens = int(np.mean([len(reranker.cross_encoder.tokenizer(d)["input_ids"]) for d in docs]))
    out = {
        "p50_ms": round(float(np.percentile(served, 50)), 1),
        "p95_ms": round(float(np.percentile(served, 95)), 1),
        "docs": len(docs),
        "mean_tokens": tokens,
        "direct_p50_ms": round(float(np.percentile(direct, 50)), 1),
        "overhead_vs_direct": round(float(np.percentile(served, 50) / np.percentile(direct, 50)), 3),
        "target": TARGET,
    }
    print(json.dumps(out))
    return 0 if out["overhead_vs_direct"] <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
