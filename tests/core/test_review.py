"""The review desk's engine on real SciFact texts: queue order and filters, judgements with exact history,
undo (repeatedly, bulk as one), two-tab conflicts, bulk previews, and false negatives becoming positives."""

from __future__ import annotations

import pytest

from core import review, store
from core.review import ConflictError, QueueFilter


def seed_negatives(conn, project: int, per_query: int = 5) -> list[int]:
    """Mined-looking candidates for every train query: real SciFact corpus passages (not its positives), four
    hard and one random each, with spread-out deterministic risks. Returns the negatives' ids in insert order."""
    queries = conn.execute(
        "SELECT id FROM queries WHERE project_id = ? AND split = 'train' ORDER BY id", (project,)
    ).fetchall()
    pool = [
        r["id"]
        for r in conn.execute(
            "SELECT id FROM passages WHERE project_id = ? AND source = 'corpus' ORDER BY id", (project,)
        )
    ]
    ids, i = [], 0
    with store.transaction(conn):
        for qi, q in enumerate(queries):
            positive = conn.execute(
                "SELECT passage_id FROM pairs WHERE query_id = ? AND label > 0 ORDER BY id LIMIT 1",
                (q["id"],),
            ).fetchone()["passage_id"]
            for rank in range(1, per_query + 1):
                passage = pool[(qi * 3 + rank * 7) % len(pool)]
                risk = ((i * 37) % 100) / 100
                cur = conn.execute(
                    "INSERT INTO negatives (project_id, query_id, passage_id, positive_id, kind, rank, score, "
                    "positive_score, risk) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        project,
                        q["id"],
                        passage,
                        positive,
                        "random" if rank == per_query else "hard",
                        rank,
                        0.9 - 0.05 * rank,
                        0.85,
                        risk,
                    ),
                )
                ids.append(int(cur.lastrowid))
                i += 1
    return ids


@pytest.fixture()
def desk(scifact_project):
    conn, pid = scifact_project
    return conn, pid, seed_negatives(conn, pid)


def row(conn, nid):
    return conn.execute("SELECT * FROM negatives WHERE id = ?", (nid,)).fetchone()


def test_queue_is_riskiest_first_and_filters(desk):
    conn, pid, ids = desk
    risks = [r["risk"] for r in review.queue(conn, pid, limit=1000)]
    assert len(risks) == len(ids) == 295 and risks == sorted(risks, reverse=True)
    assert review.queue_size(conn, pid) == len(ids)
    top = review.queue(conn, pid)[0]
    assert top["risk"] == 0.99 and len(top["candidate"]) <= review.SNIPPET
    qid = row(conn, ids[7])["query_id"]
    only_q = review.queue(conn, pid, QueueFilter(query_id=qid), limit=100)
    assert {r["query_id"] for r in only_q} == {qid} and len(only_q) == 5
    band = review.queue(conn, pid, QueueFilter(risk_min=0.2, risk_max=0.3), limit=1000)
    assert band and all(0.2 <= r["risk"] <= 0.3 for r in band)
    assert review.queue_size(conn, pid, QueueFilter(kind="random")) == len(ids) // 5
    by_rank = review.queue(conn, pid, QueueFilter(order="rank"), limit=5)
    assert [r["rank"] for r in by_rank] == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="Unknown queue state 'nope'"):
        review.queue(conn, pid, QueueFilter(state="nope"))


def test_candidate_has_full_texts_and_positive(desk, scifact):
    conn, pid, ids = desk
    c = review.candidate(conn, ids[0])
    assert c["candidate"] in scifact["corpus"].values() and len(c["candidate"]) > review.SNIPPET
    assert c["query"] in scifact["queries"].values()
    assert c["positive"] in scifact["corpus"].values()
    assert c["status"] == "unjudged" and c["version"] == 0 and c["last_judgement"] is None


