"""The Evaluate page with AppTest on a real stored evaluation (SciFact, a saved CrossEncoder run)."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from core import evaluation as ev
from core import models, queue, store
from core.markdown import escape_markdown
from core.runs import jobs
from tests.conftest import ROOT, seed_scifact

PAGE = str(ROOT / "pages" / "evaluate.py")


@pytest.fixture(scope="module")
def ce_folder(tmp_path_factory):
    import torch

    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("page-ce") / "model"
    models.load_cross_encoder(models.BUNDLED, max_length=96).save_pretrained(str(folder))
    return folder


def insert_run(db, pid: int, ce_folder, run_id: str = "run-p", metrics: dict | None = None) -> str:
    """A completed run with its model folder where training leaves it (the workspace's runs/RUN_ID/model)."""
    import shutil

    placed = store.runs_dir(store.workspace_of(db)) / run_id / "model"
    shutil.copytree(ce_folder, placed)
    with store.transaction(db):
        db.execute(
            "INSERT INTO runs (id, project_id, created_at, updated_at, status, config, metrics, model_dir) "
            "VALUES (?, ?, ?, ?, 'completed', ?, ?, ?)",
            (
                run_id,
                pid,
                store.now(),
                store.now(),
                json.dumps({"max_length": 96, "base_model": models.BUNDLED}),
                json.dumps(metrics or {}),
                str(placed),
            ),
        )
    return run_id


@pytest.fixture()
def stored(db, workspace, ce_folder):
    pid = seed_scifact(db, n_train=4, n_test=10, n_extra=120)
    insert_run(db, pid, ce_folder)
    res = ev.evaluate(db, pid, ["run-p"], first_stage="bm25", top_k=5, include_base=False, n_bootstrap=200)
    return db, pid, res


def app(pid: int) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["project_id"] = pid
    at.session_state["project_name"] = "scifact"
    return at


def test_page_shows_a_stored_evaluation(stored):
    db, pid, res = stored
    at = app(pid).run()
    assert not at.exception
    heads = [s.value for s in at.subheader]
    for h in ("Verdict", "Realistic figures", "Paired tests", "Per query", "Export"):
        assert h in heads
    table = at.dataframe[0].value
    assert list(table["system"]) == [s["label"] for s in res["systems"]]
    assert table["ndcg@10"].tolist() == [
        round(res["realistic"][s["key"]]["mean"]["ndcg@10"], 4) for s in res["systems"]
    ]
    assert any("Oracle" in e.label for e in at.expander)
    fs, run = (
        res["realistic"]["first_stage"]["mean"]["ndcg@10"],
        res["realistic"]["run:run-p"]["mean"]["ndcg@10"],
    )
    if run <= fs:
        assert any("does NOT beat the first stage" in e.value for e in at.error)
    else:
        assert any("first stage" in m.value for m in list(at.success) + list(at.warning))
    # the base is not offered as a baseline by default: it would be a random head
    assert at.checkbox(key="eval_base").value is False


def test_drill_into_a_loss_and_send_it_to_review(stored):
    db, pid, res = stored
    at = app(pid).run()
    deltas = ev.per_query_deltas(res, "run:run-p")
    worst = deltas[0]
    assert at.selectbox(key="eval_query").value == worst["query_key"]
    assert any(t.value == worst["query"] for t in at.text)
    if worst["delta"] >= 0:
        pytest.skip("this seeded head lost no query")  # pragma: no cover - the seed gives losses on this data
    at.button(key="eval_send_review").click().run()
    assert at.session_state["review_query_filter"] == worst["query_id"]


def test_evaluate_button_runs_and_stores_a_new_evaluation(stored):
    db, pid, res = stored
    at = app(pid).run()
    at.number_input(key="eval_top_k").set_value(3)
    at.button(key="eval_go").click().run()
    assert not at.exception
    job = jobs.list_jobs(db, pid, "evaluate")[0]  # evaluating is a background job
    assert queue.wait(db, job.id, timeout=300).status == "completed"
    at.run()
    assert not at.exception and not [e.value for e in at.error if "NOT beat" not in e.value]
    rows = ev.list_evaluations(db, pid)
    assert len(rows) == 2 and rows[0]["params"]["top_k"] == 3
    assert at.selectbox(key="eval_pick").value == rows[0]["id"]


def test_test_labels_and_oracle_figures_are_labelled_and_names_escaped(db, workspace, ce_folder):
    """Issue 14: a run that chose with test labels is flagged; oracle candidates give no realistic verdict;
    file and project names are shown as text, never as links or images."""
    pid = seed_scifact(db, name="names", n_train=3, n_test=6, n_extra=40)
    insert_run(db, pid, ce_folder, run_id="run-leak", metrics={"test_labels_used_for": ["checkpoint"]})
    ev.evaluate(db, pid, ["run-leak"], first_stage="bm25", top_k=4, include_base=False, n_bootstrap=50)
    at = app(pid)
    at.session_state["project_name"] = "[evil](http://evil.example)"
    at.run()
    assert not at.exception
    assert any("Test labels used" in w.value and "checkpoint" in w.value for w in at.warning)
    assert all("[evil](" not in c.value for c in at.caption)
    assert any("\\[evil\\]" in c.value for c in at.caption)
    # an uploaded file without score or rank column: its candidates are every row -> oracle figures
    res = ev.load_evaluation(db, ev.list_evaluations(db, pid)[0]["id"])
    sf_rows = []
    for q, info in list(res["queries"].items())[:4]:
        for d, g in info["relevant"].items():
            sf_rows.append([info["text"], res["passages"][d], g])
        for d, _ in res["rankings"]["first_stage"][q][:2]:
            if d not in info["relevant"]:
                sf_rows.append([info["text"], res["passages"][d], 0])
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf).writerows([["query", "passage", "label"]] + sf_rows)
    ts = ev.read_test_file(buf.getvalue().encode(), "![img](http://evil.example/x.png).csv", db, pid)
    ev.evaluate(db, pid, ["run-leak"], test_set=ts, first_stage="file", include_base=False, n_bootstrap=50)
    at = app(pid).run()
    assert not at.exception
    heads = [s.value for s in at.subheader]
    assert "Realistic figures" not in heads and any(h.startswith("Oracle figures") for h in heads)
    assert any("No realistic verdict" in w.value for w in at.warning)
    assert not at.success and not [e for e in at.error if "beat" in e.value]
    assert all("![img](" not in c.value for c in at.caption)


