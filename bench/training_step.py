"""One cross-encoder training step in fp32 against bf16 variants, in one process, order alternated; prints JSON.

Why (issue 23): `bench/training.py --precision` measured the studio's bf16 training at 0.93x fp32 while a bf16 matmul
is 4.3x here. This isolates a step (forward + backward + AdamW on the bundled MiniLM as a one-logit cross-encoder, a
batch of --batch (query, passage) pairs at --max-length, tokenized once) from the trainer, so where the time goes can
be seen (--profile: top ops by self CPU time) and each candidate fix measured alone:

  fp32          the reference
  autocast      torch.autocast("cpu", bfloat16) around the forward: what the trainer's bf16=True does (accelerate)
  autocast_eager  the same with eager attention instead of sdpa
  autocast_fused_attn  autocast with attention dropout off: PyTorch's fused CPU attention kernel has no dropout, so
                with it on, sdpa falls back to the unfused math path (bmm, softmax, dropout, bmm)
  fp32_fused_attn  fp32 with attention dropout off: how much of that is the kernel rather than bf16
  bf16_weights  bf16 parameters and AdamW on them (no fp32 master copy): the ceiling, not a training recipe

The optimizer is AdamW(fused=True), as the trainer's default `adamw_torch_fused`. Seconds are wall time and the
process's CPU time (less sensitive to other processes on a shared machine); the load average is printed with them.

Usage: nice -n 5 .venv/bin/python bench/training_step.py [--variants fp32,autocast] [--rounds 3] [--steps 4]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

VARIANTS = ("fp32", "autocast", "autocast_eager", "autocast_fused_attn", "fp32_fused_attn", "bf16_weights")


def sample_pairs(n: int) -> list[tuple[str, str]]:
    """n (claim, abstract) pairs from sample_data/scifact: each training claim with its passage and others."""
    folder = ROOT / "sample_data" / "scifact"
    queries = [json.loads(line)["text"] for line in (folder / "queries.jsonl").open()]
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").open()]
    docs = [f"{d.get('title', '')} {d['text']}" for d in corpus]
    return [(queries[i % len(queries)], docs[(7 * i) % len(docs)]) for i in range(n)]


def make_model(variant: str, max_length: int) -> Any:
    """The bundled MiniLM as a fresh one-logit cross-encoder, set up for the variant."""
    from core import models

    model = models.load_cross_encoder(None, max_length=max_length)
    if variant == "autocast_eager":
        model.model.config._attn_implementation = "eager"
    if variant.endswith("fused_attn"):
        for layer in model.model.bert.encoder.layer:
            layer.attention.self.dropout.p = 0.0
    if variant == "bf16_weights":
        model.to(torch.bfloat16)
    model.train()
    return model


def step_context(variant: str) -> contextlib.AbstractContextManager:
    """What wraps the forward: bf16 autocast for the autocast variants, nothing otherwise."""
    if variant.startswith("autocast"):
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def one_step(model: Any, optimizer: Any, features: dict, variant: str) -> None:
    """Forward (under the variant's context), a listwise-style loss in fp32, backward, AdamW step."""
    with step_context(variant):
        scores = model(features)["scores"].view(-1).float()
    loss = -torch.log_softmax(scores.view(-1, 8), dim=1)[:, 0].mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def time_variant(variant: str, features: dict, steps: int, max_length: int) -> tuple[float, float]:
    """(wall, CPU) seconds per step of a fresh model after one warm-up step (medians of `steps`)."""
    torch.manual_seed(0)
    model = make_model(variant, max_length)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=True)
    one_step(model, optimizer, features, variant)
    wall, cpu = [], []
    for _ in range(steps):
        t, c = time.perf_counter(), time.process_time()
        one_step(model, optimizer, features, variant)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def profile(variant: str, features: dict, max_length: int, top: int = 15) -> list[dict]:
    """Top ops by self CPU time over two steps after a warm-up."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    model = make_model(variant, max_length)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=True)
    one_step(model, optimizer, features, variant)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(2):
            one_step(model, optimizer, features, variant)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [
        {
            "op": e.key,
            "self_ms_per_step": round(e.self_cpu_time_total / 2000, 1),
            "share": round(e.self_cpu_time_total / total, 3),
            "calls_per_step": e.count // 2,
        }
        for e in events[:top]
    ]


def main() -> None:
    """Parse, tokenize once, time the variants in alternated order over the rounds, print one JSON line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", default="fp32,autocast")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--profile", action="store_true", help="top ops by self CPU time per variant instead")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    if unknown := set(variants) - set(VARIANTS):
        raise SystemExit(f"unknown variants {sorted(unknown)}: choose from {VARIANTS}")
    from core import models

    tokens = models.load_cross_encoder(None, max_length=args.max_length).preprocess(sample_pairs(args.batch))
    features = dict(tokens)
    report: dict[str, Any] = {"bench": "training_step", "batch": args.batch, "max_length": args.max_length}
    report["threads"] = torch.get_num_threads()
    if args.profile:
        report["profile"] = {v: profile(v, features, args.max_length) for v in variants}
    else:
        runs: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
        for r in range(args.rounds):
            for v in variants if r % 2 == 0 else variants[::-1]:
                runs[v].append(time_variant(v, features, args.steps, args.max_length))
        for i, clock in enumerate(("wall", "cpu")):
            s = {v: statistics.median(t[i] for t in ts) for v, ts in runs.items()}
            report[f"{clock}_s_per_step"] = {v: round(x, 3) for v, x in s.items()}
            report[f"{clock}_by_round"] = {v: [round(t[i], 3) for t in ts] for v, ts in runs.items()}
            report[f"{clock}_vs_fp32"] = (
                {v: round(s["fp32"] / x, 3) for v, x in s.items()} if "fp32" in s else {}
            )
    report["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
