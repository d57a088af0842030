"""Rerank Studio entry point: navigation over the pages, the project picker and the job status every page shares."""

from __future__ import annotations

import streamlit as st

from core import store
from core.errors import StudioError
from ui.common import back_to_overview, conn
from ui.job_panel import sidebar_status

st.set_page_config(page_title="Rerank Studio", page_icon=":material/sort:", layout="wide")

# The overview first, then the user's path in order. Every page has its own url_path, so a deep link (/data,
# /review) opens that page, and the default page is served at the root.
OVERVIEW = st.Page(
    "pages/overview.py", title="Overview", icon=":material/home:", url_path="overview", default=True
)
PAGES = [
    OVERVIEW,
    st.Page("pages/data.py", title="Data", icon=":material/upload_file:", url_path="data"),
    st.Page("pages/mine.py", title="Mine", icon=":material/target:", url_path="mine"),
    st.Page("pages/review.py", title="Review", icon=":material/fact_check:", url_path="review"),
    st.Page("pages/quality.py", title="Quality", icon=":material/monitoring:", url_path="quality"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/leaderboard:", url_path="evaluate"),
]


def project_picker() -> None:
    """Sidebar: pick or create the project; the choice survives reloads through the URL."""
    db = conn()
    projects = store.list_projects(db)
    names = [p["name"] for p in projects]
    wanted = st.session_state.get("project_name") or st.query_params.get("project")
    with st.sidebar:
        st.markdown("### Rerank Studio")
        if names:
            index = names.index(wanted) if wanted in names else 0
            name = st.selectbox("Project", names, index=index, key="project_select")
            chosen = next(p for p in projects if p["name"] == name)
            st.session_state["project_id"] = chosen["id"]
            st.session_state["project_name"] = chosen["name"]
            st.query_params["project"] = chosen["name"]
        else:
            st.session_state.pop("project_id", None)
            st.caption("No project yet.")
        with st.popover("New project", icon=":material/add:"):
            new_name = st.text_input("Name", key="new_project_name")
            if st.button("Create", key="create_project"):
                try:
                    store.create_project(db, new_name)
                except StudioError as exc:
                    st.error(str(exc))
                else:
                    st.session_state["project_name"] = new_name.strip()
                    st.session_state.pop("project_select", None)
                    st.rerun()


page = st.navigation(PAGES)  # first: it also takes Streamlit out of its legacy pages/ routing
project_picker()
with st.sidebar:
    sidebar_status(conn(), st.session_state.get("project_id"))
if page.url_path != OVERVIEW.url_path and st.session_state.get("project_id") is not None:
    back_to_overview()
page.run()
