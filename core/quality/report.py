"""The quality report: everything the Quality page shows, computed once per data version and model choice.

Expensive parts are cached on disk (core.quality.cache, no pickle): the whole report by the project's data
fingerprint, and each side (queries, passages) by a hash of its own inputs, so a review judgement that changes
the data version re-uses the embedding neighbours and only re-counts what depends on it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import models, store
from core.errors import UserError
from core.progress import Progress, counted, noop, scaled
from core.quality.cache import cache_folder, cached, data_fingerprint, digest
from core.quality.sides import TextSide, build_side
from core.quality.tokens import TokenCache, special_tokens

DEFAULT_MAX_LENGTH = 512
REPORT_VERSION = 4  # 4: cache without pickle
_MEMO: dict[str, Any] = {}
ROLE_ORDER = {"positive": 0, "labelled negative": 1, "mined hard negative": 2, "mined random negative": 3}


@dataclass
class TokenTable:
    """One row per (query, passage) example the model will see, with token counts."""

    pair_id: np.ndarray  # pairs.id, or negatives.id for mined rows
    kind: np.ndarray  # 'pair' | 'mined'
    split: np.ndarray  # 'train' | 'test'
    label: np.ndarray
    query_id: np.ndarray
    passage_id: np.ndarray
    query_tokens: np.ndarray
    passage_tokens: np.ndarray
    total: np.ndarray  # query + passage + special tokens of the pair encoding
    overflow: np.ndarray  # tokens cut at max_length (0 when it fits)


@dataclass
class QualityReport:
    """Everything the Quality page shows, computed once per data version and model choice."""

    key: str
    project: int
    max_length: int
    tokenizer: str
    embedder: str
    special_tokens: int
    queries: TextSide
    passages: TextSide
    tokens: TokenTable
    query_text: dict[int, str]
    passage_text: dict[int, str]
    counts: dict[str, Any] = field(default_factory=dict)


KINDS = {"TextSide": TextSide, "TokenTable": TokenTable, "QualityReport": QualityReport}


def _read(conn: sqlite3.Connection, project: int) -> dict[str, Any]:
    """Queries, pairs, mined negatives and the texts of the passages they use."""
    q = conn.execute(
        "SELECT id, text, split FROM queries WHERE project_id = ? ORDER BY id", (project,)
    ).fetchall()
    pairs = conn.execute(
        """SELECT p.id, p.query_id, p.passage_id, p.label, q.split FROM pairs p
           JOIN queries q ON q.id = p.query_id WHERE p.project_id = ? ORDER BY p.id""",
        (project,),
    ).fetchall()
    negs = conn.execute(
        """SELECT n.id, n.query_id, n.passage_id, n.kind, n.status, q.split FROM negatives n
           JOIN queries q ON q.id = n.query_id WHERE n.project_id = ? ORDER BY n.id""",
        (project,),
    ).fetchall()
    used = {r["passage_id"] for r in pairs} | {r["passage_id"] for r in negs}
    passages = {}
    if used:
        for row in conn.execute("SELECT id, text FROM passages WHERE project_id = ? ORDER BY id", (project,)):
            if row[0] in used:
                passages[row[0]] = row[1]
    return {"queries": q, "pairs": pairs, "negatives": negs, "passages": passages}


def settings_models(conn: sqlite3.Connection, project: int) -> tuple[str, str, int]:
    """The embedding model (the last mining run's), the model to train and its max length (the last training
    run's, or the project's settings), so the page measures what the user actually chose."""
    s = store.project_settings(conn, project)
    mined = conn.execute(
        "SELECT params FROM mining_runs WHERE project_id = ? ORDER BY id DESC LIMIT 1", (project,)
    ).fetchone()
    trained = conn.execute(
        "SELECT config FROM runs WHERE project_id = ? ORDER BY created_at DESC LIMIT 1", (project,)
    ).fetchone()
    mine_params = json.loads(mined[0]) if mined else {}
    run_config = json.loads(trained[0]) if trained else {}
    embedder = s.get("embedding_model") or mine_params.get("model") or models.BUNDLED
    base = s.get("base_model") or run_config.get("base_model") or models.BUNDLED
    max_length = int(s.get("max_length") or run_config.get("max_length") or DEFAULT_MAX_LENGTH)
    return embedder, base, max_length


def model_choice(
    conn: sqlite3.Connection,
    project: int,
    embed_model: str | None = None,
    train_model: str | None = None,
    max_length: int | None = None,
) -> tuple[str, str, int]:
    """The models and length a report is for: those given, else the project's choice (`settings_models`)."""
    embedder, base, length = settings_models(conn, project)
    return embed_model or embedder, train_model or base, int(max_length if max_length is not None else length)


