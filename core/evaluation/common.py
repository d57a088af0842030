"""The vocabulary every evaluation module shares: its error, the first stages, and the notes that label figures.

Two kinds of figures are kept apart everywhere:
- realistic: the reranker sees only the first stage's top-k candidates (what a user will get);
- oracle: every relevant passage is among the candidates (an upper bound on reranking, never shown as real).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.errors import UserError
from core.scoring.first_stage import FIRST_STAGES as FIRST_STAGE_KINDS

Ranking = list[tuple[str, float]]  # (passage key, score), best first

SEARCHED = (
    FIRST_STAGE_KINDS  # first stages that search the corpus: core.scoring.first_stage.search's own list
)
EMBEDDED = ("embedding", "hybrid")  # first stages that embed the corpus with an embedding model
FIRST_STAGES = {
    "bm25": "BM25 (bm25s)",
    "embedding": "embedding model (exact search)",
    "hybrid": "hybrid: BM25 + embedding model (reciprocal rank fusion)",
    "file": "candidates from the file",
}
SNIPPET = 400
REALISTIC = "realistic"
ORACLE = "oracle"
REALISTIC_NOTE = "realistic: the reranker sees only the first stage's top-k candidates"
ORACLE_NOTE = (
    "oracle: every relevant passage is added to the candidates — an upper bound on reranking, "
    "not a figure a user will see"
)
FILE_ORACLE_NOTE = (
    "oracle: the file has no score or rank column, so its candidates are every row of the file — "
    "relevant passages included, in file order. These are upper-bound figures, not realistic ones; "
    "add a first-stage score or rank column, or pick BM25 or the embedding model, for realistic "
    "figures."
)
RANDOM_HEAD_NOTE = (
    "the base model is a bare encoder: its one-logit head is new and random, so its figures are "
    "arbitrary and not a meaningful baseline"
)


class EvaluationError(UserError):
    """An evaluation request a person must change (no test set, unfinished run, bad file, unsafe path)."""


def figures_kind(results: dict[str, Any]) -> str:
    """Which figures the evaluation's main tables hold: 'realistic', or 'oracle' (a file without scores)."""
    return str(results.get("params", {}).get("figures", REALISTIC))


def test_labels_note(used: Sequence[str]) -> str:
    """The label carried by every figure a run touches when the run used test labels for a choice."""
    return (
        f"optimistic: this run used the test labels for {', '.join(used)} — its figures on these test labels "
        "are not realistic; confirm on data it never saw"
    )