def _upload_csv(res: dict, n_queries: int = 3) -> bytes:
    """A small test set with a score column from a stored evaluation: each query's relevant and top passages."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["query", "passage", "label", "score"])
    for q, info in list(res["queries"].items())[:n_queries]:
        for d, g in info["relevant"].items():
            w.writerow([info["text"], res["passages"][d], g, 0.5])
        for i, (d, _) in enumerate(res["rankings"]["first_stage"][q][:2]):
            if d not in info["relevant"]:
                w.writerow([info["text"], res["passages"][d], 0, 0.9 - i / 10])
    return buf.getvalue().encode()


def test_an_uploaded_test_set_is_evaluated_as_a_background_job(stored):
    """Issue 15 follow-up: an uploaded test set used to be evaluated inside the page (lost on leaving it); the
    page now keeps the file in the workspace's uploads folder and queues an evaluate job that reads it."""
    db, pid, res = stored
    at = app(pid).run()
    at.radio(key="eval_source").set_value("upload").run()
    at.file_uploader(key="eval_upload").set_value(("../my tests.csv", _upload_csv(res), "text/csv")).run()
    at.selectbox(key="eval_first_stage").set_value("file")
    at.multiselect(key="eval_runs").set_value([])
    at.button(key="eval_go").click().run()
    assert not at.exception and not [e.value for e in at.error if "NOT beat" not in e.value]
    job = jobs.list_jobs(db, pid, "evaluate")[0]
    kept = store.uploads_dir(store.workspace_of(db))
    assert job.args["test_name"] == "../my tests.csv" and job.args["first_stage"] == "file"
    assert job.args["test_file"].startswith(str(kept)) and job.args["test_file"].endswith("-my_tests.csv")
    done = queue.wait(db, job.id, timeout=300)
    assert done.status == "completed", done.error
    newest = ev.list_evaluations(db, pid)[0]
    assert newest["id"] == done.result["evaluation_id"] and newest["params"]["test_set"] == "../my tests.csv"
    assert newest["params"]["queries"] == 3
    at.run()
    assert not at.exception and at.selectbox(key="eval_pick").value == newest["id"]


def test_verdicts_say_significance_p_bounds_best_of_n_and_judged(db, workspace, ce_folder):
    """Issue 26: every comparison says whether it is significant, p at the test's floor is an upper bound, several
    runs compared on test carry the best-of-N warning, and each system's judged@10 is shown with a sentence."""
    pid = seed_scifact(db, name="two", n_train=3, n_test=8, n_extra=60)
    insert_run(db, pid, ce_folder, run_id="run-a")
    insert_run(db, pid, ce_folder, run_id="run-b")
    res = ev.evaluate(
        db, pid, ["run-a", "run-b"], first_stage="bm25", top_k=5, include_base=False, n_bootstrap=50
    )
    r = ev.Results.of(res)
    at = app(pid).run()
    assert not at.exception
    assert any("best of 2" in w.value and "optimistic" in w.value for w in at.warning)
    alerts = [a.value for a in list(at.success) + list(at.warning) + list(at.error) + list(at.info)]
    for v in r.verdicts():  # one alert per run, from the one rule (shown escaped: labels are user text)
        assert any(escape_markdown(v.sentence) in a for a in alerts)
    tests = next(d.value for d in at.dataframe if "p-value" in d.value.columns)  # the paired tests
    assert list(tests["significant"]) == ["yes" if c.significant else "no" for c in r.comparisons]
    assert list(tests["p-value"]) == [c.p_text for c in r.comparisons]
    assert all(p.startswith(("p = ", "p < ")) for p in tests["p-value"])
    figures = at.dataframe[0].value
    assert "judged@10" in figures.columns
    assert figures["judged@10"].tolist() == [round(r.judged(s.key), 4) for s in r.systems]
    if any(r.judged(s.key) < 0.8 for s in r.systems):  # SciFact judges only the relevant passages
        assert any("judged@10" in c.value and "Only part of each top 10" in c.value for c in at.caption)


