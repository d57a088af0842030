"""A catalogue of faults the studio must survive: each is a test that does the harm and checks what a person
would check afterwards — a clear message, nothing acknowledged lost, nothing half-written, nothing executed."""

from __future__ import annotations

import re
import sqlite3
import time

import pytest
from playwright.sync_api import expect

from core import store
from core.runs import records
from tests.conftest import StudioServer, load_scifact, seed_scifact, wait_for_app, wait_until

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

    settings = dict(
        max_steps=6,
        batch_size=8,
        max_length=64,
        eval_steps=2,
        validation="split",
        validation_fraction=0.25,
        hard_negatives=1,
        random_negatives=1,
        candidates_k=10,
        early_stopping_patience=0,
        fusion=False,
        learning_rate=5e-5,
    )
    return TrainConfig(**{**settings, **overrides})


@pytest.mark.slow
def test_killed_training_process_is_marked_failed_and_resumes_from_its_checkpoint(db):
    import os
    import signal

    from core.runs import jobs
    from core.training import launch
    from tests.conftest import seed_scifact

    pid = seed_scifact(db, n_train=24, n_test=6, n_extra=60)
    run_id = launch.submit(db, pid, tiny_train_config())
    folder = records.run_folder(db, run_id) / "checkpoints"
    # Wait for the first checkpoint, then SIGKILL the job: no handler, no clean-up, no last words.
    wait_until(lambda: records.latest_checkpoint(folder), 240, what="the first checkpoint")
    job_pid = records.get_run(db, run_id).pid
    assert job_pid and jobs.pid_alive(job_pid)
    os.kill(job_pid, signal.SIGKILL)
    wait_until(lambda: not jobs.pid_alive(job_pid), 10, what="the job to die")

    watch = launch.poll(db, run_id)
    assert watch.status == "failed"
    assert "process died" in watch.run.error
    assert any(e["kind"] == "error" and "process died" in e["data"]["text"] for e in watch.events)

    launch.resume(db, run_id)
    watch = launch.wait(db, run_id, timeout=240)
    assert watch.status == "completed", watch.run.error
    texts = [e["data"].get("text", "") for e in launch.poll(db, run_id).events]
    assert any(t.startswith("Resuming from checkpoint-") for t in texts), texts
    assert watch.run.metrics["steps"] == 6
    assert (records.run_folder(db, run_id) / "model" / "model.safetensors").is_file()
    assert [r.id for r in launch.list_runs(db, pid)] == [run_id]


# --- the review desk in Chromium: a killed server, two tabs ------------------------------------


def seed_desk(conn, name: str = "scifact", n_train: int = 12, per_query: int = 4) -> int:
    """A small project with mined-looking candidates (real SciFact passages that are not the query's positives)."""
    from tests.core.test_review import seed_negatives

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
        last = conn.execute(
            "SELECT new_status FROM judgements WHERE negative_id = ? ORDER BY id DESC LIMIT 1", (n["id"],)
        ).fetchone()
        assert (last["new_status"] if last else "unjudged") == n["status"], dict(n)
        pair = conn.execute(
            "SELECT 1 FROM pairs WHERE query_id = ? AND passage_id = ? AND origin = 'review'",
            (n["query_id"], n["passage_id"]),
        ).fetchone()
        assert bool(pair) == (n["status"] == "relevant"), dict(n)


@pytest.mark.browser
def test_server_sigkilled_mid_judging_loses_no_acknowledged_judgement(studio_server, page):
    conn = store.connect(studio_server.home)
    pid = seed_desk(conn)
    open_desk(page, studio_server)
    acknowledged: dict[int, str] = {}
    for key, status in [
        ("j", "negative"),
        ("j", "negative"),
        ("k", "relevant"),
        ("s", "skipped"),
        ("j", "negative"),
    ]:
        nid = shown(page)
        page.locator("body").press(key)
        # The acknowledgement a person sees: the toast naming the candidate and the overall count.
        expect(page.get_by_text(f"Saved #{nid} as {status}.")).to_be_visible(timeout=30_000)
        acknowledged[nid] = status
        expect(page.get_by_text(f"Overall: {len(acknowledged)} of")).to_be_visible(timeout=30_000)
        expect(heading(page)).not_to_have_text(re.compile(rf"Candidate #{nid}\b"), timeout=30_000)
        wait_for_app(page)
        ready(page)
    in_flight = shown(page)
    page.locator("body").press("j")  # one more, and the server dies while it may be landing
    studio_server.kill()
    studio_server.start()

    after = store.connect(studio_server.home)
    assert after.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    got = {
        nid: after.execute("SELECT status FROM negatives WHERE id = ?", (nid,)).fetchone()[0]
        for nid in acknowledged
    }
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
    expect(
        page.get_by_text(f"Overall: {judged} of {store.project_counts(after, pid)['negatives']} judged")
    ).to_be_visible()
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


