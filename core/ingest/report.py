"""What an import found, as people read it: the summary counts, the warnings, and whether anything is usable."""

from __future__ import annotations

from typing import Any

from core.ingest.columns import SHAPES
from core.ingest.problems import Problem
from core.ingest.texts import LONG_TEXT_CHARS
from core.ingest.validation import ImportPass

MIN_EXAMPLES = 256  # below this, fine-tuning a cross-encoder is mostly noise


def summary(p: ImportPass) -> dict[str, Any]:
    """The counts of one pass (train and test side), as stored with the import and shown on the Data page."""
    per = p.pairs.per_split()
    ps, counts = p.pairs, p.log.counts
    return {
        "shape": p.shape,
        "shape_text": SHAPES.get(p.shape or "", None),
        "formats": p.formats,
        "columns": p.mappings,
        "rows": p.rows_read,
        "pairs": per["train"][1],
        "positives": per["train"][2],
        "negatives": per["train"][1] - per["train"][2],
        "unique_queries": per["train"][0],
        "unique_passages": len(ps.touched_passages),
        "test_pairs": per["test"][1],
        "test_queries": per["test"][0],
        "test_queries_without_positive": per["test"][3],
        "corpus_passages": ps.corpus_new,
        "duplicates_removed": ps.duplicates,
        "already_in_project": ps.already,
        "graded_duplicates": ps.graded,
        "blank_rows": p.blank_rows,
        "blank_negatives": p.blank_negatives,
        "dropped_rows": counts["dropped"],
        "split_overlap_dropped": counts["leak"],
        "conflicts": counts["conflict"],
        "errors": counts["error"],
        "long_texts": p.texts.n_long,
        "cleaning": p.texts.cleaner.report(),
    }


def final_warnings(p: ImportPass, s: dict[str, Any]) -> list[str]:
    """Plain sentences about what the person should know before training on this data."""
    out = list(p.warnings)
    total_train = p.pairs.existing_train_pairs + s["pairs"]
    if 0 < total_train < MIN_EXAMPLES:
        out.append(
            f"Only {total_train} labelled training examples: fine-tuning a reranker usually needs at "
            f"least {MIN_EXAMPLES}; expect noisy results, and add more data if you can."
        )
    if s["test_queries"] == 0 and p.pairs.existing_test_queries == 0:
        out.append("No test set: split one off by query or upload one, or the model cannot be evaluated.")
    if s["test_queries_without_positive"]:
        out.append(
            f"{s['test_queries_without_positive']} test queries have no relevant passage and "
            "count for nothing in evaluation."
        )
    if p.texts.n_long:
        first = p.texts.long_texts[0]
        out.append(
            f"{p.texts.n_long} texts are longer than {LONG_TEXT_CHARS:,} characters (first: {first.where()}); "
            "the model reads only the first ~512 tokens — see Quality for what is truncated."
        )
    if s["graded_duplicates"]:
        out.append(
            f"{s['graded_duplicates']} repeated pairs had different relevance grades; the highest was kept."
        )
    if s["dropped_rows"]:
        out.append(f"{s['dropped_rows']} rows with problems were skipped (listed with their row numbers).")
    if s["split_overlap_dropped"]:
        out.append(
            f"{s['split_overlap_dropped']} rows were left out because their query is on the other side "
            "of the train/test split (a query cannot be in both; listed with their row numbers)."
        )
    if s["blank_rows"]:
        out.append(f"{s['blank_rows']} blank rows were ignored.")
    return out


def nothing_usable(p: ImportPass, s: dict[str, Any], name: str) -> Problem | None:
    """A blocking problem when neither the project nor this import holds a relevant training pair."""
    if p.pairs.existing_train_positives + s["positives"] > 0:
        return None
    why = (
        "no usable training pairs"
        if s["pairs"] == 0
        else "no relevant (positive) training pair: every label is 0"
    )
    return Problem(name, f"nothing usable: {why}. Fix the problems listed, or check the column mapping.")
