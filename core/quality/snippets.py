"""Snippets, the fix for truncated pairs: the window of a long passage most similar to its query, sized to fit.

An accepted snippet is stored as a new passage row (source='snippet') holding the window text, the pair
re-pointed to it, and a `snippets` row remembering the original passage — all in one transaction; reverting
re-points the pair and removes the snippet row (and the passage when nothing else uses it).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import models, store
from core.errors import UserError
from core.progress import Progress, counted, noop, scaled
from core.quality.report import QualityReport
from core.quality.tokens import token_counts

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=\S)")


@dataclass
class Snippet:
    """The window of a long passage most similar to its query, sized to fit the context."""

    pair_id: int
    query: str
    text: str
    tokens: int  # tokens of the (query, snippet) pair encoding incl. special tokens
    similarity: float
    window: tuple[int, int]  # first and last sentence (inclusive) of the passage


@dataclass
class _Plan:
    """One truncated pair's sentences and candidate windows."""

    row: int
    query: str
    sentences: list[str]
    windows: list[tuple[int, int]]
    budget: int


def split_sentences(text: str) -> list[str]:
    """Sentence-ish pieces: split after . ! ? ; followed by whitespace."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def _pieces(sentences: list[str], lengths: np.ndarray, budget: int) -> tuple[list[str], np.ndarray]:
    """Split a sentence longer than the budget into word chunks so every piece fits on its own."""
    out, out_len = [], []
    for s, n in zip(sentences, lengths):
        if n <= budget:
            out.append(s)
            out_len.append(int(n))
            continue
        words = s.split()
        per = max(1, int(len(words) * budget * 0.8 / max(int(n), 1)))
        for i in range(0, len(words), per):
            out.append(" ".join(words[i : i + per]))
            out_len.append(-1)  # counted below
    return out, np.array(out_len, dtype=np.int64)


def windows(sentences: list[str], lengths: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Every run of consecutive sentences starting at each sentence, grown while it fits the token budget."""
    out = []
    n = len(sentences)
    for i in range(n):
        used, j = 0, i
        while j < n and used + lengths[j] <= budget:
            used += lengths[j]
            j += 1
        if j > i:
            out.append((i, j - 1))
    return sorted(set(out))


def _plan(report: QualityReport, r: int, tokenizer: Any) -> _Plan:
    """Split one truncated pair's passage into pieces that fit and list its candidate windows."""
    t = report.tokens
    query = report.query_text[int(t.query_id[r])]
    passage = report.passage_text[int(t.passage_id[r])]
    budget = max(16, report.max_length - int(t.query_tokens[r]) - report.special_tokens)
    sentences = split_sentences(passage)
    lengths = token_counts(sentences, tokenizer) + 1  # +1: joining sentences can add a token at a seam
    sentences, lengths = _pieces(sentences, lengths, budget - 2)
    if (lengths < 0).any():
        lengths = token_counts(sentences, tokenizer) + 1
    return _Plan(int(r), query, sentences, windows(sentences, lengths, budget), budget)


def _fit(plan: _Plan, best: int, tokenizer: Any, max_length: int) -> tuple[str, int, tuple[int, int]]:
    """Grow the best window backwards to fill the budget, then trim until the real pair encoding fits."""
    a, b = plan.windows[best]
    sentences = plan.sentences
    lengths = token_counts(sentences, tokenizer) + 1
    while a > 0 and lengths[a - 1 : b + 1].sum() <= plan.budget:  # fill the budget with the text before it
        a -= 1
    text = " ".join(sentences[a : b + 1])
    n_tok = len(tokenizer(plan.query, text, truncation=False)["input_ids"])
    while n_tok > max_length and b > a:  # the seam estimate was off: drop the last sentence
        b -= 1
        text = " ".join(sentences[a : b + 1])
        n_tok = len(tokenizer(plan.query, text, truncation=False)["input_ids"])
    return text, n_tok, (a, b)


