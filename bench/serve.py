"""Serving under load: 8 concurrent clients against 1 client in turn, on the default (residual) bundle, over HTTP only.

Each request ranks 20 SciFact abstracts of 140-170 words (each client its own query and passages, so nothing is
shared between requests). Phases alternate (serial then concurrent, then concurrent then serial, ...) so both see
the same machine load; nothing is scored in-process. Prints {"throughput_vs_serial", "p95_ms", "errors", ...};
exits 1 when throughput_vs_serial < 1.2 or any request failed. `--model DIR` serves a bundle or run folder; by
default a throwaway residual bundle (the bundled encoder as cross-encoder with a saved head, the bundled embedding
model, beta 25, max length 128 as on SciFact) is built in a temporary folder: serving cost does not depend on the
weights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
TARGET = 1.2
SCIFACT = Path(os.environ.get("SCIFACT_DIR", ROOT.parent / "shared" / "data" / "scifact"))


def request_bodies(clients: int, docs: int = 20) -> list[bytes]:
    """One body per client: its own SciFact query and `docs` abstracts of 140-170 words (~200 tokens each)."""
    texts, queries = [], []
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            text = json.loads(line)["text"]
            if 140 <= len(text.split()) <= 170:
                texts.append(text)
            if len(texts) == clients * docs:
                break
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as fh:
        queries = [json.loads(line)["text"] for _, line in zip(range(clients), fh)]
    return [
        json.dumps(
            {"query": queries[c], "documents": texts[c * docs : (c + 1) * docs], "top_n": docs}
        ).encode()
        for c in range(clients)
    ]


def residual_bundle(tmp: Path, max_length: int = 128, beta: float = 25.0) -> Path:
    """A throwaway residual bundle: cross-encoder (identity activation) at the root, the bundled embedding model."""
    import torch

    from core import models
    from core.scoring.reranker import FORMULAS, SPEC_FILE

    folder = tmp / "bundle"
    ce = models.load_cross_encoder(models.BUNDLED, max_length=max_length)
    ce.activation_fn = torch.nn.Identity()
    ce.save_pretrained(str(folder))
    spec = {
        "format": "rerank-studio-spec/1",
        "kind": "residual",
        "cross_encoder": ".",
        "max_length": max_length,
        "activation": "identity",
        "beta": beta,
        "embedding_model": {"id": models.BUNDLED, "path": str(models.bundled_path())},
        "formula": FORMULAS["residual"],
        "cleaning": ["control", "html", "urls", "symbols", "whitespace"],
    }
    (folder / SPEC_FILE).write_text(json.dumps(spec))
    return folder


def post(url: str, body: bytes) -> tuple[float, str]:
    """(milliseconds, "" when answered 200 with results, else what went wrong)."""
    started = time.perf_counter()
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            problem = "" if r.status == 200 and json.loads(r.read())["results"] else f"HTTP {r.status}"
    except urllib.error.HTTPError as exc:
        problem = f"HTTP {exc.code}: {exc.read()[:200].decode(errors='replace')}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        problem = f"{type(exc).__name__}: {exc}"[:200]
    return (time.perf_counter() - started) * 1000, problem


def phase(url: str, bodies: list[bytes], clients: int, per_client: int) -> dict:
    """Every client sends its body `per_client` times, one after another; returns latencies, errors, wall time."""
    started = time.perf_counter()
    if clients == 1:
        results = [post(url, bodies[i % len(bodies)]) for i in range(len(bodies) * per_client)]
    else:
        with ThreadPoolExecutor(clients) as pool:
            runs = pool.map(lambda b: [post(url, b) for _ in range(per_client)], bodies)
            results = [r for run in runs for r in run]
    wall = time.perf_counter() - started
    return {
        "ms": [r[0] for r in results],
        "errors": sum(bool(r[1]) for r in results),
        "problems": [r[1] for r in results if r[1]],
        "n": len(results),
        "s": wall,
    }


def serve(folder: Path, port: int, batch_tokens: int, log: Path) -> subprocess.Popen:
    """`python -m core serve` (stderr to `log`), returned once it prints its ready line."""
    cmd = [sys.executable, "-m", "core", "serve", "--model", str(folder), "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--batch-tokens", str(batch_tokens)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=open(log, "wb"),  # noqa: SIM115 - the child holds it; read after it ends
        start_new_session=True,
    )
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"the server exited before serving (code {proc.wait()})")
    return proc


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--model", default=None, help="a bundle or run folder (default: a throwaway residual one)"
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=4, help="requests each client sends per phase")
    parser.add_argument("--rounds", type=int, default=2, help="serial/concurrent pairs, order alternated")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-tokens", type=int, default=16_384)
    parser.add_argument("--quick", action="store_true", help="2 requests per client per phase")
    args = parser.parse_args()
    from tests.conftest import free_port

    per_client = 2 if args.quick else args.per_client
    bodies = request_bodies(args.concurrency)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.model) if args.model else residual_bundle(Path(tmp), args.max_length)
        port = free_port()
        log = Path(tmp) / "server.log"
        proc = serve(folder, port, args.batch_tokens, log)
        url = f"http://127.0.0.1:{port}/v1/rerank"
        try:
            for body in bodies[:2]:
                post(url, body)  # warm-up
            serial, concurrent = [], []
            for r in range(args.rounds):
                order = ((serial, 1), (concurrent, args.concurrency))
                for store, clients in order if r % 2 == 0 else order[::-1]:
                    store.append(phase(url, bodies, clients, per_client))
        finally:
            server_exit = proc.poll()  # None: still serving at the end, as it should
            proc.terminate()
            proc.wait(timeout=30)
            server_log = log.read_text(errors="replace")[-1500:] if server_exit is not None else ""

    def rate(phases: list[dict]) -> float:
        return sum(p["n"] for p in phases) / sum(p["s"] for p in phases)

    conc_ms = [m for p in concurrent for m in p["ms"]]
    serial_ms = [m for p in serial for m in p["ms"]]
    out = {
        "throughput_vs_serial": round(rate(concurrent) / rate(serial), 3),
        "p95_ms": round(float(np.percentile(conc_ms, 95)), 1),
        "p50_ms": round(float(np.percentile(conc_ms, 50)), 1),
        "serial_p50_ms": round(float(np.percentile(serial_ms, 50)), 1),
        "serial_p95_ms": round(float(np.percentile(serial_ms, 95)), 1),
        "requests_per_s": round(rate(concurrent), 2),
        "serial_requests_per_s": round(rate(serial), 2),
        "errors": sum(p["errors"] for p in serial + concurrent),
        "concurrency": args.concurrency,
        "docs": 20,
        "requests": sum(p["n"] for p in serial + concurrent),
        "model": "throwaway residual bundle" if not args.model else str(args.model),
        "max_length": args.max_length if not args.model else None,
        "order": "alternated",
        "target": TARGET,
    }
    problems = sorted({p for ph in serial + concurrent for p in ph["problems"]})
    if problems or server_exit is not None:
        out.update(problems=problems[:5], server_exit=server_exit, server_log=server_log)
    print(json.dumps(out))
    return 0 if out["throughput_vs_serial"] >= TARGET and out["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
