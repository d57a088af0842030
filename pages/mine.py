"""Mine: pick an embedding model and the miner's parameters, mine hard (and random) negatives, see the result."""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import streamlit as st

from core import estimates, mining, models, store
from core.errors import StudioError
from core.markdown import escape_markdown
from core.runs import jobs
from ui import charts
from ui.common import conn, project, project_name
from ui.job_panel import estimate_caption, job_panel, latest, submit

db = conn()
st.title("Mine")
pid = project()
counts = store.project_counts(db, pid)
st.caption(
    f"Project **{escape_markdown(project_name())}** · {counts['train_queries']:,} training queries, "
    f"{counts['passages']:,} passages in the pool, {counts['negatives']:,} negatives "
    f"({counts['judged']:,} judged — re-mining keeps those)."
)

# --- model ------------------------------------------------------------------------------------------------
st.subheader("Embedding model")
source = st.radio(
    "Model",
    ["Bundled", "Local folder", "Hub id"],
    horizontal=True,
    key="mine_model_source",
    captions=[
        models.BUNDLED_LABEL,
        "a folder with config.json and model.safetensors",
        "downloads only when the machine is online",
    ],
)
model_spec = models.BUNDLED
if source == "Local folder":
    model_spec = st.text_input("Model folder", key="mine_model_folder", placeholder="/path/to/model")
elif source == "Hub id":
    model_spec = st.text_input("Hub id", key="mine_model_hub", placeholder="BAAI/bge-small-en-v1.5")

# --- parameters -----------------------------------------------------------------------------------------
st.subheader("Parameters")
preset_name = st.segmented_control(
    "Preset",
    list(mining.PRESETS),
    default="recommended",
    key="mine_preset",
    help="recommended: top-k with a 5% relative margin to the positive "
    "(NV-Retriever's best). library: the miner's own defaults. strict: skip the 10 closest, wider margin, "
    "score cap, random sampling — fewer false negatives, easier negatives.",
)
base = mining.preset(preset_name or "recommended")
k = f"mine_{preset_name}_"  # a preset change gives every widget its preset's value


def optional(label: str, value: float | None, fallback: float, help: str, step: float = 0.01) -> float | None:
    """A float the miner may leave unset: a tick box switches it on."""
    col_a, col_b = st.columns([1, 2])
    on = col_a.checkbox(label, value=value is not None, key=k + label + "_on", help=help)
    number = col_b.number_input(
        label,
        value=float(value if value is not None else fallback),
        step=step,
        format="%.3f",
        key=k + label,
        disabled=not on,
        label_visibility="collapsed",
    )
    return float(number) if on else None


c1, c2 = st.columns(2)
num_negatives = c1.number_input(
    "Hard negatives per query (num_negatives)",
    1,
    100,
    base.num_negatives,
    key=k + "num_negatives",
    help="10 or fewer is recommended.",
)
random_negatives = c2.number_input(
    "Random negatives per query",
    0,
    50,
    base.random_negatives,
    key=k + "random_negatives",
    help="Easy negatives keep easy cases easy; they are never a positive.",
)
with st.expander("Advanced: every parameter of the miner"):
    c1, c2, c3 = st.columns(3)
    range_min = c1.number_input(
        "range_min",
        0,
        10_000,
        base.range_min,
        key=k + "range_min",
        help="Skip this many of the closest candidates: the likeliest false negatives.",
    )
    range_max = c2.number_input(
        "range_max (0 = derived)",
        0,
        100_000,
        base.range_max or 0,
        key=k + "range_max",
        help="Look no further than this rank. 0 derives it as the library does.",
    )
    sampling = c3.selectbox(
        "sampling_strategy",
        ["top", "random"],
        index=["top", "random"].index(base.sampling_strategy),
        key=k + "sampling",
        help="top: the best surviving candidates; random: a sample of them.",
    )
    relative_margin = optional(
        "relative_margin",
        base.relative_margin,
        0.05,
        "Drop candidates scoring above positive − |positive| × margin.",
    )
    absolute_margin = optional(
        "absolute_margin", base.absolute_margin, 0.0, "Drop candidates scoring above positive − margin."
    )
    max_score = optional("max_score", base.max_score, 0.85, "Drop candidates more similar than this.")
    min_score = optional("min_score", base.min_score, 0.1, "Drop candidates less similar than this.")
    c1, c2, c3 = st.columns(3)
    batch_size = c1.number_input("batch_size", 1, 1024, base.batch_size, key=k + "batch_size")
    use_faiss = c2.checkbox(
        "use_faiss",
        base.use_faiss,
        key=k + "use_faiss",
        help="Exact inner-product search with faiss instead of a torch matrix product.",
    )
    seed = c3.number_input("seed", 0, 2**31 - 1, base.seed, key=k + "seed")
    cross_encoder = st.text_input(
        "Cross-encoder folder (optional)",
        key="mine_cross_encoder",
        help="A trained reranker gives each negative a second opinion for the risk.",
    )
    rescoring = st.checkbox(
        "Rescore every candidate with the cross-encoder before filtering "
        "(the miner's cross_encoder option; needs a margin or score filter)",
        key="mine_rescoring",
        disabled=not cross_encoder,
    )

