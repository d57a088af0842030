"""BEIR folders (corpus.jsonl, queries.jsonl, qrels/{train,test}.tsv) into the validation pass.

Judged documents become pairs; unjudged ones join the project as the mining pool. Qrels rows naming a query or
corpus id the folder lacks (several public BEIR sets ship such rows) stop the import, or with `skip_invalid`
are dropped and listed (file, row, column, id).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from core.ingest.columns import norm
from core.ingest.labels import parse_label
from core.ingest.problems import IngestError, Problem
from core.ingest.readers import JsonlReader, chain

if TYPE_CHECKING:
    from core.ingest.validation import ImportPass

Qrel = tuple[str, str, float, int]  # (query id, corpus id, label, row)


def beir_layout(folder: Path, name: str) -> dict[str, Any]:
    """The folder's files; raises naming what is missing."""
    layout: dict[str, Any] = {"corpus": folder / "corpus.jsonl", "queries": folder / "queries.jsonl"}
    for path in list(layout.values()):
        if not path.is_file():
            raise IngestError(Problem(name, f"a BEIR folder needs {path.name}; it is missing from {folder}."))
    qrels = folder / "qrels"
    for split in ("train", "test", "dev"):
        p = qrels / f"{split}.tsv"
        layout[split] = p if p.is_file() else None
    if layout["train"] is None:
        raise IngestError(
            Problem(name, f"a BEIR folder needs qrels/train.tsv (the training pairs); {qrels} has none.")
        )
    return layout


def import_beir(p: ImportPass, folder: Path, name: str) -> None:
    """corpus.jsonl + queries.jsonl + qrels/{train,test}.tsv; unjudged documents join as the mining pool."""
    layout = beir_layout(folder, name)
    p.shape = "labelled"
    p.formats[name] = "beir"
    queries = _queries(p, layout["queries"], f"{name}/queries.jsonl")
    qrels: dict[str, list[Qrel]] = {}
    for split in ("train", "test"):
        if layout.get(split):
            qrels[split] = _qrels(p, layout[split], f"{name}/qrels/{split}.tsv", queries)
    if layout.get("dev") and not layout.get("test"):
        p.warnings.append("qrels/dev.tsv was not imported: only train.tsv and test.tsv are read.")
    needed = {d for rows in qrels.values() for _, d, _, _ in rows}
    docs = _corpus(p, layout["corpus"], f"{name}/corpus.jsonl", needed)
    for split, rows in qrels.items():
        file = f"{name}/qrels/{split}.tsv"
        for q, d, _, row in rows:
            if d not in docs:
                p.log.row(
                    file,
                    row,
                    "corpus-id",
                    f"corpus id {d!r} is not in corpus.jsonl (or its text is blank).",
                    id=d,
                )
        for n, (q, d, label, row) in enumerate(rows, 1):
            if d not in docs or q not in queries:
                continue
            p.rows_read += 1
            p.add_pairs(file, row, queries[q], "query-id", [(docs[d], label, "corpus-id", d)], split, qid=q)
            if n % 2000 == 0:
                p.progress(0.6 + 0.4 * n / len(rows), f"Pairing {split} qrels: {n:,}")
    p.flush()
    p.mappings[name] = {
        "corpus": "corpus.jsonl",
        "queries": "queries.jsonl",
        **{s: f"qrels/{s}.tsv" for s in qrels},
    }


def _queries(p: ImportPass, path: Path, file: str) -> dict[str, str]:
    out: dict[str, str] = {}
    reader = JsonlReader(path, file)
    for row, rec in reader.rows():
        if "__error__" in rec:
            p.log.add(Problem(file, rec["__error__"], row=row))
            continue
        qid = rec.get("_id")
        if qid is None:
            p.log.add(Problem(file, "a query without an '_id'.", row=row, column="_id"))
            continue
        text = p.text(rec.get("text"), file, row, "text", "query")
        if text is not None:
            out[str(qid)] = text
    reader.close()
    return out