# --- fault: export paths that try to leave the workspace -------------------------------------

ESCAPES = ["../escape", "nested/../../escape", "/tmp/rerank-studio-escape", "link/escape"]


def escape_setup(workspace, tmp_path):
    """An 'outside' folder and a symlink inside exports/ that points at it (an escape by resolution)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (workspace / "exports").mkdir(parents=True, exist_ok=True)
    (workspace / "exports" / "link").symlink_to(outside, target_is_directory=True)
    return outside


def nothing_escaped(workspace, outside) -> None:
    from pathlib import Path

    assert not any(outside.iterdir()), list(outside.iterdir())
    assert not (workspace / "escape").exists() and not (workspace.parent / "escape").exists()
    assert not list(Path("/tmp").glob("rerank-studio-escape*"))


def test_dataset_export_refuses_paths_outside_the_workspace(scifact_project, workspace, tmp_path):
    from core.review import dataset_export as export

    conn, pid = scifact_project
    outside = escape_setup(workspace, tmp_path)
    for name in ESCAPES:
        with pytest.raises(ValueError, match=r"\.\.|outside"):
            export.export(conn, pid, "pairs", "jsonl", out=name)
    nothing_escaped(workspace, outside)
    summary = export.export(conn, pid, "pairs", "jsonl", out="inside")  # a plain name still works
    assert summary["rows"] > 0 and summary["path"].startswith(str((workspace / "exports").resolve()))


def completed_run_with_model(conn, pid, model_dir):
    """A completed run whose model folder holds the bundled encoder's config and tokenizer."""
    import shutil
    from pathlib import Path

    from core import models, training

    model_dir.mkdir(parents=True)
    for f in Path(models.bundled_path()).iterdir():
        if f.is_file() and f.stat().st_size < 2_000_000:
            shutil.copy(f, model_dir / f.name)
    run_id = training.create_run(conn, pid, training.TrainConfig(), status="completed")
    records.update_run(conn, run_id, model_dir=str(model_dir))
    return run_id


def test_model_export_refuses_paths_outside_the_workspace(scifact_project, workspace, tmp_path):
    from core.export import bundle

    conn, pid = scifact_project
    outside = escape_setup(workspace, tmp_path)
    run_id = completed_run_with_model(conn, pid, records.run_folder(conn, "x").parent / "r1" / "model")
    for name in ESCAPES:
        with pytest.raises(ValueError, match=r"not allowed|outside"):
            bundle.destination(conn, name, run_id, explicit=False)
    nothing_escaped(workspace, outside)
    dest = bundle.destination(conn, "my-model", run_id, explicit=False)  # a plain name still works
    assert dest.parent == (workspace / "exports").resolve()


def test_model_export_refuses_a_model_folder_outside_the_workspace(scifact_project, workspace, tmp_path):
    """A run row pointing at a folder outside the workspace (or through '..') is not copied from."""
    from core.export import bundle

    conn, pid = scifact_project
    foreign = completed_run_with_model(conn, pid, tmp_path / "elsewhere" / "model")
    with pytest.raises(ValueError, match=r"outside|not allowed|\.\."):
        bundle.export_bundle(conn, foreign, workspace / "exports" / "from-outside")
    dotted = completed_run_with_model(conn, pid, workspace / "runs" / "r2" / "model")
    conn.execute(
        "UPDATE runs SET model_dir = ? WHERE id = ?",
        (str(workspace / "runs" / ".." / ".." / "elsewhere" / "model"), dotted),
    )
    with pytest.raises(ValueError, match=r"outside|not allowed|\.\."):
        bundle.export_bundle(conn, dotted, workspace / "exports" / "through-dots")
    assert not (workspace / "exports" / "from-outside").exists()
    assert not (workspace / "exports" / "through-dots").exists()


@pytest.mark.browser
def test_review_page_export_refuses_a_name_with_dots(studio_server, page, tmp_path):
    conn = store.connect(studio_server.home)
    seed_desk(conn)
    open_desk(page, studio_server)
    page.get_by_role("radio", name="Export").click()
    wait_for_app(page)
    page.get_by_label("Name (optional)").fill("../../escape")
    page.get_by_label("Name (optional)").press("Enter")
    wait_for_app(page)
    page.get_by_role("button", name=re.compile("^Export")).click()
    wait_for_app(page)
    alert = page.locator("[data-testid='stAlert']").filter(has_text="may not contain '..'")
    expect(alert).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Wrote ")).to_have_count(0)
    assert (
        not (studio_server.home / "escape").exists() and not (studio_server.home.parent / "escape").exists()
    )
    conn.close()


