"""The Quality page in real Chromium: the maps and histograms draw, the checklist shows; a screenshot for review."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from core import store
from tests.conftest import SCREENSHOTS, seed_scifact, wait_for_app

pytestmark = pytest.mark.browser


def test_quality_page_draws_plots_and_checklist(page, studio_server):
    conn = store.connect(studio_server.home)
    pid = seed_scifact(conn, "scifact", n_train=40, n_test=10, n_extra=0)
    store.update_project_settings(conn, pid, max_length=256)
    conn.close()
    page.goto(f"{studio_server.url}/?project=scifact")
    wait_for_app(page)
    page.get_by_role("link", name="Quality", exact=True).click()  # the overview also has "Open Quality"
    wait_for_app(page)
    page.get_by_role("button", name=re.compile("Analyse")).click()  # the analysis is a background job
    wait_for_app(page, timeout=180_000)
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
    expect(page.get_by_text("Health check", exact=True)).to_be_visible()
    expect(page.get_by_text("Label balance (positives : negatives)")).to_be_visible()
    assert page.locator(".js-plotly-plot").count() >= 5
    page.wait_for_timeout(1500)  # let plotly finish its transitions
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "quality.png"))
