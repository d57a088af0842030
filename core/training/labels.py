"""A split's judgements read from the store by id: query texts, graded positives, uploaded label-0 pairs and
mined candidates (a candidate reviewed 'relevant' is a positive, never a negative)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from core import store


@dataclass
class Labels:
    """A split's judgements by id: query texts, graded positives, uploaded label-0 pairs and mined candidates."""

    qtext: dict[int, str] = field(default_factory=dict)
    grades: dict[int, dict[int, float]] = field(default_factory=dict)  # query -> positive passage -> grade
    upload_negs: dict[int, set[int]] = field(default_factory=dict)
    relevant: dict[int, set[int]] = field(default_factory=dict)  # reviewed false negatives
    hard: dict[int, list[int]] = field(default_factory=dict)
    rand: dict[int, list[int]] = field(default_factory=dict)

    def positives(self, q: int) -> set[int]:
        """The query's positive passage ids (labelled > 0 or reviewed relevant)."""
        return set(self.grades.get(q, {}))


def read_labels(conn: sqlite3.Connection, project: int, split: str) -> Labels:
    """Pairs and (for training) mined candidates: a candidate reviewed 'relevant' is a positive, never a negative."""
    lab = Labels()
    for p in store.fetch_pairs(conn, project, split):
        lab.qtext[p["query_id"]] = p["query"]
        if p["label"] > 0:
            lab.grades.setdefault(p["query_id"], {})[p["passage_id"]] = float(p["label"])
        else:
            lab.upload_negs.setdefault(p["query_id"], set()).add(p["passage_id"])
    if split != "train":
        return lab
    for r in conn.execute(
        """SELECT n.query_id, n.passage_id, n.kind, n.status, q.text AS query
           FROM negatives n JOIN queries q ON q.id = n.query_id
           WHERE n.project_id = ? AND q.split = 'train' ORDER BY n.query_id, n.kind, COALESCE(n.rank, 0), n.id""",
        (project,),
    ):
        lab.qtext.setdefault(r["query_id"], r["query"])
        if r["status"] == "relevant":
            lab.relevant.setdefault(r["query_id"], set()).add(r["passage_id"])
        elif r["status"] in ("unjudged", "negative"):
            (lab.hard if r["kind"] == "hard" else lab.rand).setdefault(r["query_id"], []).append(
                r["passage_id"]
            )
    for qid, pids in lab.relevant.items():
        for pid in pids:
            lab.grades.setdefault(qid, {}).setdefault(pid, 1.0)
    return lab
