"""Data: get the pairs in — upload, map columns, clean, check, set aside a test set, import."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import streamlit as st

from core import ingest, sample, store
from core.ingest.cleaning import RULE_LABELS, RULES, CleaningOptions
from core.markdown import escape_markdown
from ui.common import conn, project, project_name

NONE = "—"
CLEAN_ORDER = ("html", "urls", "control", "symbols", "whitespace")
CLEAN_SHORT = {
    "html": "HTML tags & entities",
    "urls": "URLs",
    "control": "Control characters",
    "symbols": "Stray symbols",
    "whitespace": "Extra whitespace",
}
db = conn()

st.title("Data")

# --- an empty workspace: offer the real sample -----------------------------------------------------------
if not store.list_projects(db):
    st.info(
        "No project yet. Create one with **New project** in the sidebar, or start from a small real "
        "dataset to see every step working."
    )
    if st.button("Load the sample project", icon=":material/science:", type="primary", key="load_sample"):
        with st.spinner("Importing the SciFact sample…"):
            loaded = sample.load(db)
        st.session_state["project_name"] = loaded["project"]
        st.session_state.pop("project_select", None)
        st.rerun()
    st.caption(
        "The sample is a subset of SciFact (Wadden et al., EMNLP 2020) in BEIR format (Thakur et al., "
        "2021); licence CC BY-NC 2.0. See sample_data/README.md."
    )
    st.stop()

pid = project()
st.caption(
    f"Project **{escape_markdown(project_name())}** · bring (query, relevant passage) pairs; rows are numbered as a "
    "spreadsheet shows them (the header is row 1; in JSONL, the line)."
)


def save_upload(upload) -> Path:
    """Uploads are streamed from a file on disk, so a 150 MB file is read in chunks, not held twice."""
    digest = hashlib.sha1(f"{upload.file_id}:{upload.name}:{upload.size}".encode()).hexdigest()[:16]
    folder = store.cache_dir(store.workspace_of(db)) / "uploads" / digest
    target = folder / Path(upload.name).name
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        upload.seek(0)
        with open(target, "wb") as fh:
            shutil.copyfileobj(upload, fh, 1 << 20)
    return target


def show_problems(problems: list[ingest.Problem], total: int | None = None) -> None:
    """Problems as a table (user text never becomes HTML), with where to find each one."""
    rows = [{"file": p.file, "row": p.row, "column": p.column, "problem": p.message} for p in problems]
    if any("id" in p.detail for p in problems):  # e.g. a qrels id a BEIR folder lacks
        for row, p in zip(rows, problems):
            row["id"] = p.detail.get("id")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    if total and total > len(problems):
        st.caption(f"… {total - len(problems):,} more not listed.")


def pick_file(label: str, key: str, allow_folder: bool) -> tuple[Path, str] | None:
    """Upload a file, or point at a file/folder on this machine (a BEIR folder cannot be uploaded)."""
    where = st.radio(
        label,
        [
            "Upload a file",
            "A file or BEIR folder on this computer" if allow_folder else "A file on this computer",
        ],
        horizontal=True,
        key=f"{key}_where",
    )
    nonce = st.session_state.get("upload_nonce", 0)
    if where == "Upload a file":
        upload = st.file_uploader(
            f"{label}: CSV, TSV, JSONL, JSON or Parquet (up to {ingest.UPLOAD_LIMIT_MB:g} MB)",
            type=ingest.UPLOAD_TYPES,
            key=f"{key}_upload_{nonce}",
        )
        if upload is None:
            return None
        return save_upload(upload), upload.name
    typed = st.text_input(
        "Path", key=f"{key}_path_{nonce}", placeholder="/data/scifact (a BEIR folder) or /data/pairs.csv"
    ).strip()
    if not typed:
        return None
    path = Path(typed).expanduser()
    return path, (path.name or typed)


def inspect(path: Path, name: str) -> ingest.FileInfo | None:
    """Head of the file and the guessed columns; remembered until the file changes."""
    stat = path.stat() if path.exists() else None
    sig = (str(path), name, stat.st_size if stat else None, stat.st_mtime if stat else None)
    cache = st.session_state.setdefault("_inspect", {})
    if sig not in cache:
        try:
            cache.clear()
            cache[sig] = ingest.inspect(path, name)
        except ingest.IngestError as exc:
            st.error(f"{escape_markdown(name)} cannot be imported.")
            show_problems(exc.problems, exc.total)
            return None
    return cache[sig]


def map_columns(info: ingest.FileInfo, key: str) -> ingest.ColumnMap | None:
    """Column roles, pre-filled with the guess; the detected shape follows the choice."""
    cols = info.columns
    guess = info.mapping or ingest.ColumnMap(query=cols[0] if cols else "")
    if info.detect_error:
        st.warning(f"Columns not recognised: {escape_markdown(info.detect_error)} Choose them below.")
    opts = [NONE, *cols]

    def pick(col, label, current):
        return col.selectbox(
            label, opts, index=opts.index(current) if current in opts else 0, key=f"{key}_{label}_{info.name}"
        )

    c1, c2, c3, c4 = st.columns(4)
    query = pick(c1, "Query", guess.query)
    positive = pick(c2, "Relevant passage", guess.positive)
    passage = pick(c3, "Passage (with label)", guess.passage)
    label = pick(c4, "Label (0/1 or graded)", guess.label)
    negatives = st.multiselect(
        "Negative passage columns",
        cols,
        default=[c for c in guess.negatives if c in cols],
        key=f"{key}_negatives_{info.name}",
    )
    val = lambda v: None if v == NONE else v  # noqa: E731
    if val(query) is None:
        st.error("Choose the query column.")
        return None
    mapping = ingest.ColumnMap(
        query=query, positive=val(positive), passage=val(passage), label=val(label), negatives=list(negatives)
    )
    try:
        mapping.validate(cols, info.name)
    except ingest.IngestError as exc:
        st.error(escape_markdown(exc.problems[0].message))
        return None
    st.success(f"Shape: **{mapping.shape_text}**", icon=":material/table_view:")
    with st.expander("First rows as read"):
        st.dataframe(pd.DataFrame(info.sample), hide_index=True, width="stretch")
    return mapping


def import_section() -> None:
    """The user's path through one import, top to bottom."""
    st.subheader("1. Training data")
    picked = pick_file("Training data", "train", allow_folder=True)
    if picked is None:
        return
    path, name = picked
    info = inspect(path, name)
    if info is None:
        return
    mapping = None
    if info.format == "beir":
        beir = info.beir or {}
        st.success(
            f"BEIR folder: corpus.jsonl, queries.jsonl, qrels/train.tsv"
            f"{', qrels/test.tsv (the test set)' if beir.get('test') else ''}. Unjudged corpus "
            "documents join the pool that negatives are mined from.",
            icon=":material/folder:",
        )
    else:
        st.subheader("2. Columns")
        mapping = map_columns(info, "train")
        if mapping is None:
            return

    st.subheader("3. Cleaning")
    cols = st.columns(len(RULES))
    chosen = [
        rule
        for col, rule in zip(cols, CLEAN_ORDER)
        if col.checkbox(CLEAN_SHORT[rule], value=True, key=f"clean_{rule}", help=RULE_LABELS[rule])
    ]
    skip_invalid = st.checkbox(
        "Skip rows with problems (blank text, bad labels, qrels ids a BEIR folder lacks) "
        "instead of stopping; they are listed by row",
        key="skip_invalid",
    )

    st.subheader("4. Test set")
    test_path = test_name = None
    fraction, seed = 0.0, 0
    if info.format == "beir" and (info.beir or {}).get("test"):
        st.caption("The folder's qrels/test.tsv becomes the test set.")
    else:
        how = st.radio(
            "Test set",
            ["Split off by query", "Upload a test file", "No test set now"],
            horizontal=True,
            key="test_how",
            label_visibility="collapsed",
        )
        if how == "Split off by query":
            c1, c2 = st.columns(2)
            fraction = c1.slider(
                "Share of queries for the test set", 0.05, 0.5, 0.2, 0.05, key="test_fraction"
            )
            seed = int(c2.number_input("Seed", min_value=0, value=42, step=1, key="test_seed"))
            st.caption(
                "Whole queries go to one side, so no query is in both sets; the same seed gives the "
                "same split."
            )
        elif how == "Upload a test file":
            picked_test = pick_file("Test data", "test", allow_folder=False)
            if picked_test is not None:
                test_path, test_name = picked_test
                if inspect(test_path, test_name) is None:
                    return

    spec = ingest.ImportSpec(
        train=path,
        train_name=name,
        columns=mapping,
        test=test_path,
        test_name=test_name,
        cleaning=CleaningOptions.from_names(chosen),
        test_fraction=fraction,
        seed=seed,
        skip_invalid=skip_invalid,
    )

    st.subheader("5. Check")
    report = check(spec)
    show_report(report)

    st.subheader("6. Import")
    if report.blocking:
        st.error("Nothing can be imported until the problems above are fixed in the file (or the mapping).")
    if st.button(
        "Import", type="primary", icon=":material/download:", disabled=report.blocking, key="import_button"
    ):
        bar = st.progress(0.0, text="Importing…")
        try:
            summary = ingest.run_import(db, pid, spec, lambda f, m: bar.progress(min(f, 1.0), text=m))
        except ingest.IngestError as exc:
            bar.empty()
            st.error("The import stopped; nothing was written.")
            show_problems(exc.problems, exc.total)
            return
        st.session_state["last_import"] = summary
        st.session_state["upload_nonce"] = st.session_state.get("upload_nonce", 0) + 1
        st.session_state.pop("_report", None)
        for p in (path, test_path):
            if p is not None and "uploads" in p.parts:
                shutil.rmtree(p.parent, ignore_errors=True)
        st.rerun()


