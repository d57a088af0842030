"""Train: pick the base model, loss and settings, launch a background run, watch it live, find every run."""

from __future__ import annotations

import json

import streamlit as st

from core import models, store, training
from core.errors import StudioError
from core.markdown import escape_markdown as md
from core.runs import records
from core.training import launch
from ui import charts
from ui.base_picker import base_picker
from ui.common import conn, project, project_name
from ui.job_panel import job_panel, submit

db = conn()
pid = project()
st.title("Train")
st.caption(
    f"Project **{project_name()}** — the curated pairs become a cross-encoder reranker, trained in a "
    "separate process: keep working, reload the page or restart the studio, the run goes on."
)

counts = store.project_counts(db, pid)
if not counts["train_positives"]:
    st.info("No labelled training pairs yet: import them on the Data page first.")
    st.stop()

# --- the form ------------------------------------------------------------------------------------
shape = store.project_settings(db, pid).get("shape", "labelled pairs")
kind, base = base_picker(db, pid)  # bundled / a local folder (run, bundle) / a hub model from the catalogue


@st.cache_data(show_spinner="Measuring the pairs' token lengths…", max_entries=8)
def measured_defaults(project_id: int, version: str, spec: str, data_shape: str) -> tuple[dict, dict]:
    """The project's measured defaults (token lengths, time budget), once per data version and base model."""
    cfg, why = training.project_defaults(db, project_id, spec, data_shape, workspace=store.workspace_of(db))
    return cfg.to_dict(), why


@st.cache_data(show_spinner=False, max_entries=4)
def judgements(project_id: int, version: str) -> training.ProjectShape:
    """The project's training judgements as a run reads them, once per data version (the plan counts on them)."""
    return training.project_shape(db, project_id)


judged = judgements(pid, store.data_version(db, pid))
reasons: dict = {}
try:
    if kind != "bundled" and base:
        training.check_base_model(base)
    found, reasons = measured_defaults(pid, store.data_version(db, pid), base or models.BUNDLED, shape)
    defaults = training.TrainConfig.from_dict(found)
except StudioError as exc:
    st.error(str(exc))
    defaults = training.default_config(counts, models.BUNDLED, shape)
fresh = kind == "bundled" or not training.is_trained(base)
st.caption(
    "Defaults below adapt to your data (" + f"{counts['train_positives']} positives, "
    f"{counts['train_queries']} training queries) and to the base model: "
    + (
        "a new head learns a residual over the embedding model, with a faster head learning rate."
        if fresh
        else "a trained cross-encoder needs a gentle touch."
    )
)
proposed, why = training.propose_loss(shape, fresh=fresh)
if reasons:
    st.caption(f"Max length {defaults.max_length}: {reasons['max_length']}. Epochs: {reasons['epochs']}.")
    if "prior_steps" in reasons:
        st.caption(f"Embedding model: {reasons['prior_steps']}.")