# --- fault: bad uploads through the real browser ----------------------------------------------


@pytest.fixture(scope="module")
def upload_server(tmp_path_factory):
    """One studio for the upload faults (each test opens its own tab, so its own session)."""
    home = tmp_path_factory.mktemp("uploads") / "studio-home"
    home.mkdir()
    conn = store.connect(home)
    store.create_project(conn, "uploads")
    server = StudioServer(home).start()
    yield server, conn
    server.stop()
    conn.close()


def real_pairs_csv(n: int = 6) -> list[str]:
    """CSV lines of real SciFact (query, passage, label) rows, quoted."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for q, p, lab in scifact_rows(n)[:n]:
        w.writerow([q, p, int(lab)])
    return buf.getvalue().splitlines()


def bad_file(kind: str) -> tuple[str, bytes, int | None, str | None, str]:
    """(file name, bytes, row, column, words of the message) for one entry of the Data page's bad-input list."""
    header = "query,passage,label"
    good = real_pairs_csv()
    if kind == "empty":
        return "empty.csv", b"", None, None, "the file is empty"
    if kind == "binary":
        return "photo.csv", bytes(range(256)) * 8, None, None, "binary data"
    if kind == "header_only":
        return "header_only.csv", (header + "\n").encode(), None, None, "no data rows"
    if kind == "label":
        lines = [header, *good[:3], good[3].rsplit(",", 1)[0] + ",maybe", *good[4:]]
        return "labels.csv", ("\n".join(lines) + "\n").encode(), 5, "label", "'maybe' is not a number"
    if kind == "blank_query":
        lines = [header, *good[:2], '"   ",' + good[2].split(",", 1)[1], *good[3:]]
        return "blank.csv", ("\n".join(lines) + "\n").encode(), 4, "query", "the query is blank"
    if kind == "not_utf8":
        body = "\n".join([header, *good[:1]]) + "\n"
        return (
            "latin1.csv",
            body.encode() + "caf\xe9 au lait?,a passage,1\n".encode("latin-1"),
            3,
            "query",
            "not UTF-8",
        )
    raise ValueError(kind)


@pytest.mark.browser
@pytest.mark.parametrize("kind", ["empty", "binary", "header_only", "label", "blank_query", "not_utf8"])
def test_bad_upload_is_refused_with_file_row_and_column(upload_server, page, tmp_path, kind):
    server, conn = upload_server
    name, data, row, column, words = bad_file(kind)
    path = tmp_path / name
    path.write_bytes(data)
    page.goto(f"{server.url}/data")  # the root is the overview
    wait_for_app(page)
    page.get_by_text("Training data: CSV, TSV, JSONL, JSON or Parquet").wait_for(timeout=30_000)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(path))
    # The person sees an error, and a problems table whose row names the file, the row and the column.
    expect(
        page.locator("[data-testid='stAlert']").filter(
            has_text=re.compile("cannot be imported|problems stop")
        )
    ).to_be_visible(timeout=30_000)
    wait_for_app(page)
    # The grid paints on a canvas; its accessible table (what a screen reader reads) holds the same cells.
    problem = page.locator("[data-testid='stDataFrame'] tr").filter(has_text=words)
    expect(problem.first).to_be_attached(timeout=30_000)
    cells = [c.strip() for c in problem.first.locator("td").all_inner_texts()]
    assert cells[0] == name, cells
    if row is not None:
        assert cells[1:3] == [str(row), column], cells
    assert any(words in c for c in cells), cells
    import_button = page.get_by_role("button", name=re.compile("Import"))
    if import_button.count():
        expect(import_button.first).to_be_disabled()
    pid = store.project_id(conn, "uploads")
    assert store.project_counts(conn, pid)["train_pairs"] == 0
    assert conn.execute("SELECT COUNT(*) FROM imports").fetchone()[0] == 0


# --- fault: HTML and script in the data -------------------------------------------------------

SCRIPT = "Does <script>window.__xss = 'script'; alert('script')</script> aspirin lower the risk of stroke?"
SCRIPT_TWIN = (
    "Does <script>window.__xss = 'script'; alert('script')</script> aspirin lower the risk of a stroke?"
)
IMG = "Aspirin trial. <img src=x onerror=\"window.__xss = 'img'; alert('img')\"> Low-dose aspirin reduced stroke."


