"""Issue 22: a hybrid first stage (BM25 + embedding, reciprocal rank fusion) as a candidate generator."""

from __future__ import annotations

import numpy as np
import pytest

from core import models, store
from core.scoring.first_stage import RRF_K, bm25_search, embedding_search, hybrid_search, rrf, search
from core.training import candidates
from core.training.config import ConfigError, TrainConfig
from core.training.evaluator import first_stage_metrics

CORPUS = {
    1: "Vitamin D supplements and bone density in older women.",
    2: "Statins lower LDL cholesterol and cardiovascular risk.",
    3: "Bone fractures in the elderly: calcium intake and falls.",
    4: "Green tea catechins and weight loss, a randomized trial.",
    5: "Cholesterol lowering diets rich in soluble fibre.",
    6: "Sunlight exposure and serum 25-hydroxyvitamin D levels.",
}


def test_rrf_rewards_agreement_and_breaks_ties_by_first_appearance():
    fused = rrf([[("a", 9.0), ("b", 5.0), ("c", 1.0)], [("c", 0.9), ("a", 0.8), ("d", 0.1)]], 3)
    assert [k for k, _ in fused] == ["a", "c", "b"]  # a: ranks 1+2, c: 3+1, b: 2 only
    assert fused[0][1] == pytest.approx(1 / (RRF_K + 1) + 1 / (RRF_K + 2))
    assert [k for k, _ in rrf([[("x", 1.0)], [("y", 1.0)]], 2)] == ["x", "y"]


def test_hybrid_search_fuses_both_first_stages(workspace):
    queries = ["vitamin D and bone health", "cholesterol"]
    hybrid = hybrid_search(CORPUS, queries, 4, workspace=workspace)
    lexical, dense = (
        bm25_search(CORPUS, queries, 6),
        embedding_search(CORPUS, queries, 6, workspace=workspace),
    )
    for h, b, e in zip(hybrid, lexical, dense):
        assert len(h) == 4 and [k for k, _ in h] == [k for k, _ in rrf([b, e], 4)]
    assert search("hybrid", CORPUS, queries, 4, workspace=workspace) == hybrid
    with pytest.raises(ValueError, match="Unknown first stage 'splade'"):
        search("splade", CORPUS, queries, 4)


def test_training_lists_from_the_hybrid_keep_the_cosine_prior_and_rank_the_baseline_by_rrf(db, workspace):
    pid = store.create_project(db, "hybrid")
    with store.transaction(db):
        store.insert_pairs(db, pid, [("vitamin D and bone health", CORPUS[1], 1.0)], split="train")
        store.upsert_passages(db, pid, [CORPUS[k] for k in range(2, 7)], source="corpus")
    ids = {t: i for i, t in ((p["id"], p["text"]) for p in store.fetch_passages(db, pid))}
    qid = db.execute("SELECT id FROM queries WHERE project_id = ?", (pid,)).fetchone()[0]
    texts = {i: t for t, i in ids.items()}
    grades = {qid: {ids[CORPUS[1]]: 1.0}}
    args = (db, pid, [qid], {qid: "vitamin D and bone health"}, grades, texts, 4, models.BUNDLED, workspace)
    hybrid = candidates.candidate_samples(*args, "hybrid")[0]
    dense = candidates.candidate_samples(*args)[0]
    assert "baseline_scores" not in dense and len(hybrid["documents"]) == 4
    assert hybrid["baseline_scores"] == sorted(hybrid["baseline_scores"], reverse=True)  # RRF order
    cos = dict(zip(dense["documents"], dense["first_stage_scores"]))
    for d, c in zip(hybrid["documents"], hybrid["first_stage_scores"]):
        if d in cos:
            assert c == pytest.approx(cos[d], abs=1e-5)  # the residual prior is still the embedding cosine
    base = first_stage_metrics([hybrid])["ndcg@10"]
    order = np.argsort(-np.asarray(hybrid["baseline_scores"]), kind="stable")
    assert base == pytest.approx(1.0 / np.log2(2 + list(order).index(hybrid["documents"].index(CORPUS[1]))))


def test_an_unknown_candidate_source_is_refused_before_anything_loads():
    with pytest.raises(ConfigError, match="Candidates from 'splade' is unknown"):
        TrainConfig(candidates_from="splade").validate()


def test_evaluate_takes_the_hybrid_first_stage_from_the_one_rrf_search(db, workspace):
    """Issue 22: Evaluate (the function, the CLI) offers the hybrid; its candidates are core.scoring's fusion."""
    import argparse

    from core.evaluation import cli as evaluate_cli
    from core.evaluation import evaluate, project_test_set
    from tests.conftest import seed_scifact

    pid = seed_scifact(db, "hybrid-eval", n_train=2, n_test=6, n_extra=40)
    res = evaluate(db, pid, [], first_stage="hybrid", top_k=5, include_base=False, n_bootstrap=50, save=False)
    ts = project_test_set(db, pid)
    qkeys = list(ts.queries)
    fused = search("hybrid", ts.corpus, [ts.queries[q] for q in qkeys], 5, workspace=workspace)
    got = res["rankings"]["first_stage"]
    assert [[d for d, _ in got[q]] for q in qkeys] == [[d for d, _ in f] for f in fused]
    assert res["params"]["first_stage_label"].startswith("hybrid: BM25 + embedding model")
    assert res["params"]["embedding_model"] == models.model_key(None)
    parser = argparse.ArgumentParser()
    evaluate_cli.cli_arguments(parser)
    assert parser.parse_args(["--project", "p", "--first-stage", "hybrid"]).first_stage == "hybrid"


def test_the_playground_tries_a_query_on_the_hybrid(db, workspace):
    from core.scoring import playground

    pid = store.create_project(db, "hybrid-play")
    with store.transaction(db):
        store.upsert_passages(db, pid, list(CORPUS.values()), source="corpus")
    corpus = {str(p["id"]): p["text"] for p in store.fetch_passages(db, pid)}
    out = playground.try_query(db, pid, "vitamin D and bone health", [], first_stage="hybrid", top_k=4)
    fused = search("hybrid", corpus, ["vitamin D and bone health"], 4, workspace=workspace)[0]
    assert [i["id"] for i in out["first_stage"]] == [d for d, _ in fused] and out["runs"] == {}


def test_a_hybrid_runs_lists_rebuilt_after_training_come_from_the_hybrid(db, workspace):
    """Distillation and calibration rebuild a run's lists (core.training.run_lists): a hybrid run's are the hybrid's."""
    from core.training import run_lists

    pid = store.create_project(db, "hybrid-lists")
    with store.transaction(db):
        store.insert_pairs(db, pid, [("vitamin D and bone health", CORPUS[1], 1.0)], split="test")
        store.upsert_passages(db, pid, [CORPUS[k] for k in range(2, 7)], source="corpus")
    hybrid = run_lists.testset_lists(
        db, pid, TrainConfig(candidates_from="hybrid", candidates_k=4), workspace
    )
    dense = run_lists.testset_lists(db, pid, TrainConfig(candidates_k=4), workspace)
    assert "baseline_scores" in hybrid[0] and "baseline_scores" not in dense[0]
