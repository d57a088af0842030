"""Training on real SciFact subsets with the bundled model: few steps, short max length, small batches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core import review, store, training
from core.runs import jobs, records
from core.scoring import files
from core.scoring import metrics as scoring_metrics
from core.training import ConfigError, TrainConfig, candidates, cli, launch, snapshot
from tests.conftest import ROOT, seed_scifact, wait_until

pytestmark = pytest.mark.timeout(300)


def tiny(**over) -> TrainConfig:
    """A few steps at max length 64: enough to move a fresh head, small enough for the test budget."""
    base = dict(
        max_length=64,
        batch_size=8,
        max_steps=8,
        eval_steps=4,
        learning_rate=7e-5,
        head_lr_multiplier=20.0,
        hard_negatives=1,
        random_negatives=1,
        candidates_k=8,
        validation_fraction=0.2,
        early_stopping_patience=0,
        fusion=True,
    )
    base.update(over)
    return TrainConfig(**base)


def no_first_stage(monkeypatch) -> None:
    """Candidate lists without embedding anything (data tests that do not look at the lists)."""
    monkeypatch.setattr(
        candidates, "first_stage", lambda conn, project, queries, k, spec, ws: [[] for _ in queries]
    )


# --- configuration and data (no model) ------------------------------------------------------------


@pytest.mark.parametrize(
    "over, message",
    [
        ({"learning_rate": 5.0}, "Learning rate 5 is out of range"),
        ({"learning_rate": 0.0}, "Learning rate 0 is out of range"),
        ({"batch_size": 0}, "Batch size 0 is out of range"),
        ({"batch_size": 4096}, "Batch size 4096 is out of range"),
        ({"warmup_ratio": 0.9}, "Warm-up ratio 0.9 is out of range"),
        ({"loss": "hinge"}, "Unknown loss 'hinge'"),
        ({"validation": "dev"}, "Validation 'dev' is unknown"),
        ({"hard_negatives": 0, "random_negatives": 0}, "needs negatives"),
    ],
)
def test_bad_config_gets_a_clear_message(over, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**over).validate()


def test_a_folder_that_is_not_a_cross_encoder_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="is not a cross-encoder: its architecture is GPT2LMHeadModel"):
        TrainConfig(base_model=str(tmp_path)).validate()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="not a model folder"):
        TrainConfig(base_model=str(empty)).validate()


def test_defaults_adapt_to_data_size_and_base_model(tmp_path):
    small = training.default_config({"train_positives": 919, "train_queries": 809, "test_queries": 300})
    big = training.default_config({"train_positives": 50000, "train_queries": 40000, "test_queries": 300})
    assert small.epochs > big.epochs and small.learning_rate > 2e-5 and small.head_lr_multiplier > 1
    assert small.warmup_ratio == 0.1 and small.keep_best and small.validation == "split"
    trained = tmp_path / "ce"
    trained.mkdir()
    (trained / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}))
    ce = training.default_config({"train_positives": 919, "train_queries": 809}, str(trained))
    assert ce.learning_rate < small.learning_rate and ce.head_lr_multiplier == 1.0
    tiny_data = training.default_config({"train_positives": 12, "train_queries": 10, "test_queries": 0})
    assert tiny_data.validation == "split" and tiny_data.validation_fraction == 0.5  # 5 held out, 5 to train
    assert (
        small.loss == "residual"
        and small.batch_size * (1 + small.hard_negatives + small.random_negatives) == 32
    )
    assert ce.loss == "bce"  # a trained cross-encoder is fine-tuned directly
    assert training.propose_loss("labelled pairs", fresh=True)[0] == "residual"
    assert training.propose_loss("labelled pairs")[0] == "bce"
    assert training.propose_loss("triplets")[0] == "mnrl"
    assert training.propose_loss("query + several negatives")[0] == "lambda"


def test_false_negatives_are_positives_never_negatives(scifact_project, monkeypatch):
    db, pid = scifact_project
    # a mined hard negative reviewed as 'relevant' and one still 'negative', for the same query
    q = db.execute(
        "SELECT id FROM queries WHERE project_id = ? AND split = 'train' ORDER BY id LIMIT 1", (pid,)
    ).fetchone()[0]
    extra = [
        r[0]
        for r in db.execute(
            "SELECT id FROM passages WHERE project_id = ? AND source = 'corpus' ORDER BY id LIMIT 2", (pid,)
        )
    ]
    with store.transaction(db):
        for p, status in zip(extra, ("relevant", "negative")):
            db.execute(
                "INSERT INTO negatives (project_id, query_id, passage_id, kind, rank, status) VALUES (?, ?, ?, 'hard', 1, ?)",
                (pid, q, p, status),
            )
    no_first_stage(monkeypatch)
    data = training.build_data(db, pid, tiny(validation="none", random_negatives=3))
    text = {r[0]: r[1] for r in db.execute("SELECT id, text FROM passages WHERE project_id = ?", (pid,))}
    qtext = db.execute("SELECT text FROM queries WHERE id = ?", (q,)).fetchone()[0]
    mine = [r for r in data.train_rows if r["query"] == qtext]
    assert {"passage": text[extra[0]], "label": 1.0}.items() <= next(
        r for r in mine if r["passage"] == text[extra[0]]
    ).items()
    # never a negative of its own query (another query may still draw it as a random negative)
    assert not any(r["passage"] == text[extra[0]] and r["label"] == 0.0 for r in mine)
    assert any(r["passage"] == text[extra[1]] and r["label"] == 0.0 for r in mine)
    assert data.stats["reviewed_false_negatives_as_positives"] == 1
    assert data.eval_source == "none" and "off" in data.eval_note


@pytest.mark.parametrize(
    "loss, columns",
    [
        ("bce", ["query", "passage", "label"]),
        ("mnrl", ["query", "positive", "negative_1", "negative_2"]),
        ("lambda", ["query", "docs", "labels"]),
    ],
)
def test_rows_take_the_shape_the_loss_needs(scifact_project, monkeypatch, loss, columns):
    db, pid = scifact_project
    no_first_stage(monkeypatch)
    data = training.build_data(
        db, pid, tiny(loss=loss, validation="none", hard_negatives=0, random_negatives=2)
    )
    assert data.train_rows and all(list(r) == columns for r in data.train_rows)
    if loss == "lambda":
        assert all(sum(r["labels"]) >= 1 and len(r["docs"]) == len(r["labels"]) >= 3 for r in data.train_rows)


def test_evaluation_off_without_test_set_and_too_few_queries(db, monkeypatch):
    pid = seed_scifact(db, "few", n_train=8, n_test=0, n_extra=20)
    no_first_stage(monkeypatch)
    data = training.build_data(db, pid, tiny(validation="split"))
    assert data.eval_source == "none" and data.eval_samples == []
    assert "Evaluation is off" in data.eval_note and "no test set" in data.eval_note


def test_small_projects_never_validate_on_the_test_set(db, monkeypatch):
    """Issue 14: with < 30 training queries the test set used to pick checkpoints, stop early and fuse, silently."""
    no_first_stage(monkeypatch)
    small = seed_scifact(db, "small", n_train=20, n_test=5, n_extra=20)
    cfg = training.default_config(store.project_counts(db, small))
    assert cfg.validation == "split"
    data = training.build_data(db, small, TrainConfig.from_dict({**cfg.to_dict(), "hard_negatives": 1}))
    assert data.eval_source == "split" and data.stats["validation_queries"] >= 5
    test_queries = {s["query"] for s in data.test_samples}
    assert data.eval_samples and not test_queries & {s["query"] for s in data.eval_samples}
    # a held-out slice under 5 queries is raised to 5 (and said so) instead of switching to the test set
    raised = training.build_data(db, small, tiny(validation="split", validation_fraction=0.1))
    assert (
        raised.eval_source == "split"
        and raised.stats["validation_queries"] == 5
        and "5 of them" in raised.eval_note
    )
    few = seed_scifact(db, "few", n_train=8, n_test=5, n_extra=20)
    assert training.default_config(store.project_counts(db, few)).validation == "none"
    off = training.build_data(db, few, tiny(validation="split"))
    assert off.eval_source == "none" and off.eval_samples == [] and off.test_samples
    assert "test labels are never used" in off.eval_note and "No checkpoint choice" in off.eval_note
    assert training.test_labels_used_for(tiny(), off.eval_source, None) == []


@pytest.mark.timeout(60)
def test_random_negatives_stop_with_the_pool_size_when_the_pool_is_exhausted(db, monkeypatch):
    """Issue 14: every eligible passage already a hard negative used to make the sampler draw forever; issue 22:
    instead of refusing the run, the query takes what its pool holds and the run says so."""
    no_first_stage(monkeypatch)
    pid = seed_scifact(db, "tiny", n_train=3, n_test=0, n_extra=0)
    q = db.execute(
        "SELECT id FROM queries WHERE project_id = ? AND split = 'train' ORDER BY id LIMIT 1", (pid,)
    ).fetchone()[0]
    own = {r[0] for r in db.execute("SELECT passage_id FROM pairs WHERE query_id = ?", (q,))}
    others = [
        r[0]
        for r in db.execute("SELECT id FROM passages WHERE project_id = ? ORDER BY id", (pid,))
        if r[0] not in own
    ]
    assert others
    with store.transaction(db):
        for rank, p in enumerate(others, 1):
            db.execute(
                "INSERT INTO negatives (project_id, query_id, passage_id, kind, rank, status) "
                "VALUES (?, ?, ?, 'hard', ?, 'unjudged')",
                (pid, q, p, rank),
            )
    data = training.build_data(db, pid, tiny(validation="none", hard_negatives=50, random_negatives=1))
    note = data.stats["adapted"][0]
    assert (
        note.startswith("random negatives: 3 of 3 queries") and ": 0 of " in note
    )  # the exhausted one: none left
    assert data.stats["random_negatives"] > 0  # the other queries still draw what their pools hold


def test_every_config_field_is_a_typed_documented_flag():
    import argparse

    parser = argparse.ArgumentParser()
    cli.cli_arguments(parser)
    args = parser.parse_args(
        [
            "--project",
            "p",
            "--residual-beta",
            "5",
            "--pos-weight",
            "2.5",
            "--keep-best",
            "false",
            "--batch-size",
            "8",
            "--validation",
            "none",
        ]
    )
    assert args.residual_beta == 5.0 and isinstance(args.residual_beta, float)
    assert args.pos_weight == 2.5 and args.keep_best is False and args.batch_size == 8
    with pytest.raises(SystemExit):
        parser.parse_args(["--project", "p", "--batch-size", "many"])
    cfg = cli.config_from_args(args, {"train_queries": 100, "train_positives": 120})
    assert cfg.residual_beta == 5.0 and cfg.keep_best is False and cfg.validation == "none"
    out = subprocess.run(
        [sys.executable, "-m", "core", "train", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "400"},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    import dataclasses

    docs = training.config.field_help()
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        assert flag in out.stdout and docs[f.name] and docs[f.name].split(";")[0][:40] in out.stdout, f.name


# --- real training (bundled model, few steps) -------------------------------------------------------


def test_training_learns_keeps_best_and_records_everything(scifact_project):
    db, pid = scifact_project
    run_id, metrics = training.train_project(
        db, pid, tiny(max_steps=16, eval_steps=4, hard_negatives=1, random_negatives=1, learning_rate=1e-4)
    )
    run = records.get_run(db, run_id)
    assert run.status == "completed", run.error
    losses = [
        json.loads(r[0])["loss"]
        for r in db.execute(
            "SELECT data FROM run_events WHERE run_id = ? AND kind = 'loss' ORDER BY step", (run_id,)
        )
    ]
    assert len(losses) >= 3
    assert sum(losses[-2:]) / 2 < losses[0]  # the loss falls from its first value
    evals = [
        (r[0], json.loads(r[1]))
        for r in db.execute(
            "SELECT step, data FROM run_events WHERE run_id = ? AND kind = 'eval' ORDER BY step", (run_id,)
        )
    ]
    assert [s for s, _ in evals] == [4, 8, 12, 16]
    # issue 22: a later checkpoint is kept unless the best so far beats it beyond the noise; the count of kept
    # checkpoints never falls, and the best is the evaluation at which it last rose
    kept = [e["val_checkpoints_kept"] for _, e in evals]
    assert kept == sorted(kept) and kept[0] == 1 and len(metrics["checkpoint_decisions"]) == len(evals) - 1
    best_step = min(s for s, e in evals if e["val_checkpoints_kept"] == kept[-1])
    best = dict(evals)[best_step]
    assert all(e["val_ndcg@10_ci_low"] <= e["val_ndcg@10"] <= e["val_ndcg@10_ci_high"] for _, e in evals)
    assert metrics["best_validation_ndcg@10"] == pytest.approx(best["val_ndcg@10"])
    assert metrics["best_step"] == best_step
    # the saved model is the best checkpoint: its validation score is the best one, not the last one
    assert metrics["validation"]["ndcg@10"] == pytest.approx(best["val_ndcg@10"], abs=1e-6)
    model_dir = Path(run.model_dir)
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "config.json").is_file()
    readme = (model_dir / "README.md").read_text()
    assert "Rerank Studio" in readme and run.snapshot["hash"] in readme and "ndcg@10" in readme
    assert run.snapshot["positives"] > 0 and run.snapshot["validation_queries"] >= 5
    assert run.config["max_length"] == 64 and run.metrics["steps"] == 16
    assert run.progress["step"] == 16 and run.progress["total"] == 16
    assert "test" in metrics and 0 <= metrics["test"]["ndcg@10"] <= 1
    if "fusion" in metrics:  # recorded for the evaluation page only when it wins on validation
        assert json.loads((model_dir / files.FUSION_FILE).read_text())["alpha"] == metrics["fusion"]["alpha"]
        assert metrics["fusion"]["validation_ndcg@10"] > metrics["validation"]["ndcg@10"]
    from core import models

    reloaded = models.load_cross_encoder(str(model_dir), max_length=64)
    assert reloaded.num_labels == 1


def _unjudged_candidate_for_a_new_query(db, pid: int) -> tuple[int, int]:
    """A query with only a label-0 pair and one mined candidate: judging it relevant makes a new training query."""
    passages = [
        r[0]
        for r in db.execute(
            "SELECT text FROM passages WHERE project_id = ? AND source = 'corpus' ORDER BY id LIMIT 2", (pid,)
        )
    ]
    with store.transaction(db):
        store.insert_pairs(
            db, pid, [("Do reviewed false negatives change a run that already started?", passages[0], 0)]
        )
        q = db.execute(
            "SELECT id FROM queries WHERE project_id = ? AND text LIKE 'Do reviewed false%'", (pid,)
        ).fetchone()[0]
        p = db.execute(
            "SELECT id FROM passages WHERE project_id = ? AND text = ?", (pid, passages[1])
        ).fetchone()[0]
        cur = db.execute(
            "INSERT INTO negatives (project_id, query_id, passage_id, kind, rank, status) "
            "VALUES (?, ?, ?, 'random', 1, 'unjudged')",
            (pid, q, p),
        )
    row = db.execute("SELECT id, version FROM negatives WHERE id = ?", (cur.lastrowid,)).fetchone()
    return row[0], row[1]


def test_cancel_then_resume_continues_from_the_checkpoint_on_the_runs_snapshot(scifact_project):
    """Issue 14: a judgement between cancel and resume used to move queries between training and validation and
    refit beta mid-run; the resumed run trains on the data snapshot frozen at its first start."""
    db, pid = scifact_project
    negative_id, version = _unjudged_candidate_for_a_new_query(db, pid)
    cfg = tiny(
        loss="residual",
        max_steps=40,
        eval_steps=4,
        batch_size=2,
        hard_negatives=2,
        random_negatives=1,
        validation="split",
    )
    run_id = launch.submit(db, pid, cfg)
    wait_until(lambda: (records.get_run(db, run_id).progress.get("step") or 0) >= 2, 180, "training steps")
    assert launch.cancel(db, run_id) == "cancelling"
    watch = wait_until(
        lambda: (r := launch.poll(db, run_id)).status != "running" and r, 120, "the run to stop"
    )
    assert watch.status == "cancelled", watch.run.error
    ckpt = records.latest_checkpoint(records.run_folder(db, run_id) / "checkpoints")
    assert ckpt, "cancel saves a checkpoint"
    stopped_at = int(ckpt.rsplit("-", 1)[1])
    assert 2 <= stopped_at < 40
    with pytest.raises(ValueError, match="only a queued or running run can be cancelled"):
        launch.cancel(db, run_id)
    first = records.get_run(db, run_id).snapshot
    frozen = snapshot.load(records.run_folder(db, run_id), TrainConfig.from_dict(watch.run.config))
    split = [s["query"] for s in frozen.eval_samples]
    # a reviewer judges a candidate between cancel and resume: the project now has one more training query
    review.judge(db, negative_id, "relevant", version)
    rebuilt = training.build_data(db, pid, TrainConfig.from_dict(watch.run.config))
    before = frozen.stats["train_queries"] + frozen.stats["validation_queries"]
    assert rebuilt.stats["train_queries"] + rebuilt.stats["validation_queries"] == before + 1
    assert rebuilt.snapshot["hash"] != first["hash"]
    # a short remaining schedule: same run, fewer total steps keeps the test fast
    config = records.get_run(db, run_id).config
    records.update_run(db, run_id, config={**config, "max_steps": stopped_at + 4})
    launch.resume(db, run_id)
    watch = launch.wait(db, run_id, timeout=240)
    assert watch.status == "completed", watch.run.error
    texts = [e["data"].get("text", "") for e in watch.events]
    assert any(t.startswith(f"Resuming from checkpoint-{stopped_at}") for t in texts)
    assert any(t.startswith(f"Using the run's data snapshot {first['hash']}") for t in texts)
    assert any("beta fitted on the training queries' candidate lists" in t for t in texts)  # not set by hand
    data_lines = [t for t in texts if t.startswith("Data: ")]
    assert (
        len(data_lines) == 2 and data_lines[0] == data_lines[1]
    )  # same rows, split and beta before and after
    assert watch.run.snapshot == first
    after = snapshot.load(records.run_folder(db, run_id), TrainConfig.from_dict(watch.run.config))
    assert [s["query"] for s in after.eval_samples] == split
    assert (
        watch.run.metrics["fusion"]["beta"]
        == frozen.residual_beta
        == json.loads(data_lines[0][6:])["residual_beta"]
    )
    assert watch.run.metrics["steps"] == stopped_at + 4
    assert Path(watch.run.model_dir, "model.safetensors").is_file()


def test_validating_on_the_test_set_only_when_asked_and_then_labelled(db):
    """Issue 14: when a person chooses the test set, the run says which choices its labels made."""
    pid = seed_scifact(db, "asked", n_train=8, n_test=5, n_extra=20)
    run_id, metrics = training.train_project(db, pid, tiny(validation="test", max_steps=2, eval_steps=2))
    run = records.get_run(db, run_id)
    assert run.status == "completed", run.error
    assert (
        metrics["evaluation"] == "test" and "test" not in metrics
    )  # the "validation" figures are the test set
    assert metrics["test_labels_used_for"] == ["checkpoint", "fusion weight", "validation figures"]
    assert run.metrics["test_labels_used_for"] == metrics["test_labels_used_for"]
    assert "Test labels were used for: checkpoint" in Path(run.model_dir, "README.md").read_text()
    level, text = training.verdict(metrics)
    assert "on the test set" in text and "Test labels were used for" in text


def test_killed_job_is_detected_and_a_queued_run_waits_its_turn(scifact_project):
    db, pid = scifact_project
    first = launch.submit(db, pid, tiny(max_steps=200, validation="none"))
    second = launch.submit(db, pid, tiny(max_steps=2, validation="none"))
    assert records.get_run(db, second).status == "queued"  # one heavy job at a time
    job_pid = wait_until(lambda: records.get_run(db, first).pid, 30, "the job's pid")
    wait_until(lambda: (records.get_run(db, first).progress.get("step") or 0) >= 1, 180, "training to start")
    os.killpg(os.getpgid(job_pid), signal.SIGKILL)
    wait_until(lambda: not jobs.pid_alive(job_pid), 10, "the job to die")
    watch = launch.poll(db, first)
    assert watch.status == "failed" and "process died" in watch.run.error
    # the dead run freed the machine: the queued one starts and finishes
    done = launch.wait(db, second, timeout=200)
    assert done.status == "completed", done.run.error
    assert records.get_run(db, first).status == "failed"  # no other run touched


def test_a_failure_marks_only_that_run_failed(scifact_project, tmp_path):
    db, pid = scifact_project
    other = training.create_run(db, pid, tiny(), status="completed")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))
    (broken / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(RuntimeError, match="Could not load cross-encoder"):
        training.train_project(db, pid, tiny(base_model=str(broken), validation="none"))
    runs = {r.id: r for r in launch.list_runs(db, pid)}
    failed = [r for r in runs.values() if r.status == "failed"]
    assert len(failed) == 1 and "Could not load cross-encoder" in failed[0].error
    assert runs[other].status == "completed"


# --- CLI and torchrun ----------------------------------------------------------------------------


def test_torchrun_two_cpu_processes_only_rank0_writes(workspace, db):
    pid = seed_scifact(db, "dist", n_train=16, n_test=0, n_extra=40)
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "RERANK_STUDIO_HOME": str(workspace), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "core",
            "train",
            "--project",
            "dist",
            "--defaults",
            "plain",
            "--max-length",
            "64",
            "--batch-size",
            "4",
            "--max-steps",
            "3",
            "--validation",
            "none",
            "--hard-negatives",
            "1",
            "--random-negatives",
            "1",
            "--eval-steps",
            "3",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout  # only rank 0 prints
    result = json.loads(lines[0])
    assert result["status"] == "completed" and result["metrics"]["steps"] == 3
    runs = launch.list_runs(db, pid)
    assert [r.id for r in runs] == [result["run_id"]]  # one run, created once
    started = db.execute(
        "SELECT COUNT(*) FROM run_events WHERE run_id = ? AND data LIKE '%Started%'", (result["run_id"],)
    ).fetchone()[0]
    assert started == 1
    assert Path(runs[0].model_dir, "model.safetensors").is_file()


def test_residual_run_starts_at_the_embedding_ranking_learns_and_is_evaluated_as_trained(scifact_project):
    """The fresh-head default: logit + beta x cosine, a zero head at step 0, the same score at evaluation."""
    import numpy as np
    import torch

    from core import evaluation, models
    from core.embeddings import embed_texts

    db, pid = scifact_project
    cfg = tiny(
        loss="residual",
        max_steps=12,
        eval_steps=4,
        batch_size=2,
        hard_negatives=2,
        random_negatives=1,
        learning_rate=1e-4,
        early_stopping_patience=0,
    )
    data = training.build_data(db, pid, cfg)
    assert all(list(r) == ["query", "docs", "priors", "labels"] for r in data.train_rows)
    beta = data.residual_beta
    assert beta is not None and 1 <= beta <= 100 and data.stats["residual_beta"] == beta
    pos = [p for r in data.train_rows for p, lab in zip(r["priors"], r["labels"]) if lab > 0]
    neg = [p for r in data.train_rows for p, lab in zip(r["priors"], r["labels"]) if lab == 0]
    assert np.mean(pos) > np.mean(neg) + 0.1  # the embedding cosine already separates them: the prior is real
    # a zero head ranks exactly like the first stage
    model = models.load_cross_encoder(models.BUNDLED, max_length=64)
    model.activation_fn = torch.nn.Identity()
    torch.nn.init.zeros_(model.model.classifier.weight)
    torch.nn.init.zeros_(model.model.classifier.bias)
    at_start = training.make_residual_evaluator(data.eval_samples, beta, "val")(model)
    first = scoring_metrics.rank_metrics(
        data.eval_samples, [np.asarray(s["first_stage_scores"]) for s in data.eval_samples]
    )
    assert at_start["val_ndcg@10"] == pytest.approx(first["ndcg@10"], abs=1e-9)

    run_id, metrics = training.train_project(db, pid, cfg)
    run = records.get_run(db, run_id)
    assert run.status == "completed", run.error
    losses = [
        json.loads(r[0])["loss"]
        for r in db.execute(
            "SELECT data FROM run_events WHERE run_id = ? AND kind = 'loss' ORDER BY step", (run_id,)
        )
    ]
    assert losses and all(np.isfinite(losses))
    assert metrics["fusion"]["method"] == "residual" and metrics["fusion"]["beta"] == beta
    assert 0 <= metrics["validation"]["cross_encoder_alone_ndcg@10"] <= 1
    model_dir = Path(run.model_dir)
    assert json.loads((model_dir / files.FUSION_FILE).read_text())["beta"] == beta
    assert (
        "+ " in (model_dir / "README.md").read_text() and "x cosine" in (model_dir / "README.md").read_text()
    )
    reloaded = models.load_cross_encoder(str(model_dir), max_length=64)
    assert isinstance(
        reloaded.activation_fn, torch.nn.Identity
    )  # predict gives the logit the residual adds to
    assert training.verdict(metrics).sentence.startswith("The reranker (cross-encoder + ")

    # evaluation scores the run as trained; its cross-encoder part is shown apart
    res = evaluation.evaluate(
        db, pid, [run_id], first_stage="bm25", top_k=5, include_base=False, n_bootstrap=50
    )
    key = f"run:{run_id}"
    kinds = {s["key"]: s["kind"] for s in res["systems"]}
    assert kinds[key] == "run" and kinds[f"{key}:cross-encoder"] == "component"
    assert "as trained" in evaluation.system(res, key)["label"]
    q = next(iter(res["queries"]))
    combined = dict((d, s) for d, s in res["rankings"][key][q])
    part = dict((d, s) for d, s in res["rankings"][f"{key}:cross-encoder"][q])
    docs = list(combined)
    vec = embed_texts(
        [res["queries"][q]["text"]] + [evaluation.project_test_set(db, pid).corpus[d] for d in docs],
        models.BUNDLED,
        workspace=store.workspace_of(db),
    )
    prior_key = f"prior:{metrics['fusion']['first_stage']}"  # BM25 candidates: the cosine alone is shown too
    assert kinds[prior_key] == "component"
    assert any(c["system"] == key and c["reference"] == prior_key for c in res["comparisons"])
    prior = dict((d, s) for d, s in res["rankings"][prior_key][q])
    for d, cos in zip(docs, vec[1:] @ vec[0]):
        assert combined[d] == pytest.approx(part[d] + beta * float(cos), abs=1e-4)
        assert prior[d] == pytest.approx(float(cos), abs=1e-5)
