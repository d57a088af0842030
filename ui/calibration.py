"""The Evaluate page's "Calibration of relevance_score" section: measured as a background job (kind "calibrate"),
shown from the job's stored report, so a long scoring never freezes the page and a reload loses nothing."""

from __future__ import annotations

import sqlite3

import streamlit as st

from core.export import job as calibration_job
from core.export.calibrate import CalibrationReport
from core.markdown import escape_markdown as md
from core.runs import jobs
from ui import charts
from ui.job_panel import job_panel, latest, submit

KEY = "eval_cal"
HELP = (
    "Runs in the background: fits the map on validation as the bundle does, then scores the test queries' "
    "candidate lists (as long as an evaluation of one run)."
)


def section(conn: sqlite3.Connection, project: int, run_ids: list[str]) -> None:
    """The section: pick a run, measure it in the background, show its latest stored measurement."""
    st.subheader("Calibration of relevance_score")
    st.caption(
        "A bundle and the server return relevance_score: the run's score mapped to P(relevant) by a monotone map "
        "fitted on the run's validation queries, never on test. Here that map is checked against the test set's "
        "labels: on the diagonal, a cut-off at 0.8 keeps passages that are relevant 8 times in 10."
    )
    if not run_ids:
        return
    cal_run = st.selectbox("Run", run_ids, key=f"{KEY}_run")
    running = latest(conn, project, (calibration_job.NAME,))
    busy = running is not None and running.status in jobs.ACTIVE
    if st.button(
        "Measure calibration",
        icon=":material/straighten:",
        key=f"{KEY}_go",
        disabled=busy,
        help="A calibration measurement is running." if busy else HELP,
    ):
        if submit(conn, project, calibration_job.NAME, {"run_id": cal_run}) is not None:
            st.rerun()
    job_panel(conn, project, (calibration_job.NAME,), key=KEY)
    report = calibration_job.stored_report(conn, project, cal_run)
    if report is not None and (report.calibration is None or report.test_ece is None):
        st.info(md(report.note))
    elif report is not None:
        show(report, cal_run)


def show(report: CalibrationReport, run_id: str) -> None:
    """The measured report: ECE against a plain sigmoid's, the reliability plot, and which labels did what."""
    cal = report.calibration
    if cal is None or report.test_ece is None:
        return
    m1, m2, m3 = st.columns(3)
    m1.metric(
        "Expected calibration error (test labels)",
        f"{report.test_ece:.3f}",
        help="Mean gap between predicted P(relevant) and the observed share relevant, over 10 equal-width "
        "bins weighted by their pairs. 0 is perfect; the studio's goal is at most 0.05.",
    )
    m2.metric("ECE of a plain sigmoid of the score", f"{report.raw_sigmoid_ece or 0.0:.3f}")
    m3.metric("Test pairs", f"{report.test_pairs:,}")
    st.plotly_chart(
        charts.reliability_figure(report.bins, title=f"Reliability of run {run_id}"),
        key="eval_reliability",
    )
    st.caption(
        f"Map fitted on the labels of {md(cal.fitted_on)} ({cal.pairs:,} pairs, {cal.positives:,} relevant; "
        f"{md(cal.method)}). Plot and ECE measured on {md(report.measured_on)} — the project's test set, also "
        "when the evaluation above used an uploaded file."
    )
    if cal.fitted_on != "validation":
        st.warning(
            f"The map was fitted on {md(cal.fitted_on)}, not on a validation slice, so this figure is not an "
            "out-of-sample check.",
            icon=":material/warning:",
        )
