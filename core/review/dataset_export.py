"""Dataset export: the curated (reviewed) dataset in the shapes sentence-transformers' losses take, so the reviewed data can train
anywhere: labelled pairs, triplets, query + n negatives; as JSONL, Parquet or a Hugging Face datasets folder."""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import store
from core.store import safe_export_path

FORMATS = {
    "pairs": "labelled pairs (query, passage, label): BinaryCrossEntropyLoss",
    "triplets": "triplets (query, positive, negative): MultipleNegativesRankingLoss",
    "ntuple": "query, positive, negative_1..n: (Cached)MultipleNegativesRankingLoss",
}
CONTAINERS = {"jsonl": ".jsonl", "parquet": ".parquet", "hf": ""}
NEGATIVE_KINDS = ("hard", "random", "upload")


# --- what the curated dataset holds -----------------------------------------------------------


def curated(
    conn: sqlite3.Connection, project: int, *, split: str = "train", reviewed_only: bool = False
) -> dict[int, dict[str, Any]]:
    """Per query: its positives (uploaded label > 0 and reviewed false negatives) and its negatives (mined ones
    judged negative or not yet judged — only judged with `reviewed_only` — and uploaded label-0 pairs).
    Skipped candidates are left out; a candidate marked relevant is a positive and never a negative."""
    if split not in ("train", "test"):
        raise ValueError(f"Unknown split {split!r}; expected train or test.")
    data: dict[int, dict[str, Any]] = {}

    def entry(qid: int, text: str) -> dict[str, Any]:
        return data.setdefault(qid, {"query": text, "positives": {}, "negatives": {}})

    pairs = conn.execute(
        """SELECT p.query_id, q.text AS query, p.passage_id, s.text AS passage, p.label, p.origin
           FROM pairs p JOIN queries q ON q.id = p.query_id JOIN passages s ON s.id = p.passage_id
           WHERE p.project_id = ? AND q.split = ? ORDER BY p.id""",
        (project, split),
    ).fetchall()
    upload_negatives = []
    for r in pairs:
        if r["label"] > 0:
            entry(r["query_id"], r["query"])["positives"][r["passage_id"]] = {
                "text": r["passage"],
                "reviewed": r["origin"] == "review",
            }
        else:
            upload_negatives.append(r)
    mined = conn.execute(
        """SELECT n.query_id, q.text AS query, n.passage_id, s.text AS passage, n.kind, n.status, n.rank
           FROM negatives n JOIN queries q ON q.id = n.query_id JOIN passages s ON s.id = n.passage_id
           WHERE n.project_id = ? AND q.split = ?
           ORDER BY n.query_id, n.status = 'unjudged', n.kind = 'random', n.rank, n.id""",
        (project, split),
    ).fetchall()
    held_back: dict[int, set[int]] = {}  # skipped or relevant: never a negative, whatever else says so
    for r in mined:
        if r["status"] == "relevant":  # a false negative is a positive (also when its review pair is missing)
            entry(r["query_id"], r["query"])["positives"].setdefault(
                r["passage_id"], {"text": r["passage"], "reviewed": True}
            )
        if r["status"] in ("relevant", "skipped"):
            held_back.setdefault(r["query_id"], set()).add(r["passage_id"])
    for r in mined:
        keep = r["status"] == "negative" or (r["status"] == "unjudged" and not reviewed_only)
        if keep:
            e = entry(r["query_id"], r["query"])
            if r["passage_id"] not in e["positives"]:
                e["negatives"].setdefault(r["passage_id"], {"text": r["passage"], "kind": r["kind"]})
    for r in upload_negatives:
        e = entry(r["query_id"], r["query"])
        if r["passage_id"] not in e["positives"] and r["passage_id"] not in held_back.get(r["query_id"], ()):
            e["negatives"].setdefault(r["passage_id"], {"text": r["passage"], "kind": "upload"})
    return data


