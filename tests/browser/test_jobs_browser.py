"""Long steps as background jobs, in real Chromium against a real studio server: a mining job cut by a server
restart (the machine's, so its process dies too) is marked interrupted with nothing half-written and starts again
from a button; a mining job and an evaluation go on while the person looks at another page, and their results
are there on coming back. One server, one tab: each scenario picks up the state the previous one left."""

from __future__ import annotations

import os
import re
import signal

import pytest
from playwright.sync_api import expect

from core import store
from core.runs import jobs
from tests.conftest import SCREENSHOTS, seed_scifact, wait_for_app, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]
MINED = re.compile(r"Mined \d+ hard and \d+ random negatives")


def go(page, title: str) -> None:
    """The sidebar link, as a person navigates."""
    page.get_by_role("link", name=title, exact=True).click()
    wait_for_app(page)
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible(timeout=60_000)


def count(conn, table: str, pid: int) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table} WHERE project_id = ?", (pid,)).fetchone()[0])


def test_jobs_outlive_the_page_and_a_restart(studio_server, page):
    server = studio_server
    conn = store.connect(server.home)
    pid = seed_scifact(conn, n_train=30, n_test=8, n_extra=150)
    try:
        # 1. Mining starts from its page with an estimate beside the button; the machine restarts mid-job.
        page.goto(f"{server.url}/mine?project=scifact")
        wait_for_app(page)
        expect(page.get_by_role("heading", name="Mine", level=1)).to_be_visible(timeout=60_000)
        expect(page.get_by_text(re.compile(r"about .* texts at \d+ texts/s"))).to_be_visible()
        page.get_by_role("button", name="Mine", exact=True).click()
        job = wait_until(
            lambda: next(
                (j for j in jobs.list_jobs(conn, pid, "mine") if j.status == "running" and j.pid), None
            ),
            60,
            "a running mining job",
        )
        page.goto(
            "about:blank"
        )  # the tab is closed with the machine: no old session reconnects to the new server
        server.kill()
        os.killpg(job.pid, signal.SIGKILL)  # the job's supervisor and worker: a machine restart takes both
        server.start()
        assert count(conn, "negatives", pid) == 0  # nothing half-written

        page.goto(f"{server.url}/mine?project=scifact")
        wait_for_app(page)
        expect(page.get_by_text(re.compile(r"Mining interrupted: process died"))).to_be_visible(
            timeout=30_000
        )
        assert jobs.job(conn, job.id).status == "interrupted"
        page.get_by_role("button", name=re.compile("Start it again")).click()
        expect(page.get_by_text("Mining is running in the background")).to_be_visible(timeout=30_000)
        expect(page.get_by_test_id("stSidebar").get_by_text(re.compile(r"^Mining — "))).to_be_visible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "jobs.png"))

        # 2. Leave for Review while it runs; come back: done, and its negatives are saved.
        go(page, "Review")
        go(page, "Mine")
        expect(page.get_by_text(MINED)).to_be_visible(timeout=240_000)
        assert jobs.job(conn, job.id).status == "completed"
        assert count(conn, "negatives", pid) > 0
        go(page, "Review")
        expect(page.get_by_role("heading", name=re.compile(r"Candidate #\d+"))).to_be_visible(timeout=60_000)

        # 3. The same for an evaluation (the first stage alone: no run trained here).
        go(page, "Evaluate")
        page.get_by_role("button", name=re.compile("^Evaluate$|play_arrow.*Evaluate")).last.click()
        wait_until(lambda: jobs.list_jobs(conn, pid, "evaluate"), 30, "an evaluation job")
        go(page, "Data")
        go(page, "Evaluate")
        expect(page.get_by_role("heading", name="Realistic figures")).to_be_visible(timeout=240_000)
        assert count(conn, "evaluations", pid) == 1
        assert jobs.list_jobs(conn, pid, "evaluate")[0].status == "completed"
    finally:
        conn.close()
