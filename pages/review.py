"""Review: judge mined negatives one at a time, keyboard first, each judgement saved the moment it is made;
sweep the rest in bulk; read the audit trail; export the curated dataset."""

from __future__ import annotations

import getpass
from dataclasses import asdict
from pathlib import Path

import streamlit as st

from core import review
from core.markdown import escape_markdown
from core.review import ConflictError, QueueFilter, dataset_export
from core.review.evidence import highlight, query_terms, risk_reasons
from ui.common import conn, project, project_name
from ui.suspects import render as suspect_labels

KEYS = {"negative": "J", "relevant": "K", "skipped": "S", "undo": "U", "previous": "P", "next": "N"}
STATE_LABELS = {
    "unjudged": "Unjudged",
    "judged": "Judged",
    "all": "All",
    "negative": "Marked negative",
    "relevant": "Marked relevant",
    "skipped": "Skipped",
}
ORDER_LABELS = {"risk": "Riskiest first", "safest": "Safest first", "rank": "By query, mining rank"}
VIEWS = ["Desk", "Bulk", "Suspect labels", "History", "Export"]

db = conn()
pid = project()


def default_reviewer() -> str:
    """Judgements name who made them; the login name is a fair default on a desktop."""
    try:
        return getpass.getuser() or "reviewer"
    except (KeyError, OSError):
        return "reviewer"


sent_from_evaluate = st.session_state.pop("review_query_filter", None)  # a loss sent back from Evaluate
if st.session_state.get("review_project") != pid:  # another project: its queries, positions, focus start over
    for key in [k for k in st.session_state if k.startswith("review_") and k != "review_actor"]:
        del st.session_state[key]
    st.session_state["review_project"] = pid
st.session_state.setdefault("review_actor", default_reviewer())
st.session_state.setdefault("review_pos", 0)


def actor() -> str:
    return (st.session_state.get("review_actor") or "").strip() or default_reviewer()


def current_filter() -> QueueFilter:
    low, high = st.session_state.get("review_risk", (0.0, 1.0))
    kind = st.session_state.get("review_kind", "both")
    return QueueFilter(
        query_id=st.session_state.get("review_query"),
        risk_min=None if low <= 0 else low,
        risk_max=None if high >= 1 else high,
        state=st.session_state.get("review_state", "unjudged"),
        kind=None if kind == "both" else kind,
        order=st.session_state.get("review_order", "risk"),
    )


# --- actions (callbacks run before the page redraws, with the ids and versions this tab showed) ---------


def flash(kind: str, text: str) -> None:
    st.session_state["review_flash"] = (kind, text)


def reset_position() -> None:
    st.session_state["review_pos"] = 0
    st.session_state.pop("review_focus", None)


def queued_press(negative_id: int) -> dict | None:
    """A key pressed again before the desk redrew carries the candidate this tab just saved: it was meant for
    the one that follows. Streamlit delivers it with the old screen's arguments; hand it to the current one."""
    if st.session_state.get("review_last_saved") != negative_id:
        return None
    nxt = review.desk(conn(), pid, current_filter(), position=st.session_state["review_pos"])["current"]
    return nxt if nxt and nxt["id"] != negative_id else None


def do_judge(negative_id: int, version: int, status: str) -> None:
    state = current_filter().state
    try:
        review.judge(conn(), negative_id, status, version, actor=actor())
    except ConflictError as exc:
        nxt = queued_press(negative_id)
        if nxt is not None:
            do_judge(nxt["id"], nxt["version"], status)
            return
        flash("warning", f"{exc}")
        st.session_state["review_focus"] = negative_id  # show it again, as it is now
        return
    except ValueError as exc:
        flash("error", str(exc))
        st.session_state.pop("review_focus", None)
        return
    st.session_state.pop("review_focus", None)
    st.session_state["review_last_saved"] = negative_id
    if state == "all" or state == status or (state == "judged" and status != "unjudged"):
        st.session_state["review_pos"] += 1  # it stays in this queue: move past it
    flash("toast", f"Saved #{negative_id} as {status}.")


def do_undo() -> None:
    try:
        out = review.undo(conn(), pid, actor())
    except ConflictError as exc:
        flash("warning", str(exc))
        return
    if out is None:
        flash("info", f"Nothing left to undo for {actor()}.")
        return
    if out["rows"] == 1:
        st.session_state["review_focus"] = out["negative_id"]
        flash("toast", f"Undid #{out['negative_id']}: back to {out['restored']}.")
    else:
        flash("toast", f"Undid a bulk action: {out['rows']} candidates back to {out['restored']}.")


def move(step: int) -> None:
    st.session_state.pop("review_focus", None)
    st.session_state["review_pos"] = max(0, st.session_state["review_pos"] + step)


