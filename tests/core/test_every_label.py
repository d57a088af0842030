"""Issue 22: no default dies on a real data set's shape, and every judged passage reaches the model.

The shape is NFCorpus' in miniature: one query labelled relevant for most of the corpus (NFCorpus' 'cancer': 1,355
positives of 3,633 passages), graded 1-2, next to queries with a few positives each.
"""

from __future__ import annotations

import pytest

from core import store
from core.training import candidates
from core.training.config import TrainConfig
from core.training.data import build_data
from core.training.redraw import Redrawer

pytestmark = pytest.mark.timeout(300)
HUB_POSITIVES = 30


def nfcorpus_shape(conn) -> int:
    """40 passages; a 'hub' query relevant to 30 of them (grades 1-2); 12 queries with 1-3 positives each."""
    pid = store.create_project(conn, "nf-shape")
    passages = [f"passage {i} about nutrition topic {i % 7} and study {i}" for i in range(40)]
    rows = [("cancer", passages[i], 2.0 if i % 3 == 0 else 1.0) for i in range(HUB_POSITIVES)]
    for q in range(12):
        rows += [
            (f"question {q} on topic {q % 7}", passages[(q * 3 + j) % 40], 1.0) for j in range(1 + q % 3)
        ]
    with store.transaction(conn):
        store.insert_pairs(conn, pid, rows, split="train")
        store.upsert_passages(conn, pid, passages, source="corpus")
    return pid


def residual(**over) -> TrainConfig:
    """The default residual path's data counts (5 hard, 2 random negatives per list), no validation slice."""
    return TrainConfig(loss="residual", hard_negatives=5, random_negatives=2, validation="none", **over)


@pytest.fixture()
def no_candidate_lists(monkeypatch):
    """No first-stage search: these tests look at the training rows, not at the candidate lists."""
    monkeypatch.setattr(
        candidates, "first_stage", lambda conn, project, queries, k, spec, ws: [[] for _ in queries]
    )


def test_a_query_relevant_to_most_of_the_corpus_adapts_the_random_negatives_instead_of_failing(
    db, no_candidate_lists
):
    # before issue 22: "Random negatives cannot be drawn for the query 'cancer': 60 more are needed but only 10 ..."
    pid = nfcorpus_shape(db)
    data = build_data(db, pid, residual())
    adapted = " ".join(data.stats["adapted"])
    assert "random negatives: 1 of 13 queries" in adapted and "'cancer': 10 of 210" in adapted
    assert "hard negatives: 13 of 13 queries" in adapted  # no mining run, no first stage here
    assert {len(r["docs"]) for r in data.train_rows} == {8}  # the list length does not change
    hub = [r for r in data.train_rows if r["query"] == "cancer"]
    assert len(hub) == 8  # at most 8 lists a query, so the hub query does not swamp the others


def test_over_epochs_every_labelled_pair_is_used_in_lists_of_a_fixed_length(db, no_candidate_lists):
    pid = nfcorpus_shape(db)
    data = build_data(db, pid, residual())
    labelled = data.stats["labelled_pairs"]
    assert labelled == HUB_POSITIVES + sum(1 + q % 3 for q in range(12))
    fixed = {(r["query"], d) for r in data.train_rows for d, y in zip(r["docs"], r["labels"]) if y > 0}
    assert len(fixed) < labelled  # the rows as built hold only 8 of the hub query's 30 positives
    redraw = Redrawer(data.pools, data.pool_texts, hard_per_row=5, seed=3)
    seen_per_epoch = []
    for _epoch in range(4):  # the hub query comes up 8 times an epoch: 4 epochs anchor all 30 positives
        for r in data.train_rows:
            docs, priors, grades = redraw(r["query"], r["docs"], r["priors"], r["labels"])
            assert len(docs) == len(priors) == len(grades) == 8 and len(set(docs)) == 8
            assert max(grades) > 0 and sum(1 for g in grades if g == max(grades)) == 1  # one anchor, graded
            pool = data.pools[r["query"]]
            assert priors == [pytest.approx(c, abs=1e-6) for c in _cosines(data, pool, docs)]
        seen_per_epoch.append(len(redraw.used))
    assert seen_per_epoch[0] < seen_per_epoch[-1] == labelled
    # lists differ between visits of the same query (drawn afresh, not repeated)
    first = redraw(
        data.train_rows[0]["query"], *[data.train_rows[0][k] for k in ("docs", "priors", "labels")]
    )
    again = redraw(
        data.train_rows[0]["query"], *[data.train_rows[0][k] for k in ("docs", "priors", "labels")]
    )
    assert first[0] != again[0]


def _cosines(data, pool, docs):
    """The pool's stored cosine of each drawn passage text."""
    from core.training.redraw import pool_ids

    by_text = {data.pool_texts[i]: c for i, c in zip(pool_ids(pool), pool["cos"])}
    return [by_text[d] for d in docs]


def test_a_run_says_how_many_labelled_pairs_it_trained_on(db, no_candidate_lists):
    from core.training.trainer import train_project

    pid = nfcorpus_shape(db)
    cfg = residual(max_length=32, batch_size=8, max_steps=6, learning_rate=7e-5, warmup_ratio=0.0)
    _, metrics = train_project(db, pid, cfg)
    fixed = {
        (r["query"], d)
        for r in build_data(db, pid, cfg).train_rows
        for d, y in zip(r["docs"], r["labels"])
        if y
    }
    assert metrics["labelled_pairs"] == 54
    assert (
        len(fixed) < metrics["labelled_pairs_used"] <= 54
    )  # 48 lists drawn afresh reach more than the fixed rows
    assert (
        metrics["labelled_pairs_text"] == f"trained on {metrics['labelled_pairs_used']} of 54 labelled pairs"
    )
