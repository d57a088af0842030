"""The Mine page through AppTest: it renders with its preset and parameters, refuses bad input up front, and
the Mine button stores negatives that the page then lists riskiest first."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import mining, queue
from core.runs import jobs

APP = str(Path(__file__).resolve().parents[2] / "app.py")
pytestmark = pytest.mark.usefixtures("server_routing")  # app.py routes every page, as the server does


@pytest.fixture()
def at(scifact_project, workspace, tmp_path_factory):
    shared = tmp_path_factory.getbasetemp() / "shared-embeddings"  # the same folder test_mining.py fills
    shared.mkdir(exist_ok=True)
    (workspace / "cache").mkdir(parents=True, exist_ok=True)
    (workspace / "cache" / "embeddings").symlink_to(shared, target_is_directory=True)
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    app.switch_page("pages/mine.py").run()
    assert not app.exception
    return app


def test_mine_button_stores_negatives(at, scifact_project):
    conn, pid = scifact_project
    assert "No mining run yet for this project." in [i.value for i in at.info]
    assert at.segmented_control(key="mine_preset").value == "recommended"
    at.number_input(key="mine_recommended_num_negatives").set_value(2).run()
    at.number_input(key="mine_recommended_random_negatives").set_value(1).run()
    assert not at.error
    at.button(key="mine_run").click().run()
    assert not at.exception and not at.error
    job = jobs.list_jobs(conn, pid, "mine")[0]  # mining runs as a background job
    assert queue.wait(conn, job.id, timeout=300).status == "completed"
    at.run()
    assert not at.exception and not at.error
    run = mining.latest_run(conn, pid)
    assert run["status"] == "completed" and run["params"]["num_negatives"] == 2
    stored = conn.execute(
        "SELECT kind, COUNT(*) FROM negatives WHERE project_id = ? GROUP BY kind", (pid,)
    ).fetchall()
    hard, queries = run["stats"]["hard_negatives"], run["stats"]["queries"]
    assert (
        dict(stored) == {"hard": hard, "random": queries} and run["stats"]["negatives_per_query"]["max"] == 2
    )
    assert [m.value for m in at.metric][:2] == [f"{hard:,}", f"{queries:,}"]
    table = at.dataframe[0].value
    assert len(table) == hard + queries and table["risk"].is_monotonic_decreasing
    assert at.get("plotly_chart")


def test_bad_parameters_are_refused_before_mining(at, scifact_project):
    conn, pid = scifact_project
    at.number_input(key="mine_recommended_range_max").set_value(5).run()
    at.number_input(key="mine_recommended_num_negatives").set_value(9).run()
    assert any("Cannot pick 9 negatives" in e.value for e in at.error)
    assert all(b.key != "mine_run" for b in at.button)  # no Mine button while the input is wrong
    at.number_input(key="mine_recommended_num_negatives").set_value(2).run()
    assert not at.error
    at.radio(key="mine_model_source").set_value("Local folder").run()
    at.text_input(key="mine_model_folder").input(str(Path(__file__).parent)).run()
    assert any("not a model folder" in e.value for e in at.error)
    assert conn.execute("SELECT COUNT(*) FROM mining_runs").fetchone()[0] == 0


def test_a_project_name_is_shown_as_text_not_markdown(db):
    """Issue 14: names reached Markdown captions unescaped, so a name could inject a link or an image."""
    from core import store
    from core.markdown import escape_markdown

    name = "evil [click](https://evil.example) ![x](https://evil.example/x.png)"
    store.create_project(db, name)
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    app.switch_page("pages/mine.py").run()
    assert not app.exception
    shown = [c.value for c in app.caption if "evil" in c.value]
    assert shown and all("](" not in c for c in shown)
    assert any(escape_markdown(name) in c for c in shown)
    assert any("no training pairs" in e.value for e in app.error)  # the plan's refusal, escaped, still reads
