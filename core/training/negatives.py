"""Negatives for each training query: mined hard ones (or the first stage's top ranks) and random passages."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from core.training import candidates


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
    kind: str = "embedding",
) -> str:
    """Without a mining run, the first stage's top ranks (minus positives) are the hard negatives; says so."""
    found = candidates.tops(
        conn, project, [qtext[q] for q in qids], per_positive + 10 + 5, spec, workspace, kind
    )
    for q, top in zip(qids, found):
        hard[q] = [pid for pid, _ in top if pid not in positives[q]][: per_positive + 10]
    return f"first stage ({kind}) top-{per_positive + 10} (no mining run)"


def sample_random(
    rng: random.Random,
    passage_ids: list[int],
    banned: set[int],
    have: list[int],
    taken: list[int],
    want: int,
) -> list[int]:
    """`have` topped up to `want` random passages outside `banned` and `taken` (the hard negatives already chosen).

    When fewer passages are eligible than wanted, all of them are taken (the caller records the shortfall): a
    query labelled relevant for a third of the corpus must not stop a run before step 0 (NFCorpus' 'cancer')."""
    out = list(have)
    if len(out) >= want:
        return out[:want]
    excluded = banned | set(out) | set(taken)
    eligible = sorted(p for p in set(passage_ids) if p not in excluded)
    need = want - len(out)
    if len(eligible) <= need:
        rng.shuffle(eligible)
        return out + eligible
    while len(out) < want:
        pick = rng.choice(passage_ids)
        if pick not in excluded:
            out.append(pick)
            excluded.add(pick)
    return out
