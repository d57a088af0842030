"""The plan of a mining run: every input checked and gathered before any model loads, so a bad request is
refused with its reason and a good one knows its queries, positives, pool and rank range."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import models, store
from core.ingest import read_corpus_file
from core.mining.params import CROSS_ENCODER_PAIRS_PER_SECOND, MiningError, MiningParams, check_params
from core.quality.snippets import snippet_origins


@dataclass
class Plan:
    """What a run will mine: queries, their positives, the passage pool and the excluded passages."""

    project: int
    params: MiningParams
    query_ids: list[int]
    query_texts: list[str]
    positives: list[list[int]]  # per query: pool indices of its positives (label > 0 or judged relevant)
    pool_ids: list[int | None]  # passage ids; None for extra-corpus texts not yet stored
    pool_texts: list[str]
    extra_texts: list[str]
    range_max: int
    max_positives: int
    skipped_queries: int = 0  # train queries without any positive

    @property
    def pair_count(self) -> int:
        """(query, positive) pairs the miner is given."""
        return sum(len(p) for p in self.positives)


def _normalise(texts: Sequence[str]) -> list[str]:
    """Extra texts given as a list: whitespace collapsed, empty texts dropped, duplicates removed (first kept)."""
    return list(dict.fromkeys(t for t in (" ".join(t.split()) for t in texts) if t))


def _derived_range_max(params: MiningParams, max_positives: int) -> int:
    """The library's own rule for range_max=None (kept in step with hard_negatives.py)."""
    if params.has_filter:
        return params.range_min + params.num_negatives * 10 + max_positives
    return params.range_min + params.num_negatives + max_positives


def _positive_rows(conn: sqlite3.Connection, project: int) -> list[sqlite3.Row]:
    """(query id, query text, passage id) of every training positive: labelled > 0 or judged relevant."""
    return conn.execute(
        """SELECT q.id AS qid, q.text AS query, p.passage_id AS pid
           FROM pairs p JOIN queries q ON q.id = p.query_id
           WHERE p.project_id = ? AND q.split = 'train' AND p.label > 0
           UNION
           SELECT n.query_id, q.text, n.passage_id FROM negatives n JOIN queries q ON q.id = n.query_id
           WHERE n.project_id = ? AND n.status = 'relevant' AND q.split = 'train'
           ORDER BY 1, 3""",
        (project, project),
    ).fetchall()


def _pool(
    conn: sqlite3.Connection, project: int, extra: list[str], positive_ids: set[int]
) -> tuple[list[int | None], list[str], list[str]]:
    """The project's passages (minus the full originals of accepted snippets, which would otherwise be mined
    as negatives of their own query) plus the extra texts not already stored."""
    originals = set(snippet_origins(conn, project).values()) - positive_ids
    passages = [p for p in store.fetch_passages(conn, project) if p["id"] not in originals]
    pool_ids: list[int | None] = [p["id"] for p in passages]
    pool_texts = [p["text"] for p in passages]
    known = {store.text_hash(t) for t in pool_texts} | {
        r[0] for r in conn.execute("SELECT hash FROM passages WHERE project_id = ?", (project,))
    }
    extra_new = [t for t in extra if store.text_hash(t) not in known]
    return pool_ids + [None] * len(extra_new), pool_texts + extra_new, extra_new


def _range_max(params: MiningParams, pool: int, max_positives: int) -> int:
    """The rank range the miner searches, refused when the pool is too small for it."""
    if params.range_max is None:
        range_max = min(_derived_range_max(params, max_positives), pool - max_positives)
        if range_max - params.range_min < params.num_negatives:
            raise MiningError(
                f"The corpus holds {pool} passages: too few to pick {params.num_negatives} negatives after "
                f"skipping range_min={params.range_min} and up to {max_positives} positives per query. Add "
                "passages (an extra corpus file) or lower num_negatives / range_min."
            )
    else:
        range_max = params.range_max
        if pool - max_positives < range_max:
            raise MiningError(
                f"The corpus holds {pool} passages, fewer than the rank range needs: range_max={range_max} plus "
                f"up to {max_positives} positives per query. Add passages (an extra corpus file) or lower "
                f"range_max to at most {max(pool - max_positives, 0)}."
            )
    if params.random_negatives and pool - max_positives - params.num_negatives < params.random_negatives:
        raise MiningError(
            f"The corpus holds {pool} passages: too few for {params.random_negatives} random "
            f"negatives on top of {params.num_negatives} hard ones per query."
        )
    return range_max


def plan(
    conn: sqlite3.Connection,
    project: int,
    params: MiningParams,
    extra_corpus: Sequence[str] | str | Path | None = None,
) -> Plan:
    """Check every input and gather the data, raising MiningError/ModelError with the reason before any work."""
    check_params(params)
    models.resolve(params.model)  # fails fast on a folder that is not a model, without loading anything
    if params.cross_encoder:
        models.resolve(params.cross_encoder)
    extra = (
        read_corpus_file(extra_corpus)
        if isinstance(extra_corpus, (str, Path))
        else _normalise(extra_corpus or [])
    )
    rows = _positive_rows(conn, project)
    if not rows:
        raise MiningError(
            "This project has no training pairs with a positive label: import (query, relevant "
            "passage) pairs on the Data page first."
        )
    train_queries = int(
        conn.execute(
            "SELECT COUNT(*) FROM queries WHERE project_id = ? AND split = 'train'", (project,)
        ).fetchone()[0]
    )
    pool_ids, pool_texts, extra_new = _pool(conn, project, extra, {r["pid"] for r in rows})
    index_of = {pid: i for i, pid in enumerate(pool_ids) if pid is not None}
    query_ids: list[int] = []
    query_texts: list[str] = []
    positives: list[list[int]] = []
    for r in rows:
        if not query_ids or query_ids[-1] != r["qid"]:
            query_ids.append(r["qid"])
            query_texts.append(r["query"])
            positives.append([])
        if index_of[r["pid"]] not in positives[-1]:
            positives[-1].append(index_of[r["pid"]])
    max_positives = max(len(p) for p in positives)
    range_max = _range_max(params, len(pool_texts), max_positives)
    return Plan(
        project,
        params,
        query_ids,
        query_texts,
        positives,
        pool_ids,
        pool_texts,
        extra_new,
        range_max,
        max_positives,
        skipped_queries=train_queries - len(query_ids),
    )


def cross_encoder_cost(p: Plan) -> dict[str, Any]:
    """Pairs a cross-encoder must score and the seconds that takes, shown before the user commits to it."""
    params = p.params
    if not params.cross_encoder:
        return {"pairs": 0, "seconds": 0.0}
    n_queries = len(p.query_ids)
    rescoring = (
        n_queries * (p.range_max + p.max_positives) + p.pair_count
        if params.cross_encoder_rescoring and params.has_filter
        else 0
    )
    opinion = n_queries * (params.num_negatives + params.random_negatives) + p.pair_count
    pairs = rescoring + opinion
    return {
        "pairs": pairs,
        "rescoring_pairs": rescoring,
        "second_opinion_pairs": opinion,
        "seconds": round(pairs / CROSS_ENCODER_PAIRS_PER_SECOND, 1),
    }
