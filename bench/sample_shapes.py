"""A second development data shape built from SciFact: many graded labelled passages per query and long queries.

SciFact is short claims, one relevant abstract each, binary labels; the training defaults were chosen on it. This
writes a BEIR folder whose shape differs the way real data often does, so the defaults run on more than one shape:

- each query judges `per_query` passages on a 0-3 scale: its SciFact-relevant abstracts are 3; of the other abstracts
  ranked by BM25 for the claim, the first 9 are 2, the next 30 are 1, the rest up to `per_query` are 0. Grades 1-2
  are lexical-neighbour pseudo-grades: the point is the shape (tens of positives and over a hundred labelled
  negatives per query), not the truth of each grade;
- with `long_queries`, each query is the claim followed by a context paragraph (the first ~200 words of an
  unjudged abstract that BM25 ranks just below the judged ones), so the query alone runs to hundreds of tokens.

`python -m core ingest FOLDER --project NAME` imports it like any BEIR folder.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from core.ingest.beir import read_raw

GRADE_BANDS = ((9, 2), (30, 1))  # (how many BM25 neighbours, grade) after the relevant abstracts
CONTEXT_WORDS = 200


def _read(source: Path) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, set[str]]]]:
    """(corpus id -> title. text, query id -> text, split -> query id -> relevant ids) of a BEIR SciFact folder."""
    raw = read_raw(source)
    corpus = {d: t.strip(". ") for d, t in raw["corpus"].items()}
    queries = {q: t.strip() for q, t in raw["queries"].items()}
    qrels = {
        split: {q: {d for d, g in docs.items() if g > 0} for q, docs in raw["qrels"][split].items()}
        for split in ("train", "test")
    }
    return corpus, queries, {split: {q: ds for q, ds in qs.items() if ds} for split, qs in qrels.items()}


def grade_query(relevant: set[str], ranked: list[str], per_query: int) -> dict[str, int]:
    """Grades 0-3 of `per_query` passages: relevant 3, then BM25 neighbours in bands of 2 and 1, the rest 0."""
    grades = {d: 3 for d in sorted(relevant)}
    others = [d for d in ranked if d not in grades]
    at = 0
    for size, grade in GRADE_BANDS:
        for d in others[at : at + size]:
            grades[d] = grade
        at += size
    for d in others[at:]:
        if len(grades) >= per_query:
            break
        grades[d] = 0
    return grades


def build_graded(
    source: Path,
    target: Path,
    *,
    queries: int = 50,
    per_query: int = 200,
    test_queries: int = 10,
    long_queries: bool = True,
    seed: int = 13,
) -> dict[str, Any]:
    """Write the graded, long-query BEIR folder at `target`; returns its sizes (queries, judged pairs, tokens)."""
    from core.scoring.first_stage import bm25_search

    source, target = Path(source), Path(target)
    corpus, texts, qrels = _read(source)
    rng = random.Random(seed)
    train_ids = rng.sample(sorted(qrels["train"], key=int), min(queries, len(qrels["train"])))
    train_texts = {texts[q] for q in train_ids}
    test_pool = [q for q in sorted(qrels["test"], key=int) if texts[q] not in train_texts]
    test_ids = rng.sample(test_pool, min(test_queries, len(test_pool)))
    chosen = [("train", q) for q in train_ids] + [("test", q) for q in test_ids]
    ranked = bm25_search(corpus, [texts[q] for _, q in chosen], per_query + 40)
    out_queries, qrel_rows = {}, {"train": [], "test": []}
    for (split, q), ranking in zip(chosen, ranked):
        ids = [d for d, _ in ranking]
        grades = grade_query(qrels[split][q], ids, per_query)
        text = texts[q]
        if long_queries:
            context = next((d for d in ids if d not in grades), ids[-1])
            text += " Context: " + " ".join(corpus[context].split()[:CONTEXT_WORDS])
        out_queries[q] = text
        qrel_rows[split] += [(q, d, g) for d, g in grades.items()]
    target.mkdir(parents=True, exist_ok=True)
    (target / "qrels").mkdir(exist_ok=True)
    with open(target / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for d, t in corpus.items():
            fh.write(json.dumps({"_id": d, "title": "", "text": t}) + "\n")
    with open(target / "queries.jsonl", "w", encoding="utf-8") as fh:
        for q, t in out_queries.items():
            fh.write(json.dumps({"_id": q, "text": t}) + "\n")
    for split, rows in qrel_rows.items():
        with open(target / "qrels" / f"{split}.tsv", "w", encoding="utf-8", newline="") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            fh.writelines(f"{q}\t{d}\t{g}\n" for q, d, g in rows)
    train = qrel_rows["train"]
    return {
        "train_queries": len(train_ids),
        "test_queries": len(test_ids),
        "train_pairs": len(train),
        "train_positives": sum(1 for *_, g in train if g > 0),
        "grades": {g: sum(1 for *_, x in train if x == g) for g in range(4)},
        "query_words_mean": round(
            sum(len(t.split()) for t in out_queries.values()) / max(1, len(out_queries)), 1
        ),
    }
