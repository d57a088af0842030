"""A BEIR folder arranged for one comparison: the dev split in the place of test (so defaults are compared on
development data, never on the test queries), optionally fewer training or evaluation queries for a short run.

With `split="dev"` and no qrels/dev.tsv (SciFact), a fixed share of the training queries (chosen by a hash of the
query id, so every run holds out the same ones) becomes the dev split and leaves training.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

HEADER = "query-id\tcorpus-id\tscore\n"


def read_qrels(path: Path) -> dict[str, list[str]]:
    """Query id -> its qrels lines (header dropped), in file order."""
    out: dict[str, list[str]] = {}
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i == 0 and line.lower().startswith("query"):
                continue
            if line.strip():
                out.setdefault(line.split("\t", 1)[0], []).append(
                    line if line.endswith("\n") else line + "\n"
                )
    return out


def _write(path: Path, qrels: dict[str, list[str]]) -> None:
    path.write_text(HEADER + "".join(line for lines in qrels.values() for line in lines), encoding="utf-8")


def _key(qid: str) -> str:
    return hashlib.sha1(qid.encode()).hexdigest()


def _first(qrels: dict[str, list[str]], n: int | None) -> dict[str, list[str]]:
    """The n queries with the smallest hash of their id (all when n is None): the same subset every run."""
    if n is None or n >= len(qrels):
        return qrels
    keep = set(sorted(qrels, key=_key)[:n])
    return {q: v for q, v in qrels.items() if q in keep}


def arrange(
    source: Path,
    target: Path,
    split: str = "test",
    dev_share: float = 0.2,
    max_train_queries: int | None = None,
    max_eval_queries: int | None = None,
) -> dict[str, int | str]:
    """Write `target` (corpus and queries linked, qrels rewritten): train + the evaluation split as qrels/test.tsv.
    Returns what was arranged (queries per split, where the evaluation queries came from)."""
    qrels_dir = target / "qrels"
    qrels_dir.mkdir(parents=True, exist_ok=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        dst = target / name
        if not dst.exists():
            try:
                dst.symlink_to((source / name).resolve())
            except OSError:
                shutil.copyfile(source / name, dst)
    train = read_qrels(source / "qrels" / "train.tsv")
    if split == "test":
        evaluation, origin = read_qrels(source / "qrels" / "test.tsv"), "qrels/test.tsv"
    elif (source / "qrels" / "dev.tsv").is_file():
        evaluation, origin = read_qrels(source / "qrels" / "dev.tsv"), "qrels/dev.tsv"
    else:
        held = set(sorted(train, key=_key)[: max(1, int(round(len(train) * dev_share)))])
        evaluation = {q: v for q, v in train.items() if q in held}
        train = {q: v for q, v in train.items() if q not in held}
        origin = f"{dev_share:.0%} of qrels/train.tsv held out (no dev.tsv)"
    train, evaluation = _first(train, max_train_queries), _first(evaluation, max_eval_queries)
    _write(qrels_dir / "train.tsv", train)
    _write(qrels_dir / "test.tsv", evaluation)
    return {
        "split": split,
        "evaluation_from": origin,
        "train_queries": len(train),
        "eval_queries": len(evaluation),
    }
