"""Where a project stands on the path (data, mining, review, quality, training, evaluation) and the one thing
to do next. Pure reads over the store, the job queue and the quality cache: nothing here computes a report or
loads a model, so the overview page draws at once."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from core import store
from core.evaluation import ORACLE, figures_kind, list_evaluations, load_evaluation, main_figures
from core.runs import jobs, records
from core.runs.job_row import Job

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
    done = [r for r in runs if r["status"] == "completed"]
    counts = {"runs": len(runs), "completed": len(done)}
    active = [r for r in runs if r["status"] in jobs.ACTIVE]
    if active:
        prog = active[0]["progress"] or {}
        step = f" step {prog.get('step')} of {prog['total']}" if prog.get("total") else ""
        return Step(
            "train",
            STEPS["train"],
            "running",
            f"Run {active[0]['id']} is {active[0]['status']}{step}.",
            counts,
        )
    if not has_pairs:
        return Step("train", STEPS["train"], "blocked", "Needs training pairs.", counts)
    if done:
        return Step(
            "train", STEPS["train"], "done", f"{len(done)} completed run(s); newest {done[0]['id']}.", counts
        )
    if runs and runs[0]["status"] in ("failed", "cancelled"):
        return Step(
            "train",
            STEPS["train"],
            "attention",
            f"The last run {runs[0]['status']}: {runs[0].get('error') or 'resume it or start another'}.",
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
    newest = done_runs[0]["id"]
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
        "evaluate", "Export the model", "Every step is done: ship the best run, or improve the data."
    )


def verdict(conn: sqlite3.Connection, project: int) -> dict[str, Any] | None:
    """The best run's verdict from the newest evaluation with a run: level (success/warning/error/info) and text."""
    for e in list_evaluations(conn, project)[:5]:
        if not e["params"].get("run_ids"):
            continue
        res = load_evaluation(conn, e["id"])
        figures, which = main_figures(res), figures_kind(res)
        systems = {s["key"]: s for s in res["systems"]}
        fs = figures["first_stage"]["mean"]["ndcg@10"]
        best = None
        for c in res["comparisons"]:
            kind = systems.get(c["system"], {}).get("kind")
            if c["reference"] != "first_stage" or kind in ("base", "component", "first_stage"):
                continue
            value = figures[c["system"]]["mean"]["ndcg@10"]
            if best is None or value > best[0]:
                best = (value, c, systems[c["system"]])
        if best is None:
            continue
        value, c, sysinfo = best
        text = (
            f"{sysinfo['label']}: {which} NDCG@10 {value:.3f} vs first stage {fs:.3f} "
            f"({c['mean_diff']:+.3f}, p = {c['p_value']:.3g}; evaluation #{e['id']})."
        )
        if which == ORACLE:
            level, head = "info", "Oracle upper bound only."
        elif value <= fs:
            level, head = "error", "Does NOT beat the first stage."
        elif c["p_value"] >= 0.05:
            level, head = "warning", "Better on average, not significantly."
        else:
            level, head = "success", "Beats the first stage."
        return {
            "level": level,
            "head": head,
            "text": text,
            "run_id": sysinfo.get("run_id"),
            "evaluation": e["id"],
        }
    return None
