"""Negatives for each training query: mined hard ones (or the first stage's top ranks) and random passages."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from core.training import candidates
from core.training.config import ConfigError


def fill_hard_from_first_stage(
    conn: sqlite3.Connection,
    project: int,
    qids: list[int],
    qtext: dict[int, str],
    positives: dict[int, set[int]],
    hard: dict[int, list[int]],
    per_positive: int,
    spec: str,
    workspace: Path | None,
) -> str:
    """Without a mining run, the first stage's top ranks (minus positives) are the hard negatives; says so."""
    tops = candidates.first_stage(
        conn, project, [qtext[q] for q in qids], per_positive + 10 + 5, spec, workspace
    )
    for q, top in zip(qids, tops):
        hard[q] = [pid for pid, _ in top if pid not in positives[q]][: per_positive + 10]
    return f"first stage top-{per_positive + 10} (no mining run)"


def sample_random(
    rng: random.Random,
    passage_ids: list[int],
    banned: set[int],
    have: list[int],
    taken: list[int],
    want: int,
    query: str,
) -> list[int]:
    """`have` topped up to `want` random passages outside `banned` and `taken` (the hard negatives already chosen).

    Refuses with the pool size, instead of drawing forever, when too few passages are eligible."""
    out = list(have)
    if len(out) >= want:
        return out[:want]
    excluded = banned | set(out) | set(taken)
    pool = sum(1 for p in set(passage_ids) if p not in excluded)
    if pool < want - len(out):
        raise ConfigError(
            f"Random negatives cannot be drawn for the query {query[:80]!r}: {want - len(out)} more are needed but only "
            f"{pool} of the project's {len(set(passage_ids))} passages are eligible (the rest are its positives, "
            f"reviewed false negatives or already its hard negatives). Lower 'random negatives per positive', or "
            "import more passages."
        )
    while len(out) < want:
        pick = rng.choice(passage_ids)
        if pick not in excluded:
            out.append(pick)
            excluded.add(pick)
    return out