# --- corpus -----------------------------------------------------------------------------------------------
st.subheader("Corpus")
st.caption(
    "Negatives come from every passage of the project. Add more from a file: .txt (one passage per "
    'line), .jsonl ("text" and optional "title") or .csv/.tsv (a "text" column).'
)
upload = st.file_uploader("Extra corpus (optional)", type=["txt", "jsonl", "csv", "tsv"], key="mine_corpus")
extra_path = None
if upload is not None:
    extra_path = store.save_upload(store.workspace_of(db), upload.name, upload.getvalue())

params = mining.MiningParams(
    num_negatives=int(num_negatives),
    range_min=int(range_min),
    range_max=int(range_max) or None,
    max_score=max_score,
    min_score=min_score,
    absolute_margin=absolute_margin,
    relative_margin=relative_margin,
    sampling_strategy=sampling,
    batch_size=int(batch_size),
    use_faiss=bool(use_faiss),
    cross_encoder_rescoring=bool(rescoring and cross_encoder),
    model=model_spec or models.BUNDLED,
    random_negatives=int(random_negatives),
    cross_encoder=cross_encoder.strip() or None,
    seed=int(seed),
)

# --- check, then mine --------------------------------------------------------------------------------------
try:
    plan = mining.plan(db, pid, params, extra_path)
except StudioError as exc:  # MiningError and ModelError: said before any work
    st.error(escape_markdown(exc), icon=":material/error:")
    st.stop()
st.caption(
    f"{len(plan.query_ids):,} queries with a positive · pool of {len(plan.pool_texts):,} passages"
    + (f" ({len(plan.extra_texts):,} new from {escape_markdown(upload.name)})" if plan.extra_texts else "")
    + f" · ranks {params.range_min}–{plan.range_max}"
)
cost = mining.cross_encoder_cost(plan)
if cost["pairs"]:
    st.warning(
        f"The cross-encoder will score {cost['pairs']:,} pairs: about {cost['seconds']:,.0f} s at "
        f"{mining.CROSS_ENCODER_PAIRS_PER_SECOND:.0f} pairs/s.",
        icon=":material/timer:",
    )

# Mining runs as a background job (core.runs.jobs): leaving the page, a reload or a restart does not lose it.
workspace = store.workspace_of(db)
estimate = estimates.embedding(workspace, len(plan.pool_texts) + len(plan.query_texts))
if cost["pairs"]:
    estimate = estimates.combine(estimate, estimates.scoring(workspace, cost["pairs"]))
