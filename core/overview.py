"""Where a project stands on the path (data, mining, review, quality, training, evaluation), the best run (picked
on validation, never on test) and the one thing to do next. Pure reads over the store, the job queue and the
quality cache: nothing here computes a report or loads a model, so the overview page draws at once."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from core import store
from core.evaluation import Results, Verdict, list_evaluations, load_evaluation
from core.runs import jobs, records
from core.runs.job_row import Job
from core.runs.run_row import Run

STEPS = {
    "data": "Data",
    "mine": "Mine",
    "review": "Review",
    "quality": "Quality",
    "train": "Train",
    "evaluate": "Evaluate",
}
RECOMMENDED = ("review", "quality")  # worth doing, but a later step done means the person chose to go on
REVIEW_FIRST = 10  # the riskiest candidates a person should look at before training
JOB_STEP = {
    "mine": "mine",
    "quality": "quality",
    "snippets": "quality",
    "train": "train",
    "evaluate": "evaluate",
}
STOPPED = ("failed", "interrupted")


@dataclass
class Step:
    """One step of the path: its state, a one-line summary and the counts behind it."""

    key: str
    title: str
    state: str  # 'todo' | 'running' | 'done' | 'attention' (done, but something needs a look) | 'blocked'
    summary: str
    counts: dict[str, Any] = field(default_factory=dict)


@dataclass
class NextAction:
    """The one thing the overview suggests: which page, the button's words and why."""

    page: str
    label: str
    why: str


def _latest_jobs(conn: sqlite3.Connection, project: int) -> dict[str, Job]:
    """The newest job of each step (a running one wins over a newer finished one)."""
    latest: dict[str, Job] = {}
    for j in jobs.list_jobs(conn, project, limit=40):  # newest first
        step = JOB_STEP.get(j.kind)
        if step and (
            step not in latest or (j.status in jobs.ACTIVE and latest[step].status not in jobs.ACTIVE)
        ):
            latest[step] = j
    return latest


def _job_note(j: Job | None) -> tuple[str, str] | None:
    """('running' | 'attention', words) for an active or stopped job; None for none or a finished one."""
    if not j:
        return None
    if j.status == "running":
        return "running", f"running ({(j.fraction or 0):.0%}: {j.message or 'working'})"
    if j.status == "queued":
        return "running", "queued behind another job"
    if j.status in STOPPED:
        return (
            "attention",
            f"the last {j.kind} job {j.status}: {j.error or 'no reason recorded'}",
        )
    return None


def _data(counts: dict[str, int]) -> Step:
    if not counts["train_pairs"]:
        return Step("data", STEPS["data"], "todo", "No training pairs yet.", counts)
    summary = (
        f"{counts['train_pairs']:,} training pairs over {counts['train_queries']:,} queries; "
        f"{counts['test_queries']:,} test queries."
    )
    if not counts["test_queries"]:
        return Step(
            "data", STEPS["data"], "attention", summary + " No test set: evaluation needs one.", counts
        )
    return Step("data", STEPS["data"], "done", summary, counts)


def _mine(counts: dict[str, int], j: Job | None) -> Step:
    note = _job_note(j)
    n = counts["negatives"]
    summary = f"{n:,} mined negatives." if n else "No negatives mined yet."
    if note and note[0] == "running":
        return Step("mine", STEPS["mine"], "running", f"Mining is {note[1]}. {summary}", {"negatives": n})
    if not counts["train_pairs"]:
        return Step("mine", STEPS["mine"], "blocked", "Needs training pairs.", {"negatives": n})
    if note and not n:
        return Step(
            "mine", STEPS["mine"], "attention", f"{summary} {note[1].capitalize()}.", {"negatives": n}
        )
    return Step("mine", STEPS["mine"], "done" if n else "todo", summary, {"negatives": n})


def review_counts(conn: sqlite3.Connection, project: int) -> dict[str, int]:
    """Judged, false negatives found, and how many of the REVIEW_FIRST riskiest candidates are judged."""
    one = lambda sql: int(conn.execute(sql, (project,)).fetchone()[0] or 0)  # noqa: E731
    return {
        "total": one("SELECT COUNT(*) FROM negatives WHERE project_id = ?"),
        "judged": one("SELECT COUNT(*) FROM negatives WHERE project_id = ? AND status != 'unjudged'"),
        "false_negatives": one("SELECT COUNT(*) FROM negatives WHERE project_id = ? AND status = 'relevant'"),
        "riskiest_judged": one(
            f"SELECT COUNT(*) FROM (SELECT status FROM negatives WHERE project_id = ? "
            f"ORDER BY risk DESC, id LIMIT {REVIEW_FIRST}) WHERE status != 'unjudged'"
        ),
    }


def _review(c: dict[str, int]) -> Step:
    if not c["total"]:
        return Step("review", STEPS["review"], "blocked", "Nothing to review until negatives are mined.", c)
    summary = (
        f"{c['judged']:,} of {c['total']:,} candidates judged; {c['false_negatives']:,} false negatives "
        "found."
    )
    target = min(REVIEW_FIRST, c["total"])
    if c["riskiest_judged"] >= target:
        return Step("review", STEPS["review"], "done", summary + f" The {target} riskiest are judged.", c)
    return Step("review", STEPS["review"], "todo", summary + f" Judge at least the {target} riskiest.", c)


