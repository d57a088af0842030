"""The Train page's base picker: the bundled model, a local folder (a run, a bundle, any CrossEncoder) or a hub
model from a short catalogue, showing what is cached here and downloading with progress when online."""

from __future__ import annotations

import sqlite3

import streamlit as st

from core import bases, models
from core.markdown import escape_markdown as md
from core.runs import records
from ui import job_panel

BASE_KINDS = {
    "bundled": f"{models.BUNDLED_LABEL} as a new one-logit cross-encoder",
    "folder": "A local folder: one of your runs, an exported bundle, or any cross-encoder",
    "hub": "A Hugging Face model (a well-known reranker or embedding model)",
}
TYPE_FOLDER = "(type a folder path)"
OTHER_HUB = "(another hub id)"


@st.cache_data(ttl=60, show_spinner=False)
def hub_reachable() -> bool:
    """Whether downloads can work now (checked at most once a minute; instant with HF_HUB_OFFLINE=1)."""
    return bases.online()


def _folder(db: sqlite3.Connection, pid: int) -> str:
    """A run of this project or a typed folder, recognised and described; returns the folder to load ('' if none)."""
    runs = {r.id: r for r in records.list_runs(db, pid, status="completed") if r.model_dir}
    pick = st.selectbox(
        "One of this project's runs",
        [TYPE_FOLDER, *runs],
        key="base_run",
        format_func=lambda k: (
            k
            if k == TYPE_FOLDER
            else f"run {k} · {runs[k].config.get('loss', '?')} · validation NDCG@10 "
            f"{(runs[k].metrics.get('validation') or {}).get('ndcg@10', '—')}"
        ),
    )
    if pick != TYPE_FOLDER:
        path = str(runs[pick].model_dir)
    else:
        path = st.text_input(
            "Folder",
            key="base_spec",
            help="A run folder (runs/<id> or its model/), an exported "
            "bundle, or any folder saved by CrossEncoder (config.json + model.safetensors).",
        ).strip()
    if not path:
        return ""
    info = bases.describe_folder(path)
    if not info.usable:
        st.error(md(info.message))
        return ""
    extra = f" Max length {info.max_length} tokens." if info.max_length else ""
    st.info(f"**{info.kind.capitalize()}** — {md(info.message)}{extra}", icon=":material/folder_open:")
    return info.path


def _hub(db: sqlite3.Connection, pid: int) -> str:
    """A catalogue model or another hub id: cached -> ready; online -> Download (a background job); offline -> why."""
    rows = bases.catalogue_rows()
    st.dataframe(rows, hide_index=True, width="stretch", key="base_catalogue")
    ids = [r["model"] for r in rows]
    pick = st.selectbox("Model", [*ids, OTHER_HUB], key="base_hub_pick")
    repo_id = st.text_input("Hub id (owner/name)", key="base_hub_id").strip() if pick == OTHER_HUB else pick
    if not repo_id:
        return ""
    if bases.is_available(repo_id):
        st.success(
            f"{md(repo_id)} is available on this machine (no network needed).", icon=":material/check_circle:"
        )
        return repo_id
    job = job_panel.job_panel(db, pid, ("download",), key="base_download")
    if job and job.status == "completed" and job.args.get("repo_id") == repo_id:
        return repo_id
    if not hub_reachable():
        st.warning(md(bases.offline_message(repo_id)), icon=":material/cloud_off:")
        return ""
    known = bases.entry(repo_id)
    size = f" (about {known.size_mb:,} MB)" if known else ""
    st.caption(f"{md(repo_id)} is not in the local cache yet{size}.")
    busy = bool(job and job.status in ("queued", "running"))
    if st.button(f"Download {repo_id}", key="base_download_go", icon=":material/download:", disabled=busy):
        if job_panel.submit(db, pid, "download", {"repo_id": repo_id}) is not None:
            st.rerun()
    return ""


def base_picker(db: sqlite3.Connection, pid: int) -> tuple[str, str]:
    """(kind, base model spec) chosen on the page; the spec is '' while a folder or hub model is not ready."""
    st.subheader("Base model")
    kind = st.radio("Start from", list(BASE_KINDS), format_func=BASE_KINDS.get, key="base_kind")
    if kind == "bundled":
        return kind, models.BUNDLED
    return kind, (_folder(db, pid) if kind == "folder" else _hub(db, pid))
