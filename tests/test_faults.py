"""A catalogue of faults the studio must survive: each is a test that does the harm and checks what a person
would check afterwards — a clear message, nothing acknowledged lost, nothing half-written, nothing executed."""

from __future__ import annotations

import re
import sqlite3
import time

import pytest
from playwright.sync_api import expect

from conftest import StudioServer, load_scifact, seed_scifact, wait_for_app
from core import store

HEADING = re.compile(r"Candidate #(\d+)")


# --- helpers ----------------------------------------------------------------------------------


def integrity(conn: sqlite3.Connection) -> str:
    """SQLite's own verdict on the database file after a fault."""
    return conn.execute("PRAGMA integrity_check").fetchone()[0]


def fill_up(conn: sqlite3.Connection) -> None:
    """Make the database 'full' on this connection: it may not grow by a single page (works as root too,
    where chmod does not stop writes)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


def scifact_rows(n_queries: int = 20, split: str = "train", skip: int = 0) -> list[tuple[str, str, float]]:
    """Real (query, passage, label) rows; long abstracts, so a handful of them needs new pages."""
    sf = load_scifact()
    qids = sorted(sf["qrels"][split], key=int)[skip : skip + n_queries]
    return [
        (sf["queries"][q], sf["corpus"][d], float(s)) for q in qids for d, s in sf["qrels"][split][q].items()
    ]


# --- fault: the workspace disk is full --------------------------------------------------------


def test_full_workspace_gives_a_clear_message_and_no_corruption(scifact_project):
    conn, pid = scifact_project
    before = store.project_counts(conn, pid)
    fill_up(conn)
    with pytest.raises(store.StoreError, match=r"(?i)full"):
        with store.transaction(conn):
            store.insert_pairs(conn, pid, scifact_rows(40, skip=100))
    assert integrity(conn) == "ok"
    assert store.project_counts(conn, pid) == before, "a failed import left rows behind"
    # Space comes back: the same connection writes again, nothing is stuck in a half-open transaction.
    conn.execute("PRAGMA max_page_count = 1073741823")
    with store.transaction(conn):
        added = store.insert_pairs(conn, pid, scifact_rows(5, skip=100))
    assert added > 0 and integrity(conn) == "ok"


# --- fault: the workspace is read-only --------------------------------------------------------


def test_read_only_workspace_gives_a_clear_message_and_no_corruption(scifact_project):
    conn, pid = scifact_project
    before = store.project_counts(conn, pid)
    # As root, chmod does not stop writes; SQLite's query_only makes this connection's database read-only.
    conn.execute("PRAGMA query_only = ON")
    with pytest.raises(store.StoreError, match=r"(?i)read.?only"):
        with store.transaction(conn):
            store.insert_pairs(conn, pid, scifact_rows(3, skip=100))
    with pytest.raises(store.StoreError, match=r"(?i)read.?only"):
        store.create_project(conn, "another")
    conn.execute("PRAGMA query_only = OFF")
    assert integrity(conn) == "ok"
    assert store.project_counts(conn, pid) == before


def test_unwritable_workspace_folder_is_named_in_the_message(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the workspace folder should be")
    with pytest.raises(store.StoreError, match="Cannot open the workspace at .*not-a-folder"):
        store.connect(blocker / "ws")


@pytest.mark.browser
def test_unwritable_workspace_shows_the_reason_in_the_browser(tmp_path, page):
    home = tmp_path / "ws"
    home.write_text("a file where the workspace folder should be")
    server = StudioServer(home).start()
    try:
        page.goto(server.url)
        wait_for_app(page)
        page.get_by_text("Cannot open the workspace").first.wait_for(timeout=20_000)
        assert str(home) in page.inner_text("[data-testid='stApp']")
    finally:
        server.stop()


# --- fault: the training process is killed ----------------------------------------------------


def tiny_train_config(**overrides):
    """A few steps at max length 64 and batch 8: enough to checkpoint, evaluate and save in seconds."""
    from core.training import TrainConfig

    settings = dict(max_steps=6, batch_size=8, max_length=64, eval_steps=2, validation="split",
                    validation_fraction=0.25, hard_negatives=1, random_negatives=1, candidates_k=10,
                    early_stopping_patience=0, fusion=False, learning_rate=5e-5)
    return TrainConfig(**{**settings, **overrides})


def wait_until(predicate, timeout: float, every: float = 0.5, what: str = "condition"):
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.slow
def test_killed_training_process_is_marked_failed_and_resumes_from_its_checkpoint(db):
    import os
    import signal

    from conftest import seed_scifact
    from core import jobs, training

    pid = seed_scifact(db, n_train=24, n_test=6, n_extra=60)
    run_id = jobs.submit(db, pid, tiny_train_config())
    folder = training.run_folder(db, run_id) / "checkpoints"
    # Wait for the first checkpoint, then SIGKILL the job: no handler, no clean-up, no last words.
    wait_until(lambda: training._latest_checkpoint(folder), 240, what="the first checkpoint")
    job_pid = training.get_run(db, run_id)["pid"]
    assert job_pid and jobs.pid_alive(job_pid)
    os.kill(job_pid, signal.SIGKILL)
    wait_until(lambda: not jobs.pid_alive(job_pid), 10, what="the job to die")

    run = jobs.poll(db, run_id)
    assert run["status"] == "failed"
    assert "process died" in run["error"]
    assert any(e["kind"] == "error" and "process died" in e["data"]["text"] for e in run["events"])

    jobs.resume(db, run_id)
    run = jobs.wait(db, run_id, timeout=240)
    assert run["status"] == "completed", run.get("error")
    texts = [e["data"].get("text", "") for e in jobs.poll(db, run_id)["events"]]
    assert any(t.startswith("Resuming from checkpoint-") for t in texts), texts
    assert run["metrics"]["steps"] == 6
    assert (training.run_folder(db, run_id) / "model" / "model.safetensors").is_file()
    assert [r["id"] for r in jobs.list_runs(db, pid)] == [run_id]


# --- the review desk in Chromium: a killed server, two tabs ------------------------------------


def seed_desk(conn, name: str = "scifact", n_train: int = 12, per_query: int = 4) -> int:
    """A small project with mined-looking candidates (real SciFact passages that are not the query's positives)."""
    from test_review import seed_negatives

    pid = seed_scifact(conn, name, n_train=n_train, n_test=4, n_extra=60)
    seed_negatives(conn, pid, per_query=per_query)
    return pid


def open_desk(page, server, project: str = "scifact") -> None:
    # A fresh server must see '/' first: before that Streamlit 1.67 routes /review to pages/review.py alone.
    page.goto(f"{server.url}/?project={project}")
    wait_for_app(page)
    page.goto(f"{server.url}/review?project={project}")
    wait_for_app(page)
    expect(heading(page)).to_be_visible(timeout=30_000)
    ready(page)


def ready(page) -> None:
    """Shortcuts only act once the desk's buttons are live again (a key pressed earlier is dropped)."""
    expect(page.get_by_role("button", name=re.compile("^Negative"))).to_be_enabled(timeout=30_000)


def heading(page):
    return page.get_by_role("heading", name=HEADING)


def shown(page) -> int:
    return int(HEADING.search(heading(page).inner_text()).group(1))


def consistent(conn) -> None:
    """No half-written judgement: every candidate's status is what its last standing history row says, and the
    pairs table holds a reviewed positive exactly for the candidates marked relevant."""
    for n in conn.execute("SELECT id, query_id, passage_id, status FROM negatives").fetchall():
        last = conn.execute("SELECT new_status FROM judgements WHERE negative_id = ? ORDER BY id DESC LIMIT 1",
                            (n["id"],)).fetchone()
        assert (last["new_status"] if last else "unjudged") == n["status"], dict(n)
        pair = conn.execute("SELECT 1 FROM pairs WHERE query_id = ? AND passage_id = ? AND origin = 'review'",
                            (n["query_id"], n["passage_id"])).fetchone()
        assert bool(pair) == (n["status"] == "relevant"), dict(n)


@pytest.mark.browser
def test_server_sigkilled_mid_judging_loses_no_acknowledged_judgement(studio_server, page):
    conn = store.connect(studio_server.home)
    pid = seed_desk(conn)
    open_desk(page, studio_server)
    acknowledged: dict[int, str] = {}
    for key, status in [("j", "negative"), ("j", "negative"), ("k", "relevant"), ("s", "skipped"), ("j", "negative")]:
        nid = shown(page)
        page.locator("body").press(key)
        # The acknowledgement a person sees: the toast naming the candidate and the overall count.
        expect(page.get_by_text(f"Saved #{nid} as {status}.")).to_be_visible(timeout=30_000)
        acknowledged[nid] = status
        expect(page.get_by_text(f"Overall: {len(acknowledged)} of")).to_be_visible(timeout=30_000)
        ready(page)
    in_flight = shown(page)
    page.locator("body").press("j")  # one more, and the server dies while it may be landing
    studio_server.kill()
    studio_server.start()

    after = store.connect(studio_server.home)
    assert after.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    got = {nid: after.execute("SELECT status FROM negatives WHERE id = ?", (nid,)).fetchone()[0] for nid in acknowledged}
    lost = {nid: s for nid, s in acknowledged.items() if got[nid] != s}
    assert not lost, f"acknowledged judgements lost after SIGKILL: {lost}"
    in_flight_status = after.execute("SELECT status FROM negatives WHERE id = ?", (in_flight,)).fetchone()[0]
    assert in_flight_status in ("unjudged", "negative")  # either landed whole or not at all
    consistent(after)
    judged = len(acknowledged) + (in_flight_status == "negative")

    # The reopened desk shows the same count the store holds.
    deadline = time.time() + 30
    while True:
        try:
            open_desk(page, studio_server)
            break
        except Exception:  # noqa: BLE001 - the server may still be warming up
            if time.time() > deadline:
                raise
    expect(page.get_by_text(f"Overall: {judged} of {store.project_counts(after, pid)['negatives']} judged")).to_be_visible()
    after.close()
    conn.close()


@pytest.mark.browser
def test_two_tabs_judging_the_same_candidate_get_a_conflict_not_an_overwrite(studio_server, chromium):
    conn = store.connect(studio_server.home)
    seed_desk(conn)
    tabs = [chromium.new_context(viewport={"width": 1400, "height": 1400}) for _ in range(2)]
    try:
        one, two = (t.new_page() for t in tabs)
        open_desk(one, studio_server)
        open_desk(two, studio_server)
        nid = shown(one)
        assert shown(two) == nid  # both show the riskiest candidate
        one.locator("body").press("j")
        expect(one.get_by_text(f"Saved #{nid} as negative.")).to_be_visible(timeout=30_000)
        two.locator("body").press("k")  # the second tab still shows the old version
        warning = two.locator("[data-testid='stAlert']").filter(has_text=f"Candidate #{nid} was changed")
        expect(warning).to_be_visible(timeout=30_000)
        expect(warning).to_contain_text("nothing was saved")
        expect(heading(two)).to_contain_text(f"Candidate #{nid} (shown again)")
        expect(two.get_by_text("Status: negative")).to_be_visible()
        row = conn.execute("SELECT status, version FROM negatives WHERE id = ?", (nid,)).fetchone()
        assert (row["status"], row["version"]) == ("negative", 1)
        history = conn.execute("SELECT new_status FROM judgements WHERE negative_id = ?", (nid,)).fetchall()
        assert [h[0] for h in history] == ["negative"]
        consistent(conn)
    finally:
        for t in tabs:
            t.close()
        conn.close()
