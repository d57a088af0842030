"""Quality: is the data diverse, does it fit the context, does it follow the field's rules — and what to fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core import estimates, models, quality, store
from core.errors import StudioError
from core.markdown import escape_markdown
from core.quality.stored import cached_report, latest_report, report_key
from core.runs import jobs
from ui import charts
from ui.common import conn, project, project_name
from ui.job_panel import estimate_caption, job_panel, submit

ICONS = {
    "pass": ":green[:material/check_circle:]",
    "warn": ":orange[:material/warning:]",
    "fail": ":red[:material/cancel:]",
}

db = conn()
pid = project()
embedder, base_model, default_length = quality.settings_models(db, pid)

st.title("Quality")
st.caption(
    f"Project **{escape_markdown(project_name())}** — diversity of queries and passages, token lengths and a health check."
)

with st.expander("Model and context", icon=":material/tune:"):
    col1, col2 = st.columns(2)
    train_model = col1.text_input(
        "Model that will be trained (its tokenizer counts the tokens)",
        value=base_model,
        key="quality_model",
        help=f"`{models.BUNDLED}` is the bundled default; or a local model folder.",
    )
    max_length = col2.number_input(
        "Context limit (tokens, incl. special tokens)",
        min_value=32,
        max_value=8192,
        step=32,
        value=default_length,
        key="quality_max_length",
    )
    st.caption(
        f"Embeddings for maps and paraphrases: {escape_markdown(embedder)} (cached, shared with Mine)."
    )


options = {"embed_model": embedder, "train_model": train_model, "max_length": int(max_length)}
workspace = store.workspace_of(db)


def compute() -> quality.QualityReport | None:
    """The report a quality job left in the cache; else the job (running) or a button that starts it.

    The analysis (embedding new texts is the slow part) runs as a background job: leaving the page, a reload or
    a restart does not lose it, and this page never computes it itself."""
    try:
        report = cached_report(db, pid, **options)
    except StudioError as exc:
        st.error(escape_markdown(exc))
        return None
    if report is not None:
        return report
    last = job_panel(db, pid, ("quality",), key="quality")
    if last is not None and last.status in jobs.ACTIVE:
        return None
    key = report_key(db, pid, **options)
    stale = latest_report(db, pid) is not None and (last is None or last.status == "completed")
    if (
        stale and st.session_state.get("quality_auto") != key
    ):  # analysed before: again, for the data as it is now
        st.session_state["quality_auto"] = key  # once per data version and settings, so a failure cannot loop
        if submit(db, pid, "quality", options) is not None:
            st.rerun()
    counts = store.project_counts(db, pid)
    st.info(
        "Not analysed yet for the data as it is now, with this model and context limit. The analysis embeds "
        "the queries and passages (cached, shared with Mine) and counts their tokens, in the background.",
        icon=":material/info:",
    )
    with st.container(horizontal=True, vertical_alignment="center"):
        if st.button("Analyse", type="primary", icon=":material/monitoring:", key="quality_analyse"):
            if submit(db, pid, "quality", options) is not None:
                st.rerun()
        estimate_caption(
            estimates.embedding(
                workspace, counts["train_queries"] + counts["test_queries"] + counts["passages"]
            )
        )
    return None


report = compute()
if report is None:
    st.stop()
if not report.tokens.pair_id.size:
    st.info("This project has no pairs yet. Import some on the Data page.")
    st.stop()

threshold = st.slider(
    "Paraphrase threshold (cosine similarity)",
    min_value=quality.MIN_THRESHOLD,
    max_value=0.99,
    value=quality.DEFAULT_THRESHOLD,
    step=0.01,
    key="quality_threshold",
    help="Two texts at least this similar count as one (paraphrases / near-duplicates). Lower merges more.",
)

# --- health check --------------------------------------------------------------------------------------
st.subheader("Health check", divider="gray")
for check in quality.checklist(report, threshold):
    st.markdown(f"{ICONS[check.state]} **{check.rule}** — {check.figure}", help=check.advice)

# --- query diversity ----------------------------------------------------------------------------------
st.subheader("Query diversity", divider="gray")
q = report.queries
train_mask = q.group == "train"
q_groups = quality.query_clusters(report, threshold)
q_sum = quality.diversity_summary(q, q_groups, train_mask)
leaks = quality.leakage(report, threshold)
cols = st.columns(5)
cols[0].metric("Training queries", f"{q_sum['count']:,}")
cols[1].metric(
    "Distinct (paraphrases merged)",
    f"{q_sum['effective']:,}",
    delta=f"-{q_sum['count'] - q_sum['effective']:,}" if q_sum["count"] > q_sum["effective"] else None,
)
cols[2].metric("Median words", f"{q_sum['words_median']:g}")
cols[3].metric("Vocabulary", f"{q_sum['vocabulary']:,}")
cols[4].metric("Test near-duplicates", f"{len(leaks):,}")

in_group = np.zeros(len(q.texts), dtype=bool)
for g in q_groups:
    in_group[g[1:]] = True
leaked = np.zeros(len(q.texts), dtype=bool)
leaked[[int(np.flatnonzero(q.ids == row["test_query_id"])[0]) for row in leaks]] = True
labels = np.where(
    q.group == "test",
    np.where(leaked, "near-duplicate of train", "test"),
    np.where(in_group, "paraphrase", "train"),
)
rows = q.map_index
st.plotly_chart(
    charts.embedding_map_figure(
        q.map_xy,
        labels[rows].tolist(),
        [q.texts[i] for i in rows],
        title=f"Query map ({len(rows):,} of {len(q.texts):,} queries)"
        if len(rows) < len(q.texts)
        else "Query map",
        order=["train", "paraphrase", "test", "near-duplicate of train"],
    ),
    key="quality_query_map",
)
left, right = st.columns(2)
with left:
    st.markdown(f"**Paraphrase clusters** ({len(q_groups):,})")
    if q_groups:
        st.dataframe(pd.DataFrame(quality.cluster_table(q, q_groups)), hide_index=True, height=260)
    else:
        st.caption("No training queries are this similar to each other.")
with right:
    st.markdown(f"**Test queries that repeat a training query** ({len(leaks):,})")
    if leaks:
        st.dataframe(
            pd.DataFrame(leaks)[["similarity", "test_query", "train_query"]], hide_index=True, height=260
        )
    else:
        st.caption("No test query is this close to a training query.")

# --- document diversity -----------------------------------------------------------------------------
st.subheader("Document diversity", divider="gray")
p = report.passages
p_groups = quality.passage_clusters(report, threshold)
p_sum = quality.diversity_summary(p, p_groups)
cols = st.columns(4)
cols[0].metric("Training passages", f"{p_sum['count']:,}")
cols[1].metric("Distinct (near-duplicates merged)", f"{p_sum['effective']:,}")
cols[2].metric("Median words", f"{p_sum['words_median']:g}")
cols[3].metric("Vocabulary", f"{p_sum['vocabulary']:,}")
rows = p.map_index
st.plotly_chart(
    charts.embedding_map_figure(
        p.map_xy,
        p.group[rows].tolist(),
        [p.texts[i] for i in rows],
        title=f"Passage map ({len(rows):,} of {len(p.texts):,} passages)"
        if len(rows) < len(p.texts)
        else "Passage map",
        order=["positive", "labelled negative", "mined hard negative", "mined random negative"],
    ),
    key="quality_passage_map",
)
st.plotly_chart(
    charts.binned_histogram_figure(
        {
            g: p.words[p.group == g]
            for g in ("positive", "labelled negative", "mined hard negative", "mined random negative")
        },
        title="Passage length by role",
        xaxis="words",
    ),
    key="quality_passage_words",
)
if p_groups:
    with st.expander(f"Near-duplicate passages ({len(p_groups):,} groups)"):
        st.dataframe(pd.DataFrame(quality.cluster_table(p, p_groups)), hide_index=True)

# --- token lengths ------------------------------------------------------------------------------------
st.subheader("Token lengths", divider="gray")
t = report.tokens
train_rows = t.split == "train"
st.caption(
    f"Counted with the tokenizer of {escape_markdown(report.tokenizer)}; a pair adds {report.special_tokens} special "
    f"tokens; limit {report.max_length}."
)
cols = st.columns(3)
with cols[0]:
    st.plotly_chart(
        charts.binned_histogram_figure(
            {"train": t.query_tokens[train_rows & (t.kind == "pair")]},
            title="Query tokens",
            xaxis="tokens",
            limit=report.max_length,
        ),
        key="quality_hist_query",
    )
with cols[1]:
    st.plotly_chart(
        charts.binned_histogram_figure(
            {
                "positive": t.passage_tokens[train_rows & (t.label > 0)],
                "negative": t.passage_tokens[train_rows & (t.label <= 0)],
            },
            title="Passage tokens",
            xaxis="tokens",
            limit=report.max_length,
        ),
        key="quality_hist_passage",
    )
with cols[2]:
    st.plotly_chart(
        charts.binned_histogram_figure(
            {"train": t.total[train_rows], "test": t.total[t.split == "test"]},
            title="Query + passage tokens (pair encoding)",
            xaxis="tokens",
            limit=report.max_length,
        ),
        key="quality_hist_pair",
    )

cut_rows = quality.truncated(report, kind="pair")
cut_mined = quality.truncated(report, kind="mined")
cut_test = quality.truncated(report, split="test")
st.markdown(
    f"**{len(cut_rows):,}** training pairs and **{len(cut_mined):,}** mined negatives exceed {report.max_length} "
    f"tokens ({len(cut_test):,} test pairs too); the model never sees their ends."
)
if len(cut_rows):
    st.dataframe(
        pd.DataFrame(quality.truncated_table(report, cut_rows)),
        hide_index=True,
        height=240,
        column_config={"cut_share": st.column_config.ProgressColumn("share cut", min_value=0, max_value=1)},
    )

    st.markdown("**Fix: keep the part of each long passage most similar to its query**")
    n_show = st.number_input(
        "Propose snippets for the longest",
        min_value=1,
        max_value=max(1, len(cut_rows)),
        value=min(5, len(cut_rows)),
        key="quality_n_snippets",
    )
    # Proposing embeds every window of each passage: a background job (snippets), like the analysis.
    windows_of = lambda rows: int(t.passage_tokens[rows].sum() / 25) + len(rows)  # noqa: E731 - ~a sentence each
    c1, c2 = st.columns(2)
    if c1.button("Propose snippets", icon=":material/content_cut:", key="quality_propose"):
        if (
            submit(db, pid, "snippets", {"rows": [int(i) for i in cut_rows[: int(n_show)]], **options})
            is not None
        ):
            st.rerun()
    with c1:
        estimate_caption(estimates.embedding(workspace, windows_of(cut_rows[: int(n_show)])))
    if c2.button(
        f"Shorten all {len(cut_rows):,} truncated pairs",
        icon=":material/done_all:",
        key="quality_accept_every",
        help="Embeds every window of every truncated passage (cached), then accepts the best window of "
        "each in one transaction. Undo restores all originals.",
    ):
        job_id = submit(db, pid, "snippets", {"rows": [int(i) for i in cut_rows], **options})
        if job_id is not None:
            st.session_state["quality_accept_job"] = job_id  # accepted when this tab sees it finish
            st.rerun()
    with c2:
        estimate_caption(estimates.embedding(workspace, windows_of(cut_rows)))
    snippet_job = job_panel(db, pid, ("snippets",), key="quality_snippets")
    found = []
    if snippet_job is not None and snippet_job.status == "completed":
        found = [
            quality.Snippet(**{**d, "window": tuple(d["window"])})
            for d in (snippet_job.result or {}).get("snippets", [])
        ]
        if st.session_state.get("quality_accept_job") == snippet_job.id:
            st.session_state.pop("quality_accept_job")
            done = quality.accept_snippets(db, pid, found)
            st.session_state["quality_flash"] = f"Shortened {done:,} pairs to their best snippet."
            st.rerun()

    still_cut = set(t.pair_id[cut_rows].tolist())
    proposals = [s for s in found if s.pair_id in still_cut]
    if proposals:
        if st.button(
            f"Accept all {len(proposals)} proposals", icon=":material/check:", key="quality_accept_all"
        ):
            done = quality.accept_snippets(db, pid, proposals)
            st.session_state["quality_flash"] = f"Accepted {done:,} snippets."
            st.rerun()
        for s in proposals:
            with st.container(border=True):
                st.markdown(f"Pair {s.pair_id} — snippet of {s.tokens} tokens, similarity {s.similarity:.2f}")
                st.text(f"Query: {s.query}")
                st.text(s.text)
                if st.button("Accept this snippet", key=f"quality_accept_{s.pair_id}"):
                    quality.accept_snippets(db, pid, [s])
                    st.session_state["quality_flash"] = f"Pair {s.pair_id} now uses its snippet."
                    st.rerun()

if "quality_flash" in st.session_state:
    st.success(st.session_state.pop("quality_flash"))
n_snippets = int(report.counts.get("snippets", 0))
if n_snippets:
    st.caption(f"{n_snippets:,} pairs use a snippet instead of their full passage.")
    if st.button(f"Undo all {n_snippets:,} snippets", icon=":material/undo:", key="quality_revert"):
        quality.revert_snippets(db, pid)
        st.rerun()
