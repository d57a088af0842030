"""Overview: where the project stands on the path, what the data's health check says, the best run (picked on
its validation figures, shown with its test verdict) and the one thing to do next. Reads only: nothing here computes a report or loads a model."""

from __future__ import annotations

import streamlit as st

from core import estimates, overview, store
from core.markdown import escape_markdown
from ui.common import conn, project_name

PAGE = {
    "data": "pages/data.py",
    "mine": "pages/mine.py",
    "review": "pages/review.py",
    "quality": "pages/quality.py",
    "train": "pages/train.py",
    "evaluate": "pages/evaluate.py",
}
STATE_ICON = {
    "done": ":green[:material/check_circle:]",
    "running": ":blue[:material/progress_activity:]",
    "todo": ":gray[:material/radio_button_unchecked:]",
    "attention": ":orange[:material/warning:]",
    "blocked": ":gray[:material/block:]",
}
STATE_WORD = {
    "done": "done",
    "running": "running",
    "todo": "to do",
    "attention": "needs a look",
    "blocked": "waiting",
}
CHECK_ICON = {"warn": ":orange[:material/warning:]", "fail": ":red[:material/cancel:]"}

db = conn()
st.title("Overview")

if not store.list_projects(db):
    st.info(
        "No project yet. Create one with **New project** in the sidebar, or load the small real sample "
        "on the Data page to see every step working."
    )
    st.page_link(PAGE["data"], label="Go to Data", icon=":material/upload_file:")
    st.stop()
pid = st.session_state.get("project_id")
if pid is None:
    st.info("Pick a project in the sidebar.")
    st.stop()

params = {"project": project_name()}
st.caption(
    f"Project **{escape_markdown(project_name())}** · the path from your pairs to a reranker you can trust."
)
estimates.learn(db, pid)
checks, current = overview.quality_checks(db, pid)
path = overview.steps(db, pid, checks, current)
nxt = overview.next_action(path)

with st.container(border=True, key="overview_next"):
    st.markdown("**Next step**")
    st.caption(escape_markdown(nxt.why))
    if st.button(nxt.label, type="primary", icon=":material/arrow_forward:", key="overview_go"):
        st.switch_page(PAGE[nxt.page], query_params=params)

cols = st.columns(len(path))
for col, s in zip(cols, path):
    with col.container(border=True, key=f"overview_step_{s.key}"):
        st.markdown(f"{STATE_ICON[s.state]} **{s.title}**")
        st.caption(f"{STATE_WORD[s.state]} · {escape_markdown(s.summary)}")
        st.page_link(PAGE[s.key], label=f"Open {s.title}", query_params=params)

left, right = st.columns(2)
with left:
    st.subheader("Health check", divider="gray")
    if checks is None:
        st.caption("No quality analysis yet: run it on the Quality page (it runs in the background).")
    else:
        open_ = [c for c in checks if c.state != "pass"]
        if not current:
            st.caption("From the last analysis; the data changed since — analyse again on the Quality page.")
        if not open_:
            st.success("Every check passes.", icon=":material/check_circle:")
        for c in open_:
            st.markdown(
                f"{CHECK_ICON[c.state]} **{escape_markdown(c.rule)}** — {escape_markdown(c.figure)}",
                help=c.advice,
            )
with right:
    st.subheader("Best run", divider="gray")
    best = overview.best_run(db, pid)  # picked on validation figures; its test figures are shown, not used
    if best is None:
        st.caption("No completed run yet.")
    else:
        getattr(st, best.level)(f"**{escape_markdown(best.head)}** {escape_markdown(best.text)}")
