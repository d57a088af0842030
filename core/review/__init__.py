"""The review desk's engine: a risk-ordered queue of mined negatives, judgements that land in their own
transaction with history, exact undo, two-tab safety and bulk sweeps — so hours of labelling are never lost —
and the export of the curated dataset (core.review.dataset_export)."""

from core.review.counts import SNIPPET, STATUSES, labelled_query, progress, query_progress
from core.review.judgements import (
    REVIEW_ORIGIN,
    ConflictError,
    bulk_judge,
    history,
    judge,
    last_undoable,
    preview,
    undo,
)
from core.review.queue import JUDGED, ORDERS, STATES, QueueFilter, candidate, desk, queue, queue_size

__all__ = [
    "JUDGED",
    "ORDERS",
    "REVIEW_ORIGIN",
    "SNIPPET",
    "STATES",
    "STATUSES",
    "ConflictError",
    "QueueFilter",
    "bulk_judge",
    "candidate",
    "desk",
    "history",
    "judge",
    "labelled_query",
    "last_undoable",
    "preview",
    "progress",
    "query_progress",
    "queue",
    "queue_size",
    "undo",
]