last = latest(db, pid, ("mine",))
busy = last is not None and last.status in jobs.ACTIVE
with st.container(horizontal=True, vertical_alignment="center"):
    if st.button(
        "Mine",
        type="primary",
        icon=":material/target:",
        key="mine_run",
        disabled=busy,
        help="Runs in the background; one heavy job runs at a time." if not busy else "Mining is running.",
    ):
        args = {"params": asdict(params), "extra_corpus": str(extra_path) if extra_path else None}
        if submit(db, pid, "mine", args) is not None:
            st.rerun()
    estimate_caption(estimate)
last = job_panel(db, pid, ("mine",), key="mine")
busy = last is not None and last.status in jobs.ACTIVE
if last is not None and last.status == "completed" and (last.result or {}).get("stats"):
    done = last.result["stats"]
    st.success(
        f"Mined {done['hard_negatives']:,} hard and {done['random_negatives']:,} random negatives in "
        f"{done['seconds']['total']:.1f} s ({(last.finished_at or '')[:19].replace('T', ' ')} UTC).",
        icon=":material/check_circle:",
    )

# --- the result ----------------------------------------------------------------------------------------------
mining.close_stale_runs(db, pid)  # a run whose process died (killed, restart) is shown as interrupted
run = mining.latest_run(db, pid)
if run is None:
    st.info("No mining run yet for this project.")
    st.stop()
stats = run["stats"]
st.subheader("Result")
if run["status"] == "running" and busy:
    st.info(
        "A mining job is running; the negatives below are from before it.", icon=":material/hourglass_top:"
    )
    stats = mining.latest_completed_stats(db, pid)
elif run["status"] != "completed":
    why = stats.get("error") or "its process stopped before it finished"
    st.warning(
        f"The last run {'was interrupted' if run['status'] in ('running', 'interrupted') else run['status']}: "
        f"{escape_markdown(why)}. The negatives below are from before it."
    )
    stats = mining.latest_completed_stats(db, pid)
if stats:
    m = st.columns(5)
    m[0].metric("Hard negatives", f"{stats['hard_negatives']:,}")
    m[1].metric("Random negatives", f"{stats['random_negatives']:,}")
    m[2].metric(
        "Per query (mean)",
        stats["negatives_per_query"]["mean"],
        help=f"min {stats['negatives_per_query']['min']}, max {stats['negatives_per_query']['max']}",
    )
    m[3].metric("Queries short of negatives", f"{stats['short_queries']:,}")
    m[4].metric(
        "Embeddings from cache",
        f"{stats['cache']['cached']:,}",
        help=f"{stats['cache']['computed']:,} computed this run",
    )
    if stats["short_queries"]:
        reasons = ", ".join(f"{n} by {why}" for why, n in stats["short_reasons"].items())
        st.caption(
            f"{stats['short_queries']} queries got fewer than {stats['asked_per_query']} negatives: {reasons}. "
            "Widen range_max or relax that filter to get more."
        )
    st.caption(
        f"Kept {stats['kept_judged']:,} judged negatives, replaced {stats['replaced_unjudged']:,} unjudged · "
        f"{stats['seconds']['total']:.1f} s"
    )
st.plotly_chart(charts.mining_scores_figure(mining.score_distributions(db, pid)), key="mine_scores")

st.subheader("Mined negatives, riskiest first")
st.caption(
    'Risk = how likely a "negative" actually answers the query (close to the query, to the positive, '
    "and sharing its terms). Check the top of this list on the Review page."
)
rows = mining.fetch_negatives(db, pid, limit=500)
table = pd.DataFrame(
    rows,
    columns=["risk", "kind", "rank", "score", "positive_score", "ce_score", "status", "query", "passage"],
)
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    key="mine_table",
    column_config={
        "risk": st.column_config.ProgressColumn("risk", min_value=0.0, max_value=1.0, format="%.2f"),
        "score": st.column_config.NumberColumn(format="%.3f"),
        "positive_score": st.column_config.NumberColumn(format="%.3f"),
        "ce_score": st.column_config.NumberColumn(format="%.3f"),
    },
)
