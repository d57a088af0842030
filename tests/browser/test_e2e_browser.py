"""The whole path as a person walks it, in real headless Chromium against a real studio server, on a small
SciFact sample: upload pairs and a test set -> clean -> mine (with extra corpus) -> judge ten candidates with
the keyboard -> quality plots -> train a few steps -> evaluate -> export. Between steps the walk returns to the
overview, checks that it shows the step just done, and clicks its "next step" action. One screenshot per page
goes to SCREENSHOTS/tour/<page>.png (the README's tour, with the overview and a running job), and each step
asserts what a person would check on screen."""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core import store
from tests.conftest import SCREENSHOTS, load_scifact, wait_for_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

N_TRAIN, N_TEST, N_CORPUS = 40, 15, 200
PROJECT = "SciFact e2e"
HEADING = re.compile(r"Candidate #(\d+)")


# --- the user's files -------------------------------------------------------------------------


def write_files(folder: Path) -> dict:
    """Real SciFact rows as a person would bring them: training pairs (with two exact duplicates and a row
    with HTML and a URL to clean), a test set, and extra corpus passages for mining."""
    sf = load_scifact()
    train_q = sorted(sf["qrels"]["train"], key=int)[:N_TRAIN]
    test_q = sorted(sf["qrels"]["test"], key=int)[:N_TEST]
    train = [(sf["queries"][q], sf["corpus"][d]) for q in train_q for d in sf["qrels"]["train"][q]]
    test = [(sf["queries"][q], sf["corpus"][d]) for q in test_q for d in sf["qrels"]["test"][q]]
    q0, p0 = train[0]
    # The query loses its tags and the passage its URL: once clean, the row is train[0] again, a duplicate.
    messy = (f"<b>{q0}</b>", p0 + " https://example.org/trial")
    files = {
        "train": folder / "scifact_train.csv",
        "test": folder / "scifact_test.csv",
        "corpus": folder / "scifact_corpus.jsonl",
    }
    with open(files["train"], "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query", "positive"])
        w.writerows(train + train[1:3] + [messy])
    with open(files["test"], "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query", "positive"])
        w.writerows(test)
    used = {d for q in train_q for d in sf["qrels"]["train"][q]} | {
        d for q in test_q for d in sf["qrels"]["test"][q]
    }
    extra = [d for d in sorted(sf["corpus"], key=int) if d not in used][:N_CORPUS]
    with open(files["corpus"], "w", encoding="utf-8") as fh:
        for d in extra:
            fh.write(json.dumps({"text": sf["corpus"][d]}) + "\n")
    return {
        "files": files,
        "train_pairs": len(set(train)),
        "duplicates": len(train) + 3 - len(set(train)),
        "train_queries": len({sf["queries"][q] for q in train_q}),  # two SciFact ids share one text
        "test_queries": len(test_q),
        "test_pairs": len(set(test)),
    }


# --- small helpers ------------------------------------------------------------------------------


TOUR = SCREENSHOTS / "tour"  # its own folder: other browser tests write SCREENSHOTS/<page>.png too


def shoot(page, name: str) -> None:
    TOUR.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(600)  # let canvases (tables, plots) paint
    page.screenshot(path=str(TOUR / f"{name}.png"))


def next_step(page, label: str, title: str, done: str | None = None) -> None:
    """Back to the overview (the link at the top of every page); it marks `done` as done and its one next
    action is `label`: click it, as a newcomer would, and land on `title`."""
    page.get_by_role("link", name="Overview", exact=True).first.click()
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible(timeout=60_000)
    if done:
        step = page.locator(f".st-key-overview_step_{done}")
        expect(step).to_contain_text("done", timeout=30_000)
    action = page.locator(".st-key-overview_next").get_by_role("button")
    expect(action).to_have_text(re.compile(re.escape(label)), timeout=30_000)
    action.click()
    wait_for_app(page)
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible(timeout=60_000)


