"""Suspect labels in real Chromium against a real studio server: the planted wrong positive comes first, a key flips
it, the change is saved at once and is in the dataset exported from the page; undo by key takes it back."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from core.review.dataset_export import read_export
from core.store.db import connect, transaction
from core.store.paths import exports_dir
from core.suspects.find import find_suspects
from core.suspects.records import queue
from tests.conftest import seed_scifact, wait_for_app

pytestmark = pytest.mark.browser
HEADING = re.compile(r"Suspect #(\d+)")


@pytest.fixture()
def planted_server(studio_server):
    conn = connect(studio_server.home)
    pid = seed_scifact(conn, n_train=10, n_test=0, n_extra=20)
    rows = conn.execute(
        "SELECT id, passage_id FROM pairs WHERE project_id = ? ORDER BY id", (pid,)
    ).fetchall()
    with transaction(conn):
        conn.execute(
            "UPDATE pairs SET passage_id = ? WHERE id = ?",
            (rows[len(rows) // 2]["passage_id"], rows[0]["id"]),
        )
    find_suspects(conn, pid)
    yield studio_server, conn, pid, rows[0]["id"]
    conn.close()


def view(page, name: str) -> None:
    page.get_by_role("radio", name=name).or_(page.get_by_role("button", name=name, exact=True)).first.click()
    wait_for_app(page)


def label(conn, pair_id: int) -> float | None:
    row = conn.execute("SELECT label FROM pairs WHERE id = ?", (pair_id,)).fetchone()
    return None if row is None else row[0]


def exported_label(page, server, name: str, query: str, passage: str) -> set[float]:
    view(page, "Export")
    page.get_by_label("Name (optional)").fill(name)
    page.get_by_label("Name (optional)").press("Enter")
    wait_for_app(page)
    page.get_by_role("button", name=re.compile("Export")).last.click()
    expect(page.get_by_text(re.compile(r"Wrote \d+ rows"))).to_be_visible(timeout=30_000)
    path = exports_dir(server.home) / f"{name}.jsonl"
    view(page, "Suspect labels")
    return {r["label"] for r in read_export(path) if r["query"] == query and r["passage"] == passage}


def test_a_key_flips_the_top_suspect_and_the_export_shows_it(page, planted_server):
    server, conn, pid, pair_id = planted_server
    top = queue(conn, pid, limit=1)[0]
    page.goto(f"{server.url}/review?project=scifact")
    wait_for_app(page)
    view(page, "Suspect labels")
    expect(page.get_by_text(HEADING)).to_have_text(f"Suspect #{top['id']}", timeout=30_000)
    expect(page.get_by_text(re.compile("labelled relevant, ranked"))).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Flip"))).to_contain_text("F", ignore_case=True)

    page.locator("body").press("f")
    expect(page.get_by_text(HEADING)).not_to_have_text(f"Suspect #{top['id']}", timeout=30_000)
    wait_for_app(page)
    assert label(conn, pair_id) == 0.0
    assert exported_label(page, server, "after-flip", top["query"], top["passage"]) == {0.0}

    # back from the Export view: the key is bound once the view's Undo button is drawn and enabled
    expect(page.get_by_role("button", name=re.compile("Undo"))).to_be_enabled(timeout=30_000)
    page.locator("body").press("u")
    expect(page.get_by_text(HEADING)).to_have_text(f"Suspect #{top['id']}", timeout=30_000)
    wait_for_app(page)
    assert label(conn, pair_id) == 1.0
    assert exported_label(page, server, "after-undo", top["query"], top["passage"]) == {1.0}