def ask_bulk(label: str, flt: QueueFilter) -> None:
    st.session_state["review_pending"] = {
        "label": label,
        "filter": asdict(flt),
        "preview": review.preview(conn(), pid, flt),
    }


def confirm_bulk() -> None:
    pending = st.session_state.pop("review_pending", None)
    if not pending:
        return
    flt = QueueFilter(**pending["filter"])
    try:
        out = review.bulk_judge(
            conn(), pid, flt, "negative", actor=actor(), expected_rows=pending["preview"]["rows"]
        )
    except ConflictError as exc:
        flash("warning", str(exc))
        return
    flash(
        "success",
        f"Marked {out['rows']} candidates as negative ({pending['label']}). Undo takes them back at once.",
    )


# --- the page ---------------------------------------------------------------------------------

st.title("Review")
st.caption(
    f"Project **{escape_markdown(project_name())}**: keep real negatives, catch false negatives, riskiest first."
)

message = st.session_state.pop("review_flash", None)
if message:
    kind, text = message
    {"toast": st.toast, "warning": st.warning, "error": st.error, "info": st.info, "success": st.success}[
        kind
    ](escape_markdown(text))  # messages carry names people typed

overall = review.progress(db, pid)
if overall["total"] == 0:
    st.info(
        "No mined candidates yet: mine hard negatives on the Mine page, then come back to review them. "
        "The Export view still exports your uploaded pairs."
    )

with st.container(horizontal=True, vertical_alignment="center"):
    view = st.segmented_control(
        "View", VIEWS, default="Desk", required=True, key="review_view", label_visibility="collapsed"
    )
    with st.popover(f"Reviewer: {escape_markdown(actor())}", icon=":material/person:"):
        st.text_input(
            "Reviewer", key="review_actor", help="Saved with every judgement; undo takes back yours."
        )

if sent_from_evaluate is not None:
    if review.progress(db, pid, sent_from_evaluate)["total"]:  # it has mined candidates: open it on the desk
        st.session_state["review_query"] = sent_from_evaluate
        reset_position()
    else:
        sent = review.labelled_query(db, sent_from_evaluate)
        with st.container(border=True):
            st.markdown(
                "**Sent from Evaluate** — this query has no mined candidates to judge"
                + (
                    " (test queries are never mined, so the test set stays clean)."
                    if sent and sent["split"] == "test"
                    else "."
                )
            )
            st.text(sent["text"] if sent else "(query no longer in the project)")
            st.caption("Its labelled passages: check that the label is right and the passage is complete.")
            st.dataframe(sent["labelled"] if sent else [], hide_index=True, width="stretch")

