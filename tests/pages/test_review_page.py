"""The Review page through AppTest: judging with the desk's buttons, undo, filters, two-tab conflicts, bulk
sweeps with their confirmation, and export — each checked against the store, not just the screen."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import review, store
from core.markdown import escape_markdown
from core.review import evidence
from tests.core.test_review import seed_negatives

APP = str(Path(__file__).resolve().parents[2] / "app.py")
pytestmark = pytest.mark.usefixtures("server_routing")  # app.py routes every page, as the server does


@pytest.fixture()
def seeded(scifact_project):
    conn, pid = scifact_project
    return conn, pid, seed_negatives(conn, pid)


@pytest.fixture()
def at(seeded):
    app = AppTest.from_file(APP, default_timeout=120)
    app.session_state["review_actor"] = "tester"
    app.run()
    app.switch_page("pages/review.py").run()
    assert not app.exception
    return app


def shown_id(app) -> int:
    title = app.subheader[0].value  # "Candidate #12 (...)"
    return int(title.split("#")[1].split(" ")[0])


def plain(markdown: str) -> str:
    """What an escaped Markdown string shows on screen (AppTest gives the source)."""
    return re.sub(r"\\(.)", r"\1", markdown)


def status(conn, nid) -> str:
    return conn.execute("SELECT status FROM negatives WHERE id = ?", (nid,)).fetchone()[0]


def test_buttons_show_shortcuts_and_judge_riskiest_first(at, seeded):
    conn, pid, ids = seeded
    keys = {b.key: b.proto.shortcut for b in at.button}
    assert {keys["review_negative"], keys["review_relevant"], keys["review_skip"], keys["review_undo"]} == {
        "j",
        "k",
        "s",
        "u",
    }
    first = shown_id(at)
    assert first == review.queue(conn, pid)[0]["id"]
    full = conn.execute(
        "SELECT p.text FROM negatives n JOIN passages p ON p.id = n.passage_id WHERE n.id = ?", (first,)
    ).fetchone()[0]
    query = review.candidate(conn, first)["query"]
    # the whole candidate, escaped, with the query's terms marked as text styling (never HTML)
    assert evidence.highlight(full, evidence.query_terms(query)) in [m.value for m in at.markdown]
    assert any(c.value.startswith(":material/lightbulb: Why it may be relevant: ") for c in at.caption)

    at.button(key="review_negative").click().run()
    assert status(conn, first) == "negative"
    second = shown_id(at)
    assert second != first and "Overall: 1 of 295 judged" in [p.proto.text for p in at.get("progress")]
    at.button(key="review_relevant").click().run()
    assert status(conn, second) == "relevant"
    assert (
        conn.execute(
            "SELECT origin FROM pairs p JOIN negatives n ON n.query_id = p.query_id AND "
            "n.passage_id = p.passage_id WHERE n.id = ?",
            (second,),
        ).fetchone()[0]
        == "review"
    )
    third = shown_id(at)
    at.button(key="review_skip").click().run()
    assert status(conn, third) == "skipped"
    h = review.history(conn, pid)
    assert [(j["negative_id"], j["new_status"], j["actor"]) for j in h] == [
        (third, "skipped", "tester"),
        (second, "relevant", "tester"),
        (first, "negative", "tester"),
    ]


def test_undo_repeatedly_brings_candidates_back(at, seeded):
    conn, pid, ids = seeded
    judged = []
    for _ in range(3):
        judged.append(shown_id(at))
        at.button(key="review_negative").click().run()
    for nid in reversed(judged):
        at.button(key="review_undo").click().run()
        assert status(conn, nid) == "unjudged"
        assert shown_id(at) == nid and "shown again" in at.subheader[0].value
    assert at.button(key="review_undo").disabled
    assert review.progress(conn, pid)["judged"] == 0


def test_filters_narrow_the_queue(at, seeded):
    conn, pid, ids = seeded
    qid = conn.execute("SELECT query_id FROM negatives WHERE id = ?", (ids[20],)).fetchone()[0]
    at.selectbox(key="review_query").set_value(qid).run()
    nid = shown_id(at)
    assert conn.execute("SELECT query_id FROM negatives WHERE id = ?", (nid,)).fetchone()[0] == qid
    assert "(1 of 5 in this queue)" in at.subheader[0].value
    for _ in range(5):
        at.button(key="review_negative").click().run()
    assert any("Nothing left under these filters" in s.value for s in at.success)
    assert review.progress(conn, pid, qid)["judged"] == 5

    at.selectbox(key="review_query").set_value(None).run()
    at.slider(key="review_risk").set_value((0.1, 0.2)).run()
    risk = conn.execute("SELECT risk FROM negatives WHERE id = ?", (shown_id(at),)).fetchone()[0]
    assert 0.1 <= risk <= 0.2 and risk == 0.2
    at.slider(key="review_risk").set_value((0.0, 1.0)).run()
    at.selectbox(key="review_state").set_value("judged").run()
    assert "of 5 in this queue" in at.subheader[0].value
    assert status(conn, shown_id(at)) == "negative"


def test_another_tab_changing_the_candidate_is_a_clear_conflict(at, seeded, workspace):
    conn, pid, ids = seeded
    nid = shown_id(at)
    other = store.connect(workspace)  # a second tab judged it meanwhile
    review.judge(other, nid, "relevant", 0, actor="other-tab")
    at.button(key="review_negative").click().run()
    assert status(conn, nid) == "relevant"  # not overwritten
    assert any(
        "changed by other-tab" in plain(w.value) and "nothing was saved" in plain(w.value) for w in at.warning
    )
    assert shown_id(at) == nid and any("relevant by other-tab" in plain(c.value) for c in at.caption)
    at.button(key="review_negative").click().run()  # reloaded with the new version: now it may be changed
    assert status(conn, nid) == "negative"


def test_bulk_sweeps_confirm_the_count(at, seeded):
    conn, pid, ids = seeded
    at.segmented_control(key="review_view").set_value("Bulk").run()
    assert not at.exception and len(at.dataframe) == 1
    qid = at.selectbox(key="review_bulk_query").value
    at.button(key="review_bulk_query_go").click().run()
    assert any("marks **5** unjudged candidates" in w.value for w in at.warning)
    assert review.progress(conn, pid, qid)["judged"] == 0  # nothing before the confirmation
    at.button(key="review_bulk_confirm").click().run()
    assert review.progress(conn, pid, qid)["by_status"]["negative"] == 5

    at.slider(key="review_bulk_level").set_value(0.1).run()
    n = review.preview(conn, pid, review.QueueFilter(risk_below=0.1))["rows"]
    assert n > 0 and any(f"{n} unjudged candidates have risk below 0.10" in c.value for c in at.caption)
    at.button(key="review_bulk_risk_go").click().run()
    assert any(f"marks **{n}** unjudged" in w.value for w in at.warning)
    at.button(key="review_bulk_cancel").click().run()
    assert review.preview(conn, pid, review.QueueFilter(risk_below=0.1))["rows"] == n
    at.button(key="review_bulk_risk_go").click().run()
    at.button(key="review_bulk_confirm").click().run()
    assert review.preview(conn, pid, review.QueueFilter(risk_below=0.1))["rows"] == 0
    judged = review.progress(conn, pid)["judged"]
    at.button(key="review_bulk_undo").click().run()
    assert review.progress(conn, pid)["judged"] == judged - n  # the whole sweep, at once

    at.segmented_control(key="review_view").set_value("History").run()
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 5 + n + n


def test_export_from_the_page(at, seeded):
    conn, pid, ids = seeded
    at.button(key="review_relevant").click().run()
    at.segmented_control(key="review_view").set_value("Export").run()
    at.selectbox(key="review_export_format").set_value("triplets").run()
    at.selectbox(key="review_export_to").set_value("parquet").run()
    at.text_input(key="review_export_name").set_value("../../etc/x").run()
    at.button(key="review_export_go").click().run()
    assert any("may not contain '..'" in plain(e.value) for e in at.error)
    at.text_input(key="review_export_name").set_value("mine").run()
    at.button(key="review_export_go").click().run()
    assert not at.error
    path = Path(at.session_state["review_export_summary"]["path"])
    assert path.name == "mine.parquet" and path.is_file()
    assert at.session_state["review_export_summary"]["reviewed_positives"] == 1
    assert [m.value for m in at.metric][2] == "69"


def test_switching_project_starts_the_desk_over(at, seeded):
    conn, pid, ids = seeded
    from tests.conftest import seed_scifact

    other = seed_scifact(conn, "other", n_train=10, n_test=2, n_extra=50)
    other_ids = seed_negatives(conn, other)
    at.selectbox(key="review_query").set_value(
        conn.execute("SELECT query_id FROM negatives WHERE id = ?", (ids[0],)).fetchone()[0]
    ).run()
    at.button(key="review_negative").click().run()
    at.button(key="review_undo").click().run()  # the desk now focuses a candidate of the first project
    at.run()  # the sidebar picker lists the new project
    at.sidebar.selectbox(key="project_select").set_value("other").run()
    assert not at.exception
    assert shown_id(at) == review.queue(conn, other)[0]["id"] and shown_id(at) in other_ids
    assert at.selectbox(key="review_query").value is None
    assert "Overall: 0 of 50 judged" in [p.proto.text for p in at.get("progress")]


def test_a_loss_sent_from_evaluate_lands_on_its_query(seeded):
    conn, pid, ids = seeded
    mined_query = conn.execute("SELECT query_id FROM negatives WHERE id = ?", (ids[-1],)).fetchone()[0]
    test_query = conn.execute(
        "SELECT id, text FROM queries WHERE project_id = ? AND split = 'test' LIMIT 1", (pid,)
    ).fetchone()
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    app.session_state["review_query_filter"] = mined_query
    app.switch_page("pages/review.py").run()
    assert not app.exception
    assert app.selectbox(key="review_query").value == mined_query
    assert {c["query_id"] for c in review.queue(conn, pid, review.QueueFilter(query_id=mined_query))}
    assert (
        conn.execute("SELECT query_id FROM negatives WHERE id = ?", (shown_id(app),)).fetchone()[0]
        == mined_query
    )

    app.session_state["review_query_filter"] = test_query["id"]
    app.run()
    assert not app.exception
    assert any("test queries are never mined" in m.value for m in app.markdown)
    assert test_query["text"] in [t.value for t in app.text]


EVIL = "evil [click](https://evil.example) ![x](https://evil.example/x.png) **bold**"


def test_a_project_name_is_shown_as_text_not_markdown(db):
    """Issue 14: names reached Markdown captions unescaped, so a name could inject a link or an image."""
    store.create_project(db, EVIL)
    app = AppTest.from_file(APP, default_timeout=120)
    app.session_state["review_actor"] = "a [link](https://evil.example)"
    app.run()
    app.switch_page("pages/review.py").run()
    assert not app.exception
    shown = [c.value for c in app.caption if "evil" in c.value]
    assert shown and all("](" not in c and "**bold**" not in c for c in shown)
    assert any(escape_markdown(EVIL) in c for c in shown)
    assert plain(escape_markdown(EVIL)) == EVIL  # and it reads as typed