def check(spec: ingest.ImportSpec) -> ingest.Report:
    """A dry run of the import (nothing written), redone only when the file or a choice changes."""

    def sig_of(p: Path | None):
        if p is None or not p.exists():
            return None
        s = p.stat()
        return (str(p), s.st_size, s.st_mtime)

    sig = (pid, repr(spec), sig_of(spec.train), sig_of(spec.test), store.data_version(db, pid))
    cached = st.session_state.get("_report")
    if cached and cached[0] == sig:
        return cached[1]
    bar = st.progress(0.0, text="Checking…")
    report = ingest.dry_run(db, pid, spec, lambda f, m: bar.progress(min(f, 1.0), text=m))
    bar.empty()
    st.session_state["_report"] = (sig, report)
    return report


def show_report(report: ingest.Report) -> None:
    """Counts, cleaning before/after, duplicates, conflicts and warnings of a dry run."""
    s = report.summary
    if s:
        c = st.columns(6)
        c[0].metric("Pairs", f"{s['pairs']:,}", help="training pairs after cleaning and de-duplication")
        c[1].metric("Unique queries", f"{s['unique_queries']:,}")
        c[2].metric("Unique passages", f"{s['unique_passages']:,}")
        c[3].metric("Test pairs", f"{s['test_pairs']:,}", help=f"{s['test_queries']:,} test queries")
        c[4].metric(
            "Duplicates removed",
            f"{s['duplicates_removed']:,}",
            help=f"{s['already_in_project']:,} more are already in the project",
        )
        c[5].metric("Rows dropped", f"{s['dropped_rows'] + s['split_overlap_dropped']:,}")
        if s.get("corpus_passages"):
            st.caption(
                f"{s['corpus_passages']:,} more corpus passages join the pool negatives are mined from."
            )
        cleaning = s["cleaning"]
        with st.expander(
            f"Cleaning changed {cleaning['texts_changed']:,} of {cleaning['texts_seen']:,} texts",
            expanded=bool(cleaning["texts_changed"]),
        ):
            counts = [{"rule": RULE_LABELS[r], "texts changed": cleaning[r]} for r in RULES if r in cleaning]
            if counts:
                st.dataframe(pd.DataFrame(counts), hide_index=True)
            if report.samples:
                st.caption("Before and after, for a few rows:")
                st.dataframe(
                    pd.DataFrame(report.samples)[["row", "column", "before", "after", "changed"]],
                    hide_index=True,
                    width="stretch",
                )
    conflicts = report.conflicts
    if conflicts:
        st.error(
            f"{len(conflicts)} conflicts: the same passage is marked relevant and not relevant for one query. "
            "Decide which is right in the file."
        )
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "row": p.row,
                        "other": p.detail.get("other"),
                        "label": p.detail.get("label"),
                        "other label": p.detail.get("other_label"),
                        "query": p.detail.get("query"),
                        "passage": p.detail.get("passage"),
                    }
                    for p in conflicts
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    errors = [p for p in report.problems if p.kind == "error"]
    if errors:
        st.error(
            f"{report.total_problems if report.total_problems > len(errors) else len(errors):,} problems "
            "stop this import:"
        )
        show_problems(errors, None)
    dropped = [p for p in report.problems if p.kind in ("dropped", "leak")]
    if dropped:
        st.warning(f"{len(dropped):,} rows will be left out:")
        show_problems(dropped)
    for w in report.warnings:
        st.warning(escape_markdown(w))
    if s and not report.blocking:
        st.success("Ready to import.", icon=":material/check_circle:")


