"""Exporting the curated dataset: each format in each container, reviewed false negatives as positives (never
negatives), skipped candidates left out, and export paths that cannot leave the exports folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core import review, store
from core.review import dataset_export as export
from tests.core.test_review import seed_negatives

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def curated(scifact_project):
    """Seeded candidates with a few judgements: one false negative, one skip, one reviewed negative, and an
    uploaded label-0 pair."""
    conn, pid = scifact_project
    ids = seed_negatives(conn, pid)
    first_q = conn.execute("SELECT query_id FROM negatives WHERE id = ?", (ids[0],)).fetchone()[0]
    review.judge(conn, ids[0], "relevant", 0, actor="ana")  # false negative of the first query
    review.judge(conn, ids[1], "skipped", 0, actor="ana")
    review.judge(conn, ids[2], "negative", 0, actor="ana")
    query = conn.execute("SELECT text FROM queries WHERE id = ?", (first_q,)).fetchone()[0]
    extra = conn.execute(
        "SELECT text FROM passages WHERE source = 'corpus' ORDER BY id DESC LIMIT 1"
    ).fetchone()[0]
    with store.transaction(conn):
        store.insert_pairs(conn, pid, [(query, extra, 0)])
    texts = {
        k: conn.execute(
            "SELECT p.text FROM negatives n JOIN passages p ON p.id = n.passage_id WHERE n.id = ?", (ids[i],)
        ).fetchone()[0]
        for k, i in (("relevant", 0), ("skipped", 1), ("negative", 2), ("unjudged", 3))
    }
    return conn, pid, ids, query, texts, extra


@pytest.mark.parametrize("to", ["jsonl", "parquet", "hf"])
def test_pairs_in_every_container(curated, to):
    conn, pid, ids, query, texts, extra = curated
    s = export.export(conn, pid, "pairs", to, out=f"pairs-{to}")
    path = Path(s["path"])
    assert path.parent == store.exports_dir(store.workspace_of(conn)).resolve()
    assert path.is_dir() == (to == "hf") and path.name.startswith(f"pairs-{to}")
    rows = export.read_export(path)
    assert len(rows) == s["rows"] and s["columns"] == ["query", "passage", "label"]
    mine = {r["passage"]: r["label"] for r in rows if r["query"] == query}
    assert mine[texts["relevant"]] == 1.0  # the reviewed false negative is a positive
    assert mine[texts["negative"]] == 0.0 and mine[texts["unjudged"]] == 0.0 and mine[extra] == 0.0
    assert texts["skipped"] not in mine
    assert sum(r["label"] == 1.0 for r in rows) == s["positives"] == 68 + 1
    assert s["reviewed_positives"] == 1
    assert s["negatives_by_kind"] == {"hard": 59 * 4 - 2, "random": 59, "upload": 1}
    assert s["negatives"] == sum(r["label"] == 0.0 for r in rows)


def test_triplets_and_ntuple(curated):
    conn, pid, ids, query, texts, extra = curated
    s = export.export(conn, pid, "triplets", "jsonl", out="t")
    rows = export.read_export(s["path"])
    assert s["columns"] == ["query", "positive", "negative"] and len(rows) == s["rows"]
    negatives = {r["negative"] for r in rows}
    positives = {r["positive"] for r in rows if r["query"] == query}
    assert texts["relevant"] in positives and texts["relevant"] not in negatives
    assert texts["skipped"] not in negatives and {texts["negative"], texts["unjudged"], extra} <= negatives
    for r in rows:  # never a passage as both sides of one query
        assert r["positive"] != r["negative"]

    n = export.export(conn, pid, "ntuple", "parquet", out="n", n_negatives=4)
    rows = export.read_export(n["path"])
    assert n["columns"] == ["query", "positive", "negative_1", "negative_2", "negative_3", "negative_4"]
    assert n["negatives_per_row"] == 4 and len(rows) == n["rows"] == n["positives"]
    first = [r for r in rows if r["query"] == query]
    assert len(first) == 2  # its uploaded positive and the reviewed false negative
    # The reviewed negative comes first; the false negative is never a negative.
    assert first[0]["negative_1"] == texts["negative"]
    assert texts["relevant"] not in {v for r in rows for k, v in r.items() if k.startswith("negative_")}
    with pytest.raises(ValueError, match="at least 1 negative"):
        export.export(conn, pid, "ntuple", "jsonl", out="bad", n_negatives=0)


def test_reviewed_only_keeps_judged_negatives_and_uploads(curated):
    conn, pid, ids, query, texts, extra = curated
    s = export.export(conn, pid, "pairs", "jsonl", out="r", reviewed_only=True)
    rows = export.read_export(s["path"])
    negs = {r["passage"] for r in rows if r["label"] == 0.0}
    assert negs == {texts["negative"], extra}
    assert s["negatives_by_kind"] == {"hard": 1, "random": 0, "upload": 1}
    with pytest.raises(ValueError, match="Nothing to export as ntuple"):
        export.export(conn, pid, "ntuple", "jsonl", out="none", reviewed_only=True, n_negatives=3)


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "/tmp/escape", "..", "."])
def test_paths_outside_exports_are_refused(curated, name):
    conn, pid, *_ = curated
    with pytest.raises(ValueError, match="may not contain '..'|outside the exports folder"):
        export.export(conn, pid, "pairs", "jsonl", out=name)
    workspace = store.workspace_of(conn)
    assert not list(workspace.parent.rglob("escape*")) and not list(workspace.rglob("*.jsonl"))


def test_names_inside_exports_work_and_are_not_overwritten(curated):
    conn, pid, *_ = curated
    base = store.exports_dir(store.workspace_of(conn)).resolve()
    with pytest.raises(ValueError, match="absolute paths are refused"):  # one rule: no absolute names at all
        export.export(conn, pid, "pairs", "jsonl", out=str(base / "sub" / "x"))
    s = export.export(conn, pid, "pairs", "jsonl", out="sub/x")
    assert Path(s["path"]) == base / "sub" / "x.jsonl"
    with pytest.raises(ValueError, match="already exists"):
        export.export(conn, pid, "pairs", "jsonl", out="sub/x")
    assert export.export(conn, pid, "pairs", "jsonl", out="sub/x", overwrite=True)["rows"] == s["rows"]
    assert not list(base.rglob(".*partial"))


def test_cli_prints_summary_and_refuses_traversal(curated, workspace):
    conn, pid, *_ = curated
    env = {"RERANK_STUDIO_HOME": str(workspace), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "core",
            "export",
            "--project",
            "scifact",
            "--format",
            "triplets",
            "--to",
            "hf",
            "--out",
            "cli",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout.strip().splitlines()[-1])
    assert summary["format"] == "triplets" and summary["container"] == "hf" and summary["rows"] > 0
    assert Path(summary["path"]).is_dir()
    bad = subprocess.run(
        [sys.executable, "-m", "core", "export", "--project", "scifact", "--out", "../x"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "may not contain '..'" in json.loads(bad.stderr)["error"]