with st.container(border=True):  # not a form: the estimate under it follows every edit
    st.subheader("Loss")
    losses = list(training.LOSSES)
    loss = st.selectbox(
        "Loss", losses, index=losses.index(proposed), format_func=training.LOSSES.get, key="loss"
    )
    st.caption(f"Proposed for this data ({shape}): {why}")

    st.subheader("Schedule")
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("Epochs", 0.1, 100.0, float(defaults.epochs), 0.5, key="epochs")
    lr = c2.number_input(
        "Learning rate",
        value=float(defaults.learning_rate),
        format="%.1e",
        step=1e-5,
        key="lr",
        help="Encoder learning rate; 1e-7 .. 1e-2 accepted.",
    )
    head_mult = c3.number_input(
        "New head LR x",
        0.1,
        1000.0,
        float(defaults.head_lr_multiplier),
        1.0,
        key="head_mult",
        help="A freshly made head learns this many times faster than the encoder.",
    )
    batch = c4.number_input(
        "Batch size",
        value=int(defaults.batch_size),
        step=1,
        key="batch",
        help="1 .. 1024; lower it if the run fails out of memory.",
    )
    c1, c2, c3, c4 = st.columns(4)
    warmup = c1.number_input("Warm-up ratio", 0.0, 0.5, float(defaults.warmup_ratio), 0.05, key="warmup")
    max_length = c2.number_input(
        "Max length (tokens)", 16, 8192, int(defaults.max_length), 16, key="max_length"
    )
    seed = c3.number_input("Seed", 0, 2**31 - 1, int(defaults.seed), 1, key="seed")
    eval_steps = c4.number_input(
        "Evaluate every N steps",
        0,
        100000,
        int(defaults.eval_steps),
        10,
        key="eval_steps",
        help="0 = once per epoch. Each evaluation also saves a checkpoint.",
    )

    st.subheader("Validation and keeping the best")
    c1, c2, c3 = st.columns(3)
    sources = {"split": "Hold out training queries", "test": "Test set (optimistic)", "none": "No evaluation"}
    validation = c1.selectbox(
        "Validate on",
        list(sources),
        index=list(sources).index(defaults.validation),
        format_func=sources.get,
        key="validation",
    )
    fraction = c2.slider(
        "Held-out share of training queries",
        0.02,
        0.5,
        float(defaults.validation_fraction),
        0.01,
        key="val_fraction",
    )
    patience = c3.number_input(
        "Early-stopping patience (evaluations)", 0, 100, int(defaults.early_stopping_patience), key="patience"
    )
    keep_best = st.checkbox(
        "Keep the best checkpoint (NDCG@10 on validation)",
        value=defaults.keep_best,
        key="keep_best",
        help="The latest checkpoint is kept unless an earlier one beats it on validation beyond the noise "
        "(paired over the same queries); chosen on development data (SciFact's held-out train, NFCorpus dev).",
    )
    fusion = st.checkbox(
        "If the reranker alone loses to the first stage, record a blend with the first-stage score "
        "(weight chosen on validation; reported separately; a residual run needs none)",
        value=defaults.fusion,
        key="fusion",
    )
    if validation == "test":
        st.warning(
            "Test labels would choose the checkpoint, early stopping and the fusion weight: every figure they "
            "touch is labelled 'test labels used' and is optimistic, not a realistic estimate."
        )

    st.subheader("Negatives per positive")
    c1, c2, c3 = st.columns(3)
    hard = c1.number_input(
        "Hard (mined; never one reviewed as relevant)", 0, 50, int(defaults.hard_negatives), key="hard"
    )
    rand = c2.number_input("Random", 0, 50, int(defaults.random_negatives), key="rand")
    sources = list(training.CANDIDATE_SOURCES)
    candidates_from = c3.selectbox(
        "Candidate lists from",
        sources,
        index=sources.index(defaults.candidates_from),
        key="candidates_from",
        help="The first stage whose top k makes the validation lists, the beta fit and the hard negatives when "
        "nothing is mined. Hybrid fuses BM25 and the embedding model by reciprocal rank; on development data it "
        "helped on SciFact (held-out train) and not on NFCorpus (dev), so it is an option, not the default.",
    )
    prior_steps = 0
    if loss == "residual":
        prior_steps = st.number_input(
            "Fine-tune the embedding model first (steps of 32 judged pairs; 0 = off)",
            0,
            100_000,
            int(defaults.prior_steps),
            key="prior_steps",
            help="The residual adds this model's cosine to the cross-encoder's logit. A bi-encoder step is ~3.5x "
            "cheaper a pair, so on a project too large for one cross-encoder epoch it lets far more of your "
            "labels count; the candidate lists still come from the untouched first stage.",
        )
    cfg = training.TrainConfig(
        base_model=base,
        loss=loss,
        epochs=float(epochs),
        learning_rate=float(lr),
        head_lr_multiplier=float(head_mult),
        batch_size=int(batch),
        warmup_ratio=float(warmup),
        max_length=int(max_length),
        seed=int(seed),
        eval_steps=int(eval_steps),
        validation=validation,
        validation_fraction=float(fraction),
        keep_best=keep_best,
        early_stopping_patience=int(patience),
        hard_negatives=int(hard),
        random_negatives=int(rand),
        candidates_from=candidates_from,
        fusion=fusion,
        prior_steps=int(prior_steps),
    )
    adapted = None
    try:
        cfg.validate()  # an invalid value is said as such, before any arithmetic on it
        adapted = training.adaptation(cfg, judged)
        estimate = training.budget.for_project(cfg, adapted, store.workspace_of(db)).text()
    except StudioError as exc:
        estimate = f"not available ({exc})"
    if adapted is not None:  # what the data makes this run change, before it is launched
        st.markdown(f"**Adapted to this project's data:** {md(adapted.text())}.")
        for note in adapted.notes:
            st.caption(f"- {md(note)}")
    st.caption(
        f"Estimate with these settings: {estimate} — a run that would not fit in memory gets a smaller batch, "
        "or is refused with the reason."
    )
    submitted = st.button("Train", type="primary", icon=":material/model_training:")

if submitted and kind != "bundled" and not base:
    st.error(
        "Choose a usable folder, or a hub model available on this machine (download it first), "
        "or pick the bundled model."
    )
elif submitted:
    try:
        run_id = launch.submit(db, pid, cfg)
    except StudioError as exc:
        st.error(f"Cannot start: {exc}")
    else:
        st.session_state["train_run"] = run_id
        st.toast(f"Run {run_id} submitted.")

runs = launch.list_runs(db, pid)
if not runs:
    st.caption("No runs yet.")
    st.stop()
active = [r for r in runs if r.status in ("running", "queued")]
current = st.session_state.get("train_run") or (active[0].id if active else runs[0].id)
if current not in {r.id for r in runs}:
    current = runs[0].id


