"""The out-of-fold tuned embedding model (issue 25): each fold's model learns only the other folds' labels, and the
suspect search ranks with it as a third held-out model."""

from __future__ import annotations

from core.store.db import transaction
from core.suspects import folds, records
from core.suspects.find import find_suspects
from core.suspects.signals import Labelled
from tests.conftest import seed_scifact


def test_each_fold_model_learns_only_the_other_folds_labels():
    lab = Labelled()
    for q in range(12):
        lab.query_text[q] = f"question {q}"
        lab.labels[q] = {100 + q: 1.0, 200 + q: 0.0}
        lab.passage_text.update({100 + q: f"answer {q}", 200 + q: f"unrelated {q}"})
    lab.query_text[99] = "a query whose labels were all dropped"
    fold_of = folds.assign_folds(lab)
    assert sorted(fold_of) == [*range(12), 99]
    assert sorted(list(fold_of.values())[:12].count(f) for f in range(3)) == [4, 4, 4]
    for f in range(3):
        pairs = folds.fold_pairs(lab, fold_of, f, seed=0)
        own = {lab.query_text[q] for q, g in fold_of.items() if g == f}
        assert not own & {q for q, _ in pairs}  # never a label of the fold it ranks
        assert sorted(pairs) == sorted(
            (f"question {q}", f"answer {q}") for q in range(12) if fold_of[q] != f
        )  # every positive of the other folds, no negative


def test_the_search_adds_the_out_of_fold_model_as_a_third_held_out_model(db, monkeypatch):
    monkeypatch.setattr(folds, "MIN_QUERIES", 6)
    pid = seed_scifact(db, n_train=12, n_test=0, n_extra=30)
    rows = db.execute(
        "SELECT id, query_id, passage_id FROM pairs WHERE project_id = ? ORDER BY id", (pid,)
    ).fetchall()
    # another query's positive, labelled relevant for the first query
    far = rows[len(rows) // 2]["passage_id"]
    with transaction(db):
        db.execute("UPDATE pairs SET passage_id = ? WHERE id = ?", (far, rows[0]["id"]))
    seen: list[tuple[float, str]] = []
    result = find_suspects(db, pid, fold_models=True, progress=lambda f, m: seen.append((f, m)))
    assert result.models == ["embedding", "BM25", folds.NAME, "similar queries"]
    assert [f for f, _ in seen] == sorted(f for f, _ in seen) and seen[-1][0] == 1.0
    assert any(m.startswith("Fold 3 of 3: tuning the embedding model") for _, m in seen)
    top = records.queue(db, pid, limit=1)[0]
    assert (top["query_id"], top["passage_id"]) == (rows[0]["query_id"], far)
    assert f"{folds.NAME} " in top["reasons"][0]  # its rank is given beside the other two models'
    assert set(top["evidence"]["ranks"]) == {"embedding", "BM25", folds.NAME}
    assert folds.NAME not in find_suspects(db, pid).models  # opt-in
