"""The overview (each step's state and the one next action), time estimates from measured throughput, and the
first screen through AppTest: the overview is the default page and every page has its own URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import estimates, overview, store
from core.runs import records
from tests.conftest import seed_scifact

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def states(conn, pid, checks=None, current=False) -> dict[str, str]:
    return {s.key: s.state for s in overview.steps(conn, pid, checks, current)}


def add_negatives(conn, pid, n: int = 12) -> list[int]:
    """n mined candidates over the project's first training query, riskiest first by id."""
    q, pos = conn.execute(
        "SELECT p.query_id, p.passage_id FROM pairs p JOIN queries q ON q.id = p.query_id "
        "WHERE p.project_id = ? AND q.split = 'train' LIMIT 1",
        (pid,),
    ).fetchone()
    pool = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM passages WHERE project_id = ? AND source = 'corpus' LIMIT ?", (pid, n)
        )
    ]
    with store.transaction(conn):
        conn.execute(
            "INSERT INTO mining_runs (project_id, created_at, status, params, stats) "
            "VALUES (?, ?, 'completed', '{}', '{}')",
            (pid, store.now()),
        )
        run = conn.execute("SELECT MAX(id) FROM mining_runs").fetchone()[0]
        for i, p in enumerate(pool):
            conn.execute(
                "INSERT INTO negatives (project_id, mining_run_id, query_id, positive_id, passage_id, kind, "
                "rank, score, risk) VALUES (?, ?, ?, ?, ?, 'hard', ?, 0.5, ?)",
                (pid, run, q, pos, p, i + 1, 1.0 - i / 100),
            )
    return [
        r[0] for r in conn.execute("SELECT id FROM negatives WHERE project_id = ? ORDER BY risk DESC", (pid,))
    ]


def test_a_new_project_points_at_data_then_each_step_in_turn(db):
    pid = store.create_project(db, "empty")
    assert states(db, pid)["data"] == "todo"
    assert overview.next_action(overview.steps(db, pid)).page == "data"

    pid = seed_scifact(db, "walk", n_train=6, n_test=3, n_extra=20)
    path = overview.steps(db, pid)
    assert [s.key for s in path] == list(overview.STEPS)
    assert path[0].state == "done" and "6 queries" in path[0].summary and "3 test queries" in path[0].summary
    assert overview.next_action(path).page == "mine"

    ids = add_negatives(db, pid)
    assert states(db, pid)["mine"] == "done"
    assert overview.next_action(overview.steps(db, pid)).page == "review"
    for nid in ids[: overview.REVIEW_FIRST - 1]:  # one short of the riskiest ten
        db.execute("UPDATE negatives SET status = 'negative' WHERE id = ?", (nid,))
    assert states(db, pid)["review"] == "todo"
    db.execute("UPDATE negatives SET status = 'relevant' WHERE id = ?", (ids[overview.REVIEW_FIRST - 1],))
    path = overview.steps(db, pid)
    assert path[2].state == "done" and "1 false negatives" in path[2].summary
    assert overview.next_action(path).page == "quality"

    # A quality checklist with a warning: done with warnings counted; next is training.
    checks = [type("C", (), {"state": s})() for s in ("pass", "warn", "pass")]
    path = overview.steps(db, pid, checks, True)
    assert path[3].state == "done" and path[3].counts == {"warnings": 1, "failures": 0}
    assert overview.next_action(path).page == "train"
    assert overview.steps(db, pid, checks, False)[3].state == "todo"  # stale: the data changed since

    run_id = records.create_run(db, pid, {"loss": "bce"}, status="completed")
    path = overview.steps(db, pid, checks, True)
    assert path[4].state == "done" and overview.next_action(path).page == "evaluate"
    assert path[5].state == "todo" and run_id in path[5].summary
    db.execute(
        "INSERT INTO evaluations (project_id, run_id, created_at, params, results) VALUES (?, ?, ?, ?, '{}')",
        (pid, run_id, store.now(), json.dumps({"run_ids": [run_id]})),
    )
    path = overview.steps(db, pid, checks, True)
    assert path[5].state == "done"
    assert overview.next_action(path).label == "Export the model"


