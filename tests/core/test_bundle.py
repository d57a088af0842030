"""Ship what you evaluated: a bundle evaluated in a fresh process gives the run's figures; ONNX checks the full
score and leaves nothing behind when it refuses or fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, seed_scifact

pytestmark = pytest.mark.timeout(900)

TINY = dict(
    max_length=48,
    batch_size=8,
    max_steps=4,
    eval_steps=4,
    learning_rate=1e-4,
    head_lr_multiplier=20.0,
    hard_negatives=1,
    random_negatives=1,
    candidates_k=8,
    validation_fraction=0.2,
    early_stopping_patience=0,
    fusion=False,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A SciFact project with a residual run and a plain BCE run (a few steps each), and their bundles."""
    from core import store, training
    from core.export import bundle

    home = tmp_path_factory.mktemp("ws") / "studio-home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RERANK_STUDIO_HOME", str(home))
        conn = store.connect(home)
        pid = seed_scifact(conn, n_train=30, n_test=15, n_extra=100)
        runs, bundles = {}, {}
        for loss in ("residual", "bce"):
            runs[loss], _ = training.train_project(conn, pid, training.TrainConfig(**TINY, loss=loss))
            dest = bundle.destination(conn, f"bundle-{loss}", runs[loss], explicit=False)
            bundles[loss] = bundle.export_bundle(conn, runs[loss], dest, project=pid)
        yield {"conn": conn, "pid": pid, "home": home, "runs": runs, "bundles": bundles}
        conn.close()


