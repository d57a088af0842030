"""bench/training.py --precision: the studio's training in bf16 against fp32 on the same data and seed.

Each repetition trains twice in fresh processes, bf16 then fp32 or fp32 then bf16 (alternated). Speed is optimizer
steps per second of the training loop (the trainer's seconds less its evaluations, which both sides run alike);
quality is the final model's validation NDCG@10 (held-out training queries, the studio's own split). Targets
(issue 23): bf16_vs_fp32_steps_per_s >= 1.5 and |bf16_vs_fp32_val_ndcg_delta| <= 0.005.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

TARGETS = {"bf16_vs_fp32_steps_per_s": (">=", 1.5), "bf16_vs_fp32_val_ndcg_delta_abs": ("<=", 0.005)}


def steps_per_s(result: dict) -> float:
    """Steps per second of the training loop alone."""
    loop = float(result["train_seconds"]) - float(result.get("eval_seconds") or 0.0)
    return float(result["steps"]) / max(loop, 1e-6)


def compare_precision(
    spec_path: Path, repetitions: int, run_side: Callable[..., dict], verdicts: Callable[..., dict]
) -> dict:
    """Both precisions, order alternated over the repetitions; medians against the targets."""
    runs: dict[str, list[dict]] = {"bf16": [], "fp32": []}
    order = []
    for rep in range(repetitions):
        names = ("bf16", "fp32") if rep % 2 == 0 else ("fp32", "bf16")
        order.append(list(names))
        for name in names:
            runs[name].append(run_side("studio", spec_path, name))
    if any(r["precision"] != name for name, rs in runs.items() for r in rs):
        raise SystemExit(f"a side did not train in the precision asked: {runs}")

    def med(name: str, key: Callable[[dict], float]) -> float:
        return statistics.median(key(r) for r in runs[name])

    rate = {n: med(n, steps_per_s) for n in runs}
    val = {n: med(n, lambda r: float(r["val_ndcg@10"])) for n in runs}
    delta = round(val["bf16"] - val["fp32"], 4)
    figures = {
        "bf16_vs_fp32_steps_per_s": round(rate["bf16"] / rate["fp32"], 3),
        "bf16_vs_fp32_val_ndcg_delta": delta,
        "bf16_vs_fp32_val_ndcg_delta_abs": abs(delta),
    }
    return {
        "bench": "training --precision",
        **figures,
        **verdicts(figures, TARGETS),
        "steps_per_s": {n: round(v, 3) for n, v in rate.items()},
        "val_ndcg10": {n: round(v, 4) for n, v in val.items()},
        "steps_per_s_by_run": {n: [round(steps_per_s(r), 3) for r in rs] for n, rs in runs.items()},
        "val_ndcg10_by_run": {n: [round(float(r["val_ndcg@10"]), 4) for r in rs] for n, rs in runs.items()},
        "test_ndcg10": {n: round(med(n, lambda r: float(r["ndcg@10"])), 4) for n in runs},
        "order": order,
    }
