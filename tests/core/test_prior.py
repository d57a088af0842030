"""Issue 22: on a project too large for one cross-encoder epoch, the embedding model that gives the residual's prior
is fine-tuned first on the judged pairs, and the run, its evaluation and its bundle all score with that model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core import estimates, models, store, training
from core.embeddings import embed_texts
from core.export.bundle import export_bundle
from core.runs import records
from core.scoring.reranker import Reranker, load_spec, sha256_of
from core.training import prior
from core.training.config import ConfigError, TrainConfig
from core.training.defaults import project_defaults
from core.training.labels import read_labels
from core.training.run_lists import run_split

pytestmark = pytest.mark.timeout(600)


def test_prior_pairs_give_every_query_a_turn_before_any_query_a_second(scifact_project):
    db, pid = scifact_project
    lab = read_labels(db, pid, "train")
    texts = {p["id"]: p["text"] for p in store.fetch_passages(db, pid)}
    qids = sorted(lab.grades)
    pairs = prior.pairs(lab, qids, texts, seed=3)
    assert len(pairs) == sum(len(lab.positives(q)) for q in qids)  # every judged positive, once
    first_turn = pairs[: len(qids)]
    assert len({q for q, _ in first_turn}) == len(qids)  # each query once in the first turn
    for q, p in pairs:
        assert any(texts[d] == p for d in lab.positives(next(k for k, t in lab.qtext.items() if t == q)))


def test_a_cancelled_tuning_keeps_no_half_tuned_prior(scifact_project, tmp_path):
    db, pid = scifact_project
    lab = read_labels(db, pid, "train")
    texts = {p["id"]: p["text"] for p in store.fetch_passages(db, pid)}
    cfg = TrainConfig(loss="residual", max_length=64, prior_steps=5)
    seen = []
    stopped = prior.tune(
        cfg, prior.pairs(lab, sorted(lab.grades), texts, 1), tmp_path, lambda s, t: seen.append(s) or False
    )
    assert stopped is None and seen == [1]  # the cancel answer after step 1 ends it
    assert prior.existing(tmp_path) is None  # a resumed run tunes afresh instead of trusting a partial prior


def test_prior_steps_belong_to_the_residual_loss():
    with pytest.raises(ConfigError, match="residual"):
        TrainConfig(loss="bce", prior_steps=5).validate()
    with pytest.raises(ConfigError, match="0 .. 100000"):
        TrainConfig(loss="residual", prior_steps=-1).validate()


def test_the_prior_plans_with_its_own_rate_measured_here(db):
    workspace = store.workspace_of(db)
    planned = prior.planned_steps(600.0, workspace, "bf16", 128)
    assert planned == int(600 * 23.0 * 1.5 // prior.PRIOR_BATCH)  # defaults until a tuning run measures it
    estimates.observe(workspace, estimates.rate_key("prior_pairs_per_s", "bf16"), 64.0, "test")
    assert prior.planned_steps(600.0, workspace, "bf16", 128) == 600 * 64 // prior.PRIOR_BATCH
    assert prior.planned_steps(600.0, workspace, "bf16", 512) == 600 * 64 // prior.PRIOR_BATCH  # tunes at 128
    assert prior.seconds_for(1200, workspace, "bf16", 128) == pytest.approx(600.0)


def test_defaults_tune_the_prior_only_when_the_budget_buys_less_than_one_epoch(scifact_project):
    db, pid = scifact_project
    roomy, why = project_defaults(db, pid, budget_s=1800.0, workspace=store.workspace_of(db))
    assert roomy.loss == "residual" and roomy.prior_steps == 0 and "prior_steps" not in why
    tight, why = project_defaults(db, pid, budget_s=20.0, workspace=store.workspace_of(db))
    assert tight.prior_steps >= 1 and "fine-tuned first" in why["prior_steps"]
    assert tight.epochs < 1  # the cross-encoder keeps the rest of the budget


def test_a_run_with_a_tuned_prior_scores_with_it_everywhere_and_ships_it(scifact_project, tmp_path):
    db, pid = scifact_project
    cfg = TrainConfig(
        loss="residual",
        max_length=64,
        batch_size=2,
        max_steps=2,
        eval_steps=2,
        hard_negatives=1,
        random_negatives=1,
        candidates_k=8,
        validation_fraction=0.2,
        early_stopping_patience=0,
        prior_steps=3,
    )
    run_id, metrics = training.train_project(db, pid, cfg)
    run = records.get_run(db, run_id)
    assert run.status == "completed", run.error
    tuned = Path(run.model_dir).parent / prior.PRIOR_DIR
    assert (tuned / "model.safetensors").is_file()
    split = run_split(db, pid, cfg)  # the fitted queries' positives only, never the validation slice's
    judged = sum(len(split.train.positives(q)) for q in split.fit_qids)
    assert metrics["prior"]["steps"] == 3 and metrics["prior"]["pairs"] == min(judged, 3 * prior.PRIOR_BATCH)
    assert metrics["fusion"]["first_stage"] == f"embedding:{tuned}"
    by_model = metrics["labelled_pairs_by_model"]  # every label counts: the prior's pairs are counted too
    assert by_model["embedding_model"] == metrics["prior"]["pairs"]
    assert max(by_model.values()) <= metrics["labelled_pairs_used"] <= sum(by_model.values())
    assert "the embedding model, fine-tuned first" in metrics["labelled_pairs_text"]
    bundled = Path(models.resolve(models.BUNDLED)) / "model.safetensors"
    assert sha256_of(tuned / "model.safetensors") != sha256_of(bundled)  # it moved
    # the validation figure of "the first stage" is the untouched model's order, not the tuned prior's
    val = metrics["validation"]
    spec = load_spec(run.model_dir)
    assert spec["kind"] == "residual" and Path(spec["embedding_model"]["path"]) == tuned.resolve()
    reranker = Reranker.load(run.model_dir)
    q = "vitamin D and bone density"
    docs = [p["text"] for p in store.fetch_passages(db, pid)[:5]]
    got = reranker.score(q, docs)
    ws = store.workspace_of(db)
    vec = embed_texts([q, *docs], str(tuned), workspace=ws)
    untouched = embed_texts([q, *docs], models.BUNDLED, workspace=ws)
    logits = reranker.cross_encoder_scores([(q, docs)])[0]
    assert np.allclose(got, logits + spec["beta"] * (vec[1:] @ vec[0]), atol=1e-4)
    assert not np.allclose(vec[1:] @ vec[0], untouched[1:] @ untouched[0], atol=1e-4)
    assert 0 <= val["first_stage_ndcg@10"] <= 1
    bundle = export_bundle(db, run_id, tmp_path / "bundle", project=pid)
    shipped = json.loads((Path(bundle["path"]) / "rerank_spec.json").read_text())
    assert shipped["embedding_model"]["sha256"] == sha256_of(tuned / "model.safetensors")
    assert bundle["check"]["max_abs_score_diff"] <= 1e-4
    # the next plan in this workspace tunes at the rate this run measured (3 steps can take under the 5 s that
    # `learn` requires of a measurement, so the record says 12 s)
    records.update_run(
        db, run_id, metrics={**run.metrics, "prior": {**run.metrics["prior"], "seconds": 12.0}}
    )
    estimates.learn(db)
    rate, measured = estimates.rate(ws, "prior_pairs_per_s", metrics["prior"]["precision"])
    assert measured and rate == pytest.approx(metrics["prior"]["pairs"] / 12.0, rel=0.01)
