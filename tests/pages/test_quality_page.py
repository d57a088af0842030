"""The Quality page through AppTest: maps, histograms and the checklist render from the store; the threshold
slider re-groups paraphrases; proposing and accepting a snippet re-points the pair in the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import quality, queue, store
from core.runs import jobs
from tests.conftest import seed_scifact

pytestmark = pytest.mark.slow
APP = str(Path(__file__).resolve().parents[2] / "app.py")
pytestmark = pytest.mark.usefixtures("server_routing")  # app.py routes every page, as the server does


@pytest.fixture()
def at(db):
    pid = seed_scifact(db, "quality", n_train=20, n_test=6, n_extra=0)
    store.update_project_settings(db, pid, max_length=256)
    app = AppTest.from_file(APP, default_timeout=180)
    app.run()
    app.switch_page("pages/quality.py").run()
    assert not app.exception, app.exception
    # The analysis is a background job started from the page; the page then reads the report it cached.
    assert not app.get("plotly_chart") and app.button(key="quality_analyse")
    app.button(key="quality_analyse").click().run()
    job = jobs.list_jobs(db, pid, "quality")[0]
    assert queue.wait(db, job.id, timeout=300).status == "completed"
    app.run()
    assert not app.exception, app.exception
    return app, db, pid


def test_plots_and_checklist_render(at):
    app, db, pid = at
    charts = app.get("plotly_chart")
    assert len(charts) >= 5  # query map, passage map, passage lengths, three token histograms
    text = " ".join(m.value for m in app.markdown)
    for rule in (
        "At least 256 labelled training examples",
        "Distinct queries",
        "Few paraphrased queries",
        "Documents per query",
        "Hard negatives present and reviewed",
        "Query + passage fit in 256 tokens",
        "Separate test set, disjoint from training",
        "Label balance",
    ):
        assert rule in text
    assert ":red[:material/cancel:]" in text  # no negatives yet: some rules fail
    assert "26 test queries" not in text and "6 test queries" in text
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Training queries"] == "20"

    # the threshold decides what counts as a paraphrase: a strict one merges less than a loose one
    def distinct(value: float) -> int:
        app.slider(key="quality_threshold").set_value(value).run()
        assert not app.exception
        return int({m.label: m.value for m in app.metric}["Distinct (paraphrases merged)"].replace(",", ""))

    assert distinct(0.99) > distinct(0.70)


def settle(app, db, pid) -> None:
    """Wait for the quality jobs the page started (a change of the data re-analyses in the background)."""
    for j in jobs.active_jobs(db, pid):
        queue.wait(db, j.id, timeout=300)
    app.run()
    assert not app.exception


def test_propose_and_accept_a_snippet(at):
    app, db, pid = at
    report = quality.analyse(db, pid, max_length=256)
    longest = quality.truncated(report, kind="pair")
    assert len(longest)
    app.number_input(key="quality_n_snippets").set_value(1).run()
    app.button(key="quality_propose").click().run()
    assert not app.exception
    job = jobs.list_jobs(db, pid, "snippets")[0]  # proposing is a background job too
    assert queue.wait(db, job.id, timeout=300).status == "completed"
    app.run()
    assert not app.exception
    pair_id = int(report.tokens.pair_id[longest[0]])
    app.button(key=f"quality_accept_{pair_id}").click().run()
    assert not app.exception
    settle(app, db, pid)  # the data changed: the report is computed again, in the background
    row = db.execute(
        "SELECT original_passage_id, snippet_passage_id FROM snippets WHERE pair_id = ?", (pair_id,)
    ).fetchone()
    assert row is not None
    assert db.execute("SELECT passage_id FROM pairs WHERE id = ?", (pair_id,)).fetchone()[0] == row[1]
    app.button(key="quality_revert").click().run()
    settle(app, db, pid)
    assert db.execute("SELECT passage_id FROM pairs WHERE id = ?", (pair_id,)).fetchone()[0] == row[0]
    # the proposal is still on screen after the undo: "accept all" re-applies it in one go
    app.button(key="quality_accept_all").click().run()
    assert not app.exception
    assert db.execute("SELECT COUNT(*) FROM snippets WHERE project_id = ?", (pid,)).fetchone()[0] == 1


def test_a_project_name_is_shown_as_text_not_markdown(db):
    """Issue 14: names reached Markdown captions unescaped, so a name could inject a link or an image."""
    from core.markdown import escape_markdown

    name = "evil [click](https://evil.example) ![x](https://evil.example/x.png)"
    store.create_project(db, name)
    app = AppTest.from_file(APP, default_timeout=180)
    app.run()
    app.switch_page("pages/quality.py").run()
    assert not app.exception
    shown = [c.value for c in app.caption if "evil" in c.value]
    assert shown and all("](" not in c for c in shown)
    assert any(escape_markdown(name) in c for c in shown)
