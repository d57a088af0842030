"""Mining results in the store: a run's candidates saved in one transaction (judged ones kept), its stats,
and the reads the Mine page draws from."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

import numpy as np

from core import store

if TYPE_CHECKING:
    from core.mining.plan import Plan


def summary(x: np.ndarray) -> dict[str, float]:
    """Count, mean and quartiles of a score list (rounded for JSON)."""
    if len(x) == 0:
        return {"count": 0}
    q = np.quantile(x, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {
        "count": int(len(x)),
        "mean": round(float(x.mean()), 4),
        "min": round(float(q[0]), 4),
        "p25": round(float(q[1]), 4),
        "median": round(float(q[2]), 4),
        "p75": round(float(q[3]), 4),
        "max": round(float(q[4]), 4),
    }


def _insert(
    conn: sqlite3.Connection,
    p: Plan,
    run_id: int,
    rows: list[dict[str, Any]],
    risk: np.ndarray,
    ce_scores: np.ndarray | None,
) -> dict[str, int]:
    """New passages, unjudged negatives replaced, judged ones kept (inside the caller's transaction)."""
    ids = list(p.pool_ids)
    if p.extra_texts:
        new_ids = store.upsert_passages(conn, p.project, p.extra_texts, source="corpus")
        ids[len(ids) - len(new_ids) :] = new_ids
    replaced = conn.execute(
        "DELETE FROM negatives WHERE project_id = ? AND status = 'unjudged'", (p.project,)
    ).rowcount
    inserted = 0
    now = store.now()
    for k, r in enumerate(rows):
        cur = conn.execute(
            """INSERT OR IGNORE INTO negatives (project_id, query_id, passage_id, positive_id, mining_run_id,
                   kind, rank, score, positive_score, ce_score, risk, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                p.project,
                p.query_ids[r["q"]],
                ids[r["i"]],
                ids[r["pos"]],
                run_id,
                r["kind"],
                r["rank"],
                r["score"],
                r["pos_score"],
                None if ce_scores is None else float(ce_scores[k]),
                float(risk[k]),
                now,
            ),
        )
        inserted += cur.rowcount
    kept = int(
        conn.execute(
            "SELECT COUNT(*) FROM negatives WHERE project_id = ? AND status != 'unjudged'", (p.project,)
        ).fetchone()[0]
    )
    return {
        "stored": inserted,
        "replaced_unjudged": replaced,
        "kept_judged": kept,
        "already_judged": len(rows) - inserted,
    }


def save_run(
    conn: sqlite3.Connection,
    p: Plan,
    run_id: int,
    rows: list[dict[str, Any]],
    risk: np.ndarray,
    ce_scores: np.ndarray | None,
    found: dict[str, Any],
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Store the candidates and mark the run completed with its stats, all in one transaction."""
    with store.transaction(conn):
        written = _insert(conn, p, run_id, rows, risk, ce_scores)
        hard_scores = np.array([r["score"] for r in rows if r["kind"] == "hard"])
        random_scores = np.array([r["score"] for r in rows if r["kind"] == "random"])
        per = np.array(found["per_query"])
        stats = {
            "run_id": run_id,
            "queries": len(p.query_ids),
            "queries_without_positive": p.skipped_queries,
            "pool": len(p.pool_texts),
            "extra_corpus_added": len(p.extra_texts),
            "range_max": p.range_max,
            "asked_per_query": p.params.num_negatives,
            "hard_negatives": int(len(hard_scores)),
            "random_negatives": int(len(random_scores)),
            "negatives_per_query": {
                "min": int(per.min()),
                "mean": round(float(per.mean()), 2),
                "max": int(per.max()),
            },
            "short_queries": int(sum(found["short"].values())),
            "short_reasons": found["short"],
            "positive_scores": summary(np.array(found["positive_scores"])),
            "negative_scores": summary(hard_scores),
            "random_scores": summary(random_scores),
            "cache": extra["cache"],
            "cross_encoder_cost": extra["cross_encoder_cost"],
            **written,
            "seconds": extra["seconds"],
        }
        conn.execute(
            "UPDATE mining_runs SET status = 'completed', stats = ? WHERE id = ?", (json.dumps(stats), run_id)
        )
    return stats


def latest_run(conn: sqlite3.Connection, project: int) -> dict[str, Any] | None:
    """The newest mining run with its parameters and stats."""
    row = conn.execute(
        "SELECT * FROM mining_runs WHERE project_id = ? ORDER BY id DESC LIMIT 1", (project,)
    ).fetchone()
    if row is None:
        return None
    out = dict(row)
    out["params"], out["stats"] = json.loads(out["params"]), json.loads(out["stats"])
    return out


def latest_completed_stats(conn: sqlite3.Connection, project: int) -> dict[str, Any]:
    """The stats of the newest completed run ({} when none): what the stored negatives came from."""
    row = conn.execute(
        "SELECT stats FROM mining_runs WHERE project_id = ? AND status = 'completed' "
        "ORDER BY id DESC LIMIT 1",
        (project,),
    ).fetchone()
    return {} if row is None else json.loads(row["stats"])


def fetch_negatives(conn: sqlite3.Connection, project: int, limit: int | None = None) -> list[dict[str, Any]]:
    """Mined negatives with their texts, riskiest first."""
    sql = """SELECT n.id, n.risk, n.kind, n.rank, n.score, n.positive_score, n.ce_score, n.status,
                    q.text AS query, s.text AS passage, n.query_id, n.passage_id, n.positive_id
             FROM negatives n JOIN queries q ON q.id = n.query_id JOIN passages s ON s.id = n.passage_id
             WHERE n.project_id = ? ORDER BY n.risk DESC, n.id"""
    params: tuple[Any, ...] = (project,)
    if limit:
        sql += " LIMIT ?"
        params += (limit,)
    return [dict(r) for r in conn.execute(sql, params).fetchall()]


def score_distributions(conn: sqlite3.Connection, project: int) -> dict[str, list[float]]:
    """Similarity of positives vs hard and random negatives, for the histogram."""
    pos = conn.execute(
        "SELECT DISTINCT query_id, positive_id, positive_score FROM negatives WHERE project_id = ? "
        "AND positive_score IS NOT NULL",
        (project,),
    ).fetchall()
    out = {"positive": [float(r["positive_score"]) for r in pos]}
    for kind in ("hard", "random"):
        out[f"{kind} negative"] = [
            float(r[0])
            for r in conn.execute(
                "SELECT score FROM negatives WHERE project_id = ? AND kind = ? AND score IS NOT NULL",
                (project, kind),
            )
        ]
    return out