if view == "Desk" and overall["total"]:
    queries = review.query_progress(db, pid)
    by_query = {q["query_id"]: q for q in queries}
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.selectbox(
            "Query",
            [None, *by_query],
            key="review_query",
            on_change=reset_position,
            width=420,
            format_func=lambda q: (
                "All queries"
                if q is None
                else f"{by_query[q]['query'][:70]}  ({by_query[q]['judged']}/{by_query[q]['total']})"
            ),
        )
        st.slider("Risk", 0.0, 1.0, (0.0, 1.0), 0.01, key="review_risk", on_change=reset_position, width=220)
        st.selectbox(
            "Show",
            list(STATE_LABELS),
            format_func=STATE_LABELS.get,
            key="review_state",
            on_change=reset_position,
            width=170,
        )
        st.selectbox(
            "Kind", ["both", "hard", "random"], key="review_kind", on_change=reset_position, width=110
        )
        st.selectbox(
            "Order",
            list(ORDER_LABELS),
            format_func=ORDER_LABELS.get,
            key="review_order",
            on_change=reset_position,
            width=190,
        )

    flt = current_filter()
    data = review.desk(
        db, pid, flt, position=st.session_state["review_pos"], focus=st.session_state.get("review_focus")
    )
    st.session_state["review_pos"] = data["position"]
    cur = data["current"]

    left, right = st.columns(2)
    left.progress(overall["fraction"], text=f"Overall: {overall['judged']:,} of {overall['total']:,} judged")
    if data["query"]:
        q = data["query"]
        right.progress(
            q["fraction"],
            text=f"This query: {q['judged']} of {q['total']} judged, "
            f"{q['by_status']['relevant']} false negatives found",
        )

    undoable = review.last_undoable(db, pid, actor())
    with st.container(horizontal=True):
        disabled = cur is None
        nid, version = (cur["id"], cur["version"]) if cur else (0, 0)
        st.button(
            "Negative",
            key="review_negative",
            shortcut=KEYS["negative"],
            type="primary",
            disabled=disabled,
            on_click=do_judge,
            args=(nid, version, "negative"),
            icon=":material/thumb_down:",
            help="A real negative for this query: keep it for training.",
        )
        st.button(
            "Relevant",
            key="review_relevant",
            shortcut=KEYS["relevant"],
            disabled=disabled,
            on_click=do_judge,
            args=(nid, version, "relevant"),
            icon=":material/thumb_up:",
            help="A false negative: it answers the query, so it becomes a positive.",
        )
        st.button(
            "Skip",
            key="review_skip",
            shortcut=KEYS["skipped"],
            disabled=disabled,
            on_click=do_judge,
            args=(nid, version, "skipped"),
            icon=":material/skip_next:",
            help="Unsure: left out of training and export.",
        )
        st.button(
            "Undo",
            key="review_undo",
            shortcut=KEYS["undo"],
            disabled=undoable is None,
            on_click=do_undo,
            icon=":material/undo:",
            help="Take back your last judgement (a bulk action at once); press again to go further back.",
        )
        st.button(
            "Previous",
            key="review_prev",
            shortcut=KEYS["previous"],
            on_click=move,
            args=(-1,),
            disabled=data["position"] == 0 and not st.session_state.get("review_focus"),
        )
        st.button(
            "Next",
            key="review_next",
            shortcut=KEYS["next"],
            on_click=move,
            args=(1,),
            disabled=data["position"] >= data["size"] - 1,
        )

    if cur is None:
        st.success("Nothing left under these filters. Widen them, or export the curated dataset.")
    else:
        focused = st.session_state.get("review_focus") == cur["id"]
        where = "shown again" if focused else f"{data['position'] + 1:,} of {data['size']:,} in this queue"
        st.subheader(f"Candidate #{cur['id']} ({where})")
        status = cur["status"]
        last = cur["last_judgement"]
        note = (
            f" by {escape_markdown(last['actor'])} at {last['at'][:19].replace('T', ' ')}"
            if last and status != "unjudged"
            else ""
        )
        st.caption(f"Status: {status}{note} · {cur['kind']} negative · mining rank {cur['rank'] or '—'}")
        cols = st.columns(4)
        fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
        cols[0].metric("Risk of false negative", f"{cur['risk']:.2f}")
        cols[1].metric("Candidate score", fmt(cur["score"]))
        cols[2].metric("Positive's score", fmt(cur["positive_score"]))
        cols[3].metric("Cross-encoder score", fmt(cur["ce_score"]))
        st.caption(f":material/lightbulb: Why it may be relevant: {escape_markdown(risk_reasons(cur))}")
        terms = query_terms(
            cur["query"]
        )  # marked in both passages as text styling; the text itself is escaped

        st.markdown("**Query**")
        with st.container(border=True, key="review_query_text"):
            st.text(cur["query"])
        left, right = st.columns(2)
        with left:
            st.markdown("**Known positive**")
            with st.container(height=320, border=True, key="review_positive_text"):
                if cur["positive"]:
                    st.markdown(highlight(cur["positive"], terms))
                else:
                    st.text("(no positive recorded for this query)")
            others = [p for p in cur["positives"] if p["id"] != cur["positive_id"]]
            if others:
                with st.expander(f"{len(others)} more known positive(s)"):
                    for p in others:
                        st.text(p["text"])
                        st.divider()
        with right:
            st.markdown("**Candidate negative**")
            with st.container(height=320, border=True, key="review_candidate_text"):
                st.markdown(highlight(cur["candidate"], terms))
        st.caption(
            "Keys: "
            + " · ".join(f"{k} {a.removesuffix('ped')}" for a, k in KEYS.items())
            + ". Every judgement is saved at once; the history view lists them all."
        )