def test_skipped_recommended_steps_do_not_hold_the_next_action_back(db):
    pid = seed_scifact(db, "skip", n_train=6, n_test=3, n_extra=20)
    add_negatives(db, pid)  # nothing reviewed, no quality report
    records.create_run(db, pid, {}, status="completed")
    assert overview.next_action(overview.steps(db, pid)).page == "evaluate"


def test_running_jobs_show_on_their_step(db):
    pid = seed_scifact(db, "busy", n_train=6, n_test=3, n_extra=20)
    with store.transaction(db):
        db.execute(
            "INSERT INTO jobs (project_id, kind, status, fraction, message, created_at) "
            "VALUES (?, 'mine', 'running', 0.4, 'embedding passages', ?)",
            (pid, store.now()),
        )
    path = overview.steps(db, pid)
    assert path[1].state == "running" and "40%" in path[1].summary
    nxt = overview.next_action(path)
    assert (nxt.page, nxt.label) == ("mine", "Watch mine")
    db.execute("UPDATE jobs SET status = 'interrupted', error = 'process died: its exit status is unknown'")
    path = overview.steps(db, pid)
    assert path[1].state == "attention" and "interrupted" in path[1].summary
    assert overview.next_action(path).label == "Fix mine"


def test_estimates_start_conservative_and_learn_from_measurements(workspace):
    workspace.mkdir(parents=True, exist_ok=True)
    est = estimates.embedding(workspace, 1200)
    assert not est.measured and est.seconds == pytest.approx(estimates.STARTUP_S + 20)
    assert "default" in est.text() and "1,200 texts at 60 texts/s" in est.text()
    assert estimates.training(workspace, 900, max_length=256).seconds == pytest.approx(
        estimates.STARTUP_S + 100 * 2**estimates.TRAIN_LENGTH_EXPONENT
    )  # 900 pairs at 9 pairs/s (length 128); a step at 256 costs 2^1.8 of one at 128
    assert estimates.observe(workspace, "embed_texts_per_s", 120.0, "job:1")
    assert not estimates.observe(workspace, "embed_texts_per_s", 120.0, "job:1")  # each source counts once
    assert not estimates.observe(workspace, "embed_texts_per_s", 1e9, "job:2")  # implausible
    assert estimates.rate(workspace, "embed_texts_per_s") == (120.0, True)
    assert estimates.embedding(workspace, 1200).seconds == pytest.approx(estimates.STARTUP_S + 10)
    assert estimates.duration(30) == "30 s" and estimates.duration(600) == "10 min"
    assert estimates.duration(5400) == "1 h 30 min"


def test_estimates_learn_from_finished_jobs_and_runs(db):
    pid = seed_scifact(db, "learn", n_train=6, n_test=3, n_extra=20)
    mine = {"stats": {"cache": {"computed": 400, "cached": 0}, "seconds": {"embedding": 4.0}}}
    with store.transaction(db):
        db.execute(
            "INSERT INTO jobs (project_id, kind, status, result, created_at) VALUES (?, 'mine', 'completed', ?, ?)",
            (pid, json.dumps(mine), store.now()),
        )
    records.create_run(db, pid, {"max_length": 256}, status="completed")
    db.execute("UPDATE runs SET metrics = ?", (json.dumps({"pairs_per_s": 5.0, "train_seconds": 60}),))
    assert estimates.learn(db, pid) == 2
    assert estimates.learn(db, pid) == 0  # already seen
    ws = store.workspace_of(db)
    assert estimates.rate(ws, "embed_texts_per_s") == (100.0, True)
    assert estimates.rate(ws, "train_pairs_per_s") == (
        pytest.approx(5.0 * 2**estimates.TRAIN_LENGTH_EXPONENT, abs=1e-3),
        True,
    )  # 5 pairs/s at 256 tokens = 17.4 at 128 (a training step grows with length^1.8)