def propose_snippets(
    report: QualityReport,
    rows: Sequence[int],
    *,
    embed_model: str | None = None,
    train_model: str | None = None,
    workspace: Path | None = None,
    progress: Progress = noop,
) -> list[Snippet]:
    """For each truncated pair (row of report.tokens), the window of its passage most similar to the query."""
    from core.embeddings import embed_texts

    tokenizer = models.load_tokenizer(train_model)
    plans: list[_Plan] = []
    window_texts: list[str] = []
    for k, r in enumerate(rows):
        plans.append(_plan(report, int(r), tokenizer))
        window_texts.extend(" ".join(plans[-1].sentences[a : b + 1]) for a, b in plans[-1].windows)
        progress(0.2 * (k + 1) / max(1, len(rows)), "Splitting passages into windows")
    queries = [p.query for p in plans]
    q_vec = embed_texts(queries, embed_model, workspace=workspace) if queries else np.zeros((0, 0))
    w_vec = (
        embed_texts(
            window_texts,
            embed_model,
            workspace=workspace,
            progress=counted(scaled(progress, 0.2, 1.0), "Embedding windows"),
        )
        if window_texts
        else np.zeros((0, 0))
    )
    out, cursor = [], 0
    for k, plan in enumerate(plans):
        if not plan.windows:
            continue
        sims = w_vec[cursor : cursor + len(plan.windows)] @ q_vec[k]
        cursor += len(plan.windows)
        best = int(np.argmax(sims))
        text, n_tok, window = _fit(plan, best, tokenizer, report.max_length)
        out.append(
            Snippet(int(report.tokens.pair_id[plan.row]), plan.query, text, n_tok, float(sims[best]), window)
        )
    progress(1.0, "Snippets ready")
    return out


def _accept_one(conn: sqlite3.Connection, project: int, s: Snippet) -> bool:
    """Re-point one pair to its snippet passage (inside the caller's transaction); False when skipped."""
    row = conn.execute(
        "SELECT passage_id, query_id FROM pairs WHERE id = ? AND project_id = ?", (s.pair_id, project)
    ).fetchone()
    if row is None:
        raise UserError(f"Pair {s.pair_id} is not in this project (was it deleted?).")
    if conn.execute("SELECT 1 FROM snippets WHERE pair_id = ?", (s.pair_id,)).fetchone():
        return False  # already shortened; revert first to choose another window
    original = conn.execute("SELECT doc_id FROM passages WHERE id = ?", (row["passage_id"],)).fetchone()
    [snippet_id] = store.upsert_passages(
        conn, project, [s.text], source="snippet", doc_ids=[original["doc_id"]]
    )
    clash = conn.execute(
        "SELECT 1 FROM pairs WHERE query_id = ? AND passage_id = ? AND id != ?",
        (row["query_id"], snippet_id, s.pair_id),
    ).fetchone()
    if clash:
        return False
    conn.execute("UPDATE pairs SET passage_id = ? WHERE id = ?", (snippet_id, s.pair_id))
    conn.execute(
        "INSERT INTO snippets (project_id, pair_id, original_passage_id, snippet_passage_id, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (project, s.pair_id, row["passage_id"], snippet_id, store.now()),
    )
    return True


def accept_snippets(conn: sqlite3.Connection, project: int, snippets: Sequence[Snippet]) -> int:
    """Replace each pair's passage by its snippet (a new passage row; the original is remembered), atomically."""
    with store.transaction(conn):
        return sum(_accept_one(conn, project, s) for s in snippets)


def revert_snippets(conn: sqlite3.Connection, project: int, pair_ids: Sequence[int] | None = None) -> int:
    """Put the original passages back (all snippets of the project when pair_ids is None), atomically."""
    with store.transaction(conn):
        sql = "SELECT id, pair_id, original_passage_id, snippet_passage_id FROM snippets WHERE project_id = ?"
        rows = conn.execute(sql, (project,)).fetchall()
        if pair_ids is not None:
            wanted = {int(p) for p in pair_ids}
            rows = [r for r in rows if r["pair_id"] in wanted]
        for r in rows:
            conn.execute(
                "UPDATE pairs SET passage_id = ? WHERE id = ?", (r["original_passage_id"], r["pair_id"])
            )
            conn.execute("DELETE FROM snippets WHERE id = ?", (r["id"],))
            in_use = conn.execute(
                "SELECT (SELECT COUNT(*) FROM pairs WHERE passage_id = :p) + "
                "(SELECT COUNT(*) FROM negatives WHERE passage_id = :p OR positive_id = :p) + "
                "(SELECT COUNT(*) FROM snippets WHERE snippet_passage_id = :p)",
                {"p": r["snippet_passage_id"]},
            ).fetchone()[0]
            if not in_use:
                conn.execute(
                    "DELETE FROM passages WHERE id = ? AND source = 'snippet'", (r["snippet_passage_id"],)
                )
    return len(rows)


def snippet_origins(conn: sqlite3.Connection, project: int) -> dict[int, int]:
    """snippet passage id -> original passage id (mining leaves the original out of the pool)."""
    rows = conn.execute(
        "SELECT snippet_passage_id, original_passage_id FROM snippets WHERE project_id = ?", (project,)
    ).fetchall()
    return {int(a): int(b) for a, b in rows}