def report_key(
    conn: sqlite3.Connection,
    project: int,
    embed_model: str | None = None,
    train_model: str | None = None,
    max_length: int | None = None,
) -> str:
    """The ONE cache key of a report: `analyse` files it under this key and the pages look it up by it."""
    embedder, base, length = model_choice(conn, project, embed_model, train_model, max_length)
    return digest(
        REPORT_VERSION,
        project,
        data_fingerprint(conn, project),
        models.model_key(embedder),
        models.model_key(base),
        length,
    )


def _passage_roles(data: dict[str, Any]) -> dict[int, str]:
    """Each training passage's strongest role: positive, labelled negative, mined hard / random negative."""
    role: dict[int, str] = {}
    for r in data["pairs"]:
        if r["split"] == "train":
            g = "positive" if r["label"] > 0 else "labelled negative"
            if ROLE_ORDER[g] < ROLE_ORDER.get(role.get(r["passage_id"], ""), 9):
                role[r["passage_id"]] = g
    for r in data["negatives"]:
        if r["split"] == "train":
            g = f"mined {r['kind']} negative"
            if ROLE_ORDER[g] < ROLE_ORDER.get(role.get(r["passage_id"], ""), 9):
                role[r["passage_id"]] = g
    return role


def _embedded_side(
    ids: np.ndarray,
    texts: list[str],
    group: np.ndarray,
    *,
    embed_model: str | None,
    workspace: Path,
    progress: Progress,
    label: str,
    base_mask: np.ndarray,
    cross_from: np.ndarray | None,
) -> TextSide:
    """Embed one side (cached vectors) and build its neighbours, map and figures."""
    from core.embeddings import embed_texts

    vecs = embed_texts(
        texts,
        embed_model,
        workspace=workspace,
        progress=counted(scaled(progress, 0.0, 0.5), f"Embedding {label}"),
    )
    return build_side(
        ids,
        texts,
        group,
        vecs,
        base_mask=base_mask,
        cross_from=cross_from,
        progress=scaled(progress, 0.5, 1.0),
        label=label,
    )


def _sides(
    data: dict[str, Any], folder: Path, embed_model: str | None, workspace: Path, progress: Progress
) -> tuple[TextSide, TextSide]:
    """The query side (train neighbours, test -> nearest train) and the training passage side, each cached."""
    embed_key = models.model_key(embed_model)
    q_ids = np.array([r["id"] for r in data["queries"]], dtype=np.int64)
    q_texts = [r["text"] for r in data["queries"]]
    q_split = np.array([r["split"] for r in data["queries"]], dtype=object)
    q_key = digest("q", embed_key, q_ids, q_texts, list(q_split))
    queries = cached(
        folder,
        f"queries-{q_key}",
        lambda: _embedded_side(
            q_ids,
            q_texts,
            q_split,
            embed_model=embed_model,
            workspace=workspace,
            progress=progress,
            label="queries",
            base_mask=q_split == "train",
            cross_from=np.flatnonzero(q_split == "test"),
        ),
        KINDS,
    )
    role = _passage_roles(data)
    p_ids = np.array(sorted(role), dtype=np.int64)
    p_texts = [data["passages"][i] for i in p_ids]
    p_group = np.array([role[i] for i in p_ids], dtype=object)
    p_key = digest("p", embed_key, p_ids, [store.text_hash(t) for t in p_texts], list(p_group))
    passages = cached(
        folder,
        f"passages-{p_key}",
        lambda: _embedded_side(
            p_ids,
            p_texts,
            p_group,
            embed_model=embed_model,
            workspace=workspace,
            progress=progress,
            label="passages",
            base_mask=np.ones(len(p_ids), dtype=bool),
            cross_from=None,
        ),
        KINDS,
    )
    return queries, passages


