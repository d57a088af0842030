"""Issue 16: continued fine-tuning from a trained reranker (a studio run as the base), offline, end to end; the base
picker's catalogue, cache scan, download messages and folder recognition; the GPU training arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from core import bases, evaluation, models, training
from core.runs import records
from core.runs.records import run_events
from core.scoring.metrics import rank_metrics
from core.training import TrainConfig, continued, device_args, snapshot
from tests.conftest import ROOT, seed_scifact

pytestmark = pytest.mark.timeout(600)


def tiny(**over) -> TrainConfig:
    """Plain BCE, a few steps at max length 32 (the sizes of tests/test_training.py)."""
    base = dict(
        loss="bce",
        max_length=32,
        batch_size=8,
        max_steps=4,
        eval_steps=2,
        learning_rate=5e-5,
        hard_negatives=1,
        random_negatives=1,
        candidates_k=8,
        validation_fraction=0.2,
        early_stopping_patience=0,
        fusion=False,
    )
    base.update(over)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def continued_runs(tmp_path_factory):
    """A plain BCE run on project 'first', then a second run on project 'second' whose base is its model folder."""
    import os

    from core import store

    home = tmp_path_factory.mktemp("continued") / "home"
    old = os.environ.get("RERANK_STUDIO_HOME")
    os.environ["RERANK_STUDIO_HOME"] = str(home)
    db = store.connect(home)
    try:
        first = seed_scifact(db, "first", n_train=24, n_test=0, n_extra=60)
        run1, m1 = training.train_project(db, first, tiny(validation="none"))
        folder1 = Path(records.get_run(db, run1).model_dir)
        second = seed_scifact(db, "second", n_train=30, n_test=8, n_extra=80)
        run2, m2 = training.train_project(db, second, tiny(base_model=str(folder1)))
        yield {
            "db": db,
            "home": home,
            "first": first,
            "second": second,
            "run1": run1,
            "run2": run2,
            "folder1": folder1,
            "m1": m1,
            "m2": m2,
        }
    finally:
        db.close()
        if old is None:
            os.environ.pop("RERANK_STUDIO_HOME", None)
        else:
            os.environ["RERANK_STUDIO_HOME"] = old


def test_the_second_run_trains_from_the_first_and_starts_where_it_ended(continued_runs):
    r = continued_runs
    db, folder1 = r["db"], r["folder1"]
    info = bases.describe_folder(folder1.parent)  # runs/<id> is recognised and its model/ used
    assert info.kind == "studio run" and info.path == str(folder1.resolve()) and info.max_length == 32
    assert training.is_trained(
        str(folder1)
    )  # a trained head: no new (MISSING) head, no head learning-rate boost
    run2 = records.get_run(db, r["run2"])
    assert run2.status == "completed", run2.error
    events = run_events(db, r["run2"])
    assert not any("MISSING" in json.dumps(e["data"]) for e in events)
    step0 = [e["data"] for e in events if e["kind"] == "eval" and e["step"] == 0]
    assert len(step0) == 1, "the base's validation at step 0 is recorded"
    # predictions at step 0 are the first run's: its model scores the second run's validation lists the same
    cfg = TrainConfig.from_dict(run2.config)
    data = snapshot.load(Path(run2.model_dir).parent, cfg)
    first_model = models.load_cross_encoder(str(folder1), max_length=32)
    scores = training.score_samples(first_model, data.eval_samples)
    assert step0[0]["val_ndcg@10"] == pytest.approx(
        rank_metrics(data.eval_samples, scores)["ndcg@10"], abs=1e-6
    )
    assert r["m2"]["base_validation_ndcg@10"] == pytest.approx(step0[0]["val_ndcg@10"])
    curve = training.curves(events)[1]
    assert curve[0]["step"] == 0 and [p["step"] for p in curve][1:] == [2, 4]


def test_keep_best_never_returns_a_model_worse_than_the_base(continued_runs):
    m2 = continued_runs["m2"]
    base = m2["base_validation_ndcg@10"]
    assert m2["best_validation_ndcg@10"] >= base
    assert m2["validation"]["ndcg@10"] >= base - 1e-6
    if m2.get("kept_base"):  # the fine-tuning only hurt: the saved weights are the base's
        saved_dir = records.get_run(continued_runs["db"], continued_runs["run2"]).model_dir
        saved = models.load_cross_encoder(saved_dir, max_length=32)
        first = models.load_cross_encoder(str(continued_runs["folder1"]), max_length=32)
        assert torch.equal(saved.model.classifier.weight, first.model.classifier.weight)


def test_keep_base_when_every_checkpoint_is_worse(monkeypatch, db):
    """The guard itself: best checkpoint below the base -> the base's weights, said in the run's log."""
    from core.training.run_record import create_run

    pid = seed_scifact(db, "guard", n_train=2, n_test=0, n_extra=2)
    cfg = TrainConfig()
    run_id = create_run(db, pid, cfg)
    monkeypatch.setattr(continued, "reload_base", lambda cfg, beta: "the base")
    metrics = {"best_validation_ndcg@10": 0.40}
    assert continued.keep_base_if_better(db, run_id, cfg, "fine-tuned", 0.50, metrics, None) == "the base"
    assert metrics["kept_base"] and metrics["best_step"] == 0 and metrics["best_validation_ndcg@10"] == 0.50
    assert any("keeps the base's weights" in e["data"].get("text", "") for e in run_events(db, run_id))
    better = {"best_validation_ndcg@10": 0.60}
    assert continued.keep_base_if_better(db, run_id, cfg, "fine-tuned", 0.50, better, None) == "fine-tuned"
    assert "kept_base" not in better and better["base_validation_ndcg@10"] == 0.50
    assert continued.keep_base_if_better(db, run_id, cfg, "fresh", None, {}, None) == "fresh"


def test_evaluation_compares_base_and_fine_tuned_by_default_and_the_page_shows_both(
    continued_runs, monkeypatch
):
    r = continued_runs
    db = r["db"]
    res = evaluation.evaluate(db, r["second"], [r["run2"]], first_stage="bm25", top_k=5, n_bootstrap=100)
    kinds = {s["kind"]: s for s in res["systems"]}
    assert {"first_stage", "base", "run"} <= set(kinds)
    assert kinds["base"]["random_head"] is False  # a trained base is a real baseline
    assert any(c["reference"] == kinds["base"]["key"] for c in res["comparisons"])
    monkeypatch.setenv("RERANK_STUDIO_HOME", str(r["home"]))
    at = AppTest.from_file(str(ROOT / "pages" / "evaluate.py"), default_timeout=120)
    at.session_state["project_id"] = r["second"]
    at.session_state["project_name"] = "second"
    at.run()
    assert not at.exception
    assert at.checkbox(key="eval_base").value is True  # offered by default for a trained base
    labels = list(at.dataframe[0].value["system"])
    assert any(label.startswith("Base model") for label in labels)
    assert any(label.startswith("Fine-tuned run " + r["run2"]) for label in labels)
    assert systems_of(at, "eval_reference")[0].startswith("Base model")  # per query: over the base by default


def systems_of(at: AppTest, key: str) -> list[str]:
    """The selected label of a selectbox (as shown)."""
    box = at.selectbox(key=key)
    return [box.options[box.index]]


# --- the base picker's pieces ----------------------------------------------------------------------


def test_catalogue_and_cache_scan_work_offline(tmp_path):
    rows = bases.catalogue_rows(tmp_path / "no-cache")
    ids = [r["model"] for r in rows]
    for wanted in (
        "cross-encoder/ms-marco-MiniLM-L6-v2",
        "BAAI/bge-reranker-base",
        "mixedbread-ai/mxbai-rerank-base-v1",
        "BAAI/bge-small-en-v1.5",
        bases.BUNDLED_HUB_ID,
    ):
        assert wanted in ids
    by_id = {r["model"]: r for r in rows}
    assert by_id[bases.BUNDLED_HUB_ID]["available"] == "bundled"
    assert by_id["BAAI/bge-reranker-base"]["available"] == "not downloaded"
    assert all(r["licence"] and r["max length"] > 0 and r["size (MB)"] > 0 for r in rows)
    # a snapshot in a (fake) cache is found without the network
    snap = tmp_path / "hub" / "models--cross-encoder--ms-marco-MiniLM-L6-v2" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--cross-encoder--ms-marco-MiniLM-L6-v2" / "refs").mkdir()
    assert "cross-encoder/ms-marco-MiniLM-L6-v2" in bases.cached_models(tmp_path / "hub")


def test_download_offline_says_why(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(bases.DownloadError, match="HF_HUB_OFFLINE=1"):
        bases.download("BAAI/bge-reranker-base")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(bases, "online", lambda timeout=1.5: False)
    with pytest.raises(bases.DownloadError, match="cannot be reached"):
        bases.download("BAAI/bge-reranker-base")
    with pytest.raises(bases.DownloadError, match="owner/name"):
        bases.download("not-a-hub-id")


def test_download_reports_progress_through_core_progress(monkeypatch):
    """The tqdm class handed to snapshot_download turns its byte bar into core.progress calls."""
    import huggingface_hub

    def fake_snapshot(repo_id, tqdm_class, **kw):
        bar = tqdm_class(total=4_000_000, unit="B", desc="Reconstructing")
        for _ in range(4):
            bar.update(1_000_000)
        bar.close()
        return "/cache/" + repo_id

    seen = []
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(bases, "online", lambda timeout=1.5: True)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    assert bases.download("a/b", lambda f, m: seen.append((f, m))) == "/cache/a/b"
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and 0.5 in fractions
    assert any("MB" in m for _, m in seen)


def test_folders_are_recognised(tmp_path):
    from tests.model_folders import make_model_folder

    run_model = make_model_folder(
        tmp_path / "run" / "model",
        fusion={"method": "residual", "beta": 2.0, "first_stage": "embedding:" + models.BUNDLED},
    )
    info = bases.describe_folder(tmp_path / "run")
    assert info.kind == "studio run" and info.path == str(run_model.resolve()) and "residual" in info.message
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}))
    (bundle / "rerank_spec.json").write_text(
        json.dumps({"kind": "cross-encoder", "max_length": 48, "run_id": "r1"})
    )
    got = bases.describe_folder(bundle)
    assert got.kind == "bundle" and got.max_length == 48 and "r1" in got.message
    plain = tmp_path / "ce"
    plain.mkdir()
    (plain / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}))
    assert bases.describe_folder(plain).kind == "cross-encoder"
    (plain / "config.json").write_text(
        json.dumps({"architectures": ["BertModel"], "max_position_embeddings": 512})
    )
    assert bases.describe_folder(plain).kind == "encoder" and bases.describe_folder(plain).max_length == 512
    assert not bases.describe_folder(tmp_path / "missing").usable
    assert bases.describe_folder(tmp_path).kind == "invalid"


# --- GPUs ---------------------------------------------------------------------------------------------


def test_cpu_training_arguments_are_unchanged_in_fp32():
    hw = device_args.hardware_arguments(tiny(precision="fp32"), model=None, device="cpu")
    assert device_args.trainer_arguments(hw) == {"use_cpu": True, "bf16": False, "fp16": False}
    assert device_args.describe(hw, "cpu") == "Training on cpu in fp32 (set by the precision setting)."


def test_a_batch_that_does_not_fit_is_split_into_accumulation_steps(monkeypatch):
    monkeypatch.setattr(device_args, "mixed_precision", lambda device: "bf16")
    monkeypatch.setattr(device_args, "fit_batch_size", lambda device, **kw: 16)
    hw = device_args.hardware_arguments(tiny(batch_size=32), model=None, pairs_per_row=4.0, device="cuda")
    assert hw["bf16"] and not hw["fp16"] and not hw["use_cpu"]
    assert hw["per_device_train_batch_size"] == 4 and hw["gradient_accumulation_steps"] == 8
    assert "accumulation" in device_args.describe(hw, "cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_short_training_run_on_cuda_uses_mixed_precision(scifact_project):
    db, pid = scifact_project
    run_id, metrics = training.train_project(db, pid, tiny(max_steps=6, eval_steps=3, max_length=64))
    run = records.get_run(db, run_id)
    assert run.status == "completed", run.error
    said = " ".join(e["data"].get("text", "") for e in run_events(db, run_id) if e["kind"] == "message")
    assert "Training on cuda in bf16" in said or "Training on cuda in fp16" in said
    assert metrics["steps"] == 6


def test_the_train_page_base_picker_shows_the_catalogue_offline_and_recognises_a_run(workspace, db, tmp_path):
    from tests.model_folders import make_model_folder

    pid = seed_scifact(db, n_train=60, n_test=10, n_extra=10)
    at = AppTest.from_file(str(ROOT / "pages" / "train.py"), default_timeout=120)
    at.session_state["project_id"], at.session_state["project_name"] = pid, "scifact"
    at.run()
    at.radio(key="base_kind").set_value("hub").run()
    assert not at.exception
    tables = [d.value for d in at.dataframe if "model" in d.value.columns]
    assert tables and "BAAI/bge-reranker-base" in list(tables[0]["model"])
    at.selectbox(key="base_hub_pick").set_value("BAAI/bge-reranker-base").run()
    assert any(
        "hub is turned off" in w.value for w in at.warning
    )  # offline: a clear message, no download button
    assert not [b for b in at.button if b.label.startswith("Download")]
    at.selectbox(key="base_hub_pick").set_value(bases.BUNDLED_HUB_ID).run()
    assert any("available on this machine" in s.value for s in at.success)
    folder = make_model_folder(tmp_path / "run" / "model")
    at.radio(key="base_kind").set_value("folder").run()
    at.text_input(key="base_spec").set_value(str(tmp_path / "run")).run()
    assert not at.exception
    assert any("Studio run" in i.value and "max length 32" in i.value.lower() for i in at.info), [
        i.value for i in at.info
    ]
    assert training.is_trained(str(folder)) and any("trained cross-encoder" in c.value for c in at.caption)
