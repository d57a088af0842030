"""The sample project: a small real SciFact subset, so a first start shows every page working on real data.

`python -m core sample` loads sample_data/scifact into the project "SciFact sample" when it is absent
(idempotent). `python -m core sample --build-from ../shared/data/scifact` rebuilds that folder reproducibly.
"""

from __future__ import annotations

import csv
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

from core import store

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT / "sample_data" / "scifact"
PROJECT = "SciFact sample"


def build(
    source: Path,
    target: Path = SAMPLE_DIR,
    *,
    train_pairs: int = 300,
    test_queries: int = 100,
    extra_docs: int = 1000,
    seed: int = 13,
) -> dict[str, int]:
    """Write a BEIR-style subset of SciFact: whole train queries until `train_pairs`, `test_queries` test
    queries, their relevant abstracts plus `extra_docs` others as the mining pool. Same seed, same files."""
    source, target = Path(source), Path(target)
    rng = random.Random(seed)
    qrels: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for split in ("train", "test"):
        with open(source / "qrels" / f"{split}.tsv", encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        by_query: dict[str, list[tuple[str, str]]] = {}
        for r in rows:
            by_query.setdefault(r["query-id"], []).append((r["corpus-id"], r["score"]))
        qrels[split] = by_query
    train_ids = sorted(qrels["train"], key=int)
    rng.shuffle(train_ids)
    chosen_train, n = [], 0
    for q in train_ids:
        if n >= train_pairs:
            break
        chosen_train.append(q)
        n += len(qrels["train"][q])
    texts = {}
    with open(source / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            texts[d["_id"]] = d["text"].strip()
    # SciFact repeats a few claim texts across train and test: keep those out so no query is on both sides.
    train_texts = {texts[q] for q in qrels["train"]}
    clean_test = [q for q in sorted(qrels["test"], key=int) if texts[q] not in train_texts]
    chosen_test = sorted(rng.sample(clean_test, test_queries), key=int)
    chosen_train.sort(key=int)
    relevant = {
        d
        for split, qs in (("train", chosen_train), ("test", chosen_test))
        for q in qs
        for d, _ in qrels[split][q]
    }
    corpus_lines: dict[str, str] = {}
    with open(source / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            corpus_lines[json.loads(line)["_id"]] = line if line.endswith("\n") else line + "\n"
    others = sorted((d for d in corpus_lines if d not in relevant), key=int)
    pool = relevant | set(rng.sample(others, extra_docs))
    (target / "qrels").mkdir(parents=True, exist_ok=True)
    with open(target / "corpus.jsonl", "w", encoding="utf-8") as out:
        for d in sorted(pool, key=int):
            out.write(corpus_lines[d])
    wanted = set(chosen_train) | set(chosen_test)
    with (
        open(source / "queries.jsonl", encoding="utf-8") as fh,
        open(target / "queries.jsonl", "w", encoding="utf-8") as out,
    ):
        for line in fh:
            if json.loads(line)["_id"] in wanted:
                out.write(line if line.endswith("\n") else line + "\n")
    counts: dict[str, int] = {}
    for split, qs in (("train", chosen_train), ("test", chosen_test)):
        with open(target / "qrels" / f"{split}.tsv", "w", encoding="utf-8", newline="") as out:
            out.write("query-id\tcorpus-id\tscore\n")
            judged = [(q, d, s) for q in qs for d, s in qrels[split][q]]
            for q, d, s in judged:
                out.write(f"{q}\t{d}\t{s}\n")
        counts[f"{split}_queries"], counts[f"{split}_pairs"] = len(qs), len(judged)
    counts["corpus"] = len(pool)
    counts["bytes"] = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    return counts


def load(conn: sqlite3.Connection, name: str = PROJECT, folder: Path = SAMPLE_DIR) -> dict[str, Any]:
    """Import the sample into its own project unless it is already there (one transaction, idempotent)."""
    from core.ingest import ImportSpec, run_import

    row = conn.execute("SELECT id FROM projects WHERE name = ?", (name,)).fetchone()
    if row is not None and store.project_counts(conn, int(row["id"]))["train_pairs"] > 0:
        return {
            "project": name,
            "project_id": int(row["id"]),
            "created": False,
            **store.project_counts(conn, int(row["id"])),
        }
    summary = run_import(conn, name, ImportSpec(folder, train_name="sample_data/scifact"))
    return {
        "project": name,
        "project_id": summary["project_id"],
        "created": True,
        **summary["project_totals"],
        "warnings": summary["warnings"],
    }


def cli_arguments(parser) -> None:
    parser.add_argument("--name", default=PROJECT, help=f"project name (default: {PROJECT!r})")
    parser.add_argument(
        "--build-from",
        type=Path,
        metavar="SCIFACT_DIR",
        help="rebuild sample_data/scifact from a BEIR SciFact folder instead of loading it",
    )
    parser.add_argument("--workspace", type=Path, help="workspace folder (default: RERANK_STUDIO_HOME)")


def cli_main(args) -> dict[str, Any]:
    if args.build_from:
        return {"built": str(SAMPLE_DIR), **build(args.build_from)}
    conn = store.connect(args.workspace)
    try:
        return load(conn, args.name)
    finally:
        conn.close()
