"""Evaluate: first stage vs base vs fine-tuned runs on the test set, honest about realistic vs oracle figures."""

from __future__ import annotations

import streamlit as st

from core import estimates, evaluation, models, review, store
from core.export import bundle, onnx
from core.markdown import escape_markdown as md
from core.runs import records
from core.scoring import playground
from ui import calibration, charts
from ui.common import conn, project, project_name
from ui.job_panel import estimate_caption, job_panel, latest, submit

st.title("Evaluate")
db = conn()
pid = project()
st.caption(
    f"Project **{md(project_name())}** — does the fine-tuned reranker beat what you had, on which queries, "
    "and can you trust the figure?"
)

runs = records.list_runs(db, pid, status="completed")
counts = store.project_counts(db, pid)

# --- 1. what to evaluate --------------------------------------------------------------------------
with st.container(border=True):
    st.subheader("Set up")
    source = st.radio(
        "Test set",
        ["project", "upload"],
        horizontal=True,
        key="eval_source",
        format_func=lambda s: (
            f"Project test set ({counts['test_queries']} queries)"
            if s == "project"
            else "Upload a test set (CSV, TSV, JSONL, Parquet)"
        ),
    )
    upload = None
    if source == "upload":
        upload = st.file_uploader(
            "Test set file: query, passage, label [, score or rank]",
            key="eval_upload",
            type=["csv", "tsv", "jsonl", "json", "parquet"],
        )
        st.caption(
            "Rows with label 0 are judged non-relevant. Several passages per query with a score or rank "
            "column can serve as the candidates. The corpus searched is the project's passages plus the file's."
        )
    stages = list(evaluation.SEARCHED) + (["file"] if source == "upload" else [])
    left, mid, right = st.columns(3)
    first_stage = left.selectbox(
        "First stage (makes the candidates)",
        stages,
        key="eval_first_stage",
        format_func=evaluation.FIRST_STAGES.get,
    )
    top_k = mid.number_input(
        "Rerank the top k",
        1,
        1000,
        20,
        key="eval_top_k",
        help="Only these candidates reach the reranker: a relevant passage outside them is missed.",
    )
    oracle = right.checkbox(
        "Also compute oracle figures", value=True, key="eval_oracle", help=evaluation.ORACLE_NOTE
    )
    run_labels = {
        r.id: f"{r.id} · {r.config.get('loss', '?')} · "
        f"{r.config.get('epochs', '?')} ep · lr {r.config.get('learning_rate', '?')}"
        for r in runs
    }
    chosen = st.multiselect(
        "Fine-tuned runs",
        list(run_labels),
        default=list(run_labels)[:1],
        key="eval_runs",
        format_func=run_labels.get,
    )
    bases = {r.config.get("base_model", models.BUNDLED) for r in runs if r.id in chosen} or {models.BUNDLED}
    random_base = any(evaluation.base_is_random(b) for b in bases)
    include_base = st.checkbox(
        "Include the base model",
        value=not random_base,
        key="eval_base",
        help="The run's base model as a cross-encoder, without fine-tuning.",
    )
    if include_base and random_base:
        st.warning(
            "The base is a bare encoder: its relevance head is new and random, so the base figures are "
            "arbitrary — they are shown for completeness, not as a meaningful baseline."
        )
    if not runs:
        st.info(
            "No completed training run yet: train one on the Train page. You can still measure the first stage."
        )
    last_job = latest(db, pid, ("evaluate",))
    busy = last_job is not None and last_job.status in ("queued", "running")
    workspace = store.workspace_of(db)
    lengths = [int(r.config.get("max_length") or estimates.REFERENCE_LENGTH) for r in runs if r.id in chosen]
    pairs = counts["test_queries"] * int(top_k) * (len(chosen) + int(include_base))
    estimate = estimates.scoring(workspace, pairs, max(lengths, default=estimates.REFERENCE_LENGTH))
    if first_stage in evaluation.EMBEDDED:
        estimate = estimates.combine(
            estimates.embedding(workspace, counts["passages"] + counts["test_queries"]), estimate
        )
    with st.container(horizontal=True, vertical_alignment="center"):
        go = st.button(
            "Evaluate",
            type="primary",
            icon=":material/play_arrow:",
            key="eval_go",
            disabled=(source == "upload" and upload is None) or busy,
            help="Evaluating runs in the background." if not busy else "An evaluation is running.",
        )
        if source == "project":
            estimate_caption(estimate)

