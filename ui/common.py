"""What every page shares: the workspace connection and the project picked in the sidebar."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

from core import store

APP = (Path(__file__).resolve().parents[1] / "app.py").resolve()


def leave_legacy_routing() -> None:
    """Streamlit sees this pages/ folder and, until app.py's st.navigation has run once in the process, routes a
    deep link (/review after a server restart, a bookmark) to the bare page in its legacy multipage mode, with
    app.py as just another page: no sidebar, wrong navigation. Seen in any session's run, leave it and rerun."""
    ctx = get_script_run_ctx()
    if ctx is None:
        return
    pages = list(ctx.pages_manager.get_pages().values())  # one placeholder entry until a navigation has run
    if len(pages) > 1 and any(Path(str(page.get("script_path", ""))).resolve() == APP for page in pages):
        PagesManager.uses_pages_directory = False
        st.rerun()


def conn() -> sqlite3.Connection:
    """One connection per browser session, opened on first use (every page's first call: routing checked too)."""
    leave_legacy_routing()
    if "_conn" not in st.session_state:
        try:
            st.session_state["_conn"] = store.connect()
        except store.StoreError as exc:  # unwritable or full workspace: say so plainly, never a traceback
            st.error(
                f"{exc}\n\nPoint RERANK_STUDIO_HOME at a writable folder, or free space, then reload.",
                icon=":material/error:",
            )
            st.stop()
    return st.session_state["_conn"]


def project() -> int:
    """The project chosen in the sidebar; stops the page with a hint when there is none."""
    pid = st.session_state.get("project_id")
    if pid is None:
        st.info("Create or pick a project in the sidebar to begin.")
        st.stop()
    return int(pid)


def project_name() -> str:
    """The chosen project's name, for headings."""
    return st.session_state.get("project_name", "")


def back_to_overview() -> None:
    """The small link at the top of a step's page back to the project overview (the first screen)."""
    params = {"project": project_name()} if project_name() else None
    st.page_link("pages/overview.py", label="Overview", icon=":material/arrow_back:", query_params=params)
