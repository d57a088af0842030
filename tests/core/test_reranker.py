"""The Reranker gives exactly each kind of run's formula; specs of run folders and bundles; clear refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core import models
from core.scoring.formulas import fused_scores
from core.scoring.reranker import SPEC_FILE, Reranker, RerankerError, as_run, load_spec
from tests.model_folders import MAX_LENGTH, make_model_folder

pytestmark = pytest.mark.timeout(300)

QUERY = "Do statins lower cholesterol?"
PASSAGES = [
    "Statins reduce LDL cholesterol in most patients.",
    "The river flooded the valley in spring.",
    "Cholesterol synthesis is inhibited by HMG-CoA reductase inhibitors.",
]
RESIDUAL = {"method": "residual", "beta": 15.0, "first_stage": f"embedding:{models.BUNDLED}"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "plain": make_model_folder(root / "plain"),
        "residual": make_model_folder(root / "residual", RESIDUAL, activation="identity"),
        "blended": make_model_folder(
            root / "blended", {"alpha": 0.3, "first_stage": f"embedding:{models.BUNDLED}"}
        ),
    }


def _cosine(texts_q: str, passages: list[str]) -> np.ndarray:
    emb = models.load_embedder(models.BUNDLED)
    v = emb.encode([texts_q] + passages, normalize_embeddings=True)
    return (v[1:] @ v[0]).astype(float)


def test_plain_run_is_its_cross_encoder(folders):
    r = Reranker.load(folders["plain"])
    assert r.spec["kind"] == "cross-encoder" and r.spec["activation"] == "sigmoid"
    assert r.spec["max_length"] == MAX_LENGTH
    ce = models.load_cross_encoder(str(folders["plain"]), max_length=MAX_LENGTH)
    want = ce.predict([[QUERY, p] for p in PASSAGES])
    assert np.allclose(r.score(QUERY, PASSAGES), want, atol=1e-6)


def test_residual_run_adds_beta_cosine(folders):
    r = Reranker.load(folders["residual"])
    assert r.kind == "residual" and r.spec["beta"] == 15.0 and r.spec["activation"] == "identity"
    parts = r.score_parts([(QUERY, PASSAGES)])[0]
    assert np.allclose(parts["cosine"], _cosine(QUERY, PASSAGES), atol=1e-5)
    assert np.allclose(r.score(QUERY, PASSAGES), parts["cross_encoder"] + 15.0 * parts["cosine"], atol=1e-9)
    # batched groups give the same scores as one call per query
    groups = [(QUERY, PASSAGES), ("river floods", PASSAGES[:2]), ("empty", [])]
    batched = r.score_groups(groups)
    assert [len(b) for b in batched] == [3, 2, 0]
    assert np.allclose(batched[1], r.score("river floods", PASSAGES[:2]), atol=1e-5)


def test_blended_run_z_blends_with_the_embedding_cosine(folders):
    r = Reranker.load(folders["blended"])
    assert r.kind == "blended" and r.spec["alpha"] == 0.3
    parts = r.score_parts([(QUERY, PASSAGES)])[0]
    assert np.allclose(parts["score"], fused_scores(parts["cross_encoder"], parts["cosine"], 0.3))
    assert r.rank(QUERY, PASSAGES, top_n=2)[0]["index"] == int(np.argmax(parts["score"]))


def test_bundle_spec_paths_are_relative_and_as_run_carries_the_formula(folders, tmp_path):
    bundle = tmp_path / "bundle"
    import shutil

    shutil.copytree(folders["residual"], bundle)
    (bundle / SPEC_FILE).write_text(
        json.dumps(
            {
                "kind": "residual",
                "beta": 15.0,
                "max_length": MAX_LENGTH,
                "activation": "identity",
                "cross_encoder": ".",
                "embedding_model": {"path": models.bundled_path()},
            }
        )
    )
    spec = load_spec(bundle)
    assert spec["cross_encoder"] == str(bundle.resolve())
    run = as_run(bundle)
    assert run.id == "model:bundle" and run.metrics["fusion"]["beta"] == 15.0
    assert np.allclose(
        Reranker.load(bundle).score(QUERY, PASSAGES),
        Reranker.load(folders["residual"]).score(QUERY, PASSAGES),
    )


def test_refusals_say_why(folders, tmp_path):
    with pytest.raises(RerankerError, match="does not exist"):
        Reranker.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RerankerError, match="expected config.json"):
        Reranker.load(tmp_path / "empty")
    bad = tmp_path / "bad"
    import shutil

    shutil.copytree(folders["plain"], bad)
    (bad / SPEC_FILE).write_text(
        json.dumps({"kind": "residual", "beta": 1, "max_length": 16, "activation": "sigmoid"})
    )
    with pytest.raises(RerankerError, match="embedding_model.path"):
        Reranker.load(bad)
    (bad / SPEC_FILE).write_text(
        json.dumps({"kind": "cross-encoder", "max_length": 16, "activation": "identity"})
    )
    with pytest.raises(RerankerError, match="applies sigmoid, the spec says identity"):
        Reranker.load(bad)
