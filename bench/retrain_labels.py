"""The label-errors bench's second half: short training runs on the noisy labels, on the labels corrected through the
suspect queues (the top 10% of each judged by the planted truth, through the same judgements a person makes), and on
the clean labels; each reranker's test NDCG@10 on the embedding model's top 20."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHORT = ["--max-steps", "60", "--max-length", "64", "--eval-steps", "30", "--candidates-k", "10"]


def cli(args: list[str], home: Path) -> dict:
    """`python -m core ...` in the bench's workspace; its JSON line."""
    env = {
        **os.environ,
        "RERANK_STUDIO_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"`python -m core {' '.join(args)}` failed ({proc.returncode})")
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def correct(conn, pid: int, clean: set[tuple[str, str]]) -> dict[str, int]:
    """Judge the top 10% of each queue as a person who knows the truth would: a planted wrong positive flipped, a
    real missing positive marked relevant, everything else kept."""
    from core.suspects.judgements import judge
    from core.suspects.records import LABELLED, SuspectFilter, queue, queue_size

    done = {"flipped": 0, "kept": 0}
    for kinds in (LABELLED, ("missing_positive",)):
        flt = SuspectFilter(kinds=kinds)
        for row in queue(conn, pid, flt, limit=max(1, round(0.1 * queue_size(conn, pid, flt)))):
            truth = (row["query"], row["passage"]) in clean
            labelled = (row["label_now"] or 0) > 0
            action = "flip" if truth != labelled else "keep"
            judge(conn, row["id"], action, row["version"], actor="bench")
            done["flipped" if action == "flip" else "kept"] += 1
    return done


def train_and_score(name: str, home: Path) -> dict:
    """One short run and its test NDCG@10 on the embedding model's top 20."""
    started = time.time()
    run = cli(["train", "--project", name, *SHORT], home)
    res = cli(
        ["evaluate", "--project", name, "--run", run["run_id"], "--first-stage", "embedding", "--top-k", "20",
         "--bootstrap", "200", "--no-oracle"],
        home,
    )  # fmt: skip
    return {
        "test_ndcg10": res["reranked_ndcg10"],
        "first_stage_ndcg10": res["first_stage_ndcg10"],
        "wall_s": round(time.time() - started, 1),
    }


def retrain_all(conn, sf: dict, noisy: dict, home: Path, load: Callable) -> dict:
    """Copy the noisy project, correct the copy through the queues, load the clean labels; train and test each."""

    from core.suspects.find import find_suspects

    corrected = load(conn, sf, noisy, "corrected")
    find_suspects(conn, corrected)
    clean = {
        (sf["queries"][q], sf["corpus"][d])
        for q, ds in sf["qrels"]["train"].items()
        for d, s in ds.items()
        if s > 0
    }
    judged = correct(conn, corrected, clean)
    load(conn, sf, sf["qrels"]["train"], "clean")
    out = {
        "settings": "short: " + " ".join(SHORT) + " (figures say little about full training)",
        "judged": judged,
    }
    for name in ("noisy", "corrected", "clean"):
        out[name] = train_and_score(name, home)
    return out
