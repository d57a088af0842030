"""Shared fixtures: an isolated workspace per test, and real SciFact data (never the network)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import pytest

from core.ingest.beir import read_raw

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests compare scores to fp32 torch to 1e-6; the bf16 path (core.inference.precision) sets it in its own tests.
os.environ.setdefault("RERANK_STUDIO_PRECISION", "fp32")

ROOT = Path(__file__).resolve().parents[1]
# The bundled sample (267 train / 100 test claims, 1,330 abstracts) so a clean clone tests without ../shared;
# SCIFACT_DIR may point at another BEIR SciFact folder (e.g. the full one).
SAMPLE_SCIFACT = ROOT / "sample_data" / "scifact"


@lru_cache(maxsize=1)
def load_scifact() -> dict:
    """SciFact as plain dicts: corpus {id: text}, queries {id: text}, qrels {split: {qid: {did: score}}}."""
    SCIFACT = Path(os.environ.get("SCIFACT_DIR") or SAMPLE_SCIFACT)  # read at first call (benches set it)
    if not (SCIFACT / "corpus.jsonl").is_file():
        pytest.fail(
            f"SciFact data not found at {SCIFACT}: the repository ships it in sample_data/scifact; "
            "SCIFACT_DIR may point at a BEIR SciFact folder (corpus.jsonl, queries.jsonl, qrels/)"
        )
    return dict(read_raw(SCIFACT))


def unrelated_doc() -> str:
    """The first abstract (by id) that no qrels row names: a passage known to be irrelevant to every query."""
    sf = load_scifact()
    named = {d for split in sf["qrels"].values() for docs in split.values() for d in docs}
    return next(d for d in sorted(sf["corpus"], key=int) if d not in named)


@pytest.fixture(scope="session")
def scifact() -> dict:
    return load_scifact()


@pytest.fixture()
def server_routing(monkeypatch):
    """AppTest resets PagesManager.uses_pages_directory before every run, and because the pages live in a folder
    named `pages/` it would then route app.py's pages through Streamlit's old multipage mode (which the pages leave
    with a rerun). The real server keeps the flag st.navigation set (False); do the same here."""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


@pytest.fixture()
def workspace(tmp_path, monkeypatch) -> Path:
    """A fresh RERANK_STUDIO_HOME for one test."""
    home = tmp_path / "studio-home"
    monkeypatch.setenv("RERANK_STUDIO_HOME", str(home))
    return home


@pytest.fixture()
def db(workspace):
    from core import store

    conn = store.connect(workspace)
    yield conn
    conn.close()


# --- a real studio server and real Chromium (for tests marked `browser`) ---------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StudioServer:
    """`streamlit run app.py` on a free loopback port, in its own process group, killable for fault tests."""

    def __init__(self, home: Path, port: int | None = None):
        self.home, self.port, self.proc = home, port or free_port(), None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> StudioServer:
        import subprocess
        import sys
        import time
        import urllib.request

        env = {**os.environ, "RERANK_STUDIO_HOME": str(self.home), "HF_HUB_OFFLINE": "1"}
        self.log = open(self.home.parent / f"server-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(ROOT / "app.py"),
                "--server.headless",
                "true",
                "--server.address",
                "127.0.0.1",
                "--server.port",
                str(self.port),
                "--browser.gatherUsageStats",
                "false",
                "--server.fileWatcherType",
                "none",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"studio exited early; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"studio not healthy after {timeout}s; see {self.log.name}")

    def kill(self) -> None:
        """SIGKILL the whole process group: the harshest crash a server can have."""
        import signal

        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        import signal

        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except Exception:  # noqa: BLE001
                self.kill()


@pytest.fixture()
def studio_server(workspace):
    """A running studio on an isolated workspace; the test may kill() and start() it again."""
    workspace.mkdir(parents=True, exist_ok=True)
    server = StudioServer(workspace).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium driven by Playwright; required in CI, skipped with a reason elsewhere."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing in CI: `make browser` should have installed it")
        pytest.skip(f"{CHROMIUM} not installed (run `make browser`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(chromium):
    """A fresh tall tab (Streamlit scrolls an inner container, so full_page screenshots need height)."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1800})
    tab = context.new_page()
    yield tab
    context.close()


def wait_for_app(tab, timeout: float = 60_000) -> None:
    """Wait until Streamlit has finished running the page script."""
    tab.wait_for_selector("[data-testid='stApp']", timeout=timeout)
    tab.wait_for_function(
        "() => { const a = document.querySelector(\"[data-testid='stApp']\");"
        " return a && a.getAttribute('data-test-script-state') === 'notRunning'; }",
        timeout=timeout,
    )


SCREENSHOTS = ROOT / "screenshots"  # git-ignored


def seed_scifact(conn, name: str = "scifact", n_train: int = 60, n_test: int = 20, n_extra: int = 200) -> int:
    """A project of real SciFact data: first n_train train queries' pairs, n_test test queries, and extra
    corpus passages (negatives come from these). Deterministic."""
    from core import store

    sf = load_scifact()
    pid = store.create_project(conn, name)
    train_q = sorted(sf["qrels"]["train"], key=int)[:n_train]
    test_q = sorted(sf["qrels"]["test"], key=int)[:n_test]
    used = set()
    with store.transaction(conn):
        for split, qids in (("train", train_q), ("test", test_q)):
            rows = []
            for q in qids:
                for d, score in sf["qrels"][split][q].items():
                    rows.append((sf["queries"][q], sf["corpus"][d], score))
                    used.add(d)
            store.insert_pairs(conn, pid, rows, split=split)
        extra = [d for d in sorted(sf["corpus"], key=int) if d not in used][:n_extra]
        store.upsert_passages(conn, pid, [sf["corpus"][d] for d in extra], source="corpus", doc_ids=extra)
    return pid


@pytest.fixture()
def scifact_project(db):
    """(conn, project_id) with 60 train queries, 20 test queries and 200 extra SciFact passages."""
    return db, seed_scifact(db)


def wait_until(predicate, timeout: float, what: str = "condition", every: float = 0.3):
    """Poll `predicate` until it returns something truthy (returned) or fail after `timeout` seconds."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
