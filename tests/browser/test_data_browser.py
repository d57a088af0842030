"""The Data page in real headless Chromium: upload a CSV with the file chooser, import it, see the counts."""

from __future__ import annotations

import csv

import pytest

from core import store
from tests.conftest import SCREENSHOTS, load_scifact, wait_for_app

pytestmark = pytest.mark.browser


def test_upload_import_and_counts_on_screen(studio_server, page, tmp_path, workspace):
    sf = load_scifact()
    qids = sorted(sf["qrels"]["train"], key=int)[:40]
    rows = [(sf["queries"][q], sf["corpus"][d]) for q in qids for d in sf["qrels"]["train"][q]]
    rows.append(("<b>Does aspirin</b> lower risk?", rows[0][1] + " https://example.org"))
    path = tmp_path / "scifact_pairs.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query", "positive"])
        w.writerows(rows + rows[:3])  # three exact duplicates
    conn = store.connect(workspace)
    pid = store.create_project(conn, "Browser")

    page.goto(f"{studio_server.url}/data")  # the root is the overview
    wait_for_app(page)
    page.get_by_text("Training data: CSV, TSV, JSONL, JSON or Parquet").wait_for()
    with page.expect_file_chooser() as chooser:
        page.locator("[data-testid='stFileUploaderDropzone'] button").first.click()
    chooser.value.set_files(str(path))

    page.get_by_text("Ready to import.").first.wait_for(
        timeout=60_000
    )  # a rerun can show a stale copy beside the new one
    page.get_by_text("(query, positive)").first.wait_for()
    duplicates = page.locator("[data-testid='stMetric']", has_text="Duplicates removed")
    # the three copies, and SciFact's own repeat of one (query, passage) pair under two query ids
    expected = len(rows) + 3 - len(set(rows))
    assert duplicates.locator("[data-testid='stMetricValue']").inner_text().strip() == str(expected)

    page.get_by_text("Extra whitespace").wait_for()
    page.get_by_text("Share of queries for the test set").wait_for()
    page.locator("[data-testid='stDataFrame'] canvas").first.wait_for()
    page.wait_for_timeout(800)  # let the lazily drawn tables paint
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "data.png"))  # the check: counts, cleaning, test split

    page.get_by_role("button", name="Import").click()
    page.get_by_text("Imported").first.wait_for(timeout=60_000)
    wait_for_app(page)
    counts = store.project_counts(conn, pid)
    assert counts["train_pairs"] + counts["test_pairs"] == len(set(rows))
    assert counts["test_queries"] > 0  # the default split by query
    shown = page.locator("[data-testid='stMetric']", has_text="Training pairs")
    assert shown.locator("[data-testid='stMetricValue']").inner_text().strip() == f"{counts['train_pairs']:,}"
    page.screenshot(path=str(SCREENSHOTS / "data-imported.png"))