def _qrels(p: ImportPass, path: Path, file: str, queries: dict[str, str]) -> list[Qrel]:
    rows: list[Qrel] = []
    with open(path, encoding="utf-8-sig", errors="rerank-studio-mark", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if header is None:
            raise IngestError(Problem(file, "the qrels file is empty."))
        row = 1
        if len(header) >= 3 and norm(header[0]) in ("query_id", "qid", "query"):
            names = [h.strip() for h in header[:3]]
        else:  # no header: the first line is data
            names = ["query-id", "corpus-id", "score"]
            row = 0
            reader = chain([header], reader)  # type: ignore[assignment]  # a reader is any row iterator
        for values in reader:
            row += 1
            if values and "".join(values).strip():
                item = _qrel(p, file, row, values, names, queries)
                if item is not None:
                    rows.append(item)
    return rows


def _qrel(
    p: ImportPass, file: str, row: int, values: list[str], names: list[str], queries: dict[str, str]
) -> Qrel | None:
    if len(values) < 3:
        p.log.add(
            Problem(
                file,
                f"expected 3 tab-separated values (query-id, corpus-id, score), found {len(values)}.",
                row=row,
            )
        )
        return None
    q, d = values[0].strip(), values[1].strip()
    try:
        label = parse_label(values[2])
    except ValueError as exc:
        p.log.add(Problem(file, str(exc), row=row, column=names[2]))
        return None
    if q not in queries:
        p.log.row(file, row, names[0], f"query id {q!r} is not in queries.jsonl.", id=q)
        return None
    return q, d, label, row


def _corpus(p: ImportPass, path: Path, file: str, needed: set[str]) -> dict[str, str]:
    docs: dict[str, str] = {}
    reader = JsonlReader(path, file)
    n = 0
    for row, rec in reader.rows():
        n += 1
        if "__error__" in rec:
            p.log.add(Problem(file, rec["__error__"], row=row))
            continue
        did = rec.get("_id")
        if did is None:
            p.log.add(Problem(file, "a document without an '_id'.", row=row, column="_id"))
            continue
        did = str(did)
        title = rec.get("title") or ""
        body = rec.get("text") or ""
        raw = f"{title}. {body}".strip() if isinstance(title, str) and title.strip() else body
        if did in needed:
            text = p.text(raw, file, row, "text", "document")
            if text is not None:
                docs[did] = text
        elif (
            isinstance(raw, str) and raw.strip()
        ):  # an empty unjudged document is simply not part of the pool
            text = p.text(raw, file, row, "text", "document")
            if text is not None:
                p.pairs.add_corpus(text, did)
        if n % 2000 == 0:
            p.progress(0.6 * reader.fraction(), f"Reading corpus.jsonl: {n:,} documents")
    reader.close()
    p.flush()
    return docs


class RawBeir(TypedDict):
    """A BEIR folder exactly as its files say, for reference figures (benches, tests): no cleaning, no checks."""

    corpus: dict[str, str]  # id -> "title. text" (or the text alone)
    queries: dict[str, str]  # id -> text
    qrels: dict[str, dict[str, dict[str, int]]]  # split -> query id -> corpus id -> grade


def read_raw(folder: Path) -> RawBeir:
    """Every split under qrels/ as the files have it: the one raw reader benches and tests compare the studio to."""
    corpus, queries = {}, {}
    with open(folder / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            corpus[str(d["_id"])] = (d["title"] + ". " + d["text"]).strip() if d.get("title") else d["text"]
    with open(folder / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            queries[str(d["_id"])] = d["text"]
    qrels: dict[str, dict[str, dict[str, int]]] = {}
    for path in sorted((folder / "qrels").glob("*.tsv")):
        split = qrels.setdefault(path.stem, {})
        with open(path, encoding="utf-8") as fh:
            next(fh)
            for line in fh:
                q, d, s = line.rstrip("\n").split("\t")[:3]
                split.setdefault(q, {})[d] = int(s)
    return {"corpus": corpus, "queries": queries, "qrels": qrels}