def summary_section() -> None:
    """What the project holds now."""
    st.divider()
    st.subheader("Project data")
    last = st.session_state.pop("last_import", None)
    if last:
        st.success(
            f"Imported {last['pairs']:,} training pairs ({last['unique_queries']:,} queries) and "
            f"{last['test_pairs']:,} test pairs; {last['duplicates_removed']:,} duplicates removed."
        )
        for w in last.get("warnings", []):
            st.warning(escape_markdown(w))
    counts = store.project_counts(db, pid)
    c = st.columns(5)
    c[0].metric("Training pairs", f"{counts['train_pairs']:,}")
    c[1].metric("Training queries", f"{counts['train_queries']:,}")
    c[2].metric("Test queries", f"{counts['test_queries']:,}", help=f"{counts['test_pairs']:,} test pairs")
    c[3].metric("Passages", f"{counts['passages']:,}", help="in pairs and in the mining pool")
    c[4].metric("Mined negatives", f"{counts['negatives']:,}")
    if not last and counts["train_pairs"] and counts["train_pairs"] < ingest.MIN_EXAMPLES:
        st.warning(
            f"{counts['train_pairs']} training pairs: fine-tuning usually needs at least "
            f"{ingest.MIN_EXAMPLES}."
        )
    history = ingest.list_imports(db, pid)
    if (
        history
    ):  # a few rows: a plain table (text in the page), not a canvas grid that can paint as an empty box
        st.markdown("**Imports**")
        rows = [{k: ("—" if v is None else v) for k, v in r.items()} for r in history]
        st.table(pd.DataFrame(rows).set_index("id"))
    if counts["train_pairs"]:
        with st.expander("Some training pairs"):
            st.dataframe(pd.DataFrame(ingest.first_pairs(db, pid, 20)), hide_index=True, width="stretch")


import_section()
summary_section()
