"""Suspect labels (issue 25): the scoring's reasons, missing positives, judgements that change the pairs table with
exact undo and history, bulk actions on a pattern, the export seeing the change, and the search on real data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.review.dataset_export import build_rows, curated
from core.store.db import transaction
from core.store.rows import insert_pairs
from core.suspects import judgements, records
from core.suspects.find import find_suspects
from core.suspects.missing import missing_positives
from core.suspects.neighbours import similar_queries
from core.suspects.scoring import Suspect, hubs, ordinal, rank_reason, score_labelled, twin_conflicts
from core.suspects.signals import Labelled, PoolVectors, Signals, held_out_ranks
from tests.conftest import seed_scifact


def labelled(labels: dict[int, dict[int, float]], texts: dict[int, str] | None = None) -> Labelled:
    lab = Labelled()
    for q, ps in labels.items():
        lab.query_text[q] = (texts or {}).get(q, f"query {q}")
        lab.labels[q] = dict(ps)
    return lab


def test_ordinals_and_rank_reason_in_words():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 180)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "180th",
    ]  # fmt: skip
    words = rank_reason((180, 200), ("embedding", "BM25"), 210, positive=True)
    assert words.startswith(
        "labelled relevant, ranked 180th or lower of 210 for its query by 2 of 2 held-out"
    )
    assert "(embedding 180th, BM25 200th)" in words


def test_a_buried_positive_outranks_a_well_ranked_one_and_a_top_negative_is_suspect():
    lab = labelled({1: {10: 1.0, 11: 1.0, 12: 0.0}})
    sig = Signals(("embedding", "BM25"), 1000, {(1, 10): (1, 2), (1, 11): (700, 900), (1, 12): (1, 1)}, {})
    found = {(s.query_id, s.passage_id): s for s in score_labelled(lab, sig)}
    assert found[(1, 11)].score > 0.9 > 0.1 > found[(1, 10)].score
    assert found[(1, 11)].kind == "wrong_positive" and found[(1, 12)].kind == "wrong_negative"
    assert found[(1, 12)].score == pytest.approx(1.0)
    assert found[(1, 12)].reasons[0].startswith("labelled not relevant, ranked 1st or higher")


def test_hub_passage_twin_query_and_near_duplicate_are_named_with_a_pattern():
    labels = {q: {99: 1.0, q * 100: 1.0} for q in range(10, 22)}  # passage 99: 12 queries
    labels[8] = {5: 1.0}
    labels[9] = {5: 0.0}  # the same text as query 8 under another id, labelled the other way
    texts = {8: "Does X cause Y?", 9: "does x cause y"}
    lab = labelled(labels, texts)
    assert hubs(lab) == {99: 12}
    assert twin_conflicts(lab) == {(8, 5): 9, (9, 5): 8}
    ranks = {(q, p): (1, 1) for q, ps in labels.items() for p in ps}
    sig = Signals(("embedding",), 50, ranks, {}, near={(8, 5): 6})
    found = {(s.query_id, s.passage_id): s for s in score_labelled(lab, sig)}
    hub = found[(13, 99)]
    assert (
        hub.reasons[0] == "labelled relevant for 12 queries" and hub.pattern == "hub:99" and hub.score >= 0.9
    )
    assert found[(13, 1300)].pattern is None and found[(13, 1300)].score < 0.1
    twin = found[(8, 5)]
    assert twin.reasons[0] == "the same query text under two ids with different labels"
    assert twin.reasons[1] == "a near-duplicate of a passage labelled not relevant for the same query"
    assert twin.pattern == "twin:8" and found[(9, 5)].pattern == "twin:8"


def test_missing_positives_are_those_above_every_positive_or_top_of_a_query_without_one():
    lab = labelled({1: {10: 1.0}, 2: {}})
    ranks = {(1, 10): (5, 3), (1, 20): (1, 1), (1, 21): (9, 8), (2, 30): (1, 2), (2, 31): (40, 60)}
    sig = Signals(("embedding", "BM25"), 1000, ranks, {1: [20, 21], 2: [30, 31]})
    found = missing_positives(lab, sig)
    keys = [(s.query_id, s.passage_id) for s in found]
    assert (1, 21) not in keys  # below the labelled positive in both models: not proposed
    # riskiest: far above the positives (here: a query with none); a place above a 5th-ranked positive comes last
    assert keys == [(2, 30), (2, 31), (1, 20)]
    assert found[0].score > 0.9 and found[-1].score < 0.25
    many = Signals(("embedding",), 1000, {(2, 40 + i): (i + 1,) for i in range(10)} | {(1, 10): (50,)}, {})
    many.ranks.update({(1, 60 + i): (i + 1,) for i in range(10)})
    many.top.update({1: [60 + i for i in range(10)], 2: [40 + i for i in range(10)]})
    counted = [s.query_id for s in missing_positives(lab, many)]
    assert (
        counted.count(2) == 6 and counted.count(1) == 3
    )  # a query without a positive gets twice the proposals
    top = next(s for s in found if s.passage_id == 20)
    assert "above every labelled positive of its query by 2 of 2 held-out models" in top.reasons[0]
    assert "for a query with no labelled positive" in next(s for s in found if s.passage_id == 30).reasons[0]


def _unit(*xs: float) -> list[float]:
    v = np.array(xs, dtype=np.float32)
    return list(v / np.linalg.norm(v))


def test_a_passage_labelled_for_a_similar_query_is_proposed_with_it_and_never_judges_a_label():
    # query 1 lost its label; query 2 says nearly the same and labels passage 50, which neither the embedding
    # model nor BM25 puts first for query 1; query 3 (unlike 1) labels passage 51
    lab = labelled(
        {1: {}, 2: {50: 1.0}, 3: {51: 1.0, 52: 0.0}}, {1: "alpha beta", 2: "alpha beta gamma", 3: "zeta"}
    )
    lab.passage_text = {50: "unrelated words", 51: "zeta", 52: "alpha beta", 53: "beta alpha words"}
    queries = np.array([_unit(1, 0, 0), _unit(0.9, 0.44, 0), _unit(0, 0, 1)])
    pool = np.array([_unit(0, 1, 0.2), _unit(0, 0, 1), _unit(1, 0, 0), _unit(1, 0.1, 0)])
    vectors = PoolVectors([50, 51, 52, 53], pool, [1, 2, 3], queries)
    similar = similar_queries(lab, vectors)
    assert list(np.argsort(-similar.rows([1])[0])[:2]) == [0, 1]  # 50 (cosine 0.9 to query 2), then 51 (0.0)
    own = similar.rows([2])[0][0]  # query 2's own label never votes: passage 50 keeps its embedding place
    assert own == pytest.approx(float(queries[1] @ pool[0]) - 3.0, abs=1e-5)
    assert similar.source(1, 50) == (2, pytest.approx(0.9, abs=0.01)) and similar.source(2, 50) is None
    sig = held_out_ranks(lab, vectors, proposers=[("similar queries", similar.rows)])
    assert sig.models == ("embedding", "BM25", "similar queries") and sig.judges == ("embedding", "BM25")
    found = missing_positives(lab, sig, similar=similar)
    first = next(s for s in found if (s.query_id, s.passage_id) == (1, 50))  # proposed, with its evidence
    assert first.evidence["similar_query"] == 2
    assert first.reasons[0] == "labelled relevant for a similar query (0.90 cosine): 'alpha beta gamma'"
    judged = {(s.query_id, s.passage_id): s for s in score_labelled(lab, sig)}
    assert set(judged[(2, 50)].evidence["ranks"]) == {"embedding", "BM25"}


# --- judgements on a real store -------------------------------------------------------------------


@pytest.fixture()
def project(db):
    pid = seed_scifact(db, n_train=6, n_test=0, n_extra=3)
    pairs = db.execute(
        "SELECT query_id, passage_id FROM pairs WHERE project_id = ? ORDER BY id", (pid,)
    ).fetchall()
    extra = db.execute("SELECT id FROM passages WHERE source = 'corpus' ORDER BY id").fetchall()
    found = [Suspect(q, p, "wrong_positive", 1.0, 0.5 - i / 100, ["r"]) for i, (q, p) in enumerate(pairs)]
    found.append(Suspect(pairs[0][0], extra[0][0], "missing_positive", None, 0.9, ["not labelled"]))
    records.save(db, pid, found)
    return db, pid


def suspect(db, pid, kind="wrong_positive", offset=0) -> dict:
    return records.queue(db, pid, records.SuspectFilter(kinds=(kind,)), limit=1, offset=offset)[0]


def exported(db, pid) -> dict[tuple[str, str], float]:
    rows, _ = build_rows(curated(db, pid), "pairs")
    return {(r["query"], r["passage"]): r["label"] for r in rows}


def test_flip_and_drop_change_the_pairs_the_export_reads_and_undo_restores_exactly(project):
    db, pid = project
    s = suspect(db, pid)
    before = db.execute(
        "SELECT * FROM pairs WHERE query_id = ? AND passage_id = ?", (s["query_id"], s["passage_id"])
    )
    before = dict(before.fetchone())
    judgements.judge(db, s["id"], "flip", s["version"], actor="ann")
    assert exported(db, pid)[(s["query"], s["passage"])] == 0.0  # the export (and training) read label 0 now
    with pytest.raises(judgements.SuspectConflict):
        judgements.judge(db, s["id"], "drop", s["version"], actor="bob")  # a stale tab
    now = records.queue(db, pid, records.SuspectFilter(state="all"), limit=1)[0]
    assert now["id"] == s["id"] and now["status"] == "flipped" and now["label_now"] == 0.0
    judgements.judge(db, s["id"], "drop", now["version"], actor="ann")
    assert (s["query"], s["passage"]) not in exported(db, pid)
    assert judgements.undo(db, pid, "ann")["restored"] == "flipped"
    assert exported(db, pid)[(s["query"], s["passage"])] == 0.0
    assert judgements.undo(db, pid, "ann")["restored"] == "open"
    after = db.execute("SELECT * FROM pairs WHERE id = ?", (before["id"],)).fetchone()
    assert dict(after) == before  # same id, label, origin, import and source row
    trail = judgements.history(db, pid)
    assert [(h["old_status"], h["new_status"]) for h in trail] == [
        ("flipped", "open"), ("dropped", "flipped"), ("flipped", "dropped"), ("open", "flipped"),
    ]  # fmt: skip
    assert judgements.undo(db, pid, "ann") is None


def test_a_missing_positive_marked_relevant_becomes_a_positive_and_cannot_be_dropped(project):
    db, pid = project
    s = suspect(db, pid, "missing_positive")
    assert (s["query"], s["passage"]) not in exported(db, pid)
    with pytest.raises(ValueError, match="no label to drop"):
        judgements.judge(db, s["id"], "drop", s["version"])
    judgements.judge(db, s["id"], "flip", s["version"])
    assert exported(db, pid)[(s["query"], s["passage"])] == 1.0
    origin = db.execute(
        "SELECT origin FROM pairs WHERE query_id = ? AND passage_id = ?", (s["query_id"], s["passage_id"])
    ).fetchone()[0]
    assert origin == judgements.SUSPECT_ORIGIN
    judgements.undo(db, pid)
    assert (s["query"], s["passage"]) not in exported(db, pid)


def test_bulk_action_on_a_hub_pattern_is_one_batch_undone_as_one(project):
    db, pid = project
    rows = records.queue(db, pid, limit=3)
    db.executemany("UPDATE suspects SET pattern = 'hub:1' WHERE id = ?", [(r["id"],) for r in rows])
    db.commit()
    assert records.patterns(db, pid)[0]["pattern"] == "hub:1" and records.patterns(db, pid)[0]["open"] == 3
    with pytest.raises(judgements.SuspectConflict):
        judgements.bulk_judge(db, pid, "hub:1", "drop", actor="ann", expected_rows=2)
    out = judgements.bulk_judge(db, pid, "hub:1", "drop", actor="ann", expected_rows=3)
    assert out["rows"] == 3 and records.counts(db, pid)["wrong_positive"]["dropped"] == 3
    assert all((r["query"], r["passage"]) not in exported(db, pid) for r in rows)
    assert judgements.last_undoable(db, pid, "ann")["rows"] == 3
    assert judgements.undo(db, pid, "ann")["rows"] == 3
    assert all(exported(db, pid)[(r["query"], r["passage"])] == 1.0 for r in rows)
    assert records.counts(db, pid)["wrong_positive"]["open"] == len(records.queue(db, pid, limit=100))


def test_a_new_search_keeps_judged_suspects_and_replaces_open_ones(project):
    db, pid = project
    s = suspect(db, pid)
    judgements.judge(db, s["id"], "keep", s["version"])
    records.save(db, pid, [Suspect(s["query_id"], s["passage_id"], "wrong_positive", 1.0, 0.01, ["new"])])
    rows = records.queue(db, pid, records.SuspectFilter(state="all"), limit=100)
    assert [(r["id"], r["status"], r["reasons"]) for r in rows] == [(s["id"], "kept", ["new"])]


# --- the search on real data ----------------------------------------------------------------------


def test_search_puts_a_planted_wrong_positive_first_and_proposes_the_lost_positive(db):
    pid = seed_scifact(db, n_train=12, n_test=0, n_extra=30)
    rows = db.execute(
        "SELECT p.id, p.query_id, p.passage_id, q.text FROM pairs p JOIN queries q ON q.id = p.query_id "
        "WHERE p.project_id = ? ORDER BY p.id",
        (pid,),
    ).fetchall()
    single = [r for r in rows if sum(x["query_id"] == r["query_id"] for x in rows) == 1]
    wrong_q, lost = rows[0], single[-1]  # the lost one was its query's only positive
    far = rows[len(rows) // 2][
        "passage_id"
    ]  # another query's positive, labelled relevant for the first query
    with transaction(db):
        db.execute("UPDATE pairs SET passage_id = ? WHERE id = ?", (far, wrong_q["id"]))
        db.execute("DELETE FROM pairs WHERE id = ?", (lost["id"],))
    seen = []
    result = find_suspects(db, pid, progress=lambda f, m: seen.append(f))
    assert seen[-1] == 1.0 and seen == sorted(seen)
    top = records.queue(db, pid, limit=1)[0]
    assert (top["query_id"], top["passage_id"]) == (wrong_q["query_id"], far)
    assert (
        top["reasons"][0].startswith("labelled relevant, ranked") and "held-out models" in top["reasons"][0]
    )
    missing = records.queue(db, pid, records.SuspectFilter(kinds=("missing_positive",)), limit=3)
    assert (lost["query_id"], lost["passage_id"]) in [(m["query_id"], m["passage_id"]) for m in missing]
    assert "for a query with no labelled positive" in missing[0]["reasons"][-1] and missing[0]["score"] > 0.5
    assert result.labelled == len(rows) - 1 and json.dumps(result.summary())
    assert result.models == ["embedding", "BM25", "similar queries"]


def test_a_paraphrased_query_that_still_labels_the_lost_positive_names_it(db):
    pid = seed_scifact(db, n_train=12, n_test=0, n_extra=30)
    rows = db.execute(
        "SELECT p.id, p.query_id, p.passage_id, q.text, s.text AS passage FROM pairs p "
        "JOIN queries q ON q.id = p.query_id JOIN passages s ON s.id = p.passage_id "
        "WHERE p.project_id = ? ORDER BY p.id",
        (pid,),
    ).fetchall()
    lost = rows[3]
    insert_pairs(db, pid, [(f"Is it true that {lost['text'].lower()}", lost["passage"], 1.0)], split="train")
    with transaction(db):
        db.execute("DELETE FROM pairs WHERE query_id = ?", (lost["query_id"],))
    find_suspects(db, pid)
    proposed = records.queue(db, pid, records.SuspectFilter(kinds=("missing_positive",)), limit=100)
    mine = [m for m in proposed if m["query_id"] == lost["query_id"]]
    assert mine[0]["passage_id"] == lost["passage_id"]
    assert mine[0]["reasons"][0].startswith("labelled relevant for a similar query (")
    assert "Is it true that" in mine[0]["reasons"][0]
    assert not find_suspects(db, pid, similar_queries=False).models[2:]


def _queued_job(db, pid) -> int:
    cur = db.execute(
        "INSERT INTO jobs (project_id, kind, args, status, created_at) "
        "VALUES (?, 'suspects', '{}', 'running', '2026-01-01T00:00:00')",
        (pid,),
    )
    db.commit()
    return int(cur.lastrowid)


def test_the_job_kind_runs_through_the_worker_and_a_cancel_saves_nothing(db):
    from core import queue
    from core.runs import worker
    from core.suspects import job as suspects_job

    assert queue.KINDS["suspects"] is suspects_job.KIND
    run = suspects_job.KIND.run
    pid = seed_scifact(db, n_train=5, n_test=0, n_extra=5)
    stopped = _queued_job(db, pid)
    db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (stopped,))
    db.commit()
    assert worker.work(db, stopped, run)["status"] == "cancelled"
    assert records.queue_size(db, pid, records.SuspectFilter(state="all")) == 0
    done = _queued_job(db, pid)
    assert worker.work(db, done, run)["status"] == "completed"
    row = db.execute("SELECT fraction, message, result FROM jobs WHERE id = ?", (done,)).fetchone()
    assert row["fraction"] == 1.0 and json.loads(row["result"])["labelled_pairs_scored"] > 0
    assert records.queue_size(db, pid) == json.loads(row["result"])["labelled_pairs_scored"]


def test_cli_prints_counts_and_top_reasons_as_one_json_line(db, capsys):
    from core.__main__ import main

    pid = seed_scifact(db, n_train=5, n_test=0, n_extra=5)
    name = db.execute("SELECT name FROM projects WHERE id = ?", (pid,)).fetchone()[0]
    assert main(["suspects", "--project", name, "--top", "2"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["counts"]["wrong_positive"]["open"] == out["labelled_pairs_scored"] > 0
    assert len(out["most_suspect_labels"]) == 2 and out["most_suspect_labels"][0]["reasons"]
    assert out["top_reasons"] and {"reason", "among_top"} <= set(out["top_reasons"][0])
    assert main(["suspects", "--project", "no-such-project"]) == 2


def test_a_flipped_label_changes_the_data_version_runs_and_caches_record(project):
    """A flip keeps the pairs' count and max id, yet the data a run trains on has changed."""
    from core import store

    db, pid = project
    s = suspect(db, pid)
    before = store.data_version(db, pid)
    judgements.judge(db, s["id"], "flip", s["version"], actor="ann")
    assert store.data_version(db, pid) != before
