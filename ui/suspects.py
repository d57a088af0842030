"""The Review page's "Suspect labels" view: the person's own labels checked by held-out models, most suspect first,
judged with keys (keep / flip / drop / skip / undo), each change saved at once; a bulk action for a whole pattern;
and the missing positives proposed for judging."""

from __future__ import annotations

import sqlite3
from typing import Any

import streamlit as st

from core.errors import StudioError
from core.markdown import escape_markdown
from core.runs import jobs
from core.suspects import judgements, records
from core.suspects.records import LABELLED, SuspectFilter
from ui.common import conn
from ui.job_panel import job_panel, submit

KEYS = {"keep": "K", "flip": "F", "drop": "D", "skip": "S", "undo": "U"}  # skip and undo as on the desk
QUEUES = {"Suspect labels": LABELLED, "Missing positives": ("missing_positive",)}
HELP = {
    "keep": "The label is right: keep it as it is.",
    "flip": "The label is wrong: relevant becomes not relevant, and the other way round.",
    "drop": "Neither: take the pair out of training and export.",
    "skip": "Unsure: leave it as it is and move on.",
}
MISSING_LABELS = {"keep": "Not relevant", "flip": "Relevant"}


def _flash(kind: str, text: str) -> None:
    st.session_state["suspects_flash"] = (kind, text)


def _judge(suspect_id: int, version: int, action: str, actor: str) -> None:
    try:
        out = judgements.judge(conn(), suspect_id, action, version, actor=actor)
    except StudioError as exc:
        _flash("warning", str(exc))
        return
    _flash("toast", f"Saved suspect #{suspect_id} as {out['status']}.")


def _undo(project: int, actor: str) -> None:
    try:
        out = judgements.undo(conn(), project, actor)
    except judgements.SuspectConflict as exc:
        _flash("warning", str(exc))
        return
    if out is None:
        _flash("info", f"Nothing left to undo for {actor}.")
    else:
        _flash("toast", f"Undid {out['rows']} judgement(s): back to {out['restored']}.")


def _bulk(project: int, pattern: str, action: str, rows: int, actor: str) -> None:
    try:
        out = judgements.bulk_judge(conn(), project, pattern, action, actor=actor, expected_rows=rows)
    except StudioError as exc:
        _flash("warning", str(exc))
        return
    _flash("success", f"{out['rows']} suspects of {pattern} {out['status']}. Undo takes them back at once.")


def _search(db: sqlite3.Connection, project: int) -> bool:
    """The search's job panel and button; True while a search runs."""
    last = job_panel(db, project, ("suspects",), key="suspects")
    running = last is not None and last.status in jobs.ACTIVE
    with st.container(horizontal=True, vertical_alignment="center"):
        label = "Search again" if last else "Find suspect labels"
        folds = st.checkbox(
            "Add out-of-fold tuned models",
            key="suspects_folds",
            help="A third held-out model: the embedding model fine-tuned on two thirds of your queries ranks the "
            "other third (three copies, about 2 minutes each). Slower; on SciFact's planted errors it did not "
            "find measurably more.",
        )
        if st.button(label, key="suspects_search", icon=":material/search:", disabled=running):
            if submit(db, project, "suspects", {"fold_models": True} if folds else {}) is not None:
                st.rerun()
        st.caption(
            "Ranks every labelled pair with models that never trained on your labels (the embedding model and "
            "BM25, over the whole passage pool), and proposes unjudged passages that similar queries label relevant "
            "as missing positives, in the background; a new search keeps what you judged."
        )
    return running


def _buttons(cur: dict | None, project: int, actor: str, missing: bool) -> None:
    undoable = judgements.last_undoable(conn(), project, actor)
    with st.container(horizontal=True):
        for action in ("keep", "flip", "drop", "skip"):
            if missing and action == "drop":
                continue
            label = MISSING_LABELS.get(action, action.title()) if missing else action.title()
            st.button(
                label,
                key=f"suspects_{action}",
                shortcut=KEYS[action],
                type="primary" if action == "flip" else "secondary",
                disabled=cur is None,
                on_click=_judge,
                args=(cur["id"], cur["version"], action, actor) if cur else (0, 0, action, actor),
                help=HELP[action],
            )
        st.button(
            "Undo",
            key="suspects_undo",
            shortcut=KEYS["undo"],
            disabled=undoable is None,
            on_click=_undo,
            args=(project, actor),
            icon=":material/undo:",
            help="Take back your last suspect judgement (a bulk action at once).",
        )


def _card(cur: dict) -> None:
    label = {None: "not labelled"}.get(
        cur["label_now"], "relevant" if (cur["label_now"] or 0) > 0 else "not relevant"
    )
    st.subheader(f"Suspect #{cur['id']}")
    st.caption(f"Suspicion {cur['score']:.2f} · labelled now: {label} · status: {cur['status']}")
    for reason in cur["reasons"]:
        st.markdown(f":material/lightbulb: {escape_markdown(reason)}")
    st.markdown("**Query**")
    with st.container(border=True, key="suspects_query_text"):
        st.text(cur["query"])
    st.markdown("**Passage**")
    with st.container(height=260, border=True, key="suspects_passage_text"):
        st.text(cur["passage"])


def _patterns(db: sqlite3.Connection, project: int, actor: str) -> None:
    found = records.patterns(db, project)
    if not found:
        return
    with st.expander(f"Bulk: {len(found)} pattern(s) with open suspects (hub passages, twin queries)"):
        chosen = st.selectbox(
            "Pattern",
            range(len(found)),
            key="suspects_pattern",
            format_func=lambda i: f"{found[i]['pattern']}: {found[i]['open']} open — {found[i]['passage']}",
        )
        p = found[chosen]
        st.caption(escape_markdown("; ".join(p["reasons"])))
        with st.container(horizontal=True):
            for action in ("keep", "drop", "flip"):
                st.button(
                    f"{action.title()} all {p['open']}",
                    key=f"suspects_bulk_{action}",
                    on_click=_bulk,
                    args=(project, p["pattern"], action, p["open"], actor),
                )


def render(db: sqlite3.Connection, project: int, actor: str) -> None:
    """The whole view: search, counts, the queue's current suspect with its keys, bulk patterns, history."""
    message = st.session_state.pop("suspects_flash", None)
    if message:
        kind, text = message
        show: Any = {"toast": st.toast, "warning": st.warning, "info": st.info, "success": st.success}[kind]
        show(escape_markdown(text))
    if _search(db, project):
        return
    counts = records.counts(db, project)
    if not any(sum(v.values()) for v in counts.values()):
        st.info("No suspects yet: run the search above.")
        return
    which = st.segmented_control(
        "Queue", list(QUEUES), default="Suspect labels", required=True, key="suspects_queue"
    )
    missing = which == "Missing positives"
    flt = SuspectFilter(kinds=QUEUES[which])
    size = records.queue_size(db, project, flt)
    total = sum(sum(counts[k].values()) for k in QUEUES[which])
    st.progress(1 - size / total if total else 1.0, text=f"{total - size:,} of {total:,} judged")
    rows = records.queue(db, project, flt, limit=1)
    cur = rows[0] if rows else None
    _buttons(cur, project, actor, missing)
    if cur is None:
        st.success("Nothing left in this queue.")
    else:
        _card(cur)
        st.caption(
            "Keys: " + " · ".join(f"{k} {a}" for a, k in KEYS.items()) + ". Each change is saved at once."
        )
    if not missing:
        _patterns(db, project, actor)
    with st.expander("History of suspect judgements"):
        st.dataframe(judgements.history(db, project), hide_index=True)
