"""Deep links on a server that has not routed anything yet (a fresh start, or tabs reconnecting after a restart):
Streamlit would serve each page bare through its legacy pages/ mode; every tab must get app.py's navigation,
sidebar and project picker, even when several arrive at the same moment."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from core import store
from tests.conftest import seed_scifact, wait_for_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PAGES = {"review": "Review", "data": "Data", "train": "Train", "mine": "Mine", "evaluate": "Evaluate"}


def test_simultaneous_deep_links_on_a_fresh_server_all_get_the_studio(studio_server, chromium):
    conn = store.connect(studio_server.home)
    seed_scifact(conn, n_train=10, n_test=4, n_extra=20)
    conn.close()
    studio_server.stop()
    studio_server.start()  # nothing routed yet in this process
    contexts = [chromium.new_context(viewport={"width": 1400, "height": 1000}) for _ in PAGES]
    try:
        tabs = [context.new_page() for context in contexts]
        for tab, path in zip(tabs, PAGES):  # all requests in flight before any page has run
            tab.goto(f"{studio_server.url}/{path}?project=scifact", wait_until="commit")
        for tab, title in zip(tabs, PAGES.values()):
            wait_for_app(tab)
            expect(tab.get_by_role("heading", name=title, level=1)).to_be_visible(timeout=60_000)
            sidebar = tab.get_by_test_id("stSidebar")
            expect(sidebar.get_by_text("Rerank Studio")).to_be_visible(timeout=30_000)  # app.py's picker ran
            expect(sidebar.get_by_role("link", name="Overview", exact=True)).to_be_visible()
            expect(sidebar.get_by_role("link", name="app", exact=True)).to_have_count(
                0
            )  # legacy lists app.py
    finally:
        for context in contexts:
            context.close()