def test_judge_writes_row_and_history_at_once(desk, workspace):
    conn, pid, ids = desk
    top = review.queue(conn, pid)[0]
    out = review.judge(conn, top["id"], "negative", top["version"], actor="ana")
    assert out["old_status"] == "unjudged" and out["version"] == 1
    # A second connection (another process or tab) sees it immediately: it was committed.
    other = store.connect(workspace)
    r = other.execute(
        "SELECT status, version, updated_at FROM negatives WHERE id = ?", (top["id"],)
    ).fetchone()
    assert (r["status"], r["version"]) == ("negative", 1) and r["updated_at"]
    h = review.history(other, pid)
    assert len(h) == 1 and (h[0]["negative_id"], h[0]["old_status"], h[0]["new_status"], h[0]["actor"]) == (
        top["id"],
        "unjudged",
        "negative",
        "ana",
    )
    assert review.queue(conn, pid)[0]["id"] != top["id"]  # the next riskiest comes up
    assert review.progress(conn, pid)["judged"] == 1
    with pytest.raises(ValueError, match="Unknown judgement 'maybe'"):
        review.judge(conn, top["id"], "maybe", 1)


def test_two_tabs_conflict_instead_of_overwriting(desk):
    conn, pid, ids = desk
    shown = review.candidate(conn, ids[3])  # both tabs show version 0
    review.judge(conn, ids[3], "relevant", shown["version"], actor="tab-a")
    with pytest.raises(ConflictError, match=r"changed by tab-a .*nothing was saved"):
        review.judge(conn, ids[3], "negative", shown["version"], actor="tab-b")
    assert row(conn, ids[3])["status"] == "relevant"
    assert len(review.history(conn, pid)) == 1


def test_false_negative_becomes_positive_and_undo_removes_it(desk):
    conn, pid, ids = desk
    r = row(conn, ids[0])
    before = store.project_counts(conn, pid)["train_positives"]
    review.judge(conn, ids[0], "relevant", 0, actor="ana")
    pair = conn.execute(
        "SELECT label, origin FROM pairs WHERE query_id = ? AND passage_id = ?",
        (r["query_id"], r["passage_id"]),
    ).fetchone()
    assert (pair["label"], pair["origin"]) == (1.0, "review")
    assert store.project_counts(conn, pid)["train_positives"] == before + 1
    # Changing one's mind (relevant -> negative) also takes the positive away.
    review.judge(conn, ids[0], "negative", 1, actor="ana")
    assert store.project_counts(conn, pid)["train_positives"] == before
    review.undo(conn, pid, "ana")
    assert store.project_counts(conn, pid)["train_positives"] == before + 1
    review.undo(conn, pid, "ana")
    assert store.project_counts(conn, pid)["train_positives"] == before
    assert row(conn, ids[0])["status"] == "unjudged"


def test_undo_repeatedly_walks_back_exactly(desk):
    conn, pid, ids = desk
    plan = [(ids[0], "negative"), (ids[1], "relevant"), (ids[2], "skipped"), (ids[0], "relevant")]
    snapshots = []
    for nid, status in plan:
        snapshots.append({n: row(conn, n)["status"] for n in ids[:3]})
        review.judge(conn, nid, status, row(conn, nid)["version"], actor="ana")
    assert review.last_undoable(conn, pid, "ana")["negative_id"] == ids[0]
    for expected in reversed(snapshots):
        out = review.undo(conn, pid, "ana")
        assert out and out["rows"] == 1
        assert {n: row(conn, n)["status"] for n in ids[:3]} == expected
    assert review.undo(conn, pid, "ana") is None  # nothing left
    h = review.history(conn, pid, limit=100)
    assert (
        len(h) == 8
        and sum(1 for j in h if j["undoes"]) == 4
        and all(j["undone"] for j in h if not j["undoes"])
    )
    # Every undo record names the judgement it reverted and moves the status back exactly.
    by_id = {j["id"]: j for j in h}
    for j in h:
        if j["undoes"]:
            orig = by_id[j["undoes"]]
            assert (j["old_status"], j["new_status"]) == (orig["new_status"], orig["old_status"])
    assert review.progress(conn, pid)["judged"] == 0
    assert conn.execute("SELECT COUNT(*) FROM pairs WHERE origin = 'review'").fetchone()[0] == 0