if go:  # a background job: leaving the page, a reload or a restart does not lose it
    args = {
        "run_ids": list(chosen),
        "first_stage": first_stage,
        "top_k": int(top_k),
        "include_base": include_base,
        "oracle": oracle,
    }
    queue = source == "project"
    if (
        source == "upload" and upload is not None
    ):  # a job takes JSON: the file is kept in the workspace for it
        try:
            evaluation.read_test_file(
                upload.getvalue(), upload.name, db, pid
            )  # a bad file is said here, at once
            args.update(
                test_file=str(store.save_upload(workspace, upload.name, upload.getvalue())),
                test_name=upload.name,
            )
            queue = True
        except (evaluation.EvaluationError, store.StoreError, OSError) as exc:
            st.error(md(exc))
    if queue and submit(db, pid, "evaluate", args) is not None:
        st.rerun()
finished = job_panel(db, pid, ("evaluate",), key="eval")
if (
    finished is not None
    and finished.status == "completed"
    and st.session_state.get("eval_job_seen") != finished.id
):
    st.session_state["eval_job_seen"] = finished.id  # show the new evaluation once, not the last picked
    new_id = (finished.result or {}).get("evaluation_id")
    if new_id:
        st.session_state["eval_id"] = st.session_state["eval_pick"] = new_id

# --- 2. results ----------------------------------------------------------------------------------
stored = evaluation.list_evaluations(db, pid)
if not stored:
    st.info("No evaluation yet: choose a first stage and press Evaluate.")
    st.stop()
ids = [e["id"] for e in stored]
labels = {
    e["id"]: f"#{e['id']} · {e['created_at'][:16]} · {e['params'].get('first_stage')} top-"
    f"{e['params'].get('top_k')} · {e['params'].get('queries')} queries · "
    f"{', '.join(e['params'].get('run_ids') or []) or 'no run'}"
    for e in stored
}
current = st.session_state.get("eval_id")
eval_id = st.selectbox(
    "Evaluation",
    ids,
    index=ids.index(current) if current in ids else 0,
    format_func=labels.get,
    key="eval_pick",
)
res = evaluation.load_evaluation(db, eval_id)
r = evaluation.Results.of(res)  # typed reading: systems, figures, comparisons, verdicts
params = res["params"]
systems = {s.key: s for s in r.systems}
rerankers = [k for k, s in systems.items() if s.kind != "first_stage"]

which = r.which  # "oracle" when the candidates held every relevant passage
used = params.get("test_labels_used_for") or []

st.subheader("Verdict")
if which == evaluation.ORACLE:
    st.warning("No realistic verdict: " + md(evaluation.FILE_ORACLE_NOTE), icon=":material/warning:")
if used:
    st.warning("Test labels used: " + md(evaluation.test_labels_note(used)), icon=":material/warning:")
ICONS = {
    "success": ":material/trending_up:",
    "warning": ":material/help:",
    "error": ":material/trending_down:",
    "info": ":material/info:",
}
for v in r.verdicts():  # the one rule: beats only when the margin is positive AND significant
    advice = (
        " Use the first stage alone, or improve the data (review losses below) and train again."
        if v.outcome == evaluation.LOSES
        else ""
    )
    getattr(st, v.level)(f"**{md(v.head)}** {md(v.sentence)}{advice}", icon=ICONS[v.level])
if r.best_of_n_note():
    st.warning(md(r.best_of_n_note()), icon=":material/casino:")
for note in r.judged_notes():
    st.caption(md(note))
for s in r.systems:
    for note in s.notes:
        st.caption(f"{md(s.label)}: {md(note)}")
for note in params.get("notes", []):
    st.caption(md(note))

