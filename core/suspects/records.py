"""The suspects table: a search's findings saved (judged ones kept as they are), and the queue read back."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from core.errors import UserError
from core.store.db import now, transaction
from core.suspects.scoring import Suspect

KINDS = ("wrong_positive", "wrong_negative", "missing_positive")
STATUSES = ("open", "kept", "flipped", "dropped", "skipped")
LABELLED = ("wrong_positive", "wrong_negative")


def save(conn: sqlite3.Connection, project: int, found: list[Suspect]) -> int:
    """Replace the open suspects with these findings in one transaction; a suspect a person judged keeps its
    status and history (its score and reasons are refreshed). Returns how many rows are open now."""
    at = now()
    with transaction(conn):
        conn.execute(
            """DELETE FROM suspects WHERE project_id = ? AND status = 'open'
                 AND id NOT IN (SELECT suspect_id FROM suspect_judgements WHERE project_id = ?)""",
            (project, project),
        )
        conn.executemany(
            """INSERT INTO suspects (project_id, query_id, passage_id, kind, label, score, pattern, reasons, evidence,
                                     created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (project_id, query_id, passage_id) DO UPDATE SET
                 score = excluded.score, pattern = excluded.pattern, reasons = excluded.reasons,
                 evidence = excluded.evidence""",
            [
                (
                    project,
                    s.query_id,
                    s.passage_id,
                    s.kind,
                    s.label,
                    float(s.score),
                    s.pattern,
                    json.dumps(s.reasons),
                    json.dumps(s.evidence, default=str),
                    at,
                )
                for s in found
            ],
        )
        return int(
            conn.execute(
                "SELECT COUNT(*) FROM suspects WHERE project_id = ? AND status = 'open'", (project,)
            ).fetchone()[0]
        )


@dataclass(frozen=True)
class SuspectFilter:
    """Which suspects the queue shows: the labelled pairs or the missing positives, by status and pattern."""

    kinds: tuple[str, ...] = LABELLED
    state: str = "open"  # open | judged | all | one status
    pattern: str | None = None

    def where(self, project: int) -> tuple[str, list[Any]]:
        """SQL condition and parameters over `suspects s`."""
        if self.state not in (*STATUSES, "judged", "all"):
            raise UserError(f"Unknown suspect state {self.state!r}; expected one of {', '.join(STATUSES)}.")
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise UserError(f"Unknown suspect kind {unknown}; expected some of {', '.join(KINDS)}.")
        sql = [f"s.project_id = ? AND s.kind IN ({','.join('?' * len(self.kinds))})"]
        params: list[Any] = [project, *self.kinds]
        if self.state == "judged":
            sql.append("s.status != 'open'")
        elif self.state != "all":
            sql.append("s.status = ?")
            params.append(self.state)
        if self.pattern is not None:
            sql.append("s.pattern = ?")
            params.append(self.pattern)
        return " AND ".join(sql), params


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    out["reasons"] = json.loads(out["reasons"])
    out["evidence"] = json.loads(out["evidence"])
    return out


def queue(
    conn: sqlite3.Connection,
    project: int,
    flt: SuspectFilter = SuspectFilter(),
    *,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Suspects most suspect first, with the query and passage texts and the pair's label now."""
    where, params = flt.where(project)
    rows = conn.execute(
        f"""SELECT s.*, q.text AS query, q.qid, p.text AS passage, p.doc_id, pr.label AS label_now
            FROM suspects s JOIN queries q ON q.id = s.query_id JOIN passages p ON p.id = s.passage_id
            LEFT JOIN pairs pr ON pr.query_id = s.query_id AND pr.passage_id = s.passage_id
            WHERE {where} ORDER BY s.score DESC, s.id LIMIT ? OFFSET ?""",
        (*params, int(limit), int(offset)),
    ).fetchall()
    return [_decode(r) for r in rows]


def queue_size(conn: sqlite3.Connection, project: int, flt: SuspectFilter = SuspectFilter()) -> int:
    """How many suspects the filter holds."""
    where, params = flt.where(project)
    return int(conn.execute(f"SELECT COUNT(*) FROM suspects s WHERE {where}", params).fetchone()[0])


def counts(conn: sqlite3.Connection, project: int) -> dict[str, dict[str, int]]:
    """Suspects by kind and status (the page's header and the CLI's summary)."""
    out = {k: {s: 0 for s in STATUSES} for k in KINDS}
    for r in conn.execute(
        "SELECT kind, status, COUNT(*) AS n FROM suspects WHERE project_id = ? GROUP BY kind, status",
        (project,),
    ):
        out[r["kind"]][r["status"]] = int(r["n"])
    return out


def patterns(conn: sqlite3.Connection, project: int) -> list[dict[str, Any]]:
    """Patterns with open suspects (a hub passage, a twin query), largest first, for the bulk action."""
    rows = conn.execute(
        """SELECT s.pattern, COUNT(*) AS open, MIN(s.reasons) AS reasons, MIN(substr(p.text, 1, 80)) AS passage
           FROM suspects s JOIN passages p ON p.id = s.passage_id
           WHERE s.project_id = ? AND s.pattern IS NOT NULL AND s.status = 'open'
           GROUP BY s.pattern ORDER BY open DESC, s.pattern""",
        (project,),
    ).fetchall()
    return [{**dict(r), "reasons": json.loads(r["reasons"])} for r in rows]