def _token_table(
    data: dict[str, Any], counts: dict[str, dict[int, int]], specials: int, max_length: int
) -> TokenTable:
    """Every pair and every mined negative not judged relevant, with its token counts and overflow."""
    rows = [
        (r["id"], "pair", r["split"], float(r["label"]), r["query_id"], r["passage_id"])
        for r in data["pairs"]
    ] + [
        (r["id"], "mined", r["split"], 0.0, r["query_id"], r["passage_id"])
        for r in data["negatives"]
        if r["status"] != "relevant"
    ]
    tq = np.array([counts["q"][r[4]] for r in rows], dtype=np.int32)
    tp = np.array([counts["p"][r[5]] for r in rows], dtype=np.int32)
    total = tq + tp + specials
    return TokenTable(
        pair_id=np.array([r[0] for r in rows], dtype=np.int64),
        kind=np.array([r[1] for r in rows], dtype=object),
        split=np.array([r[2] for r in rows], dtype=object),
        label=np.array([r[3] for r in rows], dtype=np.float32),
        query_id=np.array([r[4] for r in rows], dtype=np.int64),
        passage_id=np.array([r[5] for r in rows], dtype=np.int64),
        query_tokens=tq,
        passage_tokens=tp,
        total=total.astype(np.int32),
        overflow=np.maximum(total - max_length, 0).astype(np.int32),
    )


def _counts(conn: sqlite3.Connection, project: int, data: dict[str, Any]) -> dict[str, Any]:
    """The project's counts plus the mined-negative figures the checklist needs."""
    train_negs = [r for r in data["negatives"] if r["split"] == "train"]
    out = store.project_counts(conn, project)
    out.update(
        hard_negatives=sum(1 for r in train_negs if r["kind"] == "hard"),
        random_negatives=sum(1 for r in train_negs if r["kind"] == "random"),
        reviewed_hard=sum(1 for r in train_negs if r["kind"] == "hard" and r["status"] != "unjudged"),
        false_negatives=sum(1 for r in train_negs if r["status"] == "relevant"),
        snippets=int(
            conn.execute("SELECT COUNT(*) FROM snippets WHERE project_id = ?", (project,)).fetchone()[0]
        ),
    )
    return out


def _compute(
    conn: sqlite3.Connection,
    project: int,
    key: str,
    *,
    embed_model: str | None,
    train_model: str | None,
    max_length: int,
    progress: Progress,
    workspace: Path,
) -> QualityReport:
    """The report from scratch (each side may still come from its own cache)."""
    folder = cache_folder(workspace)
    progress(0.0, "Reading the project")
    data = _read(conn, project)
    tokenizer = models.load_tokenizer(train_model)
    specials = special_tokens(tokenizer)
    queries, passages = _sides(data, folder, embed_model, workspace, progress)
    progress(0.0, "Counting tokens")
    q_ids = [r["id"] for r in data["queries"]]
    all_p = sorted(data["passages"])
    texts = [r["text"] for r in data["queries"]] + [data["passages"][i] for i in all_p]
    n = TokenCache(folder, models.model_key(train_model)).counts(texts, tokenizer, progress)
    counts = {
        "q": dict(zip(q_ids, n[: len(q_ids)].tolist())),
        "p": dict(zip(all_p, n[len(q_ids) :].tolist())),
    }
    table = _token_table(data, counts, specials, max_length)
    summary = _counts(conn, project, data)
    progress(1.0, "Done")
    return QualityReport(
        key=key,
        project=project,
        max_length=max_length,
        tokenizer=models.model_key(train_model),
        embedder=models.model_key(embed_model),
        special_tokens=specials,
        queries=queries,
        passages=passages,
        tokens=table,
        query_text={r["id"]: r["text"] for r in data["queries"]},
        passage_text=data["passages"],
        counts=summary,
    )


def analyse(
    conn: sqlite3.Connection,
    project: int,
    *,
    embed_model: str | None = None,
    train_model: str | None = None,
    max_length: int | None = None,
    progress: Progress = noop,
    workspace: Path | None = None,
) -> QualityReport:
    """The full quality report for a project, from cache when the data and the model choice are unchanged.

    Models and length left out are the project's choice (`model_choice`), the same ones `report_key` assumes."""
    embed_model, train_model, max_length = model_choice(conn, project, embed_model, train_model, max_length)
    if max_length < 8:
        raise UserError(f"max_length must be at least 8 tokens, got {max_length}.")
    workspace = workspace or store.workspace_of(conn)
    key = report_key(conn, project, embed_model, train_model, max_length)
    if key in _MEMO:
        return _MEMO[key]
    report = cached(
        cache_folder(workspace),
        f"report-{key}",
        lambda: _compute(
            conn,
            project,
            key,
            embed_model=embed_model,
            train_model=train_model,
            max_length=max_length,
            progress=progress,
            workspace=workspace,
        ),
        KINDS,
        keep=3,
    )
    _MEMO.clear()  # one report per process: a page rerun (slider move) must not re-read the cache
    _MEMO[key] = report
    return report


def forget_memo() -> None:
    """Drop the in-process report (benches time a re-open from the disk cache)."""
    _MEMO.clear()