st.subheader(
    "Realistic figures" if which == evaluation.REALISTIC else "Oracle figures (upper bound, not realistic)"
)
st.caption(
    f"{md(evaluation.REALISTIC_NOTE if which == evaluation.REALISTIC else evaluation.FILE_ORACLE_NOTE)} · "
    f"test set: {md(params['test_set'])} ({params['queries']} queries) · first stage: "
    f"{md(params['first_stage_label'])}, top {params['top_k']} · 95% bootstrap intervals over queries "
    f"({params['n_bootstrap']} resamples, seed {params['seed']}) · judged@10: the share of each top 10 that has "
    f"a label · {md(r.gain)}."
)
st.dataframe(evaluation.results_table(res, which), hide_index=True, width="stretch")
st.plotly_chart(
    charts.eval_metric_figure(
        [
            {"label": s.label, "kind": s.kind, "mean": r.mean(k), "ci": list(r.ci(k))}
            for k, s in systems.items()
        ]
    ),
    key="eval_bar",
)

if which == evaluation.REALISTIC and res.get("oracle"):
    with st.expander("Oracle figures — upper bound, NOT what users will see"):
        st.caption(md(evaluation.ORACLE_NOTE))
        st.dataframe(evaluation.results_table(res, "oracle"), hide_index=True, width="stretch")

st.subheader("Paired tests")
st.caption(
    f"Paired randomization test over queries, two-sided; significant when p < {evaluation.ALPHA}. At the test's "
    "floor the p-value is an upper bound (p < ...)."
)
st.dataframe(
    [
        {
            "system": systems[c.system].label,
            "reference": systems[c.reference].label,
            "metric": c.metric,
            "difference": round(c.mean_diff, 4),
            "95% CI": f"[{c.ci[0]:+.3f}, {c.ci[1]:+.3f}]",
            "p-value": c.p_text,
            "significant": "yes" if c.significant else "no",
            "better / worse / same": f"{c.wins} / {c.losses} / {c.ties}",
        }
        for c in r.comparisons
    ],
    hide_index=True,
    width="stretch",
)
with st.expander("Compare any two systems"):
    a_col, b_col, m_col = st.columns(3)
    keys = list(systems)
    sys_a = a_col.selectbox("Reference", keys, format_func=lambda k: systems[k].label, key="eval_cmp_a")
    sys_b = b_col.selectbox(
        "System", keys, index=len(keys) - 1, format_func=lambda k: systems[k].label, key="eval_cmp_b"
    )
    metric = m_col.selectbox("Metric", r.metrics, key="eval_cmp_metric")
    test = evaluation.paired_test(r.per_query(sys_a, metric), r.per_query(sys_b, metric), seed=params["seed"])
    st.write(
        f"Mean difference {test['mean_diff']:+.4f} (95% CI [{test['ci'][0]:+.3f}, {test['ci'][1]:+.3f}]), "
        f"{evaluation.format_p(test['p_value'], test['draws'])} "
        f"({'significant' if test['significant'] else 'not significant'}) — {test['method']}."
    )
    if systems[sys_a].kind == "run" and systems[sys_b].kind == "run":
        st.caption(
            "Two runs compared on test: this tells whether they differ, not which to ship — choosing the higher "
            "one on these labels is optimistic; choose on validation."
        )

if not rerankers:
    st.info("Only the first stage was evaluated: add a run to see per-query changes.")
    st.stop()

