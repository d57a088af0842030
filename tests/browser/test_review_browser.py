"""The review desk in real Chromium against a real studio server: keyboard shortcuts judge, a reload keeps every
judgement, and a SIGKILLed server loses none of them."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from core import review, store
from tests.conftest import SCREENSHOTS, seed_scifact, wait_for_app
from tests.core.test_review import seed_negatives

pytestmark = pytest.mark.browser
HEADING = re.compile(r"Candidate #(\d+)")


@pytest.fixture()
def seeded_server(studio_server):
    conn = store.connect(studio_server.home)
    pid = seed_scifact(conn)
    seed_negatives(conn, pid)
    yield studio_server, conn, pid
    conn.close()


def open_desk(page, server) -> None:
    """Open the studio on the project and go to Review through the sidebar, as a user does."""
    page.goto(f"{server.url}/?project=scifact")
    wait_for_app(page)
    page.get_by_role("link", name="Review", exact=True).click()  # the overview also has "Open Review"
    wait_for_app(page)
    expect(page.get_by_text(HEADING)).to_be_visible(timeout=30_000)
    # The desk is ready for keys once its buttons are drawn with their shortcut hints.
    for label, key in (("Negative", "J"), ("Relevant", "K"), ("Skip", "S"), ("Undo", "U")):
        expect(page.get_by_role("button", name=re.compile(label))).to_contain_text(key, ignore_case=True)
    expect(page.get_by_role("button", name=re.compile("Negative"))).to_be_enabled()
    wait_for_app(page)


def shown(page) -> int:
    return int(HEADING.search(page.get_by_text(HEADING).inner_text()).group(1))


def press(page, key: str, before: int | None = None) -> None:
    """Press a shortcut and wait until the desk has redrawn with another candidate (the user's signal)."""
    page.locator("body").press(key)
    if before is not None:
        expect(page.get_by_text(HEADING)).not_to_have_text(
            re.compile(rf"Candidate #{before}\b"), timeout=30_000
        )
    wait_for_app(page)


def statuses(conn, ids) -> dict[int, str]:
    return {i: conn.execute("SELECT status FROM negatives WHERE id = ?", (i,)).fetchone()[0] for i in ids}


def test_shortcuts_judge_and_a_reload_keeps_them(page, seeded_server):
    server, conn, pid = seeded_server
    open_desk(page, server)  # also checks that the buttons show their keys
    a = shown(page)
    press(page, "j", a)
    b = shown(page)
    press(page, "k", b)
    c = shown(page)
    press(page, "s", c)
    assert statuses(conn, [a, b, c]) == {a: "negative", b: "relevant", c: "skipped"}
    press(page, "u")  # undo the skip: c comes back
    expect(page.get_by_text(HEADING)).to_have_text(re.compile(rf"Candidate #{c}\b.*shown again"))
    assert statuses(conn, [c])[c] == "unjudged"

    page.reload()
    wait_for_app(page)
    expect(page.get_by_text("Overall: 2 of 295 judged")).to_be_visible(timeout=30_000)
    assert shown(page) == c  # the riskiest unjudged candidate left
    assert statuses(conn, [a, b, c]) == {a: "negative", b: "relevant", c: "unjudged"}
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "review.png"))
    h = review.history(conn, pid)
    assert [(j["negative_id"], j["new_status"], bool(j["undoes"])) for j in h] == [
        (c, "unjudged", True),
        (c, "skipped", False),
        (b, "relevant", False),
        (a, "negative", False),
    ]


def test_a_killed_server_loses_no_judgement(page, seeded_server):
    server, conn, pid = seeded_server
    open_desk(page, server)
    judged = []
    for key in ("j", "j", "k", "j"):
        judged.append(shown(page))
        press(page, key, judged[-1])
    server.kill()  # SIGKILL: no shutdown hooks, no flush
    server.start()
    other = store.connect(server.home)
    assert statuses(other, judged) == dict(zip(judged, ["negative", "negative", "relevant", "negative"]))
    assert len(review.history(other, pid)) == 4
    other.close()

    deadline = time.time() + 30
    while True:  # the tab reconnects by itself; a fresh load is what a user does after a crash
        try:
            open_desk(page, server)
            break
        except Exception:  # noqa: BLE001
            if time.time() > deadline:
                raise
    expect(page.get_by_text("Overall: 4 of 295 judged")).to_be_visible()
    page.get_by_role("radio", name="History").or_(page.get_by_role("button", name="History")).first.click()
    wait_for_app(page)
    table = page.locator("[data-testid='stDataFrame']")
    expect(table).to_be_visible(timeout=30_000)
    assert shown_rows(page) == 4


def shown_rows(page) -> int:
    """Rows of the History table: the grid exposes its row count to assistive tech."""
    grid = page.locator("[data-testid='stDataFrame'] [role='grid'], [data-testid='stDataFrame'] table").first
    return int(grid.get_attribute("aria-rowcount")) - 1


def test_direct_review_url_on_a_fresh_server(page, seeded_server):
    server, conn, pid = seeded_server
    page.goto(f"{server.url}/review?project=scifact")  # a bookmark, or the tab reloading after a restart
    wait_for_app(page)
    expect(page.get_by_text(HEADING)).to_be_visible(timeout=5_000)
