"""Review desk speed with 100,000 candidates in the store: one judgement (its own fsync'd transaction with
history) and one render of the desk. Prints one JSON line with its targets and exits 1 when one is missed.
Targets: p95 < 50 ms per judgement; desk render < 1 s. Data: --data FOLDER or $SCIFACT_DIR (BEIR SciFact)."""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # not tests/ itself: its tests/core package would shadow core
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(ROOT / "bench"))
from scifact_data import scifact_dir  # noqa: E402 - the benches' one --data rule

# --data PATH, else $SCIFACT_DIR, else ../shared/data/scifact; exits saying where to get it when missing, and sets
# SCIFACT_DIR for tests/conftest.py's loader.
_DATA = sys.argv[sys.argv.index("--data") + 1] if "--data" in sys.argv else None
scifact_dir(_DATA or os.environ.get("SCIFACT_DIR") or ROOT.parent / "shared" / "data" / "scifact")

from core import review, store  # noqa: E402
from tests.conftest import load_scifact  # noqa: E402 (real SciFact texts: BEIR SciFact, CC BY-NC 2.0)

CANDIDATES = int(os.environ.get("BENCH_CANDIDATES", "100000"))
JUDGEMENTS = int(os.environ.get("BENCH_JUDGEMENTS", "300"))
TARGETS = {"judgement_p95_ms": 50.0, "desk_render_ms": 1000.0}  # upper bounds


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def seed(conn) -> int:
    """Every SciFact train query and the whole corpus; candidates spread over the queries with random risks."""
    sf = load_scifact()
    pid = store.create_project(conn, "bench")
    rng = random.Random(0)
    with store.transaction(conn):
        corpus_ids = sorted(sf["corpus"], key=int)
        passage_ids = store.upsert_passages(
            conn, pid, [sf["corpus"][d] for d in corpus_ids], source="corpus", doc_ids=corpus_ids
        )
        by_doc = dict(zip(corpus_ids, passage_ids))
        rows = []
        for q, docs in sf["qrels"]["train"].items():
            for d in docs:
                rows.append((sf["queries"][q], sf["corpus"][d], 1.0))
        store.insert_pairs(conn, pid, rows)
        queries = conn.execute("SELECT id FROM queries WHERE project_id = ?", (pid,)).fetchall()
        positives = {
            r["query_id"]: r["passage_id"]
            for r in conn.execute("SELECT query_id, passage_id FROM pairs WHERE project_id = ?", (pid,))
        }
        per_query = -(-CANDIDATES // len(queries))
        pool = list(by_doc.values())
        batch, made = [], 0
        for q in queries:
            for rank, passage in enumerate(rng.sample(pool, per_query), start=1):
                if made == CANDIDATES:
                    break
                if passage == positives[q["id"]]:
                    continue
                score = rng.uniform(0.2, 0.9)
                batch.append(
                    (
                        pid,
                        q["id"],
                        passage,
                        positives[q["id"]],
                        "random" if rank % 5 == 0 else "hard",
                        rank,
                        score,
                        0.8,
                        round(rng.random(), 4),
                    )
                )
                made += 1
        conn.executemany(
            "INSERT INTO negatives (project_id, query_id, passage_id, positive_id, kind, rank, score, "
            "positive_score, risk) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            batch,
        )
    return pid


def desk_render(conn, pid, flt) -> float:
    """Everything the desk view computes per render, through the same core calls the page makes."""
    t = time.perf_counter()
    review.progress(conn, pid)
    review.query_progress(conn, pid)
    review.desk(conn, pid, flt)
    review.last_undoable(conn, pid, "bench")
    return time.perf_counter() - t


def apptest_render(home: Path) -> float | None:
    """A real rerun of the Review page (AppTest, no browser) after pressing Negative."""
    try:
        from streamlit.testing.v1 import AppTest
    except ImportError:
        return None
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/review.py").run()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        at.button(key="review_negative").click().run()
        times.append(time.perf_counter() - t)
    if at.exception:
        raise RuntimeError(at.exception[0].value)
    return statistics.median(times)


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="bench-review-"))
    os.environ["RERANK_STUDIO_HOME"] = str(home)
    try:
        conn = store.connect(home)
        t = time.perf_counter()
        pid = seed(conn)
        seeded = time.perf_counter() - t
        total = review.progress(conn, pid)["total"]

        flt = review.QueueFilter()
        renders = [desk_render(conn, pid, flt) for _ in range(10)]
        judge_times, statuses = [], ["negative"] * 8 + ["relevant", "skipped"]
        for i in range(JUDGEMENTS):
            cur = review.queue(conn, pid, flt)[0]
            t = time.perf_counter()
            review.judge(conn, cur["id"], statuses[i % len(statuses)], cur["version"], actor="bench")
            judge_times.append(time.perf_counter() - t)
        undo_times = []
        for _ in range(50):
            t = time.perf_counter()
            review.undo(conn, pid, "bench")
            undo_times.append(time.perf_counter() - t)
        filtered = [
            desk_render(conn, pid, review.QueueFilter(state="all", risk_min=0.3, risk_max=0.6, kind="random"))
            for _ in range(5)
        ]
        low = review.QueueFilter(risk_below=0.1)
        t = time.perf_counter()
        n = review.preview(conn, pid, low)["rows"]
        bulk = review.bulk_judge(conn, pid, low, actor="bench", expected_rows=n)
        bulk_s = time.perf_counter() - t
        t = time.perf_counter()
        review.undo(conn, pid, "bench")
        bulk_undo_s = time.perf_counter() - t
        conn.close()
        app_s = apptest_render(home)

        q = statistics.quantiles(judge_times, n=100)
        met = {
            "judgement_p95_ms": ms(q[94]) < TARGETS["judgement_p95_ms"],
            "desk_render_ms": ms(statistics.median(renders)) < TARGETS["desk_render_ms"],
        }
        print(
            json.dumps(
                {
                    "judgement_p50_ms": ms(statistics.median(judge_times)),
                    "judgement_p95_ms": ms(q[94]),
                    "desk_render_ms": ms(statistics.median(renders)),
                    "desk_render_max_ms": ms(max(renders)),
                    "desk_render_filtered_ms": ms(statistics.median(filtered)),
                    "apptest_rerun_ms": ms(app_s) if app_s is not None else None,
                    "undo_p95_ms": ms(statistics.quantiles(undo_times, n=100)[94]),
                    "bulk_rows": bulk["rows"],
                    "bulk_ms": ms(bulk_s),
                    "bulk_undo_ms": ms(bulk_undo_s),
                    "candidates": total,
                    "judgements": JUDGEMENTS,
                    "seed_s": round(seeded, 1),
                    "targets": TARGETS,
                    "met": met,
                }
            )
        )
        if not all(met.values()):
            sys.exit(1)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
