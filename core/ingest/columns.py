"""Which file column plays which part (query, positive, passage, label, negatives), guessed from the header."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from core.errors import UserError
from core.ingest.labels import parse_label
from core.ingest.problems import IngestError, Problem

SHAPES = {
    "pairs": "(query, positive)",
    "labelled": "(query, passage, label)",
    "triplets": "(query, positive, negative)",
    "multi": "(query, positive, negative_1..n)",
}

_SYNONYMS = {
    "query": [
        "query",
        "queries",
        "question",
        "q",
        "anchor",
        "claim",
        "query_text",
        "search_query",
        "search_term",
        "prompt",
        "sentence1",
        "text_a",
        "question_text",
    ],
    "label": [
        "label",
        "labels",
        "score",
        "relevance",
        "rel",
        "grade",
        "y",
        "is_relevant",
        "judgement",
        "judgment",
        "relevant",
        "target",
    ],
    "positive": [
        "positive",
        "positives",
        "pos",
        "positive_passage",
        "positive_passages",
        "relevant_passage",
        "positive_document",
        "answer",
        "passage",
        "passages",
        "document",
        "doc",
        "text",
        "context",
        "content",
        "body",
        "sentence2",
        "text_b",
        "corpus",
        "response",
        "relevant",
    ],
    "passage": [
        "passage",
        "passages",
        "document",
        "doc",
        "text",
        "context",
        "content",
        "body",
        "candidate",
        "sentence2",
        "text_b",
        "corpus",
        "response",
        "answer",
        "positive",
    ],
    "negative": [
        "negative",
        "negatives",
        "neg",
        "negs",
        "hard_negative",
        "hard_negatives",
        "negative_passage",
        "negative_passages",
        "negative_document",
    ],
}
_WEAK_LABELS = {"relevant", "target"}
_NUMBERED_NEGATIVE = re.compile(r"^(?:hard_)?neg(?:ative)?s?_?(\d+)$")


def norm(name: str) -> str:
    """A column name compared loosely: lower case, spaces/dashes/dots as underscores."""
    return re.sub(r"[\s\-.]+", "_", name.strip().lower())


@dataclass
class ColumnMap:
    """Which file column plays which part; the shape follows from which parts are set."""

    query: str
    positive: str | None = None  # a relevant passage per row (pairs, triplets)
    passage: str | None = None  # a passage whose relevance is in `label`
    label: str | None = None
    negatives: list[str] = field(default_factory=list)

    @property
    def shape(self) -> str:
        """pairs, labelled, triplets or multi, from the parts that are set."""
        if self.label:
            return "labelled"
        if not self.negatives:
            return "pairs"
        return "triplets" if len(self.negatives) == 1 else "multi"

    @property
    def shape_text(self) -> str:
        """The shape as people read it, e.g. '(query, positive)'."""
        return SHAPES[self.shape]

    def used(self) -> list[str]:
        """The mapped columns, query first."""
        cols = [self.query, self.positive, self.passage, self.label, *self.negatives]
        return [c for c in cols if c]

    def to_dict(self) -> dict[str, Any]:
        """The mapping as stored in an import's summary."""
        return asdict(self)

    @classmethod
    def parse(cls, spec: str) -> ColumnMap:
        """The CLI's --column-map: 'query=question,positive=answer,negatives=n1|n2' or 'label=score,...'."""
        parts: dict[str, Any] = {"negatives": []}
        for item in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, value = item.partition("=")
            key = key.strip().lower()
            if not sep or not value.strip():
                raise UserError(f"--column-map: expected ROLE=COLUMN, got {item!r}.")
            if key in ("negative", "negatives"):
                parts["negatives"] += [v.strip() for v in value.split("|") if v.strip()]
            elif key in ("query", "positive", "passage", "label"):
                parts[key] = value.strip()
            else:
                raise UserError(
                    f"--column-map: unknown role {key!r}; roles are query, positive, passage, "
                    "label, negatives."
                )
        if "query" not in parts:
            raise UserError("--column-map needs query=COLUMN.")
        return cls(**parts)

    def validate(self, columns: list[str], file: str) -> None:
        """Every mapped column must exist and the parts must make a shape."""
        missing = [c for c in self.used() if c not in columns]
        if missing:
            raise IngestError(
                Problem(
                    file,
                    f"column {missing[0]!r} is not in the file; its columns are: {', '.join(columns)}.",
                    column=missing[0],
                )
            )
        if len(set(self.used())) != len(self.used()):
            raise IngestError(
                Problem(file, "one column is mapped to two parts; each part needs its own column.")
            )
        if self.label and not self.passage:
            raise IngestError(Problem(file, "a label column needs a passage column to label."))
        if not self.label and not self.positive:
            raise IngestError(
                Problem(
                    file,
                    "choose a positive (relevant passage) column, or a passage column and a label column.",
                )
            )
        if self.label and (self.positive or self.negatives):
            raise IngestError(
                Problem(
                    file, "with a label column, map one passage column only (no positive/negative columns)."
                )
            )


def _find(normed: dict[str, str], role: str, exclude: set[str]) -> str | None:
    for syn in _SYNONYMS[role]:
        if syn in normed and normed[syn] not in exclude:
            return normed[syn]
    return None


def _numeric(col: str, sample: list[dict[str, Any]]) -> bool:
    values = [r.get(col) for r in sample if "__error__" not in r and r.get(col) not in (None, "")]
    if not values:
        return True
    ok = 0
    for v in values[:50]:
        try:
            parse_label(v)
            ok += 1
        except ValueError:
            pass
    return ok >= max(1, len(values[:50]) * 0.8)


def detect_columns(
    columns: list[str], sample: list[dict[str, Any]] | None = None, file: str = "file"
) -> ColumnMap:
    """Guess the column roles from the header (and a few rows); raises with what was found and expected."""
    normed = {norm(c): c for c in columns}
    sample = sample or []
    query = _find(normed, "query", set())
    if query is None:
        raise IngestError(
            Problem(
                file,
                f"no query column found among: {', '.join(columns) or '(none)'}. Name one 'query' (or "
                "question / anchor), or map the columns by hand.",
            )
        )
    used = {query}
    numbered = sorted(
        ((int(m.group(1)), c) for c in columns if (m := _NUMBERED_NEGATIVE.match(norm(c)))),
        key=lambda t: t[0],
    )
    negatives = [c for _, c in numbered]
    if not negatives:
        neg = _find(normed, "negative", used)
        negatives = [neg] if neg else []
    used |= set(negatives)
    label = _find(normed, "label", used)
    if label is not None and norm(label) in _WEAK_LABELS and not _numeric(label, sample):
        label = None  # e.g. a "relevant" column that holds passages, not numbers
    if label is not None and not negatives:
        passage = _find(normed, "passage", used | {label})
        if passage is None:
            raise IngestError(
                Problem(
                    file, f"found a label column {label!r} but no passage column among: {', '.join(columns)}."
                )
            )
        return ColumnMap(query=query, passage=passage, label=label)
    positive = _find(normed, "positive", used)
    if positive is None:
        raise IngestError(
            Problem(
                file,
                f"no passage column found among: {', '.join(columns)}. Name the relevant text 'positive' "
                "(or passage / document / text), or map the columns by hand.",
            )
        )
    return ColumnMap(query=query, positive=positive, negatives=negatives)