def metric(page, label: str) -> str:
    box = page.locator("[data-testid='stMetric']").filter(has_text=label).first
    return box.locator("[data-testid='stMetricValue']").inner_text().strip()


def upload(page, region: str, path: Path) -> None:
    page.get_by_role("region", name=re.compile("^" + re.escape(region))).locator(
        "input[type=file]"
    ).set_input_files(str(path))


def timed(log: dict, step: str, t0: float) -> float:
    now = time.time()
    log[step] = round(now - t0, 1)
    return now


# --- the walk -----------------------------------------------------------------------------------


def test_the_whole_path_in_chromium(studio_server, chromium, tmp_path):
    sample = write_files(tmp_path)
    files = sample["files"]
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    steps: dict[str, float] = {}
    t = time.time()
    try:
        # 1. Data: a new project, the training pairs and a test set, cleaning on, check, import.
        page.goto(studio_server.url)
        wait_for_app(page)
        expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()  # the first screen
        expect(page.get_by_text("No project yet.", exact=True)).to_be_visible()
        page.get_by_role("button", name=re.compile("New project")).click()
        page.get_by_label("Name", exact=True).fill(PROJECT)
        page.get_by_role("button", name="Create", exact=True).click()
        wait_for_app(page)
        expect(page.get_by_text(f"Project {PROJECT}")).to_be_visible(timeout=30_000)
        action = page.locator(".st-key-overview_next").get_by_role("button")
        expect(action).to_have_text(re.compile("Import training pairs"))
        action.click()
        wait_for_app(page)
        expect(page.get_by_role("heading", name="Data", level=1)).to_be_visible(timeout=60_000)
        upload(page, "Training data:", files["train"])
        expect(page.get_by_text("(query, positive)").first).to_be_visible(timeout=60_000)
        page.get_by_text("Upload a test file", exact=True).click()
        wait_for_app(page)
        upload(page, "Test data:", files["test"])
        test_pairs = (
            page.locator("[data-testid='stMetric']")
            .filter(has_text="Test pairs")
            .locator("[data-testid='stMetricValue']")
        )
        expect(test_pairs).to_have_text(str(sample["test_pairs"]), timeout=60_000)
        expect(page.get_by_text("Ready to import.").first).to_be_visible(
            timeout=60_000
        )  # a rerun can keep a stale copy
        wait_for_app(page)
        assert metric(page, "Pairs") == str(sample["train_pairs"])
        assert metric(page, "Unique queries") == str(sample["train_queries"])
        # two exact copies, the row that cleans to one, and SciFact's own repeat of one (query, passage) pair
        assert metric(page, "Duplicates removed") == str(sample["duplicates"])
        expect(page.get_by_text(re.compile(r"Cleaning changed [1-9]\d* of"))).to_be_visible()
        page.get_by_role("button", name="Import").click()
        expect(
            page.get_by_text(re.compile(rf"Imported {sample['train_pairs']} training pairs"))
        ).to_be_visible(timeout=60_000)
        wait_for_app(page)
        assert metric(page, "Training queries") == str(sample["train_queries"])
        assert metric(page, "Test queries") == str(sample["test_queries"])
        page.locator("[data-testid='stMain']").evaluate("e => e.scrollTo(0, 0)")
        shoot(page, "data")
        t = timed(steps, "data", t)

        # 2. Mine: extra corpus passages join the pool; mine with the recommended preset, in the background.
        next_step(page, "Mine hard negatives", "Mine", done="data")
        upload(page, "Extra corpus", files["corpus"])
        expect(page.get_by_text(f"({N_CORPUS} new from {files['corpus'].name})", exact=False)).to_be_visible(
            timeout=60_000
        )
        wait_for_app(page)
        expect(page.get_by_text(re.compile(r"about .* texts at \d+ texts/s"))).to_be_visible()  # the estimate
        page.get_by_role("button", name="Mine", exact=True).click()
        expect(page.get_by_text("Mining is running in the background")).to_be_visible(timeout=30_000)
        expect(page.get_by_test_id("stSidebar").get_by_text(re.compile(r"^Mining — "))).to_be_visible()
        shoot(page, "jobs")
        expect(page.get_by_text(re.compile(r"Mined \d+ hard and \d+ random negatives"))).to_be_visible(
            timeout=180_000
        )
        wait_for_app(page)
        hard = int(metric(page, "Hard negatives").replace(",", ""))
        assert hard >= N_TRAIN  # at least one per training query from a pool of 200+ passages
        expect(page.locator(".js-plotly-plot .main-svg").first).to_be_visible(timeout=30_000)
        shoot(page, "mine")
        t = timed(steps, "mine", t)

        # 3. Review: ten candidates with the keyboard, the sixth marked relevant; each one acknowledged.
        next_step(page, "Review the riskiest candidates", "Review", done="mine")
        expect(page.get_by_role("heading", name=HEADING)).to_be_visible(timeout=60_000)
        page.get_by_role("heading", name="Review", level=1).click()  # focus on the desk, not the sidebar link
        total = int(
            re.search(r"Overall: 0 of ([\d,]+) judged", page.locator("[data-testid='stMain']").inner_text())
            .group(1)
            .replace(",", "")
        )
        judged: dict[int, str] = {}
        for i in range(10):
            key, status = ("k", "relevant") if i == 5 else ("j", "negative")
            expect(page.get_by_role("button", name=re.compile("^Negative"))).to_be_enabled(timeout=30_000)
            nid = int(HEADING.search(page.get_by_role("heading", name=HEADING).inner_text()).group(1))
            page.keyboard.press(key)
            # The acknowledgement on screen: the overall count moves on and a toast names the candidate.
            expect(page.get_by_text(f"Overall: {len(judged) + 1} of {total:,} judged")).to_be_visible(
                timeout=30_000
            )
            expect(
                page.locator("[data-testid='stToast']").filter(has_text=f"Saved #{nid} as {status}.")
            ).to_be_visible(timeout=10_000)
            judged[nid] = status
            expect(page.get_by_role("heading", name=HEADING)).not_to_have_text(
                re.compile(rf"Candidate #{nid}\b"), timeout=30_000
            )  # the desk moved to the next candidate
            wait_for_app(page)
        wait_for_app(page)
        shoot(page, "review")
        conn = store.connect(studio_server.home)
        pid = store.project_id(conn, PROJECT)
        stored = dict(
            conn.execute(
                "SELECT id, status FROM negatives WHERE project_id = ? AND status != 'unjudged'", (pid,)
            ).fetchall()
        )
        assert stored == judged
        # Export the curated dataset: the false negative is a positive now.
        page.get_by_role("radio", name="Export").click()
        wait_for_app(page)
        page.get_by_role("button", name=re.compile("^Export$|download.*Export")).last.click()
        expect(page.get_by_text(re.compile(r"Wrote \d+ rows to .*exports"))).to_be_visible(timeout=60_000)
        assert metric(page, "Positives") == str(sample["train_pairs"] + 1)
        t = timed(steps, "review", t)

        # 4. Quality: analysed in the background on request; the health check and the plots render.
        next_step(page, "Check data quality", "Quality", done="review")
        page.get_by_role("button", name=re.compile("Analyse")).click()
        expect(page.get_by_role("heading", name="Health check")).to_be_visible(timeout=180_000)
        wait_for_app(page)
        plots = page.locator("[data-testid='stPlotlyChart'] .main-svg")
        expect(plots.first).to_be_visible(timeout=60_000)
        assert (
            page.locator("[data-testid='stPlotlyChart']").count() >= 5
        )  # two maps, lengths, three histograms
        assert metric(page, "Training queries") == str(sample["train_queries"])
        expect(page.get_by_text("Query map")).to_be_visible()
        shoot(page, "quality")
        t = timed(steps, "quality", t)

        # 5. Train: tiny settings (a tenth of an epoch, batch 8, 64 tokens), in the background, watched live.
        next_step(page, "Train a reranker", "Train", done="quality")
        page.get_by_role("spinbutton", name="Epochs").fill("0.1")
        page.get_by_role("spinbutton", name="Batch size").fill("8")
        page.get_by_role("spinbutton", name="Max length (tokens)").fill("64")
        page.get_by_role("button", name=re.compile("Train")).last.click()
        run_heading = page.get_by_role("heading", name=re.compile(r"^Run \S+ — "))
        expect(run_heading).to_be_visible(timeout=60_000)
        expect(run_heading).to_contain_text("completed", timeout=240_000)
        expect(page.get_by_test_id("stMain").get_by_text(re.compile(r"step (\d+) of \1"))).to_be_visible(
            timeout=30_000
        )  # the sidebar's job status says it too
        run_id = re.search(r"Run (\S+) —", run_heading.inner_text()).group(1)
        run = conn.execute("SELECT status, config, model_dir FROM runs WHERE id = ?", (run_id,)).fetchone()
        cfg = json.loads(run["config"])
        assert (run["status"], cfg["batch_size"], cfg["max_length"], cfg["epochs"]) == (
            "completed",
            8,
            64,
            0.1,
        )
        assert (Path(run["model_dir"]) / "model.safetensors").is_file()
        shoot(page, "train")
        t = timed(steps, "train", t)

        # 6. Evaluate: the first stage vs the fine-tuned run on the 15 test queries.
        next_step(page, "Evaluate the newest run", "Evaluate", done="train")
        expect(page.get_by_text(f"Project test set ({sample['test_queries']} queries)")).to_be_visible()
        page.get_by_role("button", name=re.compile("^Evaluate$|play_arrow.*Evaluate")).last.click()
        expect(page.get_by_role("heading", name="Realistic figures")).to_be_visible(timeout=180_000)
        wait_for_app(page)
        verdict = page.locator("[data-testid='stAlert']").filter(
            has_text=re.compile("beat the first stage|Better on average|Beats the first stage")
        )
        expect(verdict.first).to_be_visible()
        table = page.locator("[data-testid='stDataFrame']").first
        expect(table.locator("tr").filter(has_text=run_id).first).to_be_attached(timeout=30_000)
        expect(table.locator("tr").filter(has_text=re.compile("BM25", re.I)).first).to_be_attached()
        header = [c.strip() for c in table.locator("th").all_inner_texts()]
        assert {"system", "ndcg@10", "mrr@10"} <= set(header), header
        shoot(page, "evaluate")

        # 7. Export the model bundle (model, spec, card), checked by reloading it.
        page.get_by_role("button", name=re.compile("Export bundle")).click()
        expect(page.get_by_text(re.compile(r"Bundle \(.*\) written to .*exports"))).to_be_visible(
            timeout=120_000
        )
        exported = store.workspace_of(conn) / "exports" / f"model-{run_id}"
        assert (exported / "model.safetensors").is_file() and (exported / "README.md").is_file()
        t = timed(steps, "evaluate+export", t)

        # 8. The overview: every step done, the best run's verdict, and the next action is to ship it.
        page.get_by_role("link", name="Overview", exact=True).first.click()
        wait_for_app(page)
        for step in ("data", "mine", "review", "quality", "train", "evaluate"):
            expect(page.locator(f".st-key-overview_step_{step}")).to_contain_text("done")
        expect(page.locator(".st-key-overview_next").get_by_role("button")).to_have_text(
            re.compile("Export the model")
        )
        expect(page.get_by_text(re.compile(r"NDCG@10 [\d.]+ vs first stage"))).to_be_visible()
        shoot(page, "overview")
        conn.close()
    finally:
        print("e2e step seconds:", json.dumps(steps))
        context.close()