# --- the first screen ------------------------------------------------------------------------------


@pytest.fixture()
def at(db, server_routing):
    """AppTest with app.py routing every page, as the server does."""
    seed_scifact(db, "scifact", n_train=6, n_test=3, n_extra=20)
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    assert not app.exception
    return app


def test_the_overview_is_the_first_screen_with_one_next_step(at):
    assert at.title[0].value == "Overview"
    assert "**Next step**" in [m.value for m in at.markdown]
    assert at.button(key="overview_go").label == "Mine hard negatives"
    at.button(key="overview_go").click().run()
    assert not at.exception and at.title[0].value == "Mine"
    assert "Done" not in at.caption and any("No job running" in c.value for c in at.sidebar.caption)


def test_every_page_has_its_own_url_and_links_back_to_the_overview(at):
    """A deep link such as /data needs an explicit url_path (the default page is served at the root only)."""
    source = Path(APP).read_text()
    for name in ("overview", "data", "mine", "review", "quality", "train", "evaluate"):
        assert f'url_path="{name}"' in source
    at.switch_page("pages/data.py").run()
    assert not at.exception and at.title[0].value == "Data"
    back = [pl.proto for pl in at.get("page_link")][0]
    assert back.label == "Overview" and back.page == ""  # the default page is served at the root


def test_the_overview_reads_the_quality_report_a_job_left_and_never_computes_one(db, monkeypatch):
    from core import quality
    from core.quality import stored

    pid = seed_scifact(db, "q", n_train=8, n_test=3, n_extra=0)
    assert overview.quality_checks(db, pid) == (None, False)
    assert stored.cached_report(db, pid, max_length=256) is None
    report = quality.analyse(db, pid, max_length=256)  # what the quality job does
    monkeypatch.setattr(
        quality.report, "_compute", lambda *a, **k: pytest.fail("the overview computed a report")
    )
    assert stored.cached_report(db, pid, max_length=256).key == report.key
    checks, current = overview.quality_checks(db, pid)
    assert current and [c.rule for c in checks] == [c.rule for c in quality.checklist(report)]
    assert overview.steps(db, pid, checks, current)[3].state == "done"
    db.execute(
        "UPDATE pairs SET label = 2 WHERE id = (SELECT MIN(id) FROM pairs WHERE project_id = ?)", (pid,)
    )
    checks, current = overview.quality_checks(db, pid)
    assert checks and not current  # the data changed since: shown, marked stale
    assert stored.cached_report(db, pid, max_length=256) is None


def test_the_best_run_is_picked_on_validation_and_shown_with_its_test_verdict(at, db):
    """Issue 26: the overview's best run is the highest on validation, never on test; its test figures are shown."""
    from core.evaluation import save_evaluation
    from tests.core.test_verdicts import _run, _values, crafted

    pid = store.project_id(db, "scifact")
    _run(db, pid, "val-best", {"ndcg@10": 0.74, "first_stage_ndcg@10": 0.60})
    _run(db, pid, "test-best", {"ndcg@10": 0.68, "first_stage_ndcg@10": 0.60})
    first, a = _values(0.05, 0.02)
    _, b = _values(0.15, 0.02, seed=1)
    kinds = {"first_stage": "first_stage", "run:val-best": "run", "run:test-best": "run"}
    save_evaluation(db, pid, crafted({"first_stage": first, "run:val-best": a, "run:test-best": b}, kinds))
    at.run()
    assert not at.exception
    shown = [m.value for m in list(at.success) + list(at.warning) + list(at.error) + list(at.info)]
    best = [m for m in shown if "picked on validation" in m]
    assert len(best) == 1 and "val\\-best" in best[0] and "test\\-best" not in best[0]  # escaped run ids
    assert "NDCG@10" in best[0] and "vs first stage" in best[0]
