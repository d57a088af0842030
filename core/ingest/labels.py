"""Relevance labels: parsing a cell into a grade, and how a repeated (query, passage) pair's labels relate."""

from __future__ import annotations

import math
from typing import Any

from core.errors import UserError
from core.ingest.problems import short


def parse_label(value: Any) -> float:
    """Labels are numbers >= 0 (0/1 or graded); true/false are accepted as 1/0."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        low = text.lower()
        if low in ("true", "yes"):
            return 1.0
        if low in ("false", "no"):
            return 0.0
        if not text:
            raise UserError("the label is empty; use 0 (not relevant) or 1 (relevant), or a graded number.")
        try:
            number = float(text)
        except ValueError:
            raise UserError(
                f"the label {short(text, 40)!r} is not a number; use 0/1 or a graded "
                "relevance (0, 1, 2, ...)."
            ) from None
    if math.isnan(number) or math.isinf(number):
        raise UserError("the label is not a finite number.")
    if number < 0:
        raise UserError(f"the label {number:g} is negative; labels are 0 (not relevant) or above.")
    return number


def is_relevant(label: float) -> bool:
    """Graded labels: anything above 0 is relevant, 0 is not."""
    return label > 0


def compare_labels(first: float, second: float) -> str:
    """How a repeated (query, passage) pair relates to its first occurrence.

    'duplicate': same label, dropped; 'grade': both relevant with different grades, the higher grade is kept;
    'conflict': relevant once and not relevant once — a person must decide, so the import stops.
    """
    if first == second:
        return "duplicate"
    if is_relevant(first) != is_relevant(second):
        return "conflict"
    return "grade"
