import pytest, time, re
from playwright.sync_api import expect
from conftest import wait_for_app
from core import store

@pytest.mark.browser
def test_probe(studio_server, page, tmp_path):
    conn = store.connect(studio_server.home); store.create_project(conn, "p")
    f = tmp_path / "labels.csv"
    f.write_text("query,passage,label\nwhat is x,x is a thing,1\nwhat is y,y is a thing,maybe\n")
    page.goto(studio_server.url); wait_for_app(page)
    page.get_by_text("Training data: CSV, TSV, JSONL, JSON or Parquet").wait_for()
    page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(f))
    time.sleep(4); wait_for_app(page)
    print(page.inner_text("[data-testid='stMain']")[:3000])
    df = page.locator("[data-testid='stDataFrame']")
    print("frames", df.count())
    for i in range(df.count()):
        print(df.nth(i).evaluate("e => e.innerHTML.length"), df.nth(i).locator("table").count(), df.nth(i).locator("[role=gridcell], td").all_inner_texts()[:20])
