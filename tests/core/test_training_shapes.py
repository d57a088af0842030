"""The training defaults on a data shape unlike SciFact: graded labels, 200 judged passages per query, long queries.

Bounded rows (one positive + k negatives a list), memory estimated and fitted before launch, beta fitted without a
ceiling, grades used as listwise targets, the scoring mode chosen on validation, and the defaults of a trained
reranker base. The last test trains the default path on 50 queries x 200 graded passages under a memory ceiling.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.sample_shapes import build_graded
from core import models
from core.scoring.metrics import gain_targets
from core.training import budget, cli, defaults
from core.training import rows as rowshape
from core.training.adapt import project_shape
from core.training.beta import fit_beta, log_likelihood
from core.training.config import ConfigError, TrainConfig
from core.training.results import CROSS_ENCODER, choose_scoring
from tests.conftest import ROOT, SAMPLE_SCIFACT

pytestmark = pytest.mark.timeout(300)
GB = 2**30
PEAK_RSS_CEILING_GB = 4.0  # the old rows (4 lists of ~200 passages a step) need > 15 GB at length 64


def graded_query(n_pos: int = 40, n_neg: int = 160) -> tuple[list[str], list[float], list[str]]:
    """A query judged like the graded shape: 1 passage of grade 3, 9 of grade 2, 30 of grade 1, 160 of grade 0."""
    grades = [3.0] + [2.0] * 9 + [1.0] * (n_pos - 10)
    return [f"p{i}" for i in range(n_pos)], grades, [f"n{i}" for i in range(n_neg)]


def test_listwise_rows_have_a_fixed_length_however_many_passages_a_query_judged():
    pos, grades, negs = graded_query()
    rows = rowshape.query_rows(
        "residual", "q", pos, negs, 7, random.Random(0), grades=grades, hard=15, hard_per_row=5
    )
    assert 1 <= len(rows) <= rowshape.MAX_LISTS_PER_QUERY
    assert {len(r["docs"]) for r in rows} == {8} and all(len(set(r["docs"])) == 8 for r in rows)
    assert any(r["labels"].count(3.0) == 1 for r in rows)  # the grade-3 passage anchors a list
    for r in (
        rows
    ):  # one anchor; everything else in its list is graded lower (negatives or lower-graded positives)
        top = max(r["labels"])
        assert (
            top >= 2 and r["labels"].count(top) == 1 and sum(1 for d in r["docs"] if d.startswith("n")) >= 5
        )
    assert any(
        0 < lab < max(r["labels"]) for r in rows for lab in r["labels"]
    )  # graded contrast inside a list


def test_graded_labels_become_soft_bce_targets_and_listwise_gain_shares():
    rows = rowshape.query_rows(
        "bce", "q", ["a", "b"], ["n"], 1, random.Random(0), grades=[3.0, 1.0], top_grade=3.0
    )
    assert [r["label"] for r in rows] == [1.0, pytest.approx(1 / 3, abs=1e-3), 0.0]
    assert gain_targets([3, 1, 0]) == pytest.approx([3 / 4, 1 / 4, 0])  # linear gains, as NDCG reports
    assert gain_targets([1, 1, 0, 0]) == pytest.approx([0.5, 0.5, 0, 0])  # binary labels: unchanged


def test_beta_is_fitted_past_the_old_grid_ceiling():
    # the positive leads by 0.03 in 30 lists and trails by 0.02 in one: the likelihood peaks between 100 and 200
    rows = [{"priors": [0.50, 0.47], "labels": [1.0, 0.0]}] * 30 + [
        {"priors": [0.48, 0.50], "labels": [1.0, 0.0]}
    ]
    beta = fit_beta(rows)
    assert 100 < beta < 200
    assert log_likelihood(rows, beta) > max(log_likelihood(rows, 100), log_likelihood(rows, beta * 1.1))
    small = [
        {"priors": [0.6, 0.5, 0.55], "labels": [1.0, 0.0, 0.0]},
        {"priors": [0.5, 0.6], "labels": [1.0, 0.0]},
    ]
    assert 0 < fit_beta(small) < 100


def test_beta_is_fitted_on_the_candidate_lists_the_reranker_faces_not_on_the_training_rows():
    from core.training.data import beta_on_candidates

    # Mined with a margin, every training row has its positive on top: the cosine looks near-perfect there.
    rows = [{"priors": [0.60, 0.45, 0.40], "labels": [1.0, 0.0, 0.0]}] * 20
    # In the first stage's top k the positive leads in half the lists and trails in the other half.
    lead = {"documents": ["p", "a", "b"], "first_stage_scores": [0.60, 0.55, 0.50], "gains": {"p": 1.0}}
    trail = {"documents": ["a", "p", "b"], "first_stage_scores": [0.60, 0.55, 0.50], "gains": {"p": 1.0}}
    beta = beta_on_candidates([lead] * 10 + [trail] * 10, rows)
    as_rows = [{"priors": [0.60, 0.55, 0.50], "labels": [1.0, 0.0, 0.0]}] * 10 + [
        {"priors": [0.60, 0.55, 0.50], "labels": [0.0, 1.0, 0.0]}
    ] * 10
    assert beta == fit_beta(as_rows) and 0 < beta < 50 < fit_beta(rows)
    missed = {
        "documents": ["a", "b"],
        "first_stage_scores": [0.6, 0.5],
        "gains": {"p": 1.0},
    }  # positive not retrieved
    assert beta_on_candidates([missed], rows) == fit_beta(rows)  # no list to fit on: the rows serve


def test_memory_estimate_bounds_a_step_and_adapts_or_refuses():
    size = budget.model_size(models.BUNDLED)
    old_step = budget.peak_memory(
        size, 4 * 200, 128, "residual"
    )  # 4 lists of ~200 passages (killed at 23.5 GB)
    new_step = budget.peak_memory(size, 4 * 8, 128, "residual")
    assert old_step > 16 * GB and new_step < 4 * GB
    cfg = TrainConfig(
        loss="residual", batch_size=16, max_length=256, hard_negatives=5, random_negatives=2, max_steps=10
    )
    fitted, plan = budget.fit(cfg, 500, None, 8, available=int(3.5 * GB))
    assert fitted.batch_size < 16 and plan.fits and "Batch size lowered from 16" in plan.notes[0]
    assert fitted.max_steps == 10 * 16 // fitted.batch_size  # as many rows seen as asked
    with pytest.raises(ConfigError, match="would not fit in memory"):
        budget.fit(cfg, 500, None, 8, available=GB // 2)
    assert "peak memory" in plan.text() and plan.to_dict()["steps"] == fitted.max_steps


def test_max_length_follows_the_pairs_token_lengths():
    lengths = np.array([40] * 50 + [300] * 45 + [900] * 5)
    length, why = defaults.length_from_data(lengths, 512)
    assert length == 320 and "90%" in why  # the 90th percentile (300) rounded up to a multiple of 32
    assert defaults.length_from_data(np.array([600] * 10), 512)[0] == 512


def test_a_trained_reranker_base_gets_the_sentence_transformers_recipe(tmp_path):
    from tests.model_folders import MAX_LENGTH, make_model_folder

    base = str(make_model_folder(tmp_path / "ce"))
    for shape in ("labelled pairs", "query + several negatives"):
        cfg = defaults.default_config({"train_positives": 919, "train_queries": 809}, base, shape)
        assert (cfg.loss, cfg.learning_rate, cfg.warmup_ratio, cfg.head_lr_multiplier) == (
            "bce",
            2e-5,
            0.1,
            1.0,
        )
        assert (
            cfg.max_length == defaults.base_max_length(base) == MAX_LENGTH
        )  # the base's own (saved at 32), not 256


def test_scoring_mode_is_chosen_on_validation_and_the_reranker_follows_it(tmp_path):
    from core.scoring.reranker import run_folder_spec
    from tests.model_folders import make_model_folder

    chosen = choose_scoring({"ndcg@10": 0.70, "cross_encoder_alone_ndcg@10": 0.72}, 35.0, "split")
    assert chosen["mode"] == CROSS_ENCODER and "0.7200" in chosen["reason"]
    assert "cross-encoder alone is better" in chosen["reason"]
    assert (
        choose_scoring({"ndcg@10": 0.72, "cross_encoder_alone_ndcg@10": 0.40}, 35.0, "split")["mode"]
        == "residual"
    )
    folder = make_model_folder(
        tmp_path / "m",
        fusion={"method": CROSS_ENCODER, "chosen_on": "split", "reason": chosen["reason"]},
        activation="identity",
    )
    assert run_folder_spec(folder)["kind"] == "cross-encoder"


@pytest.fixture(scope="module")
def graded_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shapes") / "graded"
    sizes = build_graded(SAMPLE_SCIFACT, folder, queries=50, per_query=200, test_queries=10)
    assert (
        sizes["train_pairs"] == 50 * 200
        and sizes["train_positives"] > 1000
        and sizes["query_words_mean"] > 150
    )
    return folder


def test_project_defaults_measure_the_long_graded_shape(graded_folder, db):
    subprocess.run(
        [sys.executable, "-m", "core", "ingest", str(graded_folder), "--project", "graded"],
        cwd=ROOT,
        env={**os.environ},
        check=True,
        capture_output=True,
    )
    from core import store

    conn = store.connect()
    pid = store.project_id(conn, "graded")
    cfg, why = defaults.project_defaults(conn, pid)
    assert cfg.loss == "residual" and cfg.max_length > 128, why  # long queries: longer than the SciFact 128
    assert "90% of pairs" in why["max_length"] and "budget" in why["epochs"]
    long_budget, _ = defaults.project_defaults(conn, pid, budget_s=6 * 3600)
    assert (
        long_budget.max_length == 512
    )  # with time to spare the length covers the pairs up to the model's limit
    args = argparse.Namespace(
        defaults="adaptive",
        max_length=64,
        **{f.name: None for f in dataclasses.fields(cfg) if f.name != "max_length"},
    )
    chosen = cli.config_from_args(args, {}, conn, pid)  # a flag the person gave wins, and its reason says so
    assert chosen.max_length == 64 and args.reasons["max_length"] == "set on the command line"
    assert args.reasons["epochs"] == why["epochs"]
    plan = cli.launch_plan(conn, chosen, project_shape(conn, pid), args.reasons)
    assert plan["defaults"]["beta"].startswith("beta fitted on the training queries' candidate lists")
    # graded queries with many positives: at most 8 lists each, from the queries left after the held-out slice
    adapted = plan["adapted"]
    assert 0 < adapted["rows_per_epoch"] <= 8 * adapted["train_queries"] < 8 * 50


PEAK = (
    "import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr[-3000:]); "
    "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)"
)


@pytest.mark.timeout(
    900
)  # ~1,400 long texts to embed (first stage, priors): ~1.5 min idle, far more on a busy machine
def test_default_path_trains_fifty_queries_of_two_hundred_graded_passages_under_a_memory_ceiling(
    graded_folder, workspace
):
    env = {
        **os.environ,
        "RERANK_STUDIO_HOME": str(workspace),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    subprocess.run(
        [sys.executable, "-m", "core", "ingest", str(graded_folder), "--project", "graded"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    # the defaults (rows, batch, loss, beta, scoring mode); only steps, length and candidates are kept tiny
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            PEAK,
            sys.executable,
            "-m",
            "core",
            "train",
            "--project",
            "graded",
            "--max-steps",
            "3",
            "--max-length",
            "64",
            "--eval-steps",
            "3",
            "--candidates-k",
            "8",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=850,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    peak_gb = int(proc.stdout.split("PEAK_KB")[-1]) * 1024 / GB
    out = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    print(
        json.dumps(
            {
                "peak_rss_gb": round(peak_gb, 2),
                "estimate": out["metrics"].get("estimate"),
                "scoring": out["metrics"].get("scoring"),
            }
        )
    )
    assert out["status"] == "completed", out
    assert peak_gb < PEAK_RSS_CEILING_GB
    assert (
        out["plan"]["estimate"]["pairs_per_step"] == 4 * 8 and "peak memory" in out["plan"]["estimate_text"]
    )
    assert (
        out["metrics"]["scoring"]["mode"] in ("residual", CROSS_ENCODER)
        and out["metrics"]["scoring"]["reason"]
    )
