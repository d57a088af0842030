"""The Train page with AppTest: the form, the proposed loss, a rejected setting, launching (mocked) and the runs list."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core import store, training
from core.runs import jobs, records
from core.training import launch
from tests.conftest import ROOT, seed_scifact

PAGE = str(ROOT / "pages" / "train.py")


def app(workspace, project_id: int, name: str = "scifact") -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["project_id"] = project_id
    at.session_state["project_name"] = name
    return at


def test_form_renders_with_adaptive_defaults_and_proposed_loss(workspace, db):
    pid = seed_scifact(db, n_train=60, n_test=10, n_extra=10)
    at = app(workspace, pid).run()
    assert not at.exception
    assert at.selectbox(key="loss").value == "residual"  # the bundled encoder gets a new head
    assert any("Proposed for this data" in c.value for c in at.caption)
    defaults = training.default_config(store.project_counts(db, pid))
    assert at.number_input(key="lr").value == pytest.approx(defaults.learning_rate)
    assert at.number_input(key="warmup").value == pytest.approx(0.1)
    assert at.checkbox(key="keep_best").value is True
    assert any("No runs yet" in c.value for c in at.caption)


def test_the_estimate_follows_the_values_being_edited(workspace, db):
    pid = seed_scifact(db, n_train=60, n_test=10, n_extra=10)
    at = app(workspace, pid).run()

    def steps() -> int:
        line = next(c.value for c in at.caption if c.value.startswith("Estimate with these settings"))
        return int(line.split(" steps:")[0].rsplit(" ", 1)[-1])

    before = steps()
    at.number_input(key="epochs").set_value(float(at.number_input(key="epochs").value) * 2).run()
    assert not at.exception
    assert (
        steps() >= 2 * before - 1
    )  # twice the epochs, twice the steps (rounding aside), before pressing Train


def test_out_of_range_learning_rate_is_refused_with_a_message(workspace, db, monkeypatch):
    pid = seed_scifact(db, n_train=60, n_test=10, n_extra=10)
    launched = []
    monkeypatch.setattr(jobs, "_launch", lambda conn, run_id: launched.append(run_id) or 999999)
    at = app(workspace, pid).run()
    at.number_input(key="lr").set_value(3.0)
    submit = next(b for b in at.button if b.label == "Train")
    submit.click().run()
    assert any("Learning rate 3 is out of range" in e.value for e in at.error)
    assert launched == [] and launch.list_runs(db, pid) == []


def test_train_button_submits_a_background_run_and_lists_it(workspace, db, monkeypatch):
    pid = seed_scifact(db, n_train=60, n_test=10, n_extra=10)
    launched = []
    monkeypatch.setattr(jobs, "_launch", lambda conn, job_id: launched.append(job_id) or 0)
    monkeypatch.setattr(jobs, "pid_alive", lambda pid: False)
    at = app(workspace, pid).run()
    next(b for b in at.button if b.label == "Train").click().run()
    assert not at.exception
    runs = launch.list_runs(db, pid)
    started = jobs.list_jobs(db, pid, kind="train")
    assert len(runs) == 1 and launched == [started[0].id] and started[0].run_id == runs[0].id
    assert runs[0].config["learning_rate"] == pytest.approx(
        training.default_config(store.project_counts(db, pid)).learning_rate
    )
    assert any(runs[0].id in s.value for s in at.subheader)
    assert at.dataframe[0].value["run"].tolist() == [runs[0].id]


def test_hybrid_candidate_lists_chosen_on_the_form_reach_the_run(workspace, db, monkeypatch):
    pid = seed_scifact(db, n_train=60, n_test=10, n_extra=10)
    monkeypatch.setattr(jobs, "_launch", lambda conn, job_id: 0)
    monkeypatch.setattr(jobs, "pid_alive", lambda pid: False)
    at = app(workspace, pid).run()
    picker = at.selectbox(key="candidates_from")
    assert picker.value == "embedding" and list(picker.options) == ["embedding", "hybrid"]
    picker.select("hybrid").run()
    next(b for b in at.button if b.label == "Train").click().run()
    assert not at.exception
    assert [r.config["candidates_from"] for r in launch.list_runs(db, pid)] == ["hybrid"]


def test_completed_run_that_loses_to_the_first_stage_says_so(workspace, db):
    pid = seed_scifact(db, n_train=60, n_test=10, n_extra=10)
    run_id = training.create_run(db, pid, training.TrainConfig(), status="completed")
    records.update_run(
        db,
        run_id,
        metrics={
            "validation": {
                "ndcg@10": 0.41,
                "mrr@10": 0.3,
                "first_stage_ndcg@10": 0.66,
                "first_stage_mrr@10": 0.6,
            },
            "fusion": {"alpha": 0.3, "validation_ndcg@10": 0.68},
        },
        progress={"phase": "completed", "step": 10, "total": 10},
    )
    records.add_event(db, run_id, "loss", {"loss": 0.9}, 1)
    records.add_event(
        db, run_id, "eval", {"val_ndcg@10": 0.41, "val_mrr@10": 0.3, "val_base_ndcg@10": 0.66}, 10
    )
    at = app(workspace, pid).run()
    assert not at.exception
    error = " ".join(w.value for w in at.error)  # the one verdict rule: a margin of zero or less loses
    assert (
        "does NOT beat the first stage" in error
        and "0.410 vs first stage 0.660" in error
        and "alpha 0.3" in error
    )
    assert [b.label for b in at.button if b.label in ("Cancel", "Resume")] == []


def test_a_run_that_chose_on_the_test_set_says_so(workspace, db):
    """Issue 14: figures chosen with test labels carry that label on the page."""
    pid = seed_scifact(db, n_train=60, n_test=10, n_extra=10)
    run_id = training.create_run(db, pid, training.TrainConfig(validation="test"), status="completed")
    records.update_run(
        db,
        run_id,
        metrics={
            "evaluation": "test",
            "test_labels_used_for": ["checkpoint", "early stopping", "validation figures"],
            "validation": {
                "ndcg@10": 0.71,
                "mrr@10": 0.6,
                "first_stage_ndcg@10": 0.66,
                "first_stage_mrr@10": 0.6,
            },
        },
        progress={"phase": "completed", "step": 10, "total": 10},
    )
    at = app(workspace, pid).run()
    assert not at.exception
    shown = " ".join(s.value for s in at.info)
    assert "on the test set" in shown and "Test labels were used for: checkpoint, early stopping" in shown
    assert not at.success  # higher, but recorded without a significance test: not "beats"


def test_a_completed_run_offers_distillation_as_a_background_job(workspace, db, monkeypatch):
    """Issue 24: the Train page queues `distill` for the watched run (a plain cross-encoder other stacks load)."""
    pid = seed_scifact(db, n_train=60, n_test=10, n_extra=10)
    run_id = training.create_run(db, pid, training.TrainConfig(), status="completed")
    monkeypatch.setattr(jobs, "_launch", lambda conn, job_id: 0)
    monkeypatch.setattr(jobs, "pid_alive", lambda pid: False)
    at = app(workspace, pid).run()
    assert not at.exception
    next(b for b in at.button if b.label == "Distill into a plain cross-encoder").click().run()
    assert not at.exception
    queued = jobs.list_jobs(db, pid, kind="distill")
    assert len(queued) == 1 and queued[0].args == {"run": run_id}


def test_the_form_says_what_the_data_makes_the_run_adapt_before_launch(workspace, db):
    """Issue 22: the plan shows the adapted counts (rows an epoch, held-out queries, where hard negatives come
    from) before Train is pressed, and follows the values being edited."""
    pid = seed_scifact(db, n_train=60, n_test=10, n_extra=10)
    at = app(workspace, pid).run()
    assert not at.exception

    def shown() -> tuple[str, list[str]]:  # the plan line and its notes, Markdown escapes removed
        plan = next(m.value for m in at.markdown if m.value.startswith("**Adapted to this project's data:**"))
        return plan.replace("\\", ""), [c.value.replace("\\", "") for c in at.caption]

    queries = store.project_counts(db, pid)["train_queries"]
    plan, notes = shown()
    assert "rows an epoch" in plan and "held out for validation" in plan
    assert any("no mining run" in n for n in notes)
    # 2% of ~60 queries is 1: raised to the least that says anything
    at.slider(key="val_fraction").set_value(0.02).run()
    assert not at.exception
    plan, notes = shown()
    assert any(n.startswith(f"- Only {queries} training queries: 5 of them") for n in notes), notes
    assert f"{queries - 5} training queries, 5 held out for validation" in plan
    assert not any("ProjectShape" in n for n in notes)