elif view == "Bulk" and overall["total"]:
    queries = review.query_progress(db, pid)
    by_query = {q["query_id"]: q for q in queries}
    flt = current_filter()
    st.markdown("**Candidates under the desk's filters** (first 500)")
    st.dataframe(
        review.queue(db, pid, flt, limit=500),
        hide_index=True,
        height=320,
        column_order=["id", "risk", "status", "kind", "rank", "score", "query", "candidate"],
    )

    pending = st.session_state.get("review_pending")
    if pending:
        p = pending["preview"]
        if p["rows"]:
            st.warning(
                f"This marks **{p['rows']:,}** unjudged candidates as negative ({pending['label']}: "
                f"{p['queries']:,} queries, risk {p['min_risk']:.2f}–{p['max_risk']:.2f}, "
                f"{p['hard']:,} hard, {p['random']:,} random). Confirm?"
            )
            with st.container(horizontal=True):
                st.button(
                    f"Confirm: mark {p['rows']:,} as negative",
                    key="review_bulk_confirm",
                    type="primary",
                    on_click=confirm_bulk,
                )
                st.button(
                    "Cancel",
                    key="review_bulk_cancel",
                    on_click=lambda: st.session_state.pop("review_pending", None),
                )
        else:
            st.info("No unjudged candidates match: nothing would change.")
            st.button(
                "OK", key="review_bulk_cancel", on_click=lambda: st.session_state.pop("review_pending", None)
            )

    one, two = st.columns(2)
    with one:
        st.markdown("**Accept the rest of one query**")
        options = [q for q in by_query if by_query[q]["judged"] < by_query[q]["total"]]
        if options:
            chosen = st.selectbox(
                "Query",
                options,
                key="review_bulk_query",
                format_func=lambda q: (
                    f"{by_query[q]['query'][:70]}  ({by_query[q]['total'] - by_query[q]['judged']} left)"
                ),
            )
            st.button(
                "Accept remaining as negatives…",
                key="review_bulk_query_go",
                on_click=ask_bulk,
                args=("rest of one query", QueueFilter(query_id=chosen)),
            )
        else:
            st.caption("Every query is fully judged.")
    with two:
        st.markdown("**Accept everything below a risk level**")
        level = st.slider("Risk below", 0.0, 1.0, 0.2, 0.01, key="review_bulk_level")
        st.caption(
            f"{review.preview(db, pid, QueueFilter(risk_below=level))['rows']:,} unjudged candidates "
            f"have risk below {level:.2f}."
        )
        st.button(
            "Accept them as negatives…",
            key="review_bulk_risk_go",
            on_click=ask_bulk,
            args=(f"risk below {level:.2f}", QueueFilter(risk_below=level)),
        )
    undoable = review.last_undoable(db, pid, actor())
    st.button(
        "Undo last" + (f" ({undoable['rows']} rows)" if undoable else ""),
        key="review_bulk_undo",
        on_click=do_undo,
        disabled=undoable is None,
        icon=":material/undo:",
    )

elif view == "Suspect labels":
    suspect_labels(db, pid, actor())

elif view == "History":
    st.markdown("**Audit trail** (newest first; undos name the judgement they reverted)")
    rows = review.history(db, pid, limit=500)
    if rows:
        st.dataframe(
            rows,
            hide_index=True,
            column_order=[
                "id",
                "at",
                "actor",
                "negative_id",
                "old_status",
                "new_status",
                "undoes",
                "undone",
                "batch",
                "query",
                "candidate",
            ],
        )
    else:
        st.caption("No judgements yet.")

elif view == "Export":
    st.markdown("**Export the curated dataset** for sentence-transformers' losses")
    with st.container(horizontal=True, vertical_alignment="bottom"):
        fmt = st.selectbox(
            "Format",
            list(dataset_export.FORMATS),
            key="review_export_format",
            width=160,
            format_func={
                "pairs": "Labelled pairs",
                "triplets": "Triplets",
                "ntuple": "Query + n negatives",
            }.get,
        )
        to = st.selectbox(
            "As",
            list(dataset_export.CONTAINERS),
            key="review_export_to",
            width=200,
            format_func={"jsonl": "JSONL", "parquet": "Parquet", "hf": "Hugging Face datasets folder"}.get,
        )
        n = st.number_input(
            "Negatives per row", 1, 50, 3, key="review_export_n", width=150, disabled=fmt != "ntuple"
        )
        name = st.text_input(
            "Name (optional)", key="review_export_name", width=240, placeholder="inside the exports folder"
        )
    st.caption(dataset_export.FORMATS[fmt])
    reviewed_only = st.checkbox("Only negatives a person judged", key="review_export_reviewed")
    if st.button("Export", key="review_export_go", type="primary", icon=":material/download:"):
        try:
            summary = dataset_export.export(
                db, pid, fmt, to, reviewed_only=reviewed_only, out=name or None, n_negatives=int(n)
            )
        except ValueError as exc:
            st.error(escape_markdown(exc))
        else:
            st.session_state["review_export_summary"] = summary
    summary = st.session_state.get("review_export_summary")
    if summary:
        st.success(f"Wrote {summary['rows']:,} rows to {escape_markdown(summary['path'])}")
        cols = st.columns(4)
        cols[0].metric("Rows", f"{summary['rows']:,}")
        cols[1].metric("Queries", f"{summary['queries']:,}")
        cols[2].metric(
            "Positives",
            f"{summary['positives']:,}",
            help=f"incl. {summary['reviewed_positives']} false negatives found in review",
        )
        cols[3].metric(
            "Negatives",
            f"{summary['negatives']:,}",
            help=", ".join(f"{k}: {v}" for k, v in summary["negatives_by_kind"].items()),
        )
        st.json(summary, expanded=False)
        path = Path(summary["path"])
        if path.is_file():
            st.download_button(
                "Download", path.read_bytes(), file_name=path.name, key="review_export_download"
            )