# --- the live panel -------------------------------------------------------------------------------
@st.fragment(run_every=2)
def live_panel(run_id: str) -> None:
    """Polls the run every 2 s: progress, time left, curves, log, Cancel / Resume."""
    watch = launch.poll(db, run_id)
    run = watch.run
    prog, status = run.progress, run.status
    st.subheader(f"Run {run_id} — {status}")
    step, total = prog.get("step") or 0, prog.get("total") or 0
    eta = prog.get("eta_s")
    left = f", about {int(eta // 60)} min {int(eta % 60)} s left" if eta and status == "running" else ""
    st.progress(
        min(1.0, step / total) if total else 0.0,
        text=f"{prog.get('phase', status)} — step {step} of {total or '?'}{left}",
    )
    if run.error:
        st.error(f"Failed: {run.error}")
    if prog.get("evaluation") == "none" or run.metrics.get("evaluation") == "none":
        st.info(
            "Evaluation is off for this run (too few training queries to hold out a validation slice, or "
            "turned off; test labels are never used to choose): the last "
            "checkpoint is kept."
        )
    loss_pts, eval_pts = training.curves(watch.events)
    c1, c2 = st.columns(2)
    if loss_pts:
        c1.plotly_chart(charts.training_loss_figure(loss_pts), key=f"loss_{run_id}")
    if eval_pts:
        c2.plotly_chart(
            charts.training_eval_figure(eval_pts, eval_pts[0].get("base_ndcg@10")), key=f"eval_{run_id}"
        )
    if status == "completed":
        level, text = training.verdict(run.metrics)
        getattr(st, level)(text)
    b1, b2, _ = st.columns([1, 1, 4])
    if status in ("running", "queued") and b1.button(
        "Cancel", key=f"cancel_{run_id}", icon=":material/stop:"
    ):
        st.toast(launch.cancel(db, run_id))
    if status in ("cancelled", "failed") and b2.button(
        "Resume", key=f"resume_{run_id}", icon=":material/play_arrow:"
    ):
        launch.resume(db, run_id)
        st.toast("Resume queued.")
    with st.expander("Log", expanded=status in ("failed",)):
        lines = [
            f"{e['at'][11:19]} {e['kind']:<7} {('step ' + str(e['step'])) if e['step'] is not None else ''} "
            f"{e['data'].get('text') or json.dumps(e['data'], default=float)}"
            for e in watch.events[-200:]
        ]
        st.code("\n".join(lines) or "(empty)", language=None)


chosen = st.selectbox(
    "Watch run", [r.id for r in runs], index=[r.id for r in runs].index(current), key="watch_run"
)
st.session_state["train_run"] = chosen
live_panel(chosen)

# --- one plain cross-encoder from the watched run (what other serving stacks load) ---------------
watched = records.get_run(db, chosen)
if watched.status == "completed":
    with st.container(border=True, key="distill_box"):
        teacher = watched.config.get("distilled_from")
        if teacher:
            gap = watched.metrics.get("gap_to_teacher")
            st.markdown(
                f"**A plain cross-encoder distilled from run {teacher}**"
                + (f": {gap:+.3f} NDCG@10 short of its teacher on validation." if gap is not None else ".")
            )
        else:
            st.markdown(
                "**One plain cross-encoder** — `sentence_transformers.CrossEncoder`, text-embeddings-inference, "
                "Infinity and vLLM load one model, not this run's whole score. Distilling trains a new run on "
                "this run's full scores; its card says how far it falls short."
            )
            last = job_panel(db, pid, ("distill",), key="distill")
            busy = last is not None and last.status in ("queued", "running")
            if st.button("Distill into a plain cross-encoder", key="distill_go", disabled=busy):
                if submit(db, pid, "distill", {"run": chosen}) is not None:
                    st.rerun()

# --- every run ------------------------------------------------------------------------------------
st.subheader("Runs")
table = [
    {
        "run": r.id,
        "status": r.status,
        "created": r.created_at[:19],
        "loss": r.config.get("loss"),
        "lr": r.config.get("learning_rate"),
        "epochs": r.config.get("epochs"),
        "snapshot": r.snapshot.get("hash"),
        "rows": r.snapshot.get("rows"),
        "val NDCG@10": (r.metrics.get("validation") or {}).get("ndcg@10"),
        "first stage": (r.metrics.get("validation") or {}).get("first_stage_ndcg@10"),
        "fused": (r.metrics.get("fusion") or {}).get("validation_ndcg@10"),
        "residual beta": (r.metrics.get("fusion") or {}).get("beta"),
        "model folder": r.model_dir or "",
        "error": r.error or "",
    }
    for r in runs
]
st.dataframe(table, hide_index=True, width="stretch")
with st.expander("Config, data snapshot and metrics of the watched run"):
    st.json(
        {
            "config": watched.config,
            "snapshot": watched.snapshot,
            "metrics": watched.metrics,
            "model_dir": watched.model_dir,
        },
        expanded=False,
    )