def build_rows(
    data: dict[int, dict[str, Any]], fmt: str, *, n_negatives: int = 3
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of one format plus what went in: queries used and dropped, positives, negatives by kind."""
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}.")
    if fmt == "ntuple" and int(n_negatives) < 1:
        raise ValueError(f"The n-tuple format needs at least 1 negative per row, got {n_negatives}.")
    rows: list[dict[str, Any]] = []
    used: dict[str, Any] = {
        "queries": 0,
        "dropped_queries": {},
        "positives": 0,
        "reviewed_positives": 0,
        "negatives": {k: 0 for k in NEGATIVE_KINDS},
    }

    def drop(reason: str) -> None:
        used["dropped_queries"][reason] = used["dropped_queries"].get(reason, 0) + 1

    for qid in sorted(data):
        e = data[qid]
        positives, negatives = list(e["positives"].values()), list(e["negatives"].values())
        if fmt == "pairs":
            if not positives and not negatives:
                continue
            rows += [{"query": e["query"], "passage": p["text"], "label": 1.0} for p in positives]
            rows += [{"query": e["query"], "passage": n["text"], "label": 0.0} for n in negatives]
        else:
            if not positives:
                drop("no positive")
                continue
            if fmt == "triplets":
                if not negatives:
                    drop("no negative")
                    continue
                rows += [
                    {"query": e["query"], "positive": p["text"], "negative": n["text"]}
                    for p in positives
                    for n in negatives
                ]
            else:
                if len(negatives) < n_negatives:
                    drop(f"fewer than {n_negatives} negatives")
                    continue
                negatives = negatives[:n_negatives]
                for p in positives:
                    row = {"query": e["query"], "positive": p["text"]}
                    row.update({f"negative_{i + 1}": n["text"] for i, n in enumerate(negatives)})
                    rows.append(row)
        used["queries"] += 1
        used["positives"] += len(positives)
        used["reviewed_positives"] += sum(p["reviewed"] for p in positives)
        for n in negatives:
            used["negatives"][n["kind"]] += 1
    return rows, used


# --- writing ----------------------------------------------------------------------------------


def _write(frame: Any, target: Path, to: str) -> None:
    """Write aside, then move into place: a failed export leaves no partial file behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
    try:
        if to == "jsonl":
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        elif to == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            from datasets import Dataset

            Dataset.from_pandas(frame, preserve_index=False).save_to_disk(str(tmp))
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        raise


def export(
    conn: sqlite3.Connection,
    project: int,
    fmt: str = "pairs",
    to: str = "jsonl",
    *,
    reviewed_only: bool = False,
    out: str | None = None,
    n_negatives: int = 3,
    split: str = "train",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the curated dataset and return a summary of what it holds; all or nothing (written aside,
    then moved into place)."""
    if to not in CONTAINERS:
        raise ValueError(f"Unknown export container {to!r}; expected one of {', '.join(CONTAINERS)}.")
    workspace = store.workspace_of(conn)
    name_row = conn.execute("SELECT name FROM projects WHERE id = ?", (project,)).fetchone()
    if name_row is None:
        raise ValueError(f"No project #{project}.")
    if not out:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        safe_name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name_row["name"])
        out = f"{safe_name}-{fmt}{'-reviewed' if reviewed_only else ''}-{stamp}"
    target = safe_export_path(workspace, out)
    suffix = CONTAINERS[to]
    if suffix and target.suffix.lower() != suffix:
        target = target.with_name(target.name + suffix)
    if target.exists() and not overwrite:
        raise ValueError(
            f"An export named {target.name!r} already exists in {target.parent}; pick another name."
        )

    rows, used = build_rows(
        curated(conn, project, split=split, reviewed_only=reviewed_only), fmt, n_negatives=n_negatives
    )
    if not rows:
        raise ValueError(
            f"Nothing to export as {fmt}: no {split} query has "
            + ("a positive and a negative" if fmt != "pairs" else "a pair")
            + (" (only reviewed negatives were asked for)" if reviewed_only else "")
            + "."
        )
    import pandas as pd

    frame = pd.DataFrame(rows)
    _write(frame, target, to)
    summary = {
        "path": str(target),
        "project": name_row["name"],
        "format": fmt,
        "container": to,
        "split": split,
        "reviewed_only": reviewed_only,
        "columns": list(frame.columns),
        "rows": len(frame),
        "queries": used["queries"],
        "dropped_queries": used["dropped_queries"],
        "positives": used["positives"],
        "reviewed_positives": used["reviewed_positives"],
        "negatives": sum(used["negatives"].values()),
        "negatives_by_kind": used["negatives"],
        "created_at": store.now(),
    }
    if fmt == "ntuple":
        summary["negatives_per_row"] = n_negatives
    return summary


# --- CLI --------------------------------------------------------------------------------------


def cli_arguments(parser: argparse.ArgumentParser) -> None:
    """`python -m core export --project NAME --format pairs|triplets|ntuple --to jsonl|parquet|hf`."""
    parser.add_argument("--project", required=True, help="project name")
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=list(FORMATS),
        default="pairs",
        help="; ".join(f"{k}: {v}" for k, v in FORMATS.items()),
    )
    parser.add_argument(
        "--to", choices=list(CONTAINERS), default="jsonl", help="file type (hf: datasets folder)"
    )
    parser.add_argument("--reviewed-only", action="store_true", help="only negatives a person judged")
    parser.add_argument("--out", default=None, help="name inside the workspace's exports folder")
    parser.add_argument("--negatives", type=int, default=3, help="negatives per row for --format ntuple")
    parser.add_argument("--split", choices=["train", "test"], default="train")
    parser.add_argument("--overwrite", action="store_true", help="replace an export of the same name")


def cli_main(args: argparse.Namespace) -> dict[str, Any]:
    """Export and return the summary (printed as JSON by the dispatcher)."""
    conn = store.connect()
    try:
        return export(
            conn,
            store.project_id(conn, args.project),
            args.fmt,
            args.to,
            reviewed_only=args.reviewed_only,
            out=args.out,
            n_negatives=args.negatives,
            split=args.split,
            overwrite=args.overwrite,
        )
    finally:
        conn.close()


def read_export(path: str | Path) -> list[dict[str, Any]]:
    """Load an export back as rows, whatever its container (tests and the page's preview use it)."""
    path = Path(path)
    if path.is_dir():
        from datasets import load_from_disk

        return [dict(r) for r in load_from_disk(str(path))]
    if path.suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(path).to_dict("records")
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