def test_the_first_stage_picker_offers_the_hybrid_and_evaluates_with_it(stored):
    """Issue 22: the hybrid (BM25 + embedding model, reciprocal rank fusion) is offered wherever a first stage is."""
    db, pid, _ = stored
    at = app(pid).run()
    picker = at.selectbox(key="eval_first_stage")
    assert picker.options == ["BM25 (bm25s)", "embedding model (exact search)", ev.FIRST_STAGES["hybrid"]]
    assert "hybrid" in at.selectbox(key="eval_play_stage").options[-1]
    picker.set_value("hybrid")
    at.multiselect(key="eval_runs").set_value([])  # the first stage alone: what the choice changes
    at.button(key="eval_go").click().run()
    assert not at.exception
    job = jobs.list_jobs(db, pid, "evaluate")[0]
    assert job.args["first_stage"] == "hybrid"
    done = queue.wait(db, job.id, timeout=300)
    assert done.status == "completed", done.error
    newest = ev.list_evaluations(db, pid)[0]
    assert newest["params"]["first_stage"] == "hybrid" and newest["params"]["embedding_model"]
    at.run()
    assert not at.exception and at.selectbox(key="eval_pick").value == newest["id"]


def test_reliability_plot_and_ece_of_the_selected_run(db, workspace, ce_folder):
    """Issue 24: the Evaluate page measures the run's relevance_score in a background job (kind "calibrate") — the
    map fitted on validation, the reliability plot and the ECE on the test set's labels (the one computation,
    core.export.calibrate) — and shows the job's stored report, also on a fresh session (a reload)."""
    from core.export.calibrate import calibration_report

    pid = seed_scifact(db, name="calibrated", n_train=18, n_test=8, n_extra=80)
    insert_run(db, pid, ce_folder, run_id="run-cal")
    ev.evaluate(db, pid, ["run-cal"], first_stage="bm25", top_k=5, include_base=False, n_bootstrap=50)
    at = app(pid).run()
    assert not at.exception and "Calibration of relevance_score" in [s.value for s in at.subheader]
    assert at.selectbox(key="eval_cal_run").value == "run-cal"
    charts_before = len(at.get("plotly_chart"))
    at.button(key="eval_cal_go").click().run()
    assert not at.exception and not [e.value for e in at.error if "beat" not in e.value]
    job = jobs.list_jobs(db, pid, "calibrate")[0]
    assert job.args == {"run_id": "run-cal"}
    assert at.button(key="eval_cal_go").disabled or job.status not in jobs.ACTIVE  # one at a time
    done = queue.wait(db, job.id, timeout=300)
    assert done.status == "completed", done.error
    assert done.fraction == 1.0 and done.result["run_id"] == "run-cal"
    at.run()
    assert not at.exception and not at.button(key="eval_cal_go").disabled
    want = calibration_report(db, "run-cal", pid)
    assert (
        want.calibration is not None
        and want.calibration.fitted_on == "validation"
        and want.test_ece is not None
    )
    shown = {m.label: m.value for m in at.metric}
    assert shown["Expected calibration error (test labels)"] == f"{want.test_ece:.3f}"
    assert shown["ECE of a plain sigmoid of the score"] == f"{want.raw_sigmoid_ece:.3f}"
    assert shown["Test pairs"] == f"{want.test_pairs:,}"
    assert len(at.get("plotly_chart")) == charts_before + 1  # the reliability diagram
    said = " ".join(c.value for c in at.caption)
    assert "Map fitted on the labels of validation" in said and "8 queries" in want.measured_on
    assert "from the run's embedding first stage" in want.measured_on  # the lists the run itself ranks
    assert f"measured on {escape_markdown(want.measured_on)}" in said and "test set" in want.measured_on
    assert not [w for w in at.warning if "not an out-of-sample check" in w.value]
    # a new session (a reload, a restarted studio): the stored report is shown again
    reloaded = app(pid).run()
    assert not reloaded.exception
    assert {m.label: m.value for m in reloaded.metric}["Test pairs"] == f"{want.test_pairs:,}"