def _quality(checks: list[Any] | None, current: bool, j: Job | None, has_pairs: bool) -> Step:
    note = _job_note(j)
    open_ = [c for c in checks or [] if c.state != "pass"]
    counts = {
        "warnings": sum(c.state == "warn" for c in open_),
        "failures": sum(c.state == "fail" for c in open_),
    }
    if note and note[0] == "running":
        return Step("quality", STEPS["quality"], "running", f"Analysis {note[1]}.", counts)
    if not has_pairs:
        return Step("quality", STEPS["quality"], "blocked", "Needs training pairs.", counts)
    if checks is None:
        return Step("quality", STEPS["quality"], "todo", "Not analysed yet.", counts)
    summary = f"{counts['failures']} failing and {counts['warnings']} warning checks."
    if not current:
        return Step(
            "quality",
            STEPS["quality"],
            "todo",
            "The data changed since the last analysis. " + summary,
            counts,
        )
    # Analysed: the step is done; what fails is listed in the health check, for the person to weigh (a small
    # dataset fails "at least 256 examples" and can still be trained on).
    return Step("quality", STEPS["quality"], "done", "Analysed: " + summary, counts)


def _train(conn: sqlite3.Connection, project: int, has_pairs: bool) -> Step:
    runs = records.list_runs(conn, project)
    done = [r for r in runs if r.status == "completed"]
    counts = {"runs": len(runs), "completed": len(done)}
    active = [r for r in runs if r.status in jobs.ACTIVE]
    if active:
        prog = active[0].progress or {}
        step = f" step {prog.get('step')} of {prog['total']}" if prog.get("total") else ""
        return Step(
            "train",
            STEPS["train"],
            "running",
            f"Run {active[0].id} is {active[0].status}{step}.",
            counts,
        )
    if not has_pairs:
        return Step("train", STEPS["train"], "blocked", "Needs training pairs.", counts)
    if done:
        return Step(
            "train", STEPS["train"], "done", f"{len(done)} completed run(s); newest {done[0].id}.", counts
        )
    if runs and runs[0].status in ("failed", "cancelled"):
        return Step(
            "train",
            STEPS["train"],
            "attention",
            f"The last run {runs[0].status}: {runs[0].error or 'resume it or start another'}.",
            counts,
        )
    return Step("train", STEPS["train"], "todo", "No trained run yet.", counts)


def _evaluate(conn: sqlite3.Connection, project: int, counts: dict[str, int], j: Job | None) -> Step:
    note = _job_note(j)
    stored = list_evaluations(conn, project)
    done_runs = records.list_runs(conn, project, status="completed")
    c = {"evaluations": len(stored)}
    if note and note[0] == "running":
        return Step("evaluate", STEPS["evaluate"], "running", f"Evaluation {note[1]}.", c)
    if not counts["test_queries"]:
        return Step("evaluate", STEPS["evaluate"], "blocked", "Needs a test set (Data page).", c)
    if not done_runs:
        return Step("evaluate", STEPS["evaluate"], "blocked", "Needs a trained run.", c)
    newest = done_runs[0].id
    if any(newest in (e["params"].get("run_ids") or []) for e in stored):
        return Step(
            "evaluate", STEPS["evaluate"], "done", f"{len(stored)} evaluation(s); run {newest} evaluated.", c
        )
    return Step("evaluate", STEPS["evaluate"], "todo", f"Run {newest} is not evaluated yet.", c)


def quality_checks(conn: sqlite3.Connection, project: int) -> tuple[list[Any] | None, bool]:
    """(the checklist of the newest cached quality report or None, whether it is for the current data)."""
    from core.quality import checklist
    from core.quality.stored import is_current, latest_report

    report = latest_report(conn, project)
    if report is None:
        return None, False
    return checklist(report), is_current(conn, report)


def steps(
    conn: sqlite3.Connection, project: int, checks: list[Any] | None = None, quality_current: bool = False
) -> list[Step]:
    """Every step's state; `checks` is the cached quality report's checklist (None when there is no report)."""
    counts = store.project_counts(conn, project)
    latest = _latest_jobs(conn, project)
    has_pairs = bool(counts["train_pairs"])
    return [
        _data(counts),
        _mine(counts, latest.get("mine")),
        _review(review_counts(conn, project)),
        _quality(checks, quality_current, latest.get("quality"), has_pairs),
        _train(conn, project, has_pairs),
        _evaluate(conn, project, counts, latest.get("evaluate")),
    ]


ACTIONS = {
    "data": ("Import training pairs", "Everything starts from (query, relevant passage) pairs."),
    "mine": ("Mine hard negatives", "Training needs negatives; mined ones teach the model the hard cases."),
    "review": (
        "Review the riskiest candidates",
        "Some mined negatives actually answer the query: catch them.",
    ),
    "quality": ("Check data quality", "Duplicates, test leakage and truncated pairs cost accuracy silently."),
    "train": ("Train a reranker", "The data is ready."),
    "evaluate": (
        "Evaluate the newest run",
        "Only the test set says whether the reranker beats the first stage.",
    ),
}


