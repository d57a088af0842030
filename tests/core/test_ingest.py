"""Ingest on real SciFact rows: formats, shapes, cleaning counts, duplicates, conflicts, splits, BEIR folders, the
CLI, and every bad input of the issue — each names file/row/column and leaves the store exactly as it was."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import ingest, store
from core.ingest import ColumnMap, ImportSpec, IngestError
from core.ingest.cleaning import CleaningOptions
from tests.conftest import ROOT, load_scifact, unrelated_doc

# --- helpers ----------------------------------------------------------------------------------------------


def train_rows(n_queries: int = 20, start: int = 0) -> list[tuple[str, str]]:
    """(query, relevant abstract) rows of real SciFact training qrels."""
    sf = load_scifact()
    qids = sorted(sf["qrels"]["train"], key=int)[start : start + n_queries]
    return [(sf["queries"][q], sf["corpus"][d]) for q in qids for d in sf["qrels"]["train"][q]]


def write_csv(path: Path, header: list[str], rows: list, delimiter: str = ",") -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


def dump(conn) -> str:
    """Every row of the workspace, to prove a failed import changed nothing."""
    return "\n".join(conn.iterdump())


@pytest.fixture()
def seeded(db, tmp_path):
    """A project that already holds one valid import, so 'unchanged' means something."""
    good = write_csv(tmp_path / "first.csv", ["query", "positive"], train_rows(5, start=200))
    ingest.run_import(db, "Claims", ImportSpec(good))
    return db, store.project_id(db, "Claims"), dump(db)


def fails(seeded, path: Path, match: str, **spec) -> IngestError:
    """Import `path` into the seeded project, expect an IngestError matching `match`, and an untouched store."""
    conn, pid, before = seeded
    with pytest.raises(IngestError, match=match) as info:
        ingest.run_import(conn, pid, ImportSpec(path, **spec))
    assert dump(conn) == before, "a failed import changed the store"
    assert path.name in str(info.value) or info.value.file.endswith(path.name)
    return info.value


# --- bad input: each one its own test -----------------------------------------------------------------------


def test_empty_file(seeded, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    err = fails(seeded, path, r"empty\.csv: the file is empty \(0 bytes\)")
    assert err.row is None
    path.write_bytes(b"\n \r\n")
    fails(seeded, path, r"empty\.csv: the file is empty")


def test_header_only(seeded, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("query,positive\n", encoding="utf-8")
    fails(seeded, path, r"header\.csv: the file has a header but no data rows")


def test_wrong_columns(seeded, tmp_path):
    path = write_csv(tmp_path / "wrong.csv", ["id", "title", "year"], [["1", "A title", "2020"]])
    fails(seeded, path, r"wrong\.csv: no query column found among: id, title, year")


def test_missing_mapped_column(seeded, tmp_path):
    path = write_csv(tmp_path / "pairs.csv", ["query", "positive"], train_rows(2))
    err = fails(
        seeded,
        path,
        r"pairs\.csv, column 'answer': column 'answer' is not in the file",
        columns=ColumnMap(query="query", positive="answer"),
    )
    assert err.column == "answer"


def test_missing_passage_column(seeded, tmp_path):
    rows = [(q, "1") for q, _ in train_rows(2)]
    fails(
        seeded,
        write_csv(tmp_path / "q.csv", ["query", "label"], rows),
        r"q\.csv: found a label column 'label' but no passage",
    )


def test_non_utf8_bytes(seeded, tmp_path):
    (q1, p1), (q2, p2) = train_rows(2)[:2]
    path = write_csv(tmp_path / "latin1.csv", ["query", "positive"], [[q1, p1], [q2, "CAFE au lait " + p2]])
    path.write_bytes(path.read_bytes().replace(b"CAFE", b"Caf\xe9"))  # one Latin-1 byte in row 3
    err = fails(
        seeded, path, r"latin1\.csv, row 3, column 'positive': bytes that are not UTF-8 \(0xe9 after 'Caf'\)"
    )
    assert (err.row, err.column) == (3, "positive")


def test_utf8_bom_is_read_transparently(db, tmp_path):
    rows = train_rows(3)
    path = tmp_path / "bom.csv"
    path.write_bytes(
        b"\xef\xbb\xbf" + write_csv(tmp_path / "x.csv", ["query", "positive"], rows).read_bytes()
    )
    info = ingest.inspect(path)
    assert info.columns == ["query", "positive"]  # not "\ufeffquery"
    summary = ingest.run_import(db, "BOM", ImportSpec(path))
    assert summary["pairs"] == len(set(rows))
    stored = store.fetch_pairs(db, summary["project_id"])
    assert stored[0]["query"] == rows[0][0]


def test_mixed_line_endings(db, tmp_path):
    rows = train_rows(3)[:3]
    lines = ["query,positive"] + [f'"{q}","{p}"' for q, p in rows] + ['a query,"with a bad row"']
    raw = (lines[0] + "\r\n" + lines[1] + "\n" + lines[2] + "\r" + lines[3] + "\r\n").encode()
    path = tmp_path / "mixed.csv"
    path.write_bytes(raw)
    summary = ingest.run_import(db, "Endings", ImportSpec(path, cleaning=CleaningOptions.none()))
    assert summary["pairs"] == 3 and summary["rows"] == 3
    texts = [p["query"] + p["passage"] for p in store.fetch_pairs(db, summary["project_id"])]
    assert not any("\r" in t or "\n" in t for t in texts)
    # the row numbers stay right whatever the line endings: a bad label on the 4th data row is row 5
    labelled = tmp_path / "mixed_labels.csv"
    labelled.write_bytes(b"query,passage,label\r\nq1,p1,1\nq2,p2,0\rq3,p3,1\r\nq4,p4,yes please\n")
    with pytest.raises(
        IngestError, match=r"mixed_labels\.csv, row 5, column 'label': the label 'yes please' is not a number"
    ):
        ingest.run_import(db, "Endings", ImportSpec(labelled))


def test_quoted_fields_with_embedded_newlines_and_delimiters(db, tmp_path):
    (q, p), (q2, p2) = train_rows(2)[:2]
    tricky = f'{p[:200]},\n"quoted", and\ta tab;\n{p[200:400]}'
    path = write_csv(
        tmp_path / "quoted.csv",
        ["query", "passage", "label"],
        [[q, tricky, 1], [q2, p2, 1], [q2, "x", "not-a-number"]],
    )
    with pytest.raises(
        IngestError, match=r"quoted\.csv, row 4, column 'label'"
    ):  # rows count records, not lines
        ingest.run_import(db, "Quoted", ImportSpec(path))
    path = write_csv(tmp_path / "quoted_ok.csv", ["query", "passage", "label"], [[q, tricky, 1], [q2, p2, 1]])
    summary = ingest.run_import(db, "Quoted", ImportSpec(path, cleaning=CleaningOptions.none()))
    assert summary["pairs"] == 2
    assert store.fetch_pairs(db, summary["project_id"])[0]["passage"] == tricky  # kept byte for byte


def test_unquoted_delimiter_gives_the_row_and_a_hint(seeded, tmp_path):
    path = tmp_path / "commas.csv"
    q, p = train_rows(1)[0]
    path.write_text(
        f'query,positive\n"{q}","{p}"\nWhat about aspirin?,It helps, and it hurts\n', encoding="utf-8"
    )
    fails(
        seeded, path, r"commas\.csv, row 3: this row has 3 values but the header has 2 columns.*double quotes"
    )


@pytest.mark.parametrize(
    "payload,what",
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "a PNG image"),
        (b"PK\x03\x04" + bytes(200), r"a ZIP archive \(an Excel \.xlsx workbook\?\)"),
        (bytes((i * 37 + 11) % 256 for i in range(5000)), r"binary data \(a NUL byte at byte \d+\)"),
    ],
)
def test_binary_file_renamed_csv(seeded, tmp_path, payload, what):
    path = tmp_path / "data.csv"
    path.write_bytes(payload)
    fails(seeded, path, rf"data\.csv: .*{what}")


def test_non_numeric_labels(seeded, tmp_path):
    (q1, p1), (q2, p2) = train_rows(2)[:2]
    path = write_csv(
        tmp_path / "labels.csv", ["query", "passage", "label"], [[q1, p1, 1], [q2, p2, "relevant"]]
    )
    err = fails(seeded, path, r"labels\.csv, row 3, column 'label': the label 'relevant' is not a number")
    assert (err.row, err.column) == (3, "label")


@pytest.mark.parametrize(
    "label,message", [("", "the label is empty"), ("-1", "is negative"), ("nan", "not a finite")]
)
def test_other_bad_labels(seeded, tmp_path, label, message):
    q, p = train_rows(1)[0]
    path = write_csv(tmp_path / "labels.csv", ["query", "passage", "label"], [[q, p, label]])
    fails(seeded, path, rf"labels\.csv, row 2, column 'label': .*{message}")


def test_blank_query(seeded, tmp_path):
    rows = train_rows(2)
    rows[1] = ("   ", rows[1][1])
    err = fails(
        seeded,
        write_csv(tmp_path / "blank.csv", ["query", "positive"], rows),
        r"blank\.csv, row 3, column 'query': the query is blank",
    )
    assert err.row == 3


def test_blank_passage_and_passage_blank_after_cleaning(seeded, tmp_path):
    rows = train_rows(3)[:3]
    rows[0] = (rows[0][0], "")
    rows[2] = (rows[2][0], "https://example.org/only-a-link")
    err = fails(
        seeded,
        write_csv(tmp_path / "blankp.csv", ["query", "positive"], rows),
        r"2 problems; nothing was imported",
    )
    assert [(p.row, p.column) for p in err.problems] == [(2, "positive"), (4, "positive")]
    assert "the positive passage is blank." in err.problems[0].message
    assert "blank after cleaning (it was 'https://example.org/only-a-link')" in err.problems[1].message


def test_rows_of_100000_characters_import_with_a_located_warning(db, tmp_path):
    sf = load_scifact()
    long_text = " ".join(sf["corpus"].values())[:100_000].strip()
    rows = train_rows(2) + [("What does a very long abstract say?", long_text)]
    path = write_csv(tmp_path / "long.csv", ["query", "positive"], rows)
    report = ingest.dry_run(db, None, ImportSpec(path, cleaning=CleaningOptions.none()))
    assert not report.blocking
    assert any("long.csv, row" in w and "column 'positive'" in w for w in report.warnings), report.warnings
    summary = ingest.run_import(db, "Long", ImportSpec(path, cleaning=CleaningOptions.none()))
    assert summary["long_texts"] == 1
    stored = [p["passage"] for p in store.fetch_pairs(db, summary["project_id"])]
    assert max(len(t) for t in stored) == len(long_text)


def test_a_runaway_quote_is_refused_with_its_row(seeded, tmp_path):
    q, p = train_rows(1)[0]
    path = tmp_path / "runaway.csv"
    body = f'query,positive\n"{q}","{p}"\nbroken,"starts a quote\n' + ("more text, " * 200_000)
    path.write_text(body, encoding="utf-8")
    fails(seeded, path, r"runaway\.csv, row 3: .*(field larger|characters).*quote")


def test_file_over_the_upload_limit(seeded, tmp_path):
    path = tmp_path / "huge.csv"
    with open(path, "wb") as fh:  # sparse: 201 MB on paper, nothing on disk
        fh.truncate(201 * 1024 * 1024)
    assert ingest.UPLOAD_LIMIT_MB == 200  # the same limit as .streamlit/config.toml
    fails(seeded, path, r"huge\.csv: the file is 201\.0 MB; the upload limit is 200 MB")
    small = write_csv(tmp_path / "small.csv", ["query", "positive"], train_rows(3))
    fails(seeded, small, r"small\.csv: the file is 0\.0 MB; the upload limit is 0\.0001 MB", max_mb=0.0001)


def test_unsupported_extension_and_fake_parquet(seeded, tmp_path):
    xlsx = tmp_path / "pairs.xlsx"
    xlsx.write_bytes(b"whatever")
    fails(seeded, xlsx, r"pairs\.xlsx: unsupported file type '\.xlsx'")
    fake = write_csv(tmp_path / "pairs.parquet", ["query", "positive"], train_rows(1))
    fails(seeded, fake, r"pairs\.parquet: this is not a Parquet file")


def test_broken_jsonl_line_and_broken_json(seeded, tmp_path):
    q, p = train_rows(1)[0]
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"query": q, "positive": p}) + "\n\n{not json}\n", encoding="utf-8")
    fails(seeded, path, r"pairs\.jsonl, row 3: not valid JSON")
    bad = tmp_path / "pairs.json"
    bad.write_text('[{"query": "a", "positive": "b"},\n {"query": ]', encoding="utf-8")
    fails(seeded, bad, r"pairs\.json: not valid JSON: .* \(line 2")


# --- conflicts, duplicates, labels ----------------------------------------------------------------------------


def test_conflicts_are_errors_listed_by_row(seeded, tmp_path):
    sf = load_scifact()
    (q, p), (q2, p2) = train_rows(2)[:2]
    rows = [[q, p, 1], [q2, p2, 1], [q, sf["corpus"][unrelated_doc()], 0], [q, p, 0]]
    err = fails(
        seeded,
        write_csv(tmp_path / "conflict.csv", ["query", "passage", "label"], rows),
        r"conflict\.csv, row 5, column 'passage': conflict: this passage is marked not relevant .* "
        r"relevant \(label 1\) in conflict\.csv row 2",
    )
    assert [p.kind for p in err.problems] == ["conflict"]


def test_conflict_with_what_the_project_already_holds(seeded, tmp_path):
    q, p = train_rows(5, start=200)[0]  # in the seeded import as relevant
    fails(
        seeded,
        write_csv(tmp_path / "again.csv", ["query", "passage", "label"], [[q, p, 0]]),
        r"again\.csv, row 2, column 'passage': conflict: .* in an earlier import of the project",
    )


def test_duplicates_removed_and_counted(db, tmp_path):
    rows = train_rows(10)
    dup_rows = (
        rows + rows[:4] + [(rows[0][0] + "  ", rows[0][1])]
    )  # trailing spaces: a duplicate once cleaned
    summary = ingest.run_import(
        db, "Dups", ImportSpec(write_csv(tmp_path / "d.csv", ["query", "positive"], dup_rows))
    )
    assert summary["pairs"] == len(rows) and summary["duplicates_removed"] == 5
    again = ingest.run_import(db, "Dups", ImportSpec(tmp_path / "d.csv"))
    assert again["pairs"] == 0 and again["already_in_project"] == len(dup_rows)
    assert store.project_counts(db, summary["project_id"])["train_pairs"] == len(rows)


def test_graded_labels_keep_the_highest_grade(db, tmp_path):
    sf = load_scifact()
    (q, p), (q2, p2) = train_rows(2)[:2]
    rows = [[q, p, 1], [q, sf["corpus"][unrelated_doc()], 0], [q2, p2, 2], [q2, p2, 3], ["", "", ""]]
    summary = ingest.run_import(
        db, "Graded", ImportSpec(write_csv(tmp_path / "g.csv", ["query", "passage", "label"], rows))
    )
    labels = sorted(p["label"] for p in store.fetch_pairs(db, summary["project_id"]))
    assert labels == [0.0, 1.0, 3.0]
    assert summary["graded_duplicates"] == 1 and summary["blank_rows"] == 1
    assert any("highest was kept" in w for w in summary["warnings"])


# --- shapes and formats ------------------------------------------------------------------------------------


def test_shapes_are_detected_from_headers():
    assert ingest.detect_columns(["Question", "Answer"]).shape == "pairs"
    assert ingest.detect_columns(["query", "document", "score"], [{"score": "1"}]).shape == "labelled"
    triplet = ingest.detect_columns(["anchor", "positive", "negative"])
    assert (triplet.query, triplet.positive, triplet.negatives, triplet.shape) == (
        "anchor",
        "positive",
        ["negative"],
        "triplets",
    )
    multi = ingest.detect_columns(["query", "positive", "negative_2", "negative_1", "negative_10"])
    assert multi.negatives == ["negative_1", "negative_2", "negative_10"] and multi.shape == "multi"
    assert multi.shape_text == "(query, positive, negative_1..n)"
    # a "relevant" column of text is a passage, not a label
    assert (
        ingest.detect_columns(["query", "relevant"], [{"relevant": "Aspirin lowers risk"}]).positive
        == "relevant"
    )
    assert ingest.ColumnMap.parse("query=q,positive=p,negatives=n1|n2").shape == "multi"


def test_triplets_and_multi_negatives_become_labelled_pairs(db, tmp_path):
    sf = load_scifact()
    rows = train_rows(6)
    negs = sorted(sf["corpus"])[:20]
    triplets = [
        [q, p, sf["corpus"][negs[i]], sf["corpus"][negs[i + 1]] if i % 2 else ""]
        for i, (q, p) in enumerate(rows)
    ]
    path = write_csv(tmp_path / "multi.csv", ["query", "positive", "negative_1", "negative_2"], triplets)
    summary = ingest.run_import(db, "Multi", ImportSpec(path))
    n_second = sum(1 for i in range(len(rows)) if i % 2)
    assert summary["shape"] == "multi"
    assert summary["positives"] == len(set(rows))
    assert summary["negatives"] == len(
        {(q, negs[i]) for i, (q, _) in enumerate(rows)}
        | {(q, negs[i + 1]) for i, (q, _) in enumerate(rows) if i % 2}
    )
    assert summary["blank_negatives"] == len(rows) - n_second


def test_every_format_gives_the_same_import(db, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = train_rows(12)
    records = [{"query": q, "positive": p} for q, p in rows]
    paths = [
        write_csv(tmp_path / "p.csv", ["query", "positive"], rows),
        write_csv(tmp_path / "p.tsv", ["query", "positive"], rows, delimiter="\t"),
        write_csv(tmp_path / "semicolon.csv", ["query", "positive"], rows, delimiter=";"),
    ]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (tmp_path / "p.json").write_text(json.dumps({"data": records}), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "p.parquet")
    paths += [tmp_path / "p.jsonl", tmp_path / "p.json", tmp_path / "p.parquet"]
    results = []
    for i, path in enumerate(paths):
        s = ingest.run_import(db, f"fmt{i}", ImportSpec(path))
        pairs = sorted((p["query"], p["passage"], p["label"]) for p in store.fetch_pairs(db, s["project_id"]))
        results.append((s["pairs"], s["unique_queries"], s["unique_passages"], pairs))
    assert all(r == results[0] for r in results[1:])
    assert results[0][0] == len(set(rows))


def test_jsonl_with_lists_of_positives_and_negatives(db, tmp_path):
    sf = load_scifact()
    q, p = train_rows(1)[0]
    negs = [sf["corpus"][d] for d in sorted(sf["corpus"])[:3]]
    path = tmp_path / "flag.jsonl"
    path.write_text(json.dumps({"query": q, "pos": [p], "neg": negs}) + "\n", encoding="utf-8")
    s = ingest.run_import(db, "Lists", ImportSpec(path))
    assert (s["positives"], s["negatives"]) == (1, 3)


# --- test sets --------------------------------------------------------------------------------------------


def _split_of(conn, pid) -> dict[str, set[str]]:
    out = {"train": set(), "test": set()}
    for split in out:
        out[split] = {p["query"] for p in store.fetch_pairs(conn, pid, split)}
    return out


def test_split_by_query_is_seeded_and_never_shares_a_query(tmp_path):
    rows = train_rows(80)
    path = write_csv(tmp_path / "pairs.csv", ["query", "positive"], rows)
    splits = []
    for i, seed in enumerate((7, 7, 8)):
        conn = store.connect(tmp_path / f"ws{i}")
        s = ingest.run_import(conn, "Split", ImportSpec(path, test_fraction=0.25, seed=seed))
        split = _split_of(conn, s["project_id"])
        assert not split["train"] & split["test"]
        assert s["test_queries"] == round(0.25 * len({q for q, _ in rows}))
        assert s["pairs"] + s["test_pairs"] == len(set(rows))
        splits.append(split["test"])
    assert splits[0] == splits[1] and splits[0] != splits[2]


def test_test_file_upload_leaves_out_queries_already_in_training(db, tmp_path):
    sf = load_scifact()
    train = write_csv(tmp_path / "train.csv", ["query", "positive"], train_rows(10))
    test_q = sorted(sf["qrels"]["test"], key=int)[:6]
    test_rows = [(sf["queries"][q], sf["corpus"][d]) for q in test_q for d in sf["qrels"]["test"][q]]
    leaked = train_rows(1)[0]
    test = write_csv(tmp_path / "test.csv", ["query", "positive"], test_rows + [leaked])
    s = ingest.run_import(db, "Upload", ImportSpec(train, test=test))
    assert s["test_queries"] == 6 and s["split_overlap_dropped"] == 1
    assert s["dropped"][0]["row"] == len(test_rows) + 2 and s["dropped"][0]["file"] == "test.csv"
    split = _split_of(db, s["project_id"])
    assert not split["train"] & split["test"]


def test_beir_folder_train_test_and_corpus_pool(db):
    folder = ROOT / "sample_data" / "scifact"
    s = ingest.run_import(db, "BEIR", ImportSpec(folder))
    qrels = {
        split: list(csv.DictReader(open(folder / "qrels" / f"{split}.tsv"), delimiter="\t"))
        for split in ("train", "test")
    }
    n_docs = sum(1 for _ in open(folder / "corpus.jsonl"))
    counts = store.project_counts(db, s["project_id"])
    assert counts["test_pairs"] == len(qrels["test"]) and counts["test_queries"] == 100
    assert counts["train_pairs"] + s["duplicates_removed"] == len(qrels["train"])
    assert counts["passages"] == n_docs  # every abstract: judged ones in pairs, the rest in the pool
    assert s["corpus_passages"] == n_docs - len({r["corpus-id"] for rs in qrels.values() for r in rs})
    split = _split_of(db, s["project_id"])
    assert not split["train"] & split["test"]
    pool = [p for p in store.fetch_passages(db, s["project_id"]) if p["source"] == "corpus"]
    assert pool and all(p["doc_id"] for p in pool)


def test_beir_folder_with_an_unknown_id_is_refused(db, tmp_path):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    src = ROOT / "sample_data" / "scifact"
    (folder / "corpus.jsonl").write_bytes((src / "corpus.jsonl").read_bytes())
    (folder / "queries.jsonl").write_bytes((src / "queries.jsonl").read_bytes())
    lines = (src / "qrels" / "train.tsv").read_text().splitlines()
    lines.insert(3, f"{lines[1].split()[0]}\t999999999\t1")
    (folder / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n")
    before = dump(db)
    with pytest.raises(
        IngestError, match=r"beir/qrels/train\.tsv, row 4, column 'corpus-id': corpus id '999999999'"
    ):
        ingest.run_import(db, "Broken", ImportSpec(folder, train_name="beir"))
    assert dump(db) == before


def _beir_with_dangling_ids(tmp_path: Path) -> tuple[Path, list[str]]:
    """The sample folder with two qrels rows naming corpus ids the corpus lacks (as some public BEIR sets do)."""
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    src = ROOT / "sample_data" / "scifact"
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        (folder / name).write_bytes((src / name).read_bytes())
    lines = (src / "qrels" / "train.tsv").read_text().splitlines()
    lines.insert(3, f"{lines[1].split()[0]}\t999999999\t1")
    lines.insert(6, f"{lines[5].split()[0]}\t888888888\t1")
    (folder / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n")
    return folder, lines


def test_beir_dangling_qrels_rows_are_dropped_and_listed_with_skip_invalid(db, tmp_path, workspace):
    folder, lines = _beir_with_dangling_ids(tmp_path)
    s = ingest.run_import(db, "Dangling", ImportSpec(folder, train_name="beir", skip_invalid=True))
    dropped = [(d["file"], d["row"], d["column"], d["id"]) for d in s["dropped"]]
    assert dropped == [
        ("beir/qrels/train.tsv", 4, "corpus-id", "999999999"),
        ("beir/qrels/train.tsv", 7, "corpus-id", "888888888"),
    ]
    assert s["dropped_rows"] == 2 and any("2 rows with problems were skipped" in w for w in s["warnings"])
    assert s["pairs"] + s["duplicates_removed"] == len(lines) - 1 - 2
    report = ingest.dry_run(
        db, None, ImportSpec(folder, train_name="beir", skip_invalid=True)
    )  # the Data page
    assert not report.blocking and [p.detail["id"] for p in report.problems if p.kind == "dropped"] == [
        "999999999",
        "888888888",
    ]
    out = _cli(["ingest", str(folder), "--project", "CLI dangling", "--skip-invalid"], workspace)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["dropped_rows"] == 2


def test_uploaded_test_set_is_read_and_cleaned_like_an_import(db, tmp_path):
    """evaluation read test files with pandas and no cleaning: a passage with HTML never matched the project's
    cleaned passage, and a training query wrapped in markup was not caught by the overlap check."""
    from core import evaluation

    rows = train_rows(6)
    s = ingest.run_import(
        db,
        "Clean test",
        ImportSpec(write_csv(tmp_path / "t.csv", ["query", "positive"], rows), test_fraction=0.5, seed=1),
    )
    pid = s["project_id"]
    test_pairs = store.fetch_pairs(db, pid, "test")
    train_query = store.fetch_pairs(db, pid, "train")[0]["query"]
    q, passage = test_pairs[0]["query"], test_pairs[0]["passage"]
    other = store.fetch_pairs(db, pid, "train")[-1]["passage"]
    upload = write_csv(
        tmp_path / "upload.csv",
        ["query", "passage", "label", "score"],
        [
            [q, f"<p>{passage}</p>", 1, 0.2],
            [q, other + "  https://example.org", 0, 0.9],
            [f"<b>{train_query}</b>", passage, 1, 0.5],
        ],
    ).read_bytes()
    ts = evaluation.read_test_file(upload, "upload.csv", db, pid)
    assert list(ts.queries.values()) == [q]  # the training query (once cleaned) is left out
    assert any("also training queries" in n for n in ts.notes)
    judged = next(iter(ts.qrels.values()))
    assert judged[str(test_pairs[0]["passage_id"])] == 1.0  # the cleaned passage is the project's passage
    tf = ingest.read_test_set(upload, "upload.csv", db, pid)
    assert [r.passage for r in tf.rows] == [passage, other] and tf.overlap == [train_query]
    assert ingest.overlapping_queries(db, pid, [train_query, q]) == [train_query]
    with pytest.raises(IngestError, match=r"bad\.csv, row 2, column 'label'"):
        ingest.read_test_set(b"query,passage,label\nwhat,some passage,high\n", "bad.csv")


def test_extra_corpus_file_is_read_and_cleaned_like_an_import(tmp_path):
    path = tmp_path / "extra.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"_id": "1", "title": "T", "text": "<b>Aspirin</b> &amp; risk"},
                {"_id": "2", "text": "   "},
                {"_id": "3", "text": "T. Aspirin & risk"},
            ]
        )
        + "\n"
    )
    assert ingest.read_corpus_file(path) == ["T. Aspirin & risk"]
    txt = tmp_path / "extra.txt"
    txt.write_text("one passage\n\n<i>two</i>\n")
    assert ingest.read_corpus_file(txt) == ["one passage", "two"]
    with pytest.raises(IngestError, match="holds no passages"):
        ingest.read_corpus_file(write_csv(tmp_path / "e.csv", ["text"], [[""]]))


# --- thresholds, dry runs, records, progress ----------------------------------------------------------------


def test_under_256_examples_warns_and_nothing_usable_blocks(seeded, tmp_path):
    conn = seeded[0]
    s = ingest.run_import(
        conn, "Small", ImportSpec(write_csv(tmp_path / "s.csv", ["query", "positive"], train_rows(8)))
    )
    assert any("256" in w for w in s["warnings"])
    negatives_only = write_csv(
        tmp_path / "zeros.csv", ["query", "passage", "label"], [[q, p, 0] for q, p in train_rows(4)]
    )
    conn2 = store.connect(tmp_path / "other")
    before = dump(conn2)
    with pytest.raises(
        IngestError, match=r"zeros\.csv: nothing usable: no relevant \(positive\) training pair"
    ):
        ingest.run_import(conn2, "Fresh", ImportSpec(negatives_only))
    assert dump(conn2) == before and store.list_projects(conn2) == []  # not even the new project is left
    blank = write_csv(tmp_path / "blanks.csv", ["query", "positive"], [["", ""], ["  ", "\t"]])
    with pytest.raises(IngestError, match=r"blanks\.csv: nothing usable: no usable training pairs"):
        ingest.run_import(conn2, "Fresh", ImportSpec(blank))
    # negatives alone are fine for a project that already has positives
    s = ingest.run_import(conn, "Claims", ImportSpec(negatives_only))
    assert s["negatives"] == 4


def test_skip_invalid_drops_and_lists_bad_rows(db, tmp_path):
    rows = [list(r) + [1] for r in train_rows(6)]
    rows[1][2] = "maybe"
    rows[3][0] = ""
    path = write_csv(tmp_path / "skip.csv", ["query", "passage", "label"], rows)
    s = ingest.run_import(db, "Skip", ImportSpec(path, skip_invalid=True))
    assert s["dropped_rows"] == 2
    assert [(d["row"], d["column"]) for d in s["dropped"]] == [(3, "label"), (5, "query")]
    assert s["pairs"] == len({(r[0], r[1]) for i, r in enumerate(rows) if i not in (1, 3)})


def test_dry_run_writes_nothing_and_predicts_the_import(seeded, tmp_path):
    conn, pid, before = seeded
    path = write_csv(tmp_path / "next.csv", ["query", "positive"], train_rows(20))
    report = ingest.dry_run(conn, pid, ImportSpec(path, test_fraction=0.2, seed=3))
    assert dump(conn) == before and not report.blocking
    assert report.samples and {"before", "after", "changed"} <= set(report.samples[0])
    s = ingest.run_import(conn, pid, ImportSpec(path, test_fraction=0.2, seed=3))
    for key in ("pairs", "unique_queries", "unique_passages", "test_pairs", "already_in_project", "cleaning"):
        assert report.summary[key] == s[key], key


def test_import_is_recorded_with_its_summary(db, tmp_path):
    s = ingest.run_import(
        db, "Rec", ImportSpec(write_csv(tmp_path / "r.csv", ["query", "positive"], train_rows(4)))
    )
    row = db.execute(
        "SELECT filename, split, summary FROM imports WHERE id = ?", (s["import_id"],)
    ).fetchone()
    assert row["filename"] == "r.csv" and json.loads(row["summary"])["pairs"] == s["pairs"]
    assert {p["origin"] for p in store.fetch_pairs(db, s["project_id"])} == {"upload"}
    assert ingest.list_imports(db, s["project_id"])[0]["pairs"] == s["pairs"]


def test_progress_is_reported_up_to_done(db, tmp_path):
    rows = train_rows(400)
    path = write_csv(tmp_path / "big.csv", ["query", "positive"], rows * 10)  # ~4,500 rows
    seen = []
    ingest.run_import(db, "Progress", ImportSpec(path), lambda f, m: seen.append(f))
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] == 1.0


# --- CLI -----------------------------------------------------------------------------------------------------


def _cli(args: list[str], workspace: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RERANK_STUDIO_HOME": str(workspace)}
    return subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_cli_ingest_prints_a_json_summary_and_errors_name_the_row(workspace, tmp_path):
    rows = train_rows(30)
    rows[2] = (rows[2][0], "<p>" + rows[2][1] + "</p>")
    path = write_csv(tmp_path / "cli.csv", ["query", "positive"], rows)
    out = _cli(
        [
            "ingest",
            str(path),
            "--project",
            "CLI",
            "--clean",
            "html,whitespace",
            "--test-fraction",
            "0.2",
            "--seed",
            "5",
        ],
        workspace,
    )
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert s["project"] == "CLI" and s["pairs"] + s["test_pairs"] == len(set(rows))
    assert s["cleaning"]["html"] == 1 and "urls" not in s["cleaning"]
    assert {"unique_queries", "unique_passages", "duplicates_removed", "warnings"} <= set(s)
    conn = store.connect(workspace)
    assert store.project_counts(conn, store.project_id(conn, "CLI"))["test_queries"] == s["test_queries"] > 0
    bad = write_csv(tmp_path / "bad.csv", ["query", "passage", "label"], [["q", "p", "high"]])
    out = _cli(["ingest", str(bad), "--project", "CLI", "--no-clean"], workspace)
    assert out.returncode == 2
    assert "bad.csv, row 2, column 'label'" in json.loads(out.stderr)["error"]
    mapped = write_csv(tmp_path / "mapped.csv", ["claim_text", "abstract"], train_rows(3))
    out = _cli(
        [
            "ingest",
            str(mapped),
            "--project",
            "Mapped",
            "--column-map",
            "query=claim_text,positive=abstract",
            "--dry-run",
        ],
        workspace,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["dry_run"] is True
    assert "Mapped" not in [p["name"] for p in store.list_projects(conn)]


def test_cli_sample_is_idempotent(workspace):
    first = _cli(["sample"], workspace)
    assert first.returncode == 0, first.stderr
    a = json.loads(first.stdout)
    b = json.loads(_cli(["sample"], workspace).stdout)
    assert a["created"] is True and b["created"] is False
    assert a["train_pairs"] == b["train_pairs"] >= 256 and a["test_queries"] == 100 and not a["warnings"]