def test_undo_is_per_reviewer_and_refuses_superseded(desk):
    conn, pid, ids = desk
    review.judge(conn, ids[0], "negative", 0, actor="ana")
    review.judge(conn, ids[1], "negative", 0, actor="ben")
    assert review.undo(conn, pid, "ana")["negative_id"] == ids[0]  # ana's, not ben's later one
    assert row(conn, ids[1])["status"] == "negative"
    review.judge(conn, ids[2], "negative", 0, actor="ana")
    review.judge(conn, ids[2], "relevant", 1, actor="ben")
    with pytest.raises(ConflictError, match="judged again since .*by ben"):
        review.undo(conn, pid, "ana")
    assert row(conn, ids[2])["status"] == "relevant"


def test_bulk_preview_counts_and_applies_as_one_batch(desk):
    conn, pid, ids = desk
    qid = row(conn, ids[10])["query_id"]
    review.judge(conn, ids[10], "relevant", 0, actor="ana")  # judged rows are never swept
    flt = QueueFilter(query_id=qid)
    p = review.preview(conn, pid, flt)
    assert p["rows"] == 4 and p["queries"] == 1 and p["hard"] + p["random"] == 4
    out = review.bulk_judge(conn, pid, flt, actor="ana", expected_rows=p["rows"])
    assert out["rows"] == 4
    assert review.progress(conn, pid, qid)["by_status"] == {
        "unjudged": 0,
        "negative": 4,
        "relevant": 1,
        "skipped": 0,
    }

    low = QueueFilter(risk_below=0.25)
    expected = sum(1 for n in ids if row(conn, n)["status"] == "unjudged" and row(conn, n)["risk"] < 0.25)
    p2 = review.preview(conn, pid, low)
    assert p2["rows"] == expected and p2["max_risk"] < 0.25
    review.judge(conn, review.queue(conn, pid, low)[0]["id"], "skipped", 0, actor="ben")
    with pytest.raises(ConflictError, match=f"said {expected} candidates, but {expected - 1} match"):
        review.bulk_judge(conn, pid, low, actor="ana", expected_rows=expected)
    out2 = review.bulk_judge(conn, pid, low, actor="ana", expected_rows=expected - 1)
    assert out2["rows"] == expected - 1
    assert review.preview(conn, pid, low)["rows"] == 0
    batch = [j for j in review.history(conn, pid, limit=1000) if j["batch"] == out2["batch"]]
    assert len(batch) == expected - 1 and all(
        (j["old_status"], j["new_status"], j["actor"]) == ("unjudged", "negative", "ana") for j in batch
    )

    # One undo takes the whole sweep back, and only it.
    assert review.last_undoable(conn, pid, "ana")["rows"] == expected - 1
    undone = review.undo(conn, pid, "ana")
    assert undone["rows"] == expected - 1
    assert review.preview(conn, pid, low)["rows"] == expected - 1
    assert review.progress(conn, pid, qid)["by_status"]["negative"] == 4
    assert review.undo(conn, pid, "ana")["rows"] == 4  # then the per-query sweep
    assert review.progress(conn, pid, qid)["by_status"] == {
        "unjudged": 4,
        "negative": 0,
        "relevant": 1,
        "skipped": 0,
    }


def test_progress_and_desk(desk):
    conn, pid, ids = desk
    review.judge(conn, ids[0], "negative", 0)
    per_q = {q["query_id"]: q for q in review.query_progress(conn, pid)}
    assert len(per_q) == 59 and sum(q["total"] for q in per_q.values()) == len(ids)
    assert per_q[row(conn, ids[0])["query_id"]]["judged"] == 1
    d = review.desk(conn, pid)
    assert d["size"] == len(ids) - 1 and d["current"]["risk"] == 0.99 and d["overall"]["judged"] == 1
    assert d["query"]["total"] == 5
    focused = review.desk(conn, pid, focus=ids[0])
    assert focused["current"]["id"] == ids[0]
    everything = review.desk(conn, pid, QueueFilter(state="all"), position=10_000)
    assert everything["position"] == len(ids) - 1 and everything["current"] is not None
