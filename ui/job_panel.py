"""Background jobs on screen: the sidebar's status area (every page) and the job panel a step's page shows for
its own long step (progress, time left, cancel, retry). Both poll the job row every 2 s in a fragment, so the rest
of the page stays still while a job runs in its own process (core.runs.jobs)."""

from __future__ import annotations

import sqlite3
from typing import Any

import streamlit as st

from core import estimates, queue
from core.errors import StudioError
from core.markdown import escape_markdown
from core.runs import jobs
from core.runs.job_row import Job

POLL_S = 2
KIND_LABEL = {
    "mine": "Mining",
    "evaluate": "Evaluation",
    "quality": "Quality analysis",
    "snippets": "Snippet proposals",
    "train": "Training",
    "distill": "Distillation",
    "suspects": "Suspect search",
    "download": "Model download",
    "calibrate": "Calibration measurement",
}
KIND_PAGE = {
    "mine": "pages/mine.py",
    "evaluate": "pages/evaluate.py",
    "quality": "pages/quality.py",
    "snippets": "pages/quality.py",
    "train": "pages/train.py",
    "distill": "pages/train.py",
    "suspects": "pages/review.py",
    "download": "pages/train.py",
    "calibrate": "pages/evaluate.py",
}


def describe(j: Job) -> str:
    """'Mining — embedding passages, 42%, about 1 min left' (a job's message is ours, escaped anyway)."""
    label = KIND_LABEL.get(j.kind, j.kind)
    if j.status == "queued":
        return f"{label} — queued (one heavy job runs at a time)"
    parts = [escape_markdown(j.message or j.status)]
    if j.status == "running":
        parts.append(f"{(j.fraction or 0):.0%}")
        if j.eta_s:
            parts.append(f"about {estimates.duration(j.eta_s)} left")
    return f"{label} — " + ", ".join(parts)


def latest(conn: sqlite3.Connection, project: int, kinds: tuple[str, ...]) -> Job | None:
    """The newest job of these kinds for the project (the one its page shows)."""
    found = [j for k in kinds for j in jobs.list_jobs(conn, project, kind=k, limit=1)]
    return max(found, key=lambda j: j.id) if found else None


@st.fragment(run_every=POLL_S)
def sidebar_status(conn: sqlite3.Connection, project: int | None) -> None:
    """Every page's sidebar: the project's running and queued jobs; also reaps dead jobs and moves the queue."""
    try:
        queue.reap_and_dispatch(conn)
        active = jobs.active_jobs(conn)
    except sqlite3.Error:
        return  # a busy database: the next poll tries again
    seen = st.session_state.get("_jobs_seen")
    now = tuple(sorted(j.id for j in active))
    if seen is not None and now != seen:  # a job finished or started: refresh what the page shows
        st.session_state["_jobs_seen"] = now
        estimates.learn(conn)
        if set(seen) - set(now):
            st.rerun(scope="app")
    st.session_state["_jobs_seen"] = now
    mine = [j for j in active if j.project_id == project]
    others = len(active) - len(mine)
    if not active:
        st.caption(":material/check_circle: No job running.")
        return
    st.markdown("**Jobs**")
    for j in mine:
        st.progress(min(1.0, max(0.0, j.fraction or 0.0)), text=describe(j))
        st.page_link(
            KIND_PAGE.get(j.kind, "pages/overview.py"),
            label="Open",
            icon=":material/open_in_new:",
            query_params=_project_param(),
        )
    if others:
        st.caption(f"{others} job(s) of another project running or queued (one heavy job runs at a time).")


def _project_param() -> dict[str, str]:
    name = st.session_state.get("project_name")
    return {"project": name} if name else {}


@st.fragment(run_every=POLL_S)
def _live(conn: sqlite3.Connection, job_id: int, key: str) -> None:
    """The running job: progress, time left, Cancel; a full rerun once it has finished, to show the result."""
    try:
        j = jobs.job(conn, job_id)
    except (jobs.JobError, sqlite3.Error):
        return
    if j.status not in jobs.ACTIVE:
        st.rerun(scope="app")
    if j.status == "queued":
        ahead = [a for a in jobs.active_jobs(conn) if a.id != job_id and a.status == "running"]
        what = f" behind {KIND_LABEL.get(ahead[0].kind, ahead[0].kind).lower()}" if ahead else ""
        st.progress(0.0, text=f"Queued{what}: one heavy job runs at a time. It starts by itself.")
    else:
        st.progress(min(1.0, max(0.0, j.fraction or 0.0)), text=describe(j))
    left, _ = st.columns([1, 5])
    if j.cancel_requested:
        left.caption("Cancelling…")
    elif left.button("Cancel", key=f"{key}_cancel_{job_id}", icon=":material/stop:"):
        jobs.cancel_job(conn, job_id)
        st.rerun(scope="app")


def job_panel(conn: sqlite3.Connection, project: int, kinds: tuple[str, ...], key: str) -> Job | None:
    """A page's long step: live while it runs; the reason and Retry when it failed or was interrupted.

    Returns the newest job of these kinds (None if there never was one), so the page can show its result."""
    j = latest(conn, project, kinds)
    if j is None:
        return None
    label = KIND_LABEL.get(j.kind, j.kind)
    if j.status in jobs.ACTIVE:
        with st.container(border=True, key=f"{key}_job_live"):
            st.markdown(
                f"**{label} is running in the background** — you can leave this page; it goes on, "
                "and the sidebar shows it everywhere."
            )
            _live(conn, j.id, key)
    elif j.status in jobs.RETRYABLE:
        with st.container(border=True, key=f"{key}_job_stopped"):
            if j.status == "cancelled":
                st.info(
                    f"{label} was cancelled; nothing it had not finished was saved.", icon=":material/stop:"
                )
            else:
                reason = escape_markdown(j.error or "no reason recorded")
                st.warning(
                    f"{label} {j.status}: {reason}. Nothing it had not finished was saved.",
                    icon=":material/warning:",
                )
            if st.button("Start it again", key=f"{key}_retry_{j.id}", icon=":material/replay:"):
                queue.retry(conn, j.id)
                st.rerun()
    return j


def submit(conn: sqlite3.Connection, project: int, kind: str, args: dict[str, Any]) -> int | None:
    """Queue a job from a button; says why not when it cannot be queued."""
    try:
        job_id = queue.submit(conn, project, kind, args)
    except (StudioError, TypeError) as exc:  # TypeError: args a job row cannot carry (not JSON)
        st.error(escape_markdown(exc))
        return None
    st.session_state.pop("_jobs_seen", None)
    return job_id


def estimate_caption(estimate: estimates.Estimate) -> None:
    """The time a step will take on this machine, beside its button."""
    st.caption(f":material/timer: {estimate.text()}")