# --- 3. per query ----------------------------------------------------------------------------------
st.subheader("Per query")
c1, c2 = st.columns(2)
runs_first = [k for k in rerankers if systems[k].kind == "run"] or rerankers
focus = c1.selectbox(
    "System",
    rerankers,
    index=rerankers.index(runs_first[-1]),
    format_func=lambda k: systems[k].label,
    key="eval_focus",
)
references = ["first_stage"] + [k for k in rerankers if systems[k].kind == "base"]
trained_bases = [i for i, k in enumerate(references) if k != "first_stage" and not systems[k].random_head]
reference = c2.selectbox(
    "Over",
    references,
    index=trained_bases[0] if trained_bases else 0,  # a trained base first
    format_func=lambda k: systems[k].label,
    key="eval_reference",
)
deltas = evaluation.per_query_deltas(res, focus, reference)
st.plotly_chart(
    charts.eval_change_histogram([d["delta"] for d in deltas], title="Per-query change in NDCG@10"),
    key="eval_hist",
)
wins, losses = evaluation.wins_and_losses(res, focus, reference)
w_col, l_col = st.columns(2)
w_col.markdown("**Biggest wins**")
w_col.dataframe(
    [
        {
            "query": r["query"],
            "before": round(r["before"], 3),
            "after": round(r["after"], 3),
            "change": round(r["delta"], 3),
        }
        for r in wins
    ],
    hide_index=True,
    width="stretch",
)
l_col.markdown("**Biggest losses**")
l_col.dataframe(
    [
        {
            "query": r["query"],
            "before": round(r["before"], 3),
            "after": round(r["after"], 3),
            "change": round(r["delta"], 3),
        }
        for r in losses
    ],
    hide_index=True,
    width="stretch",
)

by_key = {d["query_key"]: d for d in deltas}
default = losses[0]["query_key"] if losses else deltas[0]["query_key"]
order = [d["query_key"] for d in deltas]
qkey = st.selectbox(
    "Drill into a query (worst first)",
    order,
    index=order.index(default),
    key="eval_query",
    format_func=lambda k: f"{by_key[k]['delta']:+.3f} · {by_key[k]['query'][:90]}",
)
row = by_key[qkey]
with st.container(border=True):
    st.text(row["query"])
    st.caption(
        f"NDCG@10 {row['before']:.3f} → {row['after']:.3f} ({row['delta']:+.3f}) with "
        f"{md(systems[focus].label)} over {md(systems[reference].label)}."
    )
    moves = evaluation.query_movement(res, qkey, focus)
    st.dataframe(
        [
            {
                "rank": m["rank"],
                "first-stage rank": m["before"],
                "moved": ("" if m["moved"] is None else f"{m['moved']:+d}"),
                "relevant": "✔" if m["relevant"] else "",
                "score": round(m["score"], 4),
                "passage": m["passage"],
            }
            for m in moves
        ],
        hide_index=True,
        width="stretch",
        column_config={"passage": st.column_config.TextColumn(width="large")},
    )
    missed = evaluation.missed_relevant(res, qkey)
    if missed:
        st.warning(
            f"{len(missed)} relevant passage(s) were not in the first stage's top {params['top_k']}; "
            "no reranker can recover them (see the oracle figures):"
        )
        for d in missed:
            st.text(r.passage(d)[:300])
    query_id = r.query_id(qkey)
    if row["delta"] < 0 and query_id is not None:
        if st.button("Send this loss back to work (Review)", icon=":material/undo:", key="eval_send_review"):
            st.session_state["review_query_filter"] = int(query_id)
            if review.progress(db, pid, int(query_id))["total"]:  # it has mined candidates to judge
                st.session_state["review_query"] = int(query_id)
            st.switch_page("pages/review.py")

dist = r.distribution(focus)
if dist:
    st.subheader("Scores of relevant vs non-relevant passages")
    t = dist.get("threshold")
    st.plotly_chart(
        charts.eval_score_figure(
            dist["relevant"],
            dist["non_relevant"],
            title=systems[focus].label,
            threshold=t["threshold"] if t else None,
        ),
        key="eval_scores",
    )
    if t:
        st.caption(
            f"A cut-off at score ≥ {t['threshold']:.4f} gives F1 {t['f1']:.3f} (precision {t['precision']:.3f}, "
            f"recall {t['recall']:.3f}) — chosen on {t['chosen_on']}."
        )

