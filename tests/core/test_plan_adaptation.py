"""Issue 22: the plan says what the data makes a run adapt before launch, and the time budget counts the rows the run
builds (one implementation: core.training.adapt).

The project is NFCorpus' shape in miniature (tests/core/test_every_label.py): a 'hub' query relevant to 30 of 40
passages next to 12 queries with 1-3 positives; here every query also has mined hard negatives, so the plan and the
run read the same pool.
"""

from __future__ import annotations

import json

import pytest

from core import store
from core.__main__ import main
from core.runs import records
from core.training import defaults
from core.training.adapt import adaptation, project_shape
from core.training.config import TrainConfig
from core.training.data import build_data
from core.training.rows import MAX_LISTS_PER_QUERY
from tests.core.test_every_label import nfcorpus_shape

pytestmark = pytest.mark.timeout(300)
MINED = 5  # hard negatives a mining run left for each query


def residual(**over) -> TrainConfig:
    """The default residual path's data counts (5 hard, 2 random negatives per list), no validation slice."""
    return TrainConfig(
        **{"loss": "residual", "hard_negatives": 5, "random_negatives": 2, "validation": "none", **over}
    )


@pytest.fixture()
def no_candidate_lists(monkeypatch):
    """No first-stage search: these tests look at the training rows, not at the candidate lists."""
    from core.training import candidates

    monkeypatch.setattr(
        candidates, "first_stage", lambda conn, project, queries, k, spec, ws: [[] for _ in queries]
    )


def mined_project(conn) -> int:
    """The NFCorpus-shaped project with MINED hard negatives per query (the passages after its positives)."""
    pid = nfcorpus_shape(conn)
    passages = [
        r[0] for r in conn.execute("SELECT id FROM passages WHERE project_id = ? ORDER BY id", (pid,))
    ]
    with store.transaction(conn):
        for (qid,) in conn.execute("SELECT id FROM queries WHERE project_id = ?", (pid,)).fetchall():
            own = {r[0] for r in conn.execute("SELECT passage_id FROM pairs WHERE query_id = ?", (qid,))}
            for rank, p in enumerate([p for p in passages if p not in own][:MINED], 1):
                conn.execute(
                    "INSERT INTO negatives (project_id, query_id, passage_id, kind, rank, status) "
                    "VALUES (?, ?, ?, 'hard', ?, 'unjudged')",
                    (pid, qid, p, rank),
                )
    return pid


def test_the_plan_says_before_launch_what_the_run_adapts_and_the_run_says_the_same(db, no_candidate_lists):
    pid = mined_project(db)
    cfg = residual()
    plan = adaptation(cfg, project_shape(db, pid))  # no row built, no model loaded
    said = " ".join(plan.notes)
    # the hub query: 30 positives x 2 random negatives wanted, 40 - 30 positives - 5 hard = 5 eligible
    assert "random negatives: 1 of 13 queries" in said and "'cancer': 5 of 60" in said
    assert (
        f"lists per query: 1 of 13 queries have more than {MAX_LISTS_PER_QUERY} positives (up to 30)" in said
    )
    assert plan.hard_source == "mined" and plan.train_queries == 13 and plan.validation == "none"
    data = build_data(db, pid, cfg)
    assert data.stats["adapted"] == plan.notes  # the run records what the plan showed
    assert (
        plan.rows_per_epoch == len(data.train_rows) == MAX_LISTS_PER_QUERY + sum(1 + q % 3 for q in range(12))
    )


def test_the_plan_says_when_the_held_out_queries_were_raised_to_the_least_that_says_anything(db):
    pid = mined_project(db)
    plan = adaptation(residual(validation="split", validation_fraction=0.1), project_shape(db, pid))
    assert plan.validation == "split" and plan.validation_queries == 5 and plan.train_queries == 8
    assert plan.notes[0].startswith("Only 13 training queries: 5 of them")
    assert "8 training queries, 5 held out for validation" in plan.text()


@pytest.mark.parametrize(
    "cfg",
    [
        residual(),
        residual(validation="split", validation_fraction=0.2),
        TrainConfig(loss="bce", hard_negatives=3, random_negatives=1, validation="none"),
        TrainConfig(loss="mnrl", hard_negatives=3, random_negatives=1, validation="none"),
    ],
    ids=["residual", "residual-split", "bce", "mnrl"],
)
def test_the_time_budget_counts_the_rows_the_run_builds(db, no_candidate_lists, cfg):
    """Before: min(positives, 8 x queries) over the whole project (54 rows here) while the run built 8 lists for
    the hub query and one per positive for the others (32), and held out none of the queries it counted."""
    pid = mined_project(db)
    rows, per_row = defaults.rows_per_epoch(cfg, project_shape(db, pid))
    built = build_data(db, pid, cfg).train_rows
    assert rows == len(built)
    notes = defaults.fit_time_budget(TrainConfig.from_dict(cfg.to_dict()), project_shape(db, pid), 1.0, None)
    assert f"of {len(built):,} rows x {per_row} pairs" in notes[-1]  # a 1-second budget: 0.1 epoch of them


def test_cli_dry_run_prints_the_plan_with_what_was_adapted_and_creates_no_run(db, capsys):
    pid = mined_project(db)
    assert main(["train", "--project", "nf-shape", "--dry-run", "--validation", "none"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    adapted = out["plan"]["adapted"]
    assert out["dry_run"] is True and adapted["train_queries"] == 13
    assert any(n.startswith("lists per query: 1 of 13 queries") for n in adapted["notes"])
    assert adapted["rows_per_epoch"] == MAX_LISTS_PER_QUERY + sum(1 + q % 3 for q in range(12))
    assert records.list_runs(db, pid) == []