class Watch:
    """Everything a payload could do in the tab: open a dialog, set the global, or exist as a live element."""

    def __init__(self, page):
        self.page, self.dialogs = page, []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def assert_inert(self, where: str) -> None:
        self.page.wait_for_timeout(300)  # an onerror fires as soon as the element exists
        assert self.dialogs == [], f"{where}: a dialog opened: {self.dialogs}"
        assert self.page.evaluate("typeof window.__xss") == "undefined", where
        live = self.page.evaluate(
            """() => [...document.querySelectorAll('img[src="x"], script')]
                     .filter(e => (e.getAttribute('src') === 'x') || e.textContent.includes('__xss')).length"""
        )
        assert live == 0, f"{where}: a payload became an element"


def shown_literally(page, text: str, timeout: float = 30_000) -> None:
    """The literal payload is on screen as text (plain text elements, or the grids' accessible cells, which
    are filled once the canvas has painted)."""
    page.wait_for_function(
        """(t) => [...document.querySelectorAll('[data-testid="stMain"] *')]
                 .some(e => e.children.length === 0 && e.textContent.includes(t))""",
        arg=text,
        timeout=timeout,
    )


@pytest.mark.browser
def test_script_and_img_payloads_are_shown_as_text_and_never_run(studio_server, page, tmp_path):
    import csv

    conn = store.connect(studio_server.home)
    pid = store.create_project(conn, "xss")
    rows = [(q, p, int(lab)) for q, p, lab in scifact_rows(30)]
    # First in the file, so the before/after preview (a few rows) shows them.
    rows = [(SCRIPT, IMG, 1), (SCRIPT_TWIN, rows[0][1], 1), (rows[1][0], IMG + " Second trial.", 1)] + rows
    path = tmp_path / "payloads.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query", "passage", "label"])
        w.writerows(rows)
    watch = Watch(page)

    # Data: upload, see the raw text in the before/after preview, import with HTML kept as typed.
    page.goto(f"{studio_server.url}/data?project=xss")  # the root is the overview
    wait_for_app(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(str(path))
    expect(page.get_by_text("Ready to import.")).to_be_visible(timeout=60_000)
    wait_for_app(page)
    shown_literally(page, "<script>window.__xss")
    watch.assert_inert("Data page preview")
    page.get_by_text(re.compile(r"^(Strip )?HTML tags")).first.click()
    wait_for_app(page)
    expect(page.get_by_text("Ready to import.")).to_be_visible(timeout=60_000)
    page.get_by_role("button", name=re.compile("Import")).click()
    expect(page.get_by_text(re.compile("Imported \\d+ training pairs"))).to_be_visible(timeout=60_000)
    wait_for_app(page)
    assert conn.execute("SELECT COUNT(*) FROM queries WHERE text = ?", (SCRIPT,)).fetchone()[0] == 1
    page.get_by_text("Some training pairs").click()
    wait_for_app(page)
    watch.assert_inert("Data page after import")
    SCREENSHOTS_DIR = tmp_path
    page.screenshot(path=str(SCREENSHOTS_DIR / "xss-data.png"))

    # Review: a mined candidate carrying the img payload, for the script query.
    q = conn.execute("SELECT id FROM queries WHERE text = ?", (SCRIPT,)).fetchone()[0]
    img = conn.execute("SELECT id FROM passages WHERE text = ?", (IMG + " Second trial.",)).fetchone()[0]
    pos = conn.execute("SELECT passage_id FROM pairs WHERE query_id = ?", (q,)).fetchone()[0]
    with store.transaction(conn):
        conn.execute(
            "INSERT INTO negatives (project_id, query_id, passage_id, positive_id, kind, rank, score, "
            "positive_score, risk) VALUES (?, ?, ?, ?, 'hard', 1, 0.8, 0.9, 0.99)",
            (pid, q, img, pos),
        )
    page.goto(f"{studio_server.url}/review?project=xss")
    wait_for_app(page)
    expect(heading(page)).to_be_visible(timeout=30_000)
    shown_literally(page, SCRIPT)
    # the passages carry marked query terms (styled spans), so the literal payload spans several elements
    expect(page.locator(".st-key-review_candidate_text")).to_contain_text(IMG)
    watch.assert_inert("Review desk")

    # Quality: the payload queries are near-duplicates, so the clusters table lists them; plots draw them.
    page.goto(f"{studio_server.url}/quality?project=xss")
    wait_for_app(page)
    page.get_by_role("button", name=re.compile("Analyse")).click()  # a background job, started on request
    expect(page.locator(".js-plotly-plot .main-svg").first).to_be_visible(timeout=180_000)
    wait_for_app(page)
    shown_literally(page, "<script>window.__xss")
    points = page.locator("[data-testid='stPlotlyChart'] .scatterlayer .point")
    for i in range(min(points.count(), 40)):  # hover labels render the texts too
        points.nth(i).hover(force=True)
    watch.assert_inert("Quality page")
    conn.close()
