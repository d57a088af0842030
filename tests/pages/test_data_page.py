"""The Data page in AppTest: sample button, project picker, upload -> check -> import, conflicts by row."""

from __future__ import annotations

import csv
import io

import pytest
from streamlit.testing.v1 import AppTest

from core import store
from tests.conftest import ROOT, load_scifact, unrelated_doc

APP = str(ROOT / "app.py")


pytestmark = pytest.mark.usefixtures("server_routing")  # app.py routes every page, as the server does


def app() -> AppTest:
    """The studio opened on the Data page (the first screen is the overview)."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/data.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    found = [m.value for m in at.metric if m.label == label]
    assert found, f"no metric {label!r}; have {[m.label for m in at.metric]}"
    return found[0]


def scifact_csv(n_queries: int = 30, extra_rows: list[list[str]] | None = None) -> bytes:
    sf = load_scifact()
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["query", "positive"])
    for q in sorted(sf["qrels"]["train"], key=int)[:n_queries]:
        for d in sf["qrels"]["train"][q]:
            w.writerow([sf["queries"][q], sf["corpus"][d]])
    for row in extra_rows or []:
        w.writerow(row)
    return out.getvalue().encode("utf-8")


def test_empty_workspace_offers_the_sample_project(workspace):
    at = app()
    assert [b.key for b in at.button if b.key == "load_sample"], "no sample button on an empty workspace"
    at.button(key="load_sample").click().run()
    assert not at.exception
    conn = store.connect(workspace)
    pid = store.project_id(conn, "SciFact sample")
    counts = store.project_counts(conn, pid)
    assert counts["train_pairs"] >= 256 and counts["test_queries"] == 100
    assert at.sidebar.selectbox(key="project_select").value == "SciFact sample"
    assert metric(at, "Training pairs") == f"{counts['train_pairs']:,}"


def test_sidebar_picker_creates_a_project(workspace):
    at = app()
    at.sidebar.text_input(key="new_project_name").input("Claims")
    at.sidebar.button(key="create_project").click().run()
    assert not at.exception
    conn = store.connect(workspace)
    assert [p["name"] for p in store.list_projects(conn)] == ["Claims"]
    assert at.sidebar.selectbox(key="project_select").value == "Claims"
    assert not [b for b in at.button if b.key == "load_sample"]  # a project exists: no sample offer


def test_upload_shows_counts_cleaning_and_imports(workspace):
    conn = store.connect(workspace)
    pid = store.create_project(conn, "Upload")
    sf = load_scifact()
    q0 = sorted(sf["qrels"]["train"], key=int)[0]
    d0 = next(iter(sf["qrels"]["train"][q0]))
    data = scifact_csv(
        30,
        extra_rows=[
            [sf["queries"][q0], sf["corpus"][d0]],  # exact duplicate
            ["<b>Aspirin</b> lowers   risk", "See https://example.org for details."],
        ],
    )
    rows = [
        (sf["queries"][q], sf["corpus"][d])
        for q in sorted(sf["qrels"]["train"], key=int)[:30]
        for d in sf["qrels"]["train"][q]
    ]
    repeated = len(rows) - len(set(rows))  # SciFact has claims under two ids with the same abstract
    expected_pairs = len(set(rows)) + 1
    at = app()
    at.file_uploader(key="train_upload_0").set_value(("pairs.csv", data, "text/csv"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.radio(key="test_how").set_value("No test set now").run()
    assert metric(at, "Duplicates removed") == str(1 + repeated)
    assert metric(at, "Pairs") == f"{expected_pairs:,}"
    assert any("Shape" in s.value and "(query, positive)" in s.value for s in at.success)
    assert any("256" in w.value for w in at.warning)  # fewer than 256 examples
    samples = [df.value for df in at.dataframe if "before" in df.value.columns]
    assert samples and "Aspirin lowers risk" in set(samples[0]["after"])
    at.button(key="import_button").click().run()
    assert not at.exception, [e.value for e in at.exception]
    counts = store.project_counts(conn, pid)
    assert counts["train_pairs"] == expected_pairs
    assert metric(at, "Training pairs") == f"{expected_pairs:,}"
    assert any("Imported" in s.value for s in at.success)


def test_conflicts_are_listed_by_row_and_block_the_import(workspace):
    conn = store.connect(workspace)
    pid = store.create_project(conn, "Conflicts")
    sf = load_scifact()
    q0 = sorted(sf["qrels"]["train"], key=int)[0]
    d0 = next(iter(sf["qrels"]["train"][q0]))
    body = io.StringIO()
    w = csv.writer(body)
    w.writerow(["query", "passage", "label"])
    w.writerow([sf["queries"][q0], sf["corpus"][d0], 1])
    w.writerow([sf["queries"][q0], sf["corpus"][unrelated_doc()], 0])
    w.writerow([sf["queries"][q0], sf["corpus"][d0], 0])  # row 4 contradicts row 2
    at = app()
    at.file_uploader(key="train_upload_0").set_value(("labelled.csv", body.getvalue().encode(), "text/csv"))
    at.run()
    assert not at.exception
    tables = [df.value for df in at.dataframe if "other label" in df.value.columns]
    assert tables, "no conflict table"
    assert list(tables[0]["row"]) == [4] and "row 2" in tables[0]["other"][0]
    assert at.button(key="import_button").disabled
    assert store.project_counts(conn, pid)["train_pairs"] == 0


def test_a_beir_folder_path_imports_with_its_test_set(workspace):
    conn = store.connect(workspace)
    pid = store.create_project(conn, "Folder")
    at = app()
    at.radio(key="train_where").set_value("A file or BEIR folder on this computer").run()
    at.text_input(key="train_path_0").input(str(ROOT / "sample_data" / "scifact")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert metric(at, "Test pairs") != "0"
    at.button(key="import_button").click().run()
    counts = store.project_counts(conn, pid)
    assert counts["test_queries"] == 100 and counts["train_pairs"] > 256
    assert counts["passages"] > counts["train_pairs"]  # unjudged corpus documents joined the pool


def test_names_reach_markdown_escaped(workspace, tmp_path):
    """A project or file name with Markdown in it rendered as a link or an image in captions and messages."""
    conn = store.connect(workspace)
    store.create_project(conn, "[x](http://evil.example) ![i](http://evil.example/i.png)")
    at = app()
    caption = next(c.value for c in at.caption if c.value.startswith("Project"))
    assert "](http" not in caption and r"\[x\]\(http" in caption
    at.radio(key="train_where").set_value("A file or BEIR folder on this computer").run()
    bad = tmp_path / "[f](http:evil)"
    bad.mkdir()
    at.text_input(key="train_path_0").input(str(bad)).run()
    errors = [e.value for e in at.error]
    assert errors and all("](http" not in e for e in errors)


def test_beir_folder_with_dangling_qrels_imports_when_skipping(workspace, tmp_path):
    from tests.core.test_ingest import _beir_with_dangling_ids

    folder, _ = _beir_with_dangling_ids(tmp_path)
    conn = store.connect(workspace)
    pid = store.create_project(conn, "Dangling")
    at = app()
    at.radio(key="train_where").set_value("A file or BEIR folder on this computer").run()
    at.text_input(key="train_path_0").input(str(folder)).run()
    assert at.button(key="import_button").disabled
    at.checkbox(key="skip_invalid").check().run()
    assert not at.exception, [e.value for e in at.exception]
    listed = [df.value for df in at.dataframe if "id" in df.value.columns]
    assert listed and list(listed[0]["id"]) == ["999999999", "888888888"] and list(listed[0]["row"]) == [4, 7]
    at.button(key="import_button").click().run()
    assert store.project_counts(conn, pid)["train_pairs"] > 256