def _cli(home, *args) -> dict:
    env = {
        **os.environ,
        "RERANK_STUDIO_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    out = subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["residual", "bce"])
def test_bundle_evaluates_like_the_run_in_a_fresh_process(trained, kind):
    from core import evaluation

    b = trained["bundles"][kind]
    assert b["check"]["max_abs_score_diff"] < 1e-4 and b["check"]["pairs_checked"] > 10
    run = evaluation.evaluate(
        trained["conn"],
        trained["pid"],
        [trained["runs"][kind]],
        first_stage="bm25",
        top_k=20,
        include_base=False,
        oracle=False,
        n_bootstrap=50,
    )
    want = run["realistic"][f"run:{trained['runs'][kind]}"]["mean"]["ndcg@10"]
    got = _cli(
        trained["home"],
        "evaluate",
        "--project",
        "scifact",
        "--model",
        b["path"],
        "--first-stage",
        "bm25",
        "--top-k",
        "20",
        "--no-oracle",
        "--bootstrap",
        "50",
    )
    assert got["model"].startswith("model:")
    assert abs(got["reranked_ndcg10"] - want) < 1e-4


def test_bundle_layout_spec_and_card(trained):
    from pathlib import Path

    res = Path(trained["bundles"]["residual"]["path"])
    spec = json.loads((res / "rerank_spec.json").read_text())
    assert spec["kind"] == "residual" and spec["cross_encoder"] == "." and spec["beta"] > 0
    assert (
        spec["embedding_model"]["path"] == "embedding-model" and len(spec["embedding_model"]["sha256"]) == 64
    )
    assert (res / "model.safetensors").is_file() and (res / "embedding-model" / "model.safetensors").is_file()
    assert not list(res.parent.glob(".*partial*")) and not (res / "studio_run.json").exists()
    card = (res / "README.md").read_text()
    head = "\n".join(card.splitlines()[:14])
    assert "from rerank_studio_bundle import load" in head and "Do not use `CrossEncoder(" in card
    # a calibration fitted on the run's validation lists, and the cleaning of its training import (none here:
    # the project was seeded without an import)
    cal = spec["calibration"]
    assert cal["method"] == "isotonic" and cal["fitted_on"] == "validation" and cal["positives"] >= 1
    assert np.all(np.diff(cal["y"]) >= 0) and "calibrated on validation" in spec["calibration_note"]
    assert spec["cleaning"] == [] and (res / "rerank_studio_cleaning.py").is_file()
    plain = (Path(trained["bundles"]["bce"]["path"]) / "README.md").read_text()
    assert "gives exactly the evaluated score" in plain
    assert "train queries" in card  # counts, not text
    # the standalone loader gives the Reranker's score and the calibrated relevance
    from core.scoring.calibration import apply_calibration
    from core.scoring.reranker import Reranker

    sys.path.insert(0, str(res))
    try:
        import rerank_studio_bundle

        q, ps = "statins and cholesterol", ["Statins lower LDL.", "A passage about rivers."]
        shipped = rerank_studio_bundle.load(res)
        assert np.allclose(shipped.score(q, ps), Reranker.load(res).score(q, ps), atol=1e-5)
        probs = shipped.relevance(q, ps)
        assert np.all((probs >= 0) & (probs <= 1))
        assert np.allclose(probs, apply_calibration(cal, Reranker.load(res).score(q, ps)), atol=1e-6)
    finally:
        sys.path.remove(str(res))


def test_card_carries_the_latest_evaluation_with_intervals(trained, tmp_path):
    from core import evaluation
    from core.export import bundle

    rid = trained["runs"]["bce"]
    evaluation.evaluate(
        trained["conn"], trained["pid"], [rid], top_k=10, include_base=False, oracle=False, n_bootstrap=30
    )
    out = bundle.export_bundle(trained["conn"], rid, tmp_path / "explicit", project=trained["pid"])
    card = (tmp_path / "explicit" / "README.md").read_text()
    assert "this model (the evaluated score)" in card and "] |" in card and out["kind"] == "cross-encoder"
    with pytest.raises(bundle.BundleError, match="already exists"):
        bundle.destination(trained["conn"], tmp_path / "explicit", rid, explicit=True)


def test_onnx_exports_the_full_residual_score(trained):
    from core.export import bundle, onnx

    dest = bundle.destination(trained["conn"], "onnx-residual", trained["runs"]["residual"], explicit=False)
    info = onnx.export_onnx(trained["conn"], trained["runs"]["residual"], dest)
    assert info["kind"] == "residual" and info["max_abs_score_diff"] < 1e-3 and info["pairs_checked"] > 10
    assert (dest / "cross-encoder" / "model.onnx").is_file() and (
        dest / "embedding-model" / "model.onnx"
    ).is_file()
    assert json.loads((dest / "onnx_spec.json").read_text())["runtime"] == "onnx"
    assert not (dest / "rerank_spec.json").exists()  # no torch loader takes it for a bundle


def test_refused_or_failed_onnx_leaves_nothing(trained, monkeypatch):
    from core.export import bundle, onnx

    conn, rid = trained["conn"], trained["runs"]["residual"]
    dest = bundle.destination(conn, "onnx-refused", rid, explicit=False)
    monkeypatch.setattr(
        onnx, "_embedding_parts", lambda emb: (_ for _ in ()).throw(onnx.OnnxRefused("cls pooling"))
    )
    with pytest.raises(onnx.OnnxRefused, match="cls pooling"):
        onnx.export_onnx(conn, rid, dest)
    monkeypatch.undo()
    assert not dest.exists() and not list(dest.parent.glob(".onnx-refused*"))
    dest = bundle.destination(conn, "onnx-failed", trained["runs"]["bce"], explicit=False)
    monkeypatch.setattr(onnx, "TOLERANCE", -1.0)
    with pytest.raises(onnx.OnnxRefused, match="differs from the run's"):
        onnx.export_onnx(conn, trained["runs"]["bce"], dest)
    assert not dest.exists() and not list(dest.parent.glob(".onnx-failed*"))


def test_playground_reranks_the_first_stage_with_the_run_score(trained):
    from core import store
    from core.scoring import playground
    from core.scoring.reranker import Reranker

    conn, pid, rid = trained["conn"], trained["pid"], trained["runs"]["residual"]
    query = store.fetch_pairs(conn, pid, split="test")[0]["query"]
    out = playground.try_query(conn, pid, query, [rid], top_k=8)
    first, ranked = out["first_stage"], out["runs"][rid]
    assert [it["rank"] for it in first] == list(range(1, 9))
    labelled = playground.labelled_positives(conn, pid, query)
    assert labelled and {it["id"] for it in first if it["positive"]} == labelled & {it["id"] for it in first}
    assert sorted(it["id"] for it in ranked) == sorted(it["id"] for it in first)
    by_id = {it["id"]: it["rank"] for it in first}
    assert all(it["moved"] == by_id[it["id"]] - it["rank"] for it in ranked)
    run = __import__("core.runs.records", fromlist=["x"]).get_run(conn, rid)
    want = Reranker.load(run.model_dir).score(query, [it["text"] for it in first])
    assert np.isclose(ranked[0]["score"], want.max(), atol=1e-5)
    with pytest.raises(ValueError, match="Type a query"):
        playground.try_query(conn, pid, "  ", [rid])


def test_calibration_report_measures_relevance_on_the_test_lists(trained):
    from core.export.calibrate import calibration_report

    rep = calibration_report(trained["conn"], trained["runs"]["residual"], trained["pid"])
    assert rep.calibration is not None and rep.test_pairs > 10
    assert 0.0 <= rep.test_ece <= 1.0 and 0.0 <= rep.raw_sigmoid_ece <= 1.0
    assert sum(b["count"] for b in rep.bins) == rep.test_pairs
    assert all(0.0 <= b["predicted"] <= 1.0 and 0.0 <= b["observed"] <= 1.0 for b in rep.bins)


def test_the_bundle_names_the_cleaning_its_training_import_used(db):
    from core.export.calibrate import training_cleaning
    from core.ingest.cleaning import CleaningOptions
    from core.ingest.run import run_import
    from core.ingest.spec import ImportSpec

    out = run_import(
        db,
        "cleaned",
        ImportSpec(ROOT / "sample_data" / "scifact", cleaning=CleaningOptions.from_names("html,urls")),
    )
    from core import store

    assert out and training_cleaning(db, store.project_id(db, "cleaned")) == ["html", "urls"]
    run_import(db, "raw", ImportSpec(ROOT / "sample_data" / "scifact", cleaning=CleaningOptions.none()))
    assert training_cleaning(db, store.project_id(db, "raw")) == []


def test_distill_ships_a_plain_cross_encoder_that_crossencoder_loads(trained, tmp_path):
    from sentence_transformers import CrossEncoder

    from core import evaluation
    from core.export import bundle
    from core.runs import records
    from core.scoring.reranker import Reranker
    from core.training.distill import DistillSettings, distill

    conn, pid, teacher = trained["conn"], trained["pid"], trained["runs"]["residual"]
    settings = DistillSettings(max_steps=3, batch_size=4, list_size=6, eval_steps=3, learning_rate=5e-5)
    rid, metrics = distill(conn, pid, teacher, settings)
    run = records.get_run(conn, rid)
    assert run.status == "completed" and run.config["distilled_from"] == teacher
    assert run.config["loss"] == "listnet" and metrics["steps"] == 3 and "gap_to_teacher" in metrics
    assert metrics["teacher_validation_ndcg@10"] - metrics["validation_ndcg@10"] == pytest.approx(
        metrics["gap_to_teacher"], abs=1e-5
    )
    out = bundle.export_bundle(conn, rid, tmp_path / "plain", project=pid)
    spec = out["spec"]
    assert out["kind"] == "cross-encoder" and "embedding_model" not in spec and "beta" not in spec
    assert (
        not (tmp_path / "plain" / "embedding-model").exists() and spec["calibration"]["method"] == "isotonic"
    )
    card = (tmp_path / "plain" / "README.md").read_text()
    assert f"Distilled from run {teacher}" in card and "short by" in card and "P(relevant)" in card
    q = store_query(conn, pid)
    docs = ["Statins lower LDL cholesterol.", "Rivers flood in spring.", "A trial of statin therapy."]
    plain = CrossEncoder(str(tmp_path / "plain"), max_length=spec["max_length"])
    got = plain.predict([[q, d] for d in docs], convert_to_numpy=True)
    assert np.allclose(got, Reranker.load(tmp_path / "plain").score(q, docs), atol=1e-4)
    assert np.allclose(got, Reranker.load(run.model_dir).score(q, docs), atol=1e-4)
    both = evaluation.evaluate(
        conn,
        pid,
        [rid, teacher],
        first_stage="bm25",
        top_k=20,
        include_base=False,
        oracle=False,
        n_bootstrap=20,
    )
    assert {f"run:{rid}", f"run:{teacher}"} <= set(both["realistic"])


def store_query(conn, pid) -> str:
    from core import store

    return store.fetch_pairs(conn, pid, split="test")[0]["query"]
