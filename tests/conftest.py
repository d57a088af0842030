"""Shared fixtures: an isolated workspace per test, and real SciFact data (never the network)."""

from __future__ import annotations

import csv
import json
import os
from functools import lru_cache
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = Path(os.environ.get("SCIFACT_DIR", ROOT.parent / "shared" / "data" / "scifact"))


@lru_cache(maxsize=1)
def load_scifact() -> dict:
    """SciFact as plain dicts: corpus {id: text}, queries {id: text}, qrels {split: {qid: {did: score}}}."""
    if not (SCIFACT / "corpus.jsonl").is_file():
        pytest.fail(f"SciFact data not found at {SCIFACT} (set SCIFACT_DIR)")
    corpus, queries = {}, {}
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            corpus[d["_id"]] = (d["title"] + ". " + d["text"]).strip() if d.get("title") else d["text"]
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            queries[d["_id"]] = d["text"]
    qrels: dict[str, dict[str, dict[str, int]]] = {}
    for split in ("train", "test"):
        qrels[split] = {}
        with open(SCIFACT / "qrels" / f"{split}.tsv", encoding="utf-8") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                qrels[split].setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return {"corpus": corpus, "queries": queries, "qrels": qrels}


@pytest.fixture(scope="session")
def scifact() -> dict:
    return load_scifact()


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