# --- 4. exports ------------------------------------------------------------------------------------
st.subheader("Export")
e1, e2 = st.columns(2)
report = evaluation.report_markdown(res)
e1.download_button(
    "Report (Markdown)",
    report,
    file_name=f"evaluation-{eval_id}.md",
    mime="text/markdown",
    icon=":material/description:",
    key="eval_dl_report",
)
e2.download_button(
    "Per-query table (CSV)",
    evaluation.per_query_csv(res),
    file_name=f"evaluation-{eval_id}.csv",
    mime="text/csv",
    icon=":material/table:",
    key="eval_dl_csv",
)
run_ids = [systems[k].run_id for k in rerankers if systems[k].kind == "run"]
if run_ids:
    with st.container(border=True):
        run_id = st.selectbox("Model of run", run_ids, key="eval_export_run")
        name = st.text_input(
            "Folder name inside the workspace's exports folder",
            value=f"model-{run_id}",
            key="eval_export_name",
        )
        b1, b2 = st.columns(2)
        if b1.button(
            "Export bundle (model, embedding model, spec, card)",
            icon=":material/folder_copy:",
            key="eval_export_model",
        ):
            try:
                with st.spinner("Writing and checking the bundle…"):
                    dest = bundle.destination(db, name, run_id, explicit=False)
                    out = bundle.export_bundle(db, run_id, dest, project=pid)
                st.success(
                    f"Bundle ({out['kind']}) written to {md(out['path'])}; reloaded, it gives the run's score "
                    f"within {out['check']['max_abs_score_diff']:.1e}. Its README says how to use it."
                )
            except (ValueError, OSError) as exc:
                st.error(str(exc))
        if b2.button(
            "Export ONNX (full score, verified with onnxruntime)",
            icon=":material/memory:",
            key="eval_export_onnx",
        ):
            try:
                with st.spinner("Exporting to ONNX…"):
                    info = onnx.export_onnx(
                        db,
                        run_id,
                        bundle.destination(db, name + "-onnx", run_id, explicit=False),
                        project=pid,
                    )
                st.success(
                    f"ONNX ({info['kind']}) written to {md(info['path'])}; the full score differs from the "
                    f"run's by at most {info['max_abs_score_diff']:.1e} on {info['pairs_checked']} real pairs."
                )
            except (ValueError, OSError) as exc:
                st.error(str(exc))

# --- 5. playground -----------------------------------------------------------------------------------
st.subheader("Try a query")
st.caption(
    "The first stage's top k from the project's passages, and each chosen run's reranking of them "
    "(the score the run was evaluated with). ★ marks a labelled positive; ↑/↓ how far a passage moved."
)
with st.form("eval_play_form"):
    play_query = st.text_input("Query", key="eval_play_query")
    p1, p2 = st.columns(2)
    play_stage = p1.selectbox(
        "First stage", evaluation.SEARCHED, key="eval_play_stage", format_func=evaluation.FIRST_STAGES.get
    )
    play_k = p2.number_input("Top k", 1, 50, 10, key="eval_play_k")
    play_runs = st.multiselect(
        "Runs", [r.id for r in runs], default=[r.id for r in runs][:1], key="eval_play_runs"
    )
    play_go = st.form_submit_button("Rerank", icon=":material/play_arrow:")
if play_go and play_query.strip():
    try:
        with st.spinner("Searching and reranking…"):
            play = playground.try_query(
                db, pid, play_query, play_runs, first_stage=play_stage, top_k=int(play_k)
            )
        columns = st.columns(1 + len(play["runs"]))
        lists = [("First stage", play["first_stage"])] + [
            (f"Run {rid}", items) for rid, items in play["runs"].items()
        ]
        for i, (col, (title, items)) in enumerate(zip(columns, lists)):
            col.plotly_chart(charts.ranked_scores_figure(items, title=title), key=f"eval_play_chart_{i}")
            col.dataframe(
                [
                    {
                        "rank": it["rank"],
                        "moved": it["moved"],
                        "positive": "★" if it["positive"] else "",
                        "score": round(it["score"], 4),
                        "passage": it["text"][:200],
                    }
                    for it in items
                ],
                hide_index=True,
                key=f"eval_play_table_{i}",
            )
    except (ValueError, OSError) as exc:
        st.error(str(exc))

# --- 6. calibration (a background job; the latest stored measurement of the chosen run) ---------------
calibration.section(db, pid, run_ids)
