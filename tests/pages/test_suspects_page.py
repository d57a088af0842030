"""The Review page's "Suspect labels" view through AppTest: the search's findings on the sample, judged with the
keyed buttons, saved at once, undone, bulk-judged by pattern, and seen in the exported dataset."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.review.dataset_export import read_export
from core.store.db import transaction
from core.suspects.find import find_suspects
from core.suspects.records import SuspectFilter, queue
from tests.conftest import seed_scifact

EXPORTS = itertools.count()
APP = str(Path(__file__).resolve().parents[2] / "app.py")
pytestmark = pytest.mark.usefixtures("server_routing")


@pytest.fixture()
def planted(db):
    """The sample's first 10 train queries, one positive swapped for another query's: the search has run."""
    pid = seed_scifact(db, n_train=10, n_test=0, n_extra=20)
    rows = db.execute("SELECT id, passage_id FROM pairs WHERE project_id = ? ORDER BY id", (pid,)).fetchall()
    with transaction(db):
        db.execute(
            "UPDATE pairs SET passage_id = ? WHERE id = ?",
            (rows[len(rows) // 2]["passage_id"], rows[0]["id"]),
        )
    find_suspects(db, pid)
    return db, pid, rows[0]["id"]


@pytest.fixture()
def at(planted):
    app = AppTest.from_file(APP, default_timeout=120)
    app.session_state["review_actor"] = "tester"
    app.run()
    app.switch_page("pages/review.py").run()
    app.segmented_control(key="review_view").set_value("Suspect labels").run()
    assert not app.exception
    return app


def label(db, pair_id: int) -> float | None:
    row = db.execute("SELECT label FROM pairs WHERE id = ?", (pair_id,)).fetchone()
    return None if row is None else row[0]


def export(app) -> list[dict]:
    app.segmented_control(key="review_view").set_value("Export").run()
    name = f"suspects-{len(app.session_state['_exports']) if '_exports' in app.session_state else 0}"
    app.session_state["_exports"] = [
        *(app.session_state["_exports"] if "_exports" in app.session_state else []),
        1,
    ]
    app.text_input(key="review_export_name").set_value(name).run()  # each export its own file
    app.button(key="review_export_go").click().run()
    assert Path(app.session_state["review_export_summary"]["path"]).name == f"{name}.jsonl"
    rows = read_export(app.session_state["review_export_summary"]["path"])
    app.segmented_control(key="review_view").set_value("Suspect labels").run()
    return rows


def test_flip_the_top_suspect_and_the_export_has_it_as_not_relevant_then_undo(at, planted):
    db, pid, pair_id = planted
    keys = {b.key: b.proto.shortcut for b in at.button}
    assert [keys[f"suspects_{a}"] for a in ("keep", "flip", "drop", "skip", "undo")] == [
        "k",
        "f",
        "d",
        "s",
        "u",
    ]
    top = queue(db, pid, limit=1)[0]
    assert at.subheader[0].value == f"Suspect #{top['id']}"
    assert any("labelled relevant, ranked" in m.value for m in at.markdown)
    passage = db.execute(
        "SELECT s.text FROM pairs p JOIN passages s ON s.id = p.passage_id WHERE p.id = ?", (pair_id,)
    )
    passage = passage.fetchone()[0]
    assert passage == top["passage"]  # the planted wrong positive is first

    at.button(key="suspects_flip").click().run()
    assert label(db, pair_id) == 0.0  # saved at once
    assert at.subheader[0].value != f"Suspect #{top['id']}"  # the next suspect is shown
    assert {r["label"] for r in export(at) if r["passage"] == passage and r["query"] == top["query"]} == {0.0}

    at.button(key="suspects_undo").click().run()
    assert label(db, pair_id) == 1.0
    assert at.subheader[0].value == f"Suspect #{top['id']}"
    assert {r["label"] for r in export(at) if r["passage"] == passage and r["query"] == top["query"]} == {1.0}

    at.button(key="suspects_drop").click().run()
    assert label(db, pair_id) is None
    assert not [r for r in export(at) if r["passage"] == passage and r["query"] == top["query"]]


def test_a_missing_positive_marked_relevant_is_exported_as_a_positive(at, planted):
    db, pid, _ = planted
    at.segmented_control(key="suspects_queue").set_value("Missing positives").run()
    assert "suspects_drop" not in [b.key for b in at.button]
    top = queue(db, pid, SuspectFilter(kinds=("missing_positive",)), limit=1)[0]
    assert at.subheader[0].value == f"Suspect #{top['id']}"
    at.button(key="suspects_flip").click().run()
    assert {
        r["label"] for r in export(at) if r["passage"] == top["passage"] and r["query"] == top["query"]
    } == {1.0}


def test_the_out_of_fold_models_are_asked_for_with_the_checkbox(at, planted):
    import json

    db, pid, _ = planted
    at.checkbox(key="suspects_folds").check().run()
    at.button(key="suspects_search").click().run()
    assert not at.exception
    row = db.execute(
        "SELECT args FROM jobs WHERE project_id = ? AND kind = 'suspects' ORDER BY id DESC LIMIT 1", (pid,)
    ).fetchone()
    assert json.loads(row["args"]) == {"fold_models": True}