def next_action(path: list[Step]) -> NextAction:
    """The first step still to do (a recommended step is passed over once a later step is done)."""
    for i, s in enumerate(path):
        if s.state == "done" or s.state == "blocked":
            continue
        later_done = any(t.state == "done" for t in path[i + 1 :])
        if s.key in RECOMMENDED and later_done:
            continue
        if s.state == "running":
            return NextAction(s.key, f"Watch {s.title.lower()}", s.summary)
        if s.key == "data" and s.state == "attention":
            continue  # no test set: said on the step; training can still go on
        label, why = ACTIONS[s.key]
        if s.state == "attention":
            return NextAction(s.key, f"Fix {s.title.lower()}", s.summary)
        return NextAction(s.key, label, why)
    if path[0].state == "attention":
        return NextAction("data", "Add a test set", path[0].summary)
    return NextAction(
        "evaluate",
        "Export the model",
        "Every step is done: ship the best run (picked on validation), or improve the data.",
    )


@dataclass(frozen=True)
class BestRun:
    """The run the overview suggests shipping: picked on its own VALIDATION figures, never on test; its test
    verdict (from the newest evaluation that includes it) is shown, not used to pick."""

    run_id: str
    picked_on: str  # how it was picked, in words (validation figures, or why there was no pick)
    validation: float | None  # NDCG@10 of the score the run ships, on its validation slice
    candidates: int  # runs with validation figures of their own, compared
    verdict: Verdict | None  # the test verdict of the score it ships (None: not evaluated yet)
    evaluation: int | None
    notes: tuple[str, ...] = ()

    @property
    def level(self) -> str:
        """How a page shows it: the test verdict's level, info when there is none yet."""
        return self.verdict.level if self.verdict else "info"

    @property
    def head(self) -> str:
        """Short words: the test verdict's head, or that the pick has no test figures yet."""
        return self.verdict.head if self.verdict else "Not evaluated on the test set yet."

    @property
    def text(self) -> str:
        """The pick and its test figures in one paragraph."""
        test = (
            f"On the test set (evaluation #{self.evaluation}): {self.verdict.sentence}"
            if self.verdict
            else "Evaluate it on the Evaluate page for its test figures."
        )
        return " ".join([self.picked_on, test, *self.notes])


def shipped_validation(run: Run) -> float | None:
    """NDCG@10 on the run's own validation slice of the score it ships (its blend when it keeps one); None when the
    run has none, or when its 'validation' was the test set (those are test figures, not a basis for a pick)."""
    metrics = run.metrics or {}
    val = metrics.get("validation") or {}
    if (
        metrics.get("evaluation") == "test"
        or "validation figures" in (metrics.get("test_labels_used_for") or [])
        or "ndcg@10" not in val
    ):
        return None
    fusion = metrics.get("fusion") or {}
    if "alpha" in fusion and "validation_ndcg@10" in fusion:
        return float(fusion["validation_ndcg@10"])
    return float(val["ndcg@10"])


def _test_verdict(conn: sqlite3.Connection, project: int, run: Run) -> tuple[Verdict | None, int | None]:
    """The newest evaluation's verdict of the score the run ships (its blend when it keeps one)."""
    key = f"run:{run.id}"
    for e in list_evaluations(conn, project):
        if run.id not in (e["params"].get("run_ids") or []):
            continue
        r = Results.of(load_evaluation(conn, e["id"]))
        shipped = f"{key}:fused" if r.has(f"{key}:fused") else key
        v = r.verdict(shipped)
        if v is not None:
            return v, int(e["id"])
    return None, None


def best_run(conn: sqlite3.Connection, project: int) -> BestRun | None:
    """The completed run with the highest validation NDCG@10 (of the score it ships), with its test verdict.

    Test figures never make the pick: picking the best of several runs on test labels would report the luckiest
    one. Without any run validated on its own slice, the newest completed run is shown, said as not a pick."""
    done = records.list_runs(conn, project, status="completed")
    if not done:
        return None
    scored = [(v, r) for r in done if (v := shipped_validation(r)) is not None]
    notes: list[str] = []
    if scored:
        value, run = max(scored, key=lambda x: x[0])  # newest first: ties keep the newer run
        picked = (
            f"Run {run.id}: the highest validation NDCG@10 of the score it ships ({value:.3f}"
            + (f", best of {len(scored)} runs with validation figures" if len(scored) > 1 else "")
            + "); picked on validation, never on test."
        )
        if len(scored) > 1 and len({(r.snapshot or {}).get("hash") for _, r in scored}) > 1:
            notes.append(
                "The runs were trained on different data versions, so their validation slices differ."
            )
    else:
        value, run = None, done[0]
        picked = (
            f"Run {run.id} (the newest): no completed run has validation figures of its own (validation off, "
            "or on the test set), so there is no pick to make without using test labels."
        )
    verdict, evaluation = _test_verdict(conn, project, run)
    return BestRun(run.id, picked, value, len(scored), verdict, evaluation, tuple(notes))
